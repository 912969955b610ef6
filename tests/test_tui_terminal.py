"""The dashboard in a real terminal: ``python -m stocksbot_tui --demo`` in tmux, read with
capture-pane.

The demo's simulated bot keeps trading, so the newest trade id on the trades view
must change within a few seconds. Needs tmux (``.ci/run`` installs it); without it
the test skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest

SESSION = f"stocksbot-dashboard-test-{uuid.uuid4().hex[:8]}"


def tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", *args], check=True, capture_output=True, text=True, timeout=10
    ).stdout


def screen() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def wait_for(condition, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = screen()
        if condition(text):
            return text
        time.sleep(0.2)
    pytest.fail(f"the terminal never showed what was expected; it shows:\n{screen()}")


def newest_trade(text: str) -> int | None:
    """The first trade id in the trades table (rows start with the id)."""
    for line in text.splitlines():
        match = re.match(r"\s+(\d+)\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+[A-Z]+\s+(buy|sell)", line)
        if match:
            return int(match.group(1))
    return None


@pytest.fixture
def demo_session():
    if shutil.which("tmux") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true needs tmux for the real-terminal test", pytrace=False)
        pytest.skip("tmux is not installed")
    command = f"{sys.executable} -m stocksbot_tui --demo --refresh 0.5"
    tmux("new-session", "-d", "-s", SESSION, "-x", "160", "-y", "48", command)
    try:
        yield
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True, timeout=10)


def test_demo_moves_in_a_real_terminal(demo_session):
    wait_for(lambda text: "LIVE" in text and "TOTAL" in text)
    tmux("send-keys", "-t", SESSION, "4")
    first = newest_trade(wait_for(lambda text: newest_trade(text) is not None))
    wait_for(lambda text: (newest_trade(text) or 0) > first)
    tmux("send-keys", "-t", SESSION, "q")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if (
            subprocess.run(["tmux", "has-session", "-t", SESSION], capture_output=True).returncode
            != 0
        ):
            return
        time.sleep(0.2)
    pytest.fail("q did not quit the dashboard")
