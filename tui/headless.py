"""The dashboard run headless: an SVG screenshot, and the time it takes to start."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from .app import DashboardApp
from .data import translate_path_errors

SIZE = (160, 40)


async def _until_drawn(app: DashboardApp, pilot, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while app.snapshot is None and app.error is None:
        if time.monotonic() > deadline:
            raise TimeoutError("the dashboard drew nothing within the time allowed")
        await pilot.pause(0.02)
    await pilot.pause()


def save_screenshot(app: DashboardApp, path: str, size: tuple[int, int] = SIZE) -> str:
    """Run ``app`` headless until its first refresh is drawn; save an SVG to ``path``.

    A path that cannot be written is a :class:`~stocksbot_store.errors.PathError`
    naming it and the fix."""
    target = Path(path)

    async def shoot() -> str:
        async with app.run_test(size=size) as pilot:
            await _until_drawn(app, pilot)
            with translate_path_errors("the screenshot", path):
                return app.save_screenshot(target.name, str(target.parent or "."))

    return asyncio.run(shoot())


def startup_seconds(app: DashboardApp, size: tuple[int, int] = SIZE) -> float:
    """Seconds from starting ``app`` (headless) to its first refresh drawn on screen."""

    async def measure() -> float:
        start = time.perf_counter()
        async with app.run_test(size=size) as pilot:
            await _until_drawn(app, pilot)
            return time.perf_counter() - start

    return asyncio.run(measure())
