"""What the Performance view shows, read in one call on a worker thread.

:func:`load_performance` asks the store for the equity curve, P&L by period (with the
view's period and filters) and by symbol, the open positions at their marks and the
last reconcile run, and returns them as one frozen :class:`Performance`. Every
report reads the figures fills keep, so a load costs the same at any history size.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from stocksbot_store import StorageService
from stocksbot_store.equity import EquityPoint
from stocksbot_store.marks import PositionValue
from stocksbot_store.reports import PERIODS, PnlRow

#: Days of equity curve and daily bars drawn.
CURVE_DAYS = 90


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
        return (f"P&L by {self.period}, {self.strategy or 'all strategies'}, "
                f"{self.symbol or 'all symbols'}")


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


def load_performance(storage: StorageService, query: PerformanceQuery) -> Performance:
    """Read the view's figures for ``query`` (on the caller's connection)."""
    curve = storage.equity_curve()[-CURVE_DAYS:]
    by_symbol = storage.pnl_by_symbol()
    run = storage.last_reconcile()
    summary = None if run is None else ReconcileSummary(
        run.ran_at, run.applied, tuple(
            f"{d['kind']} {d['subject']}: store {d['store']}, broker {d['broker']}"
            for d in (run.differences or [])))
    return Performance(
        query=query, curve=tuple(curve),
        by_period=tuple(storage.pnl_by_period(query.period, strategy=query.strategy,
                                              symbol=query.symbol)),
        by_symbol=tuple(by_symbol), positions=tuple(storage.get_position_values()),
        reconcile=summary,
        strategies=tuple(s.name for s in storage.strategies.get_all()),
        symbols=tuple(r.key for r in by_symbol))


def cycle(current: str | None, choices: tuple[str, ...]) -> str | None:
    """The choice after ``current`` in ``(None, *choices)``, wrapping round."""
    options = (None, *choices)
    index = options.index(current) if current in options else 0
    return options[(index + 1) % len(options)]


__all__ = ["Performance", "PerformanceQuery", "ReconcileSummary", "cycle",
           "load_performance"]
