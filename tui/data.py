"""The dashboard's only door to the store: what each view shows, read in one call.

No other module of the dashboard imports ``stocksbot_store`` (the ``--demo`` bot
aside, which writes a store of its own; ``tests/test_tui_data.py`` checks it): the
widgets get the store's constants and types from here.

:class:`DashboardSource` turns the store into plain frozen rows for the widgets.
:meth:`DashboardSource.refresh` is one dashboard refresh without any UI: it
returns a :class:`Snapshot`, or None when nothing changed since the last call
(see :class:`~stocksbot_store.queries.ChangeWatcher`), which is what makes an idle
dashboard nearly free. Every call may run on any thread: each uses that thread's
own connection, kept open for the thread's next call. Every read is bounded (a
page of orders, the last fills), so memory and time do not grow with history.

**One snapshot per call.** Everything one call reads (a refresh's six-plus
queries, a page of orders, an order and its fills, the Performance figures) is read
in one read transaction (:func:`read_transaction`): ``REPEATABLE READ, READ ONLY``
on PostgreSQL, one deferred read transaction on SQLite, so a commit of the bot
between two queries can never show an order filled beside a position that is not.
With read replicas the whole transaction runs on one replica that has replayed
this process's writes (else on the primary): one connection, one snapshot.

**Reads cannot write.** Opened from a URL, the source reads through a read-only
database (``connect(url, read_only=True)``: a SQLite file ``mode=ro``, which can
never take the write lock from the bot; PostgreSQL sessions read-only). The
operator actions (halt/resume trading, (de)activate a strategy) and the one-time
schema check, which creates the schema of a new empty database, go through a
writable connection opened for that call alone and closed after it.

A refresh tells two kinds of trouble apart. A database that cannot be reached
(:func:`is_unavailable`) fails the whole refresh, to be retried. Any other error
while reading one view's figures (a value the code cannot compute, a query that
fails) fails only that view: :attr:`Snapshot.failed` names it and says why, and
every other view is read as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from typing import TypeVar

import peewee
from peewee import Database

from stocksbot_store import (
    DatabaseUnavailableError,
    StorageError,
    StorageService,
    StoreStats,
    stats,
)
from stocksbot_store.backends import read_transaction
from stocksbot_store.database import DEFAULT_URL, backend_of, connect, database_url, describe
from stocksbot_store.errors import translate_errors, translate_path_errors
from stocksbot_store.marks import latest_marks
from stocksbot_store.metrics import format_bytes
from stocksbot_store.models import (
    ZERO,
    Order,
    OrderSideEnum,
    OrderStatusEnum,
    Position,
    PositionSideEnum,
    Strategy,
    Trade,
)
from stocksbot_store.monitor import KINDS
from stocksbot_store.queries import (
    ORDER_SORTS,
    TRADE_SORTS,
    ChangeWatcher,
    last_prices,
    order_page,
    realized_pnl_series,
    trade_page,
)
from stocksbot_store.replicas import snapshot_replica
from stocksbot_store.service import StrategyStats
from stocksbot_store.store import check_schema
from stocksbot_store.urls import ArgumentParser, sqlite_url_file_path

from .performance_data import Performance, PerformanceQuery, ReconcileSummary
from .rows import (
    AuditPage,
    AuditQuery,
    AuditRow,
    OrderDetail,
    OrderPage,
    OrderQuery,
    OrderRow,
    PositionRow,
    Snapshot,
    Sort,
    TradeRow,
)

T = TypeVar("T")

#: Orders per page: never more rows than this in the orders table.
PAGE_SIZE = 50
#: Fills shown in the trades view.
TRADES_SHOWN = 50
#: Points in a strategy's P&L chart.
CHART_POINTS = 120
#: Days of equity curve and daily bars in the Performance view.
CURVE_DAYS = 90
#: The order statuses and sides a filter may choose.
ORDER_STATUSES = tuple(s.value for s in OrderStatusEnum)
ORDER_SIDES = tuple(s.value for s in OrderSideEnum)
#: Entries of an order's history on its detail screen.
HISTORY_SHOWN = 100
#: The tables the audit log names (``StorageService.get_audit_log``).
AUDIT_TABLES = ("orders", "trades", "positions", "strategies", "config")
#: What statement kinds the health line counts (``stocksbot_store.monitor``).
STATEMENT_KINDS = KINDS


def read_health(db: Database) -> StoreStats:
    """The figures for the health line (``stocksbot_store.stats``; it reads the database)."""
    return stats(db)


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached (lost connection, server
    down, lock time-out): worth retrying as a whole, unlike a figure that failed."""
    return isinstance(
        error, (DatabaseUnavailableError, peewee.OperationalError, peewee.InterfaceError)
    )


