"""The dashboard's only door to the store: what each view shows, read in one call.

:class:`DashboardSource` turns the store into plain frozen rows for the widgets.
:meth:`DashboardSource.refresh` is one dashboard refresh without any UI: it
returns a :class:`Snapshot`, or None when nothing changed since the last call
(see :class:`~stocksbot_store.queries.ChangeWatcher`), which is what makes an idle
dashboard nearly free. Every call may run on any thread: each uses that thread's
own connection, kept open for the thread's next call. Every read is bounded (a
page of orders, the last fills), so memory and time do not grow with history.

A refresh tells two kinds of trouble apart. A database that cannot be reached
(:func:`is_unavailable`) fails the whole refresh, to be retried. Any other error
while reading one view's figures (a value the code cannot compute, a query that
fails) fails only that view: :attr:`Snapshot.failed` names it and says why, and
every other view is read as usual.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TypeVar

import peewee
from peewee import Database

from stocksbot_store import (
    DatabaseUnavailableError,
    StorageError,
    StorageService,
    StoreStats,
    connect,
    stats,
)
from stocksbot_store.database import describe
from stocksbot_store.errors import translate_errors
from stocksbot_store.marks import latest_marks
from stocksbot_store.migrate import ensure_schema
from stocksbot_store.models import ZERO, Order, Position, PositionSideEnum, Strategy, Trade
from stocksbot_store.queries import (
    ChangeWatcher,
    last_prices,
    order_page,
    realized_pnl_series,
    trade_page,
)
from stocksbot_store.service import StrategyStats

from .performance_data import Performance, PerformanceQuery, load_performance

T = TypeVar("T")

#: Orders per page: never more rows than this in the orders table.
PAGE_SIZE = 50
#: Fills shown in the trades view.
TRADES_SHOWN = 50
#: Points in a strategy's P&L chart.
CHART_POINTS = 120


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached (lost connection, server
    down, lock time-out): worth retrying as a whole, unlike a figure that failed."""
    return isinstance(error, (DatabaseUnavailableError, peewee.OperationalError,
                              peewee.InterfaceError))


def one_line(error: BaseException) -> str:
    """The first line of an error's message; an error that is not the store's own
    (a raw ``decimal.InvalidOperation``, say) is named by its class as well."""
    text = (str(error).strip().splitlines() or [""])[0][:200]
    if isinstance(error, StorageError) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


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
        parts = [f"{name}={value}" for name, value in
                 (("symbol", self.symbol), ("status", self.status), ("side", self.side),
                  ("strategy", self.strategy)) if value]
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
        return (sum((p.cost_basis for p in self.positions), ZERO),
                sum((p.unrealized_pnl for p in self.positions), ZERO),
                sum((p.realized_pnl for p in self.positions), ZERO))


