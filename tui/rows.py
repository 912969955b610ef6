"""The plain values the dashboard's door (:mod:`stocksbot_tui.data`) hands to the views:
what to read (the queries) and what was read (frozen rows, pages and the snapshot of
one refresh). No database here: only :mod:`stocksbot_tui.data` reads the store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the store's own rows, carried as they are
    from stocksbot_store import StoreStats
    from stocksbot_store.service import StrategyStats


@dataclass(frozen=True)
class Sort:
    """A sort done in SQL: a column of the view (see ``stocksbot_store.queries``)."""

    column: str
    descending: bool = True


@dataclass(frozen=True)
class OrderQuery:
    """Which orders to show: filters, sort, and where the page starts.

    Unsorted, pages are newest first and start before ``before_id`` (None: the
    newest); sorted, they start at ``offset``.
    """

    symbol: str | None = None
    status: str | None = None
    side: str | None = None
    strategy: str | None = None
    before_id: int | None = None
    sort: Sort | None = None
    offset: int = 0

    def first_page(self) -> OrderQuery:
        """The same filters and sort, from the first page."""
        return replace(self, before_id=None, offset=0)

    def next_page(self, page: OrderPage) -> OrderQuery:
        """The query of the page after ``page`` (of this query)."""
        if self.sort is None:
            return replace(self, before_id=page.rows[-1].id)
        return replace(self, offset=self.offset + len(page.rows))

    @property
    def filtered(self) -> bool:
        """Whether any filter is set."""
        return any((self.symbol, self.status, self.side, self.strategy))

    def describe(self) -> str:
        """``symbol=AAPL side=buy`` or ``all orders``."""
        parts = [
            f"{name}={value}"
            for name, value in (
                ("symbol", self.symbol),
                ("status", self.status),
                ("side", self.side),
                ("strategy", self.strategy),
            )
            if value
        ]
        return " ".join(parts) or "all orders"


@dataclass(frozen=True)
class PositionRow:
    """An open position valued at its latest mark, else at its last fill."""

    symbol: str
    side: str
    quantity: Decimal
    avg_entry_price: Decimal
    cost_basis: Decimal
    last_price: Decimal | None
    unrealized_pnl: Decimal
    realized_pnl: Decimal


@dataclass(frozen=True)
class OrderRow:
    """One order as the orders table shows it."""

    id: int
    created_at: dt.datetime
    symbol: str
    side: str
    type: str
    status: str
    quantity: Decimal
    filled_quantity: Decimal
    price: Decimal | None
    avg_fill_price: Decimal | None
    strategy: str


@dataclass(frozen=True)
class TradeRow:
    """One fill."""

    id: int
    executed_at: dt.datetime
    symbol: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal
    costs: Decimal
    realized_pnl: Decimal | None
    order_id: int | None
    strategy: str


@dataclass(frozen=True)
class OrderPage:
    """A page of orders, newest first, for ``query``."""

    query: OrderQuery
    rows: tuple[OrderRow, ...]
    has_more: bool


@dataclass(frozen=True)
class AuditQuery:
    """Which audit entries to show, newest first: filters, and where the page starts
    (before entry ``before_id``; None: the newest)."""

    table: str | None = None
    row_id: int | None = None
    actor: str | None = None
    before_id: int | None = None

    def first_page(self) -> AuditQuery:
        """The same filters, from the newest entry."""
        return replace(self, before_id=None)

    def next_page(self, page: AuditPage) -> AuditQuery:
        """The query of the page after ``page`` (of this query)."""
        return replace(self, before_id=page.rows[-1].id)

    def describe(self) -> str:
        """``table=orders id=42`` or ``whole audit log``."""
        parts = [
            f"{name}={value}"
            for name, value in (("table", self.table), ("id", self.row_id), ("actor", self.actor))
            if value is not None
        ]
        return " ".join(parts) or "whole audit log"


@dataclass(frozen=True)
class AuditRow:
    """One audit entry: ``changes`` is ``(field, before, after)`` as text, ``-`` for
    a value that is not there (a created row's before)."""

    id: int
    at: dt.datetime
    actor: str
    table: str
    row_id: int | None
    action: str
    changes: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class AuditPage:
    """A page of audit entries, newest first, for ``query``."""

    query: AuditQuery
    rows: tuple[AuditRow, ...]
    has_more: bool


@dataclass(frozen=True)
class OrderDetail:
    """An order (None: there is no such order), its fills, oldest first, and its history
    in the audit log, newest first, read in one snapshot. ``history_failed`` says why
    the history could not be read (it is then empty); the order and fills still show."""

    order: OrderRow | None
    fills: tuple[TradeRow, ...]
    history: tuple[AuditRow, ...] = ()
    history_failed: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything the views show, as of one refresh.

    ``failed`` maps a view (``positions``, ``orders``, ``strategies``, ``trades``),
    ``trading`` or ``health`` to why it could not be read; its figures are then empty (None for
    ``trading_enabled``).
    """

    trading_enabled: bool | None
    positions: tuple[PositionRow, ...]
    strategies: tuple[StrategyStats, ...]
    pnl_series: dict[int, tuple[Decimal, ...]] = field(default_factory=dict)
    trades: tuple[TradeRow, ...] = ()
    orders: OrderPage | None = None
    failed: dict[str, str] = field(default_factory=dict)
    #: The store's figures for the health line (None: not read; see ``failed``). A
    #: reading differs at every refresh (its time, the statements counted), so it is
    #: not part of what makes two snapshots show the same.
    health: StoreStats | None = field(default=None, compare=False)

    @property
    def totals(self) -> tuple[Decimal, Decimal, Decimal]:
        """Cost basis, unrealized and realized P&L over the open positions."""
        return (
            sum((p.cost_basis for p in self.positions), Decimal(0)),
            sum((p.unrealized_pnl for p in self.positions), Decimal(0)),
            sum((p.realized_pnl for p in self.positions), Decimal(0)),
        )


__all__ = [
    "AuditPage",
    "AuditQuery",
    "AuditRow",
    "OrderDetail",
    "OrderPage",
    "OrderQuery",
    "OrderRow",
    "PositionRow",
    "Snapshot",
    "Sort",
    "TradeRow",
]