def one_line(error: BaseException) -> str:
    """The first line of an error's message; an error that is not the store's own
    (a raw ``decimal.InvalidOperation``, say) is named by its class as well."""
    text = (str(error).strip().splitlines() or [""])[0][:200]
    if isinstance(error, StorageError) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class DashboardSource:
    """Reads (and, for the operator actions, writes) the store for the dashboard.

    ``db`` is a URL (None: ``$DATABASE_URL``), read through a read-only database with
    writes on connections of their own (see the module docstring), or a ``Database``
    the caller opened, used as it is for both.
    """

    def __init__(
        self,
        db: Database | str | None = None,
        *,
        poll_seconds: float = 15.0,
        page_size: int = PAGE_SIZE,
        health: Callable[[Database], StoreStats] = read_health,
    ) -> None:
        # connect() only checks the URL here (a bad one raises ConfigurationError at
        # once); reaching the server and checking the schema wait for the first read,
        # on a worker thread, where failures are shown and retried.
        if isinstance(db, Database):
            self.db, self._write_url = db, None
        else:
            url = database_url(db)
            self._write_url = None if _in_memory(url) else url
            self.db = connect(url, read_only=self._write_url is not None)
        self._schema_checked = self._write_url is None and isinstance(db, Database)
        self.storage = StorageService(self.db)
        self._services: dict[int, StorageService] = {id(self.db): self.storage}
        self.watcher = ChangeWatcher(self.db, poll_seconds=poll_seconds)
        self.page_size = page_size
        #: How the health line's figures are read (``stocksbot_store.stats``).
        self.read_health = health
        self._names: dict[int, str] = {}

    @property
    def description(self) -> str:
        """The database, password masked."""
        return describe(self.db)

    def refresh(
        self,
        orders: OrderQuery | None = OrderQuery(),
        force: bool = False,
        trades: Sort | None = None,
    ) -> Snapshot | None:
        """One dashboard refresh: a :class:`Snapshot`, or None if nothing changed.

        ``orders`` is the page of orders to include (None for none); ``trades`` the
        sort of the fills shown (None: the most recent); ``force`` reads even when
        no change was seen. Every figure is read in one read transaction (the
        health line's apart: they are the server's, not the store's). Raises a
        StorageError when the database cannot be read at all; the next call tries
        again. A view whose figures fail is named in :attr:`Snapshot.failed` instead.
        """
        self._check_schema()
        if not self.watcher.changed() and not force:
            return None
        failed: dict[str, str] = {}

        def part(name: str, read: Callable[[], T], empty: T, db: Database | None = None) -> T:
            try:
                with _isolated(db):
                    return read()
            except Exception as e:
                if is_unavailable(e):
                    raise
                failed[name] = one_line(e)
                return empty

        def read(storage: StorageService) -> Snapshot:
            db = storage.db
            self._names = self._read_names(db)
            strategies = part("strategies", lambda: self._strategies(storage), ((), {}), db)
            return Snapshot(
                trading_enabled=part("trading", storage.is_trading_enabled, None, db),
                positions=part("positions", lambda: self._positions(storage), (), db),
                strategies=strategies[0],
                pnl_series=strategies[1],
                trades=part("trades", lambda: self._trades(db, trades), (), db),
                orders=None
                if orders is None
                else part("orders", lambda: self._orders(db, orders), None, db),
                failed=failed,
            )

        snapshot = self._read(read)
        with self._connection():
            health = part("health", lambda: self.read_health(self.db), None)
        return replace(snapshot, health=health)

    def orders(self, query: OrderQuery) -> OrderPage:
        """One page of orders for ``query`` (keyset or offset paging in SQL)."""
        self._check_schema()

        def read(storage: StorageService) -> OrderPage:
            if not self._names:
                self._names = self._read_names(storage.db)
            return self._orders(storage.db, query)

        return self._read(read)

    def performance(self, query: PerformanceQuery) -> Performance:
        """The Performance view's figures for ``query``, read in one snapshot."""
        return self._read(lambda storage: _performance(storage, query))

    def order_fills(self, order_id: int) -> tuple[OrderRow | None, tuple[TradeRow, ...]]:
        """An order and its fills, oldest first, read in one snapshot."""
        detail = self.order_detail(order_id)
        return detail.order, detail.fills

    def order_detail(self, order_id: int) -> OrderDetail:
        """An order, its fills and its history in the audit log (the last
        :data:`HISTORY_SHOWN` entries), read in one snapshot."""

        def read(storage: StorageService) -> OrderDetail:
            order = storage.orders.get_by_id(order_id)
            fills = storage.trades.get_by_order_id(order_id)
            history: tuple[AuditRow, ...] = ()
            failed = None
            try:
                with _isolated(storage.db):
                    history = tuple(
                        _audit_row(e)
                        for e in storage.get_audit_log(
                            table="orders", row_id=order_id, limit=HISTORY_SHOWN
                        )
                    )
            except Exception as e:
                if is_unavailable(e):
                    raise
                failed = one_line(e)
            return OrderDetail(
                None if order is None else self._order_row(order),
                tuple(self._trade_row(t) for t in fills),
                history,
                failed,
            )

        return self._read(read)

    def audit(self, query: AuditQuery) -> AuditPage:
        """One page of the audit log for ``query``, newest first (keyset paging)."""

        def read(storage: StorageService) -> AuditPage:
            entries = storage.get_audit_log(
                table=query.table,
                row_id=query.row_id,
                actor=query.actor,
                before_id=query.before_id,
                limit=self.page_size + 1,
            )
            return AuditPage(
                query,
                tuple(_audit_row(e) for e in entries[: self.page_size]),
                has_more=len(entries) > self.page_size,
            )

        return self._read(read)

    def set_trading_enabled(self, enabled: bool) -> None:
        """Halt (False) or resume (True) trading."""
        with self._writing() as storage:
            storage.set_trading_enabled(enabled)

    def set_strategy_active(self, strategy_id: int, active: bool) -> None:
        """Activate or deactivate a strategy."""
        with self._writing() as storage:
            storage.set_strategy_active(strategy_id, active)

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

    def _read(self, read: Callable[[StorageService], T]) -> T:
        """``read(storage)`` in one read transaction (:func:`read_transaction`), on a
        replica of the database when one has replayed this process's writes (a replica
        lost on the way is skipped and the read done again on the primary), else on
        this thread's connection."""
        with self._connection():
            replica = snapshot_replica(self.db)
            if replica is not None:
                try:
                    with read_transaction(replica.db):
                        return read(self._service(replica.db))
                except Exception as e:
                    if not is_unavailable(e):
                        raise
                    replica.mark_down(e)
            with read_transaction(self.db):
                return read(self.storage)

    def _service(self, db: Database) -> StorageService:
        service = self._services.get(id(db))
        if service is None:
            service = self._services[id(db)] = StorageService(db)
        return service

    @contextmanager
    def _writing(self, writes: bool = True) -> Iterator[StorageService]:
        """A StorageService on a writable connection opened for this call alone (or the
        caller's own database, when it gave one). ``writes``: the call changes the
        store, so the next reads must see it (read-your-writes with replicas)."""
        if self._write_url is None:
            with self._connection():
                yield self.storage
            return
        db = connect(self._write_url, replicas=())
        try:
            yield StorageService(db)
        finally:
            if hasattr(db, "close_all"):
                db.close_all()  # a pool of its own: give its connections back to the server
            elif not db.is_closed():
                db.close()
            router = getattr(self.db, "replica_router", None)
            if router is not None and writes:
                router.note_write()  # read-your-writes: see stocksbot_store.replicas

    def _check_schema(self) -> None:
        """Once: bring a new empty store to the latest schema, refuse an outdated one
        (SchemaError names the migrate command that fixes it). Done through a writable
        connection: the read-only one cannot create."""
        if self._schema_checked:
            return
        with self._writing(writes=False) as storage:  # at head, one read (the usual case)
            check_schema(storage.db)
        self._schema_checked = True

    # -- rows ------------------------------------------------------------------------

    def _read_names(self, db: Database) -> dict[int, str]:
        """Strategy names by id (the rows name their strategy), read on their own so
        that a strategy figure that fails does not take the names with it. Deleted
        strategies are named too (their trades stay), after the live ones, so a name
        filter finds the live strategy of that name."""
        query = (
            Strategy.select(Strategy.id, Strategy.name)
            .order_by(Strategy.deleted_at.is_null(False), Strategy.id)
            .bind(db)
            .tuples()
        )
        with translate_errors("reading strategy names"):
            return dict(query)

    def _strategies(
        self, storage: StorageService
    ) -> tuple[tuple[StrategyStats, ...], dict[int, tuple[Decimal, ...]]]:
        strategies = tuple(storage.get_strategy_stats())
        return strategies, {
            s.id: tuple(
                v for _, v in realized_pnl_series(storage.db, s.id, s.gross_pnl, CHART_POINTS)
            )
            for s in strategies
        }

    def _positions(self, storage: StorageService) -> tuple[PositionRow, ...]:
        positions = storage.get_open_positions()
        prices = last_prices(storage.db, [p.symbol for p in positions])
        # A recorded market price wins over the last fill (see stocksbot_store.marks).
        prices.update(
            (s, price) for s, (price, _) in latest_marks(storage.db).items() if s in prices
        )
        return tuple(_position_row(p, prices.get(p.symbol)) for p in positions)

    def _trades(self, db: Database, sort: Sort | None) -> tuple[TradeRow, ...]:
        rows = trade_page(
            db,
            sort=None if sort is None else sort.column,
            descending=sort is None or sort.descending,
            limit=TRADES_SHOWN,
        )
        return tuple(self._trade_row(t) for t in rows)

    def _orders(self, db: Database, query: OrderQuery) -> OrderPage:
        strategy_id = None
        if query.strategy:
            ids = [i for i, name in self._names.items() if name == query.strategy]
            if not ids:
                return OrderPage(query, (), False)
            strategy_id = ids[0]
        sort = query.sort
        rows = order_page(
            db,
            symbol=query.symbol,
            status=query.status,
            side=query.side,
            strategy_id=strategy_id,
            sort=None if sort is None else sort.column,
            descending=sort is None or sort.descending,
            before_id=query.before_id,
            offset=query.offset,
            limit=self.page_size + 1,
        )
        return OrderPage(
            query,
            tuple(self._order_row(o) for o in rows[: self.page_size]),
            has_more=len(rows) > self.page_size,
        )

    def _order_row(self, o: Order) -> OrderRow:
        return OrderRow(
            o.id,
            o.created_at,
            o.symbol,
            o.side.value,
            o.type.value,
            o.status.value,
            o.quantity,
            o.filled_quantity,
            o.price,
            o.avg_fill_price,
            self._strategy_name(o.strategy_id),
        )

    def _trade_row(self, t: Trade) -> TradeRow:
        return TradeRow(
            t.id,
            t.executed_at,
            t.symbol,
            t.side.value,
            t.type.value,
            t.quantity,
            t.price,
            t.commission + t.fees,
            t.realized_pnl,
            t.order_id,
            self._strategy_name(t.strategy_id),
        )

    def _strategy_name(self, strategy_id: int | None) -> str:
        if strategy_id is None:
            return ""
        return self._names.get(strategy_id, f"#{strategy_id}")


