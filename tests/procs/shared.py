"""What the child processes of the crash and soak tests share (run by path, so a sibling)."""

from __future__ import annotations

from collections.abc import Iterable

from stocksbot_store import DuplicateError, StorageService


def ensure_strategies(storage: StorageService, names: Iterable[str]) -> None:
    """Create the strategies that do not exist yet; several processes may race to it."""
    for name in names:
        if storage.get_strategy_by_name(name) is None:
            try:
                storage.create_strategy(name)
            except DuplicateError:
                pass  # another process created it first
