"""The dashboard's refresh, as the bench measures it.

The dashboard reads the store through ``stocksbot_tui.data.DashboardSource``; its
``refresh()`` is one refresh with no UI, returning None when nothing changed.
When that module cannot be imported, the bench falls back to the store calls the
views make (open positions, strategy stats, a page of orders, the latest fills),
so the workload still runs; the table names which one was measured.
"""

from __future__ import annotations

from typing import Any

from peewee import Database

from stocksbot_store import StorageService


class StoreCallsRefresh:
    """The views' store calls, made one after the other (no change detection)."""

    name = "store calls"

    def __init__(self, db: Database) -> None:
        self.storage = StorageService(db)

    def refresh(self) -> Any:
        s = self.storage
        return (
            s.get_open_positions(),
            s.get_strategy_stats(),
            s.orders.page(limit=50),
            s.get_recent_trades(50),
        )

    def close(self) -> None:
        """Nothing to release."""


class DashboardRefresh:
    """``stocksbot_tui.data.DashboardSource.refresh``: the dashboard's own refresh."""

    name = "stocksbot_tui.data"

    def __init__(self, db: Database, source_class: type) -> None:
        self.source = source_class(db)

    def refresh(self) -> Any:
        return self.source.refresh()

    def close(self) -> None:
        self.source.close()


def dashboard_refresh_source(db: Database) -> StoreCallsRefresh | DashboardRefresh:
    """The dashboard's refresh on ``db`` if the dashboard is installed, else the store calls."""
    try:
        from stocksbot_tui.data import DashboardSource
    except ImportError:
        return StoreCallsRefresh(db)
    return DashboardRefresh(db, DashboardSource)
