"""One fill, one transaction: :class:`FillRecorder`.

A fill is checked completely before anything is written; a rejected fill raises
a :class:`~stocksbot_store.errors.StorageError` and leaves the database as it was.

Concurrency: on SQLite the transaction starts ``BEGIN IMMEDIATE``, so writers
queue on the busy timeout instead of failing mid-way. On PostgreSQL it takes a
transaction-scoped advisory lock on the symbol, then locks the order, position
and strategy rows it reads (see :mod:`.statements`), always in that order.

Round trips: a fill that is its own transaction (the common case) reads less on
SQLite, where the states the previous fill of the connection wrote are reused
while they are provably fresh (:mod:`.known`), and the trade goes in with ``ON
CONFLICT DO NOTHING`` so that a re-sent fill is found without a lookup first. On
PostgreSQL its statements go in two pipelines (psycopg's pipeline mode), two round
trips: the lock and the reads, then the writes and the ``COMMIT``. The trade and a
new position take their ids as they are inserted, and the audit rows sent after them
name them by the ``currval`` of their sequences, so a re-sent or refused fill uses up
no id. A connection found lost before the second round trip is sent has stored
nothing; one lost during it is reported as
:class:`~stocksbot_store.errors.CommitUnknownError` (the outcome is unknown) and never
retried. A fill inside a caller's transaction takes the plain path, one statement at
a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

from peewee import Database, QueryEvent
from peewee import __exception_wrapper__ as driver_errors  # type: ignore[attr-defined]

from .. import ledger
from ..backends import read_transaction
from ..connection import commit_unknown, raise_if_lost
from ..database import backend_of, write_transaction
from ..errors import (
    CorruptRowError,
    Fault,
    NotFoundError,
    StorageError,
    fault_of,
    is_unique_violation,
    translate_errors,
)
from ..fields import datetime_text, in_money_context, utcnow
from ..models import Order, Position, Trade
from ..monitor import HookedCursor
from ..replicas import note_commit
from .alongside import Alongside, Before, Execute, order_before
from .bulk import BulkFills
from .collector import collector_paused
from .known import KnownBook
from .rows import (
    SAME_FILL_COLUMNS,
    CheckedFill,
    Fill,
    build_trade,
    check_fill,
    check_same_fill,
    figures_from_row,
    figures_row,
    new_position_row,
    order_from_row,
    order_update,
    position_from_row,
    position_update,
    trade_from_row,
    trade_row,
)
from .statements import statements_for

_SIDE, _STATUS = Order._meta.fields["side"], Order._meta.fields["status"]
#: Rows a new order's creation changes: the order's and its audit row's (an audit row
#: changes nothing a fill reads, so the book stays fresh across them).
ORDER_CREATE_CHANGES = 2
#: How many times a batch runs when other writers keep storing its broker ids first.
RACE_ATTEMPTS = 3


class FillRecorder:
    """Applies fills to one database; one instance per :class:`StorageService`."""

    def __init__(self, db: Database, actor: str | None = None) -> None:
        self.db = db
        self.backend = backend_of(db)
        self.statements = statements_for(db)
        self.sql = self.statements.sql
        self.alongside = Alongside(db, self.backend, actor)
        #: Writes each fill's audit rows, as ``actor`` (see :mod:`.alongside`).
        self.audit = self.alongside.audit
        self._local = threading.local()  # this thread's KnownBook (SQLite)
        self.pipelines = self.backend == "postgres" and _pipelines_supported()

    @in_money_context
    def record(self, fill: Fill) -> Trade:
        """Record one fill in its own transaction; idempotent on ``external_id``."""
        checked = check_fill(fill)
        with translate_errors("record_trade"), stored_numbers("record_trade"):
            try:
                if self.db.in_transaction():
                    self._book().forget()
                elif self.backend == "sqlite":
                    return self._record_known(checked)
                elif self.pipelines:
                    trade = self._record_pipelined(checked)
                    if trade is not None:
                        return trade
                with write_transaction(self.db):
                    return self._apply(checked)
            except StorageError:
                raise
            except Exception as e:
                # Two writers raced on the same external id: the loser sees the
                # winner's row now, and answers as for any re-sent fill.
                if checked.external_id and is_unique_violation(e):
                    # On the primary: a replica may not have replayed the winner's fill.
                    with read_transaction(self.db):
                        stored = self._stored_trade(checked)
                    if stored is not None:
                        return stored
                raise

    @in_money_context
    def record_many(self, fills: list[Fill]) -> list[Trade]:
        """Record ``fills`` in order in one transaction: all of them or none.

        The result is the same as recording them one by one (same trades, order,
        position and strategy figures); see :mod:`stocksbot_store.fills.bulk` for how
        it gets there with a handful of statements instead of eight per fill.
        """
        with collector_paused():
            return self.record_checked([check_fill(f) for f in fills])

    @in_money_context
    def record_checked(self, checked: list[CheckedFill]) -> list[Trade]:
        """:meth:`record_many` of fills checked already (:func:`check_fill`)."""
        with translate_errors("record_trades"), stored_numbers("record_trades"), collector_paused():
            attempts = RACE_ATTEMPTS
            while True:
                try:
                    with write_transaction(self.db):
                        return BulkFills(self.db, self.statements, self.alongside).record(checked)
                except StorageError:
                    raise
                except Exception as e:
                    # Another writer stored a fill under one of the batch's broker ids
                    # after the batch looked for them (fills of different symbols do not
                    # wait for each other). Nothing of the batch was written: run it
                    # again, and it finds that fill stored, as for any re-sent fill: the
                    # stored trade if it is the same fill, ConflictError if it is not.
                    attempts -= 1
                    if (
                        not attempts
                        or not is_unique_violation(e)
                        or not any(f.external_id for f in checked)
                    ):
                        raise

    def create_order(self, insert: Callable[[], Order]) -> Order:
        """Run ``insert`` (a new order's insert and its audit row, its own transaction)
        so that what this connection knows stays fresh: on SQLite, if those were the
        only changes (exactly :data:`ORDER_CREATE_CHANGES` rows), the new order is
        known too, and its first fill reads nothing. Any other change leaves the book
        to be read again, as usual."""
        if self.backend != "sqlite" or self.db.in_transaction():
            return insert()
        book = self._book()
        conn = self.db.connection()
        before = conn.total_changes
        fresh = book.conn is conn and book.total_changes == before
        order = insert()
        changes = before + ORDER_CREATE_CHANGES
        if fresh and conn.total_changes == changes and book.total_changes == before:
            book.total_changes = changes
            # The instance holds each value as stored (see Repository.create), so the
            # state is the one order_from_row would make of the row read back.
            book.orders[order.id] = ledger.OrderState(
                order.id,
                order.symbol,
                _SIDE.db_value(order.side),
                _STATUS.db_value(order.status),
                order.quantity,
                order.filled_quantity,
                order.avg_fill_price,
                order.strategy_id,  # type: ignore[attr-defined]  # set by peewee
            )
        return order

    # -- SQLite: what the connection knows -------------------------------------------

    def _book(self) -> KnownBook:
        book = getattr(self._local, "book", None)
        if book is None:
            book = self._local.book = KnownBook()
        return book

    def _record_known(self, fill: CheckedFill) -> Trade:
        book = self._book()
        try:
            with write_transaction(self.db):
                conn = self.db.connection()
                run = HookedCursor(self.db, conn).execute
                version = run("PRAGMA data_version").fetchone()[0]
                known = book if book.begin(conn, version) else None
                trade, left = self._apply_known(fill, known, run)
        except BaseException:
            book.forget()
            raise
        if left is not None:  # committed: what it left is what the database holds
            book.commit(*left)
        return trade

    def _apply_known(
        self, fill: CheckedFill, known: KnownBook | None, run: Execute
    ) -> tuple[Trade, tuple | None]:
        """A fill on SQLite, reading only what ``known`` (when fresh) does not hold;
        the trade, and what it left for the book (None when it was stored already).
        ``run(sql, params)`` runs its writes on the transaction's cursor."""
        sql = self.sql
        order = None
        if fill.order_id is not None:
            cached = known.orders.get(fill.order_id) if known is not None else None
            try:
                order = cached.copy() if cached is not None else self._read_order(fill)
                order.check_takes(fill.symbol, fill.side, fill.quantity)
            except StorageError:
                # A re-sent fill of an order filled since is the stored trade.
                stored = self._stored_trade(fill) if fill.external_id else None
                if stored is None:
                    raise
                return stored, None
        if known is not None and fill.symbol in known.positions:
            position = known.positions[fill.symbol]
        else:
            position = self._open_position(fill.symbol)
        outcome = ledger.apply_fill(
            position,
            fill.symbol,
            fill.side,
            fill.quantity,
            fill.price,
            fill.commission,
            fill.fees,
            fill.executed_at,
        )
        strategy_id = order.strategy_id if order else None
        cached_figures = None
        if strategy_id is not None and known is not None:
            cached_figures = known.strategies.get(strategy_id)
        now = utcnow()
        stamp = datetime_text(now)
        trade_type = outcome.trade_type if order else ledger.ADJUSTMENT
        row = trade_row(fill, strategy_id, trade_type, outcome.realized_pnl, stamp)
        inserted = run(
            sql["insert_new_trade" if fill.external_id else "insert_trade"], row
        ).fetchone()
        if inserted is None:  # its broker id is stored: the fill was sent before
            stored = self._stored_trade(fill)
            if stored is None:  # pragma: no cover - the conflict was on that id
                raise NotFoundError(f"trade {fill.external_id!r} conflicts but is not stored")
            return stored, None
        trade_id = inserted[0]
        moved = None
        if order is not None:
            moved = order_before(order)
            order.apply_fill(fill.quantity, fill.price, stamp)
            name, params = order_update(order, moved[2])
            run(sql[name], params)
        self._write_positions(outcome, stamp, run)
        figures_before = figures = None
        if strategy_id is not None:
            figures_before, figures = self._update_strategy(
                strategy_id,
                outcome.realized_pnl,
                fill,
                stamp,
                figures=None if cached_figures is None else cached_figures.copy(),
                run=run,
            )
        self.alongside.one(
            run,
            fill,
            stamp,
            trade_id,
            row,
            order,
            strategy_id,
            figures,
            outcome,
            Before(moved, position, figures_before),
        )
        trade = build_trade(trade_id, fill, strategy_id, trade_type, outcome.realized_pnl, now)
        return trade, (order, fill.symbol, outcome.open_position, strategy_id, figures)

    # -- PostgreSQL: two round trips ---------------------------------------------------

    def _record_pipelined(self, fill: CheckedFill) -> Trade | None:
        """The fill in two round trips; None if the connection turned out lost in the
        first one (nothing was written: the caller runs the plain path, whose BEGIN
        replaces the connection)."""
        sql = self.sql
        with driver_errors:
            conn = self.db.connection()
            try:
                try:
                    with _Pipeline(self.db, conn) as reads:
                        reads.send("BEGIN", ())
                        reads.send(sql["lock_symbol"], (fill.symbol,))
                        stored = (
                            reads.run(sql["stored_trade"], (fill.external_id,))
                            if fill.external_id
                            else None
                        )
                        order = strategy = None
                        if fill.order_id is not None:
                            order = reads.run(sql["order"], (fill.order_id,))
                        position = reads.run(sql["open_position"], (fill.symbol, True))
                        if fill.order_id is not None:
                            # After the position, as the plain path locks them.
                            strategy = reads.run(sql["strategy_of_order"], (fill.order_id,))
                except Exception as e:
                    if fault_of(e) is not Fault.CONNECTION_LOST:
                        raise
                    _rollback(conn)
                    return None
                if stored is not None and (row := stored.fetchone()) is not None:
                    # Read on this connection, in the transaction: a read outside it may
                    # go to a replica that has not replayed the other writer's fill yet.
                    check_same_fill(fill, row[: len(SAME_FILL_COLUMNS)])
                    trade = trade_from_row(row[len(SAME_FILL_COLUMNS) :])
                    _rollback(conn)  # nothing was written
                    return trade
                trade = self._apply_read(conn, fill, order, position, strategy)
            except BaseException:
                _rollback(conn)
                raise
        return trade

    def _apply_read(
        self,
        conn: Any,
        fill: CheckedFill,
        order_cursor: Any,
        position_cursor: Any,
        strategy_cursor: Any,
    ) -> Trade:
        """The rest of a pipelined fill, from the rows its first round trip read: check,
        account, then write everything and commit in the second round trip.

        The trade and a new position take their ids from their sequences as they are
        inserted (after the locks, as on the plain path: a strategy's trades are numbered
        in the order they move its figures, and a fill found stored, or refused, uses up
        no id); the audit rows sent after them name them by the ``currval`` of those
        sequences (:class:`~stocksbot_store.audit.IdInDatabase`)."""
        sql = self.sql
        order = None
        if order_cursor is not None:
            row = order_cursor.fetchone()
            if row is None:
                raise NotFoundError(f"order {fill.order_id} does not exist; create it first")
            order = order_from_row(row)
            order.check_takes(fill.symbol, fill.side, fill.quantity)
        row = position_cursor.fetchone()
        position = None if row is None else position_from_row(fill.symbol, row)
        outcome = ledger.apply_fill(
            position,
            fill.symbol,
            fill.side,
            fill.quantity,
            fill.price,
            fill.commission,
            fill.fees,
            fill.executed_at,
        )
        strategy_id, figures = None, None
        if strategy_cursor is not None and (row := strategy_cursor.fetchone()) is not None:
            strategy_id, figures = row[0], figures_from_row(row[1:])
        if order is not None and order.strategy_id != strategy_id:
            # The strategy was deleted (the order's link set to NULL) or is not locked:
            # no figures to move, as the plain path does.
            strategy_id, figures = order.strategy_id, None
        now = utcnow()
        stamp = datetime_text(now)
        trade_type = outcome.trade_type if order else ledger.ADJUSTMENT
        row = trade_row(fill, strategy_id, trade_type, outcome.realized_pnl, stamp)
        # The second round trip ends with the COMMIT. A session the server ended since
        # the first is seen here, before anything of it is sent: nothing was stored.
        raise_if_lost(conn, "between the fill's round trips", "the fill")
        committing = False
        opened: list[tuple[ledger.PositionState, Any]] = []
        try:
            with _Pipeline(self.db, conn) as writes:
                inserted = writes.run(sql["insert_trade"], row)
                moved = None
                if order is not None:
                    moved = order_before(order)
                    order.apply_fill(fill.quantity, fill.price, stamp)
                    name, params = order_update(order, moved[2])
                    writes.send(sql[name], params)
                for p in outcome.touched:
                    if p.id is None:
                        opened.append(
                            (p, writes.run(sql["insert_position"], new_position_row(p, stamp)))
                        )
                        # Named so by its audit row; its own id once the round trip is over.
                        p.id = self.statements.current_id(Position)  # type: ignore[assignment]
                    else:
                        name, params = position_update(p, stamp)
                        writes.send(sql[name], params)
                figures_before = None
                if figures is not None and strategy_id is not None:
                    figures_before, figures = self._update_strategy(
                        strategy_id,
                        outcome.realized_pnl,
                        fill,
                        stamp,
                        figures=figures,
                        run=writes.send,
                    )
                self.alongside.one(
                    writes.send,
                    fill,
                    stamp,
                    self.statements.current_id(Trade),
                    row,
                    order,
                    strategy_id,
                    figures,
                    outcome,
                    Before(moved, position, figures_before),
                )
                committing = True  # from here on, the COMMIT may reach the server
                writes.send("COMMIT", ())
        except Exception as e:
            # Lost before the COMMIT was sent, nothing was stored (the server rolls back
            # an ended session); lost after, the outcome is unknown, and never retried.
            if committing and fault_of(e) is Fault.CONNECTION_LOST:
                raise commit_unknown(self.db, e) from e
            raise
        finally:
            if committing:
                note_commit(self.db)
        for p, cursor in opened:
            p.id = cursor.fetchone()[0]
        trade_id = inserted.fetchone()[0]
        return build_trade(trade_id, fill, strategy_id, trade_type, outcome.realized_pnl, now)

    # -- the transaction -------------------------------------------------------------

    def _run(self, name: str, params: tuple | list) -> Any:
        return self.db.execute_sql(self.sql[name], params)

    def _stored_trade(self, fill: CheckedFill) -> Trade | None:
        row = self._run("trade_by_external_id", (fill.external_id,)).fetchone()
        if row is None:
            return None
        check_same_fill(fill, row[1:])
        return Trade.select().where(Trade.id == row[0]).bind(self.db).get()

    def _apply(self, fill: CheckedFill) -> Trade:
        if fill.external_id:
            stored = self._stored_trade(fill)
            if stored is not None:
                return stored
        if self.backend == "postgres":
            self._run("lock_symbol", (fill.symbol,))
        order = self._order_for(fill) if fill.order_id is not None else None
        position = self._open_position(fill.symbol)
        outcome = ledger.apply_fill(
            position,
            fill.symbol,
            fill.side,
            fill.quantity,
            fill.price,
            fill.commission,
            fill.fees,
            fill.executed_at,
        )
        now = utcnow()
        strategy_id = order.strategy_id if order else None
        trade_type = outcome.trade_type if order else ledger.ADJUSTMENT
        strategy = None
        if strategy_id is not None and self.backend == "postgres":
            # Lock the strategy before the trade takes its id, so a strategy's trades
            # are applied to its figures in id order (drawdown depends on the order).
            # The row read here is the one updated below: nobody can change it meanwhile.
            strategy = self._run("strategy", (strategy_id,)).fetchone()
        stamp = datetime_text(now)
        row = trade_row(fill, strategy_id, trade_type, outcome.realized_pnl, stamp)
        trade_id = self._run("insert_trade", row).fetchone()[0]
        moved = None
        if order is not None:
            moved = order_before(order)
            order.apply_fill(fill.quantity, fill.price, stamp)
            self._run(*order_update(order, moved[2]))
        self._write_positions(outcome, stamp)
        figures_before = figures = None
        if strategy_id is not None:
            figures_before, figures = self._update_strategy(
                strategy_id, outcome.realized_pnl, fill, stamp, strategy
            )
        self.alongside.one(
            self.db.execute_sql,
            fill,
            stamp,
            trade_id,
            row,
            order,
            strategy_id,
            figures,
            outcome,
            Before(moved, position, figures_before),
        )
        return build_trade(trade_id, fill, strategy_id, trade_type, outcome.realized_pnl, now)

    def _read_order(self, fill: CheckedFill) -> ledger.OrderState:
        row = self._run("order", (fill.order_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"order {fill.order_id} does not exist; create it first")
        return order_from_row(row)

    def _order_for(self, fill: CheckedFill) -> ledger.OrderState:
        order = self._read_order(fill)
        order.check_takes(fill.symbol, fill.side, fill.quantity)
        return order

    def _open_position(self, symbol: str) -> ledger.PositionState | None:
        row = self._run("open_position", (symbol, True)).fetchone()
        return None if row is None else position_from_row(symbol, row)

    def _write_positions(
        self, outcome: ledger.FillOutcome, stamp: str, run: Execute | None = None
    ) -> None:
        """Insert or update the positions a fill touched; ``run(sql, params)`` runs the
        statements (default: the database's ``execute_sql``)."""
        run = run or self.db.execute_sql
        for p in outcome.touched:
            if p.id is None:
                p.id = run(self.sql["insert_position"], new_position_row(p, stamp)).fetchone()[0]
            else:
                name, params = position_update(p, stamp)
                run(self.sql[name], params)

    def _update_strategy(
        self,
        strategy_id: int,
        realized_pnl: Decimal | None,
        fill: CheckedFill,
        stamp: str,
        row: tuple | None = None,
        figures: ledger.StrategyFigures | None = None,
        run: Any = None,
    ) -> tuple[ledger.StrategyFigures | None, ledger.StrategyFigures | None]:
        """Add the fill to the strategy's figures and write them; ``row`` or
        ``figures``: its figures if already read (and locked) in this transaction;
        ``run(sql, params)`` runs the update (default: now). The figures before (for
        the audit log) and after, or None twice if the strategy is gone."""
        if figures is None:
            if row is None:
                row = self._run("strategy", (strategy_id,)).fetchone()
            if row is None:  # deleted meanwhile: the order's link was set to NULL
                return None, None
            figures = figures_from_row(row)
        before = figures.copy()
        figures.add_trade(realized_pnl, fill.commission, fill.fees, fill.executed_at)
        (run or self._run)(
            self.sql["update_strategy"] if run else "update_strategy",
            figures_row(figures, stamp) + [strategy_id],
        )
        return before, figures


class _Pipeline:
    """Statements sent in one round trip on a psycopg connection (a context manager:
    leaving it sends them and waits for every result, raising the first error); each
    statement's cursor holds its rows afterwards. They are reported to the database's
    query hooks (the statement monitor) as ``execute_sql`` would, sharing the round
    trip's time."""

    def __init__(self, db: Database, conn: Any) -> None:
        self.db, self.conn = db, conn
        self.sent: list[tuple[str, Sequence]] = []
        self.pipeline: Any = None
        self.shared: Any = None
        self.start = 0.0

    def __enter__(self) -> _Pipeline:
        self.pipeline = self.conn.pipeline()
        self.pipeline.__enter__()
        self.start = time.perf_counter()
        return self

    def run(self, sql: str, params: Sequence) -> Any:
        """Queue ``sql``; its cursor."""
        cursor = self.conn.cursor()
        cursor.execute(sql, params, prepare=True)
        self.sent.append((sql, params))
        return cursor

    def send(self, sql: str, params: Sequence) -> None:
        """Queue ``sql`` whose rows nobody reads: such statements share one cursor (a
        cursor each costs as much as a third of a statement)."""
        if self.shared is None:
            self.shared = self.conn.cursor()
        self.shared.execute(sql, params, prepare=True)
        self.sent.append((sql, params))

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        try:
            self.pipeline.__exit__(kind, error, trace)
        except BaseException as e:
            error = e
            raise
        finally:
            hooks = self.db.query_hooks
            if hooks and self.sent:
                share = (time.perf_counter() - self.start) / len(self.sent)
                for sql, params in self.sent:
                    event = QueryEvent(sql, params, share, error)
                    for hook in hooks:
                        hook(event)


def _rollback(conn: Any) -> None:
    """End a pipelined fill's transaction that failed or wrote nothing (nothing of it
    stays).

    Sent through the libpq wrapper, not a cursor: psycopg answers a ``ROLLBACK`` it sees
    by deallocating every prepared statement of the connection (one more round trip,
    and each of the next fills' statements prepared again), which guards against a
    rolled-back ``DROP`` or ``ALTER``; a fill's transaction changes rows only, and the
    server keeps prepared statements across a rollback."""
    try:
        if conn.pgconn.transaction_status != 0:  # not IDLE: a transaction is open
            conn.pgconn.exec_(b"ROLLBACK")
    except Exception:  # the connection is gone: the server rolled back for us
        pass


@contextmanager
def stored_numbers(action: str) -> Iterator[None]:
    """A fill's input is checked before anything is read, so a number that is not one
    (``InvalidOperation``) can only come from a stored row the fill read: an order,
    position or strategy figure changed outside the store. Say so, as
    :class:`CorruptRowError`, instead of the decimal module's bare exception."""
    try:
        yield
    except InvalidOperation as e:
        raise CorruptRowError(
            f"{action}: a figure stored in the fill's order, position or strategy row is "
            "not a number the store wrote (the row was changed outside the store); nothing "
            "was written; run stocksbot-check to find the row, then correct it"
        ) from e


def _pipelines_supported() -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - PostgreSQL without psycopg 3
        return False
    return bool(psycopg.Pipeline.is_supported())