def _position_row(p: Position, last: Decimal | None) -> PositionRow:
    unrealized = ZERO
    if last is not None:
        move = last - p.avg_entry_price
        unrealized = move * p.quantity * (1 if p.side == PositionSideEnum.LONG else -1)
    return PositionRow(
        p.symbol,
        p.side.value,
        p.quantity,
        p.avg_entry_price,
        p.cost_basis,
        last,
        unrealized,
        p.realized_pnl,
    )


def create_store(url: str) -> None:
    """Create the store at ``url`` (a SQLite file that does not exist yet, say): the
    dashboard's ``--create``. The dashboard itself opens a SQLite file read-only,
    which cannot create one."""
    db = connect(url)
    try:
        check_schema(db)
    finally:
        db.close()


def _performance(storage: StorageService, query: PerformanceQuery) -> Performance:
    """The Performance view's figures for ``query``: the equity curve, P&L by period
    (with the view's period and filters) and by symbol, the open positions at their
    marks and the last reconcile run. Every report reads the figures fills keep, so a
    load costs the same at any history size."""
    curve = storage.equity_curve()[-CURVE_DAYS:]
    by_symbol = storage.pnl_by_symbol()
    run = storage.last_reconcile()
    summary = (
        None
        if run is None
        else ReconcileSummary(
            run.ran_at,
            run.applied,
            tuple(
                f"{d['kind']} {d['subject']}: store {d['store']}, broker {d['broker']}"
                for d in (run.differences or [])
            ),
        )
    )
    return Performance(
        query=query,
        curve=tuple(curve),
        by_period=tuple(
            storage.pnl_by_period(query.period, strategy=query.strategy, symbol=query.symbol)
        ),
        by_symbol=tuple(by_symbol),
        positions=tuple(storage.get_position_values()),
        reconcile=summary,
        strategies=tuple(s.name for s in storage.strategies.get_all()),
        symbols=tuple(r.key for r in by_symbol),
    )


