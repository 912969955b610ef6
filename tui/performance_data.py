"""What the Performance view shows: its query and its figures, as frozen values.

:meth:`stocksbot_tui.data.DashboardSource.performance` reads them, in one snapshot, on a
worker thread; this module holds only the types (and the store's types they carry).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from stocksbot_store.equity import EquityPoint
from stocksbot_store.marks import PositionValue
from stocksbot_store.reports import PERIODS, PnlRow


@dataclass(frozen=True)
class PerformanceQuery:
    """The by-period table's period and filters (None: every strategy / symbol)."""

    period: str = "day"
    strategy: str | None = None
    symbol: str | None = None

    def next_period(self) -> PerformanceQuery:
        """The same filters with the next of day, week and month."""
        period = PERIODS[(PERIODS.index(self.period) + 1) % len(PERIODS)]
        return PerformanceQuery(period, self.strategy, self.symbol)

    def describe(self) -> str:
        """``P&L by week, momentum, all symbols``."""
        return (
            f"P&L by {self.period}, {self.strategy or 'all strategies'}, "
            f"{self.symbol or 'all symbols'}"
        )


@dataclass(frozen=True)
class ReconcileSummary:
    """The last reconcile run, as the view shows it."""

    ran_at: dt.datetime
    applied: bool
    differences: tuple[str, ...]


@dataclass(frozen=True)
class Performance:
    """Everything the Performance view shows, as of one load."""

    query: PerformanceQuery
    curve: tuple[EquityPoint, ...]
    by_period: tuple[PnlRow, ...]
    by_symbol: tuple[PnlRow, ...]
    positions: tuple[PositionValue, ...]
    reconcile: ReconcileSummary | None
    strategies: tuple[str, ...]
    symbols: tuple[str, ...]

    @property
    def total_net(self) -> Decimal:
        """Net realized P&L over the by-period rows."""
        return sum((r.net_pnl for r in self.by_period), Decimal(0))


def cycle(current: str | None, choices: tuple[str, ...]) -> str | None:
    """The choice after ``current`` in ``(None, *choices)``, wrapping round."""
    options = (None, *choices)
    index = options.index(current) if current in options else 0
    return options[(index + 1) % len(options)]


__all__ = ["Performance", "PerformanceQuery", "ReconcileSummary", "cycle"]