class DashboardSource:
    """Reads (and, for the operator actions, writes) the store for the dashboard."""

    def __init__(self, db: Database | str | None = None, *, poll_seconds: float = 15.0,
                 page_size: int = PAGE_SIZE,
                 health: Callable[[Database], StoreStats] = stats) -> None:
        # connect() only checks the URL here (a bad one raises ConfigurationError at
        # once); reaching the server and checking the schema wait for the first read,
        # on a worker thread, where failures are shown and retried.
        self.db = db if isinstance(db, Database) else connect(db, migrate=False)
        self._schema_checked = isinstance(db, Database)
        self.storage = StorageService(self.db)
        self.watcher = ChangeWatcher(self.db, poll_seconds=poll_seconds)
        self.page_size = page_size
        #: How the health line's figures are read (``stocksbot_store.stats``).
        self.read_health = health
        self._names: dict[int, str] = {}

    @property
    def description(self) -> str:
        """The database, password masked."""
        return describe(self.db)

    def refresh(self, orders: OrderQuery | None = OrderQuery(), force: bool = False,
                trades: Sort | None = None) -> Snapshot | None:
        """One dashboard refresh: a :class:`Snapshot`, or None if nothing changed.

        ``orders`` is the page of orders to include (None for none); ``trades`` the
        sort of the fills shown (None: the most recent); ``force`` reads even when
        no change was seen. Raises a StorageError when the database cannot be read
        at all; the next call tries again. A view whose figures fail is named in
        :attr:`Snapshot.failed` instead.
        """
        if not self._schema_checked:
            with self._connection():
                self._check_schema()
        if not self.watcher.changed() and not force:
            return None
        with self._connection():
            failed: dict[str, str] = {}

            def part(name: str, read: Callable[[], T], empty: T) -> T:
                try:
                    return read()
                except Exception as e:
                    if is_unavailable(e):
                        raise
                    failed[name] = one_line(e)
                    return empty

            self._names = self._read_names()
            strategies = part("strategies", self._strategies, ((), {}))
            return Snapshot(
                trading_enabled=part("trading", self.storage.is_trading_enabled, None),
                positions=part("positions", self._positions, ()),
                strategies=strategies[0],
                pnl_series=strategies[1],
                trades=part("trades", lambda: self._trades(trades), ()),
                orders=None if orders is None else part("orders",
                                                        lambda: self._orders(orders), None),
                failed=failed,
                health=part("health", lambda: self.read_health(self.db), None),
            )

    def orders(self, query: OrderQuery) -> OrderPage:
        """One page of orders for ``query`` (keyset or offset paging in SQL)."""
        with self._connection():
            self._check_schema()
            if not self._names:
                self._names = self._read_names()
            return self._orders(query)

    def performance(self, query: PerformanceQuery) -> Performance:
        """The Performance view's figures for ``query``."""
        with self._connection():
            return load_performance(self.storage, query)

    def order_fills(self, order_id: int) -> tuple[OrderRow | None, tuple[TradeRow, ...]]:
        """An order and its fills, oldest first."""
        with self._connection():
            order = self.storage.orders.get_by_id(order_id)
            fills = self.storage.trades.get_by_order_id(order_id)
            return (None if order is None else self._order_row(order),
                    tuple(self._trade_row(t) for t in fills))

    def set_trading_enabled(self, enabled: bool) -> None:
        """Halt (False) or resume (True) trading."""
        with self._connection():
            self.storage.set_trading_enabled(enabled)

    def set_strategy_active(self, strategy_id: int, active: bool) -> None:
        """Activate or deactivate a strategy."""
        with self._connection():
            self.storage.set_strategy_active(strategy_id, active)

    def close(self) -> None:
        """Release the kept connection and this thread's one."""
        self.watcher.close()
        if not self.db.is_closed():
            self.db.close()

    @contextmanager
    def _connection(self) -> Iterator[None]:
        """This thread's connection, opened if need be and kept for its next call.

        Workers run on a small pool of reused threads, so keeping each thread's
        connection saves a connect per refresh (milliseconds on PostgreSQL). A
        failure closes it, so the next call starts on a fresh one.
        """
        self.db.connect(reuse_if_open=True)
        try:
            yield
        except BaseException:
            if not self.db.is_closed():
                self.db.close()
            raise

    def _check_schema(self) -> None:
        """Once: bring a new empty store to the latest schema, refuse an outdated one
        (SchemaError names the migrate command that fixes it)."""
        if not self._schema_checked:
            ensure_schema(self.db)
            self._schema_checked = True

    # -- rows ------------------------------------------------------------------------

    def _read_names(self) -> dict[int, str]:
        """Strategy names by id (the rows name their strategy), read on their own so
        that a strategy figure that fails does not take the names with it."""
        query = Strategy.select(Strategy.id, Strategy.name).bind(self.db).tuples()
        with translate_errors("reading strategy names"):
            return dict(query)

    def _strategies(self) -> tuple[tuple[StrategyStats, ...],
                                   dict[int, tuple[Decimal, ...]]]:
        strategies = tuple(self.storage.get_strategy_stats())
        return strategies, {s.id: tuple(v for _, v in realized_pnl_series(
            self.db, s.id, s.gross_pnl, CHART_POINTS)) for s in strategies}

    def _positions(self) -> tuple[PositionRow, ...]:
        positions = self.storage.get_open_positions()
        prices = last_prices(self.db, [p.symbol for p in positions])
        # A recorded market price wins over the last fill (see stocksbot_store.marks).
        prices.update((s, price) for s, (price, _) in latest_marks(self.db).items()
                      if s in prices)
        return tuple(_position_row(p, prices.get(p.symbol)) for p in positions)

    def _trades(self, sort: Sort | None) -> tuple[TradeRow, ...]:
        rows = trade_page(self.db, sort=None if sort is None else sort.column,
                          descending=sort is None or sort.descending, limit=TRADES_SHOWN)
        return tuple(self._trade_row(t) for t in rows)

    def _orders(self, query: OrderQuery) -> OrderPage:
        strategy_id = None
        if query.strategy:
            ids = [i for i, name in self._names.items() if name == query.strategy]
            if not ids:
                return OrderPage(query, (), False)
            strategy_id = ids[0]
        sort = query.sort
        rows = order_page(self.db, symbol=query.symbol, status=query.status, side=query.side,
                          strategy_id=strategy_id, sort=None if sort is None else sort.column,
                          descending=sort is None or sort.descending,
                          before_id=query.before_id, offset=query.offset,
                          limit=self.page_size + 1)
        return OrderPage(query, tuple(self._order_row(o) for o in rows[:self.page_size]),
                         has_more=len(rows) > self.page_size)

    def _order_row(self, o: Order) -> OrderRow:
        return OrderRow(o.id, o.created_at, o.symbol, o.side.value, o.type.value,
                        o.status.value, o.quantity, o.filled_quantity, o.price,
                        o.avg_fill_price, self._strategy_name(o.strategy_id))

    def _trade_row(self, t: Trade) -> TradeRow:
        return TradeRow(t.id, t.executed_at, t.symbol, t.side.value, t.type.value, t.quantity,
                        t.price, t.commission + t.fees, t.realized_pnl, t.order_id,
                        self._strategy_name(t.strategy_id))

    def _strategy_name(self, strategy_id: int | None) -> str:
        if strategy_id is None:
            return ""
        return self._names.get(strategy_id, f"#{strategy_id}")


def _position_row(p: Position, last: Decimal | None) -> PositionRow:
    unrealized = ZERO
    if last is not None:
        move = last - p.avg_entry_price
        unrealized = move * p.quantity * (1 if p.side == PositionSideEnum.LONG else -1)
    return PositionRow(p.symbol, p.side.value, p.quantity, p.avg_entry_price, p.cost_basis,
                       last, unrealized, p.realized_pnl)


__all__ = ["DashboardSource", "OrderPage", "OrderQuery", "OrderRow", "PositionRow",
           "Snapshot", "Sort", "TradeRow", "is_unavailable", "one_line"]