@contextmanager
def _isolated(db: Database | None) -> Iterator[None]:
    """Inside a read transaction on PostgreSQL, a savepoint around one view's reads: a
    statement that fails aborts the whole transaction there, and the other views must
    still be read. SQLite (or ``db`` None: no transaction) needs none."""
    if db is None or backend_of(db) != "postgres":
        yield
        return
    with db.atomic():
        yield


def _audit_row(entry: object) -> AuditRow:
    """An entry of ``get_audit_log`` as the view shows it."""

    def shown(value: object) -> str:
        return "-" if value is None else str(value)

    changes = tuple(
        (str(name), shown(before), shown(after)) for name, (before, after) in entry.changes.items()
    )
    return AuditRow(
        entry.id, entry.at, entry.actor, entry.table, entry.row_id, entry.action, changes
    )


def _in_memory(url: str) -> bool:
    """Whether ``url`` is a SQLite database in memory, which cannot be opened read-only
    on its own. A ``file:`` URI naming a file is that file, as its path would be."""
    return url.startswith("sqlite") and sqlite_url_file_path(url) is None


__all__ = [
    "AUDIT_TABLES",
    "ArgumentParser",
    "DEFAULT_URL",
    "ORDER_SIDES",
    "ORDER_SORTS",
    "ORDER_STATUSES",
    "STATEMENT_KINDS",
    "TRADE_SORTS",
    "AuditPage",
    "AuditQuery",
    "AuditRow",
    "DashboardSource",
    "OrderDetail",
    "OrderPage",
    "OrderQuery",
    "OrderRow",
    "Performance",
    "PerformanceQuery",
    "PositionRow",
    "Snapshot",
    "Sort",
    "StorageError",
    "StoreStats",
    "TradeRow",
    "create_store",
    "database_url",
    "format_bytes",
    "is_unavailable",
    "one_line",
    "read_health",
    "read_transaction",
    "sqlite_url_file_path",
    "translate_path_errors",
]
