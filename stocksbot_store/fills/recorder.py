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
PostgreSQL its statements go in two messages, two round trips: ``BEGIN``, the lock and
the reads, then the writes and the ``COMMIT``; each is one simple query of statements
prepared on the server (:mod:`stocksbot_store.at_once`): a psycopg pipeline of the same
statements took about twice the client's CPU. If the connection's prepared statements
were dropped behind the store's back, the first message is sent again (they are
prepared again) and the second, which then ran nothing, gives way to the plain path.
The trade and a
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

from peewee import Database
from peewee import __exception_wrapper__ as driver_errors  # type: ignore[attr-defined]

from .. import ledger
from ..at_once import (
    ClientCursor,
    Statement,
    can_send_at_once,
    end_transaction,
    first_rows,
    prepared_statements_lost,
    send_at_once,
)
from ..backends import read_transaction
from ..connection import raise_if_lost
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
        #: Whether a fill of its own goes in two messages (psycopg 3).
        self.at_once = self.backend == "postgres" and ClientCursor is not None

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
                elif self.at_once:
                    trade = self._record_at_once(checked)
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
        moved = self._move_order(order, fill, stamp, run)
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

    def _record_at_once(self, fill: CheckedFill) -> Trade | None:
        """The fill in two round trips, each one message (:mod:`stocksbot_store.at_once`):
        ``BEGIN``, the symbol's lock and the reads, then the writes and the ``COMMIT``.
        None if the connection turned out lost in the first one (nothing was written:
        the caller runs the plain path, whose BEGIN replaces the connection)."""
        sql = self.sql
        reads: list[Statement] = [("BEGIN", ()), (sql["lock_symbol"], (fill.symbol,))]
        if fill.external_id:
            reads.append((sql["stored_trade"], (fill.external_id,)))
        if fill.order_id is not None:
            reads.append((sql["order"], (fill.order_id,)))
        reads.append((sql["open_position"], (fill.symbol, True)))
        if fill.order_id is not None:
            # After the position, as the plain path locks them.
            reads.append((sql["strategy_of_order"], (fill.order_id,)))
        with driver_errors:
            conn = self.db.connection()
            if not can_send_at_once(conn):  # psycopg2 (a database built by hand)
                return None
            try:
                try:
                    cursor = send_at_once(self.db, conn, reads, prepared=True)
                except Exception as e:
                    if not prepared_statements_lost(e):
                        if fault_of(e) is not Fault.CONNECTION_LOST:
                            raise
                        return None
                    # Dropped behind the store's back: read (and prepare) them again.
                    cursor = send_at_once(self.db, conn, reads, prepared=True)
                rows = iter(first_rows(cursor, len(reads))[2:])  # past BEGIN and the lock
                if fill.external_id and (row := next(rows)) is not None:
                    # Read on this connection, in the transaction: a read outside it may
                    # go to a replica that has not replayed the other writer's fill yet.
                    check_same_fill(fill, row[: len(SAME_FILL_COLUMNS)])
                    trade = trade_from_row(row[len(SAME_FILL_COLUMNS) :])
                    end_transaction(conn)  # nothing was written
                    return trade
                order = next(rows) if fill.order_id is not None else None
                position = next(rows)
                strategy = next(rows) if fill.order_id is not None else None
                return self._apply_read(conn, fill, order, position, strategy)
            except BaseException:
                end_transaction(conn)
                raise

    def _apply_read(
        self,
        conn: Any,
        fill: CheckedFill,
        order_row: tuple | None,
        position_row: tuple | None,
        strategy_row: tuple | None,
    ) -> Trade | None:
        """The rest of a fill sent at once, from the rows its first round trip read (the
        order's and the strategy's None when it has no order): check, account, then
        write everything and commit in the second round trip. None if its prepared
        statements turned out dropped (nothing was written: the plain path runs).

        The trade and a new position take their ids from their sequences as they are
        inserted (after the locks, as on the plain path: a strategy's trades are numbered
        in the order they move its figures, and a fill found stored, or refused, uses up
        no id); the audit rows sent after them name them by the ``currval`` of those
        sequences (:class:`~stocksbot_store.audit.IdInDatabase`)."""
        sql = self.sql
        order = None
        if fill.order_id is not None:
            if order_row is None:
                raise NotFoundError(f"order {fill.order_id} does not exist; create it first")
            order = order_from_row(order_row)
            order.check_takes(fill.symbol, fill.side, fill.quantity)
        position = None if position_row is None else position_from_row(fill.symbol, position_row)
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
        if strategy_row is not None:
            strategy_id, figures = strategy_row[0], figures_from_row(strategy_row[1:])
        if order is not None and order.strategy_id != strategy_id:
            # The strategy was deleted (the order's link set to NULL) or is not locked:
            # no figures to move, as the plain path does.
            strategy_id, figures = order.strategy_id, None
        now = utcnow()
        stamp = datetime_text(now)
        trade_type = outcome.trade_type if order else ledger.ADJUSTMENT
        row = trade_row(fill, strategy_id, trade_type, outcome.realized_pnl, stamp)
        writes: list[Statement] = [(sql["insert_trade"], row)]

        def send(sql: str, params: Sequence) -> None:
            writes.append((sql, params))

        moved = self._move_order(order, fill, stamp, send)
        opened: list[tuple[ledger.PositionState, int]] = []
        for p in outcome.touched:
            if p.id is None:
                opened.append((p, len(writes)))  # where its RETURNING's row comes
                send(sql["insert_position"], new_position_row(p, stamp))
                # Named so by its audit row; its own id once the round trip is over.
                p.id = self.statements.current_id(Position)  # type: ignore[assignment]
            else:
                name, params = position_update(p, stamp)
                send(sql[name], params)
        figures_before = None
        if figures is not None and strategy_id is not None:
            figures_before, figures = self._update_strategy(
                strategy_id, outcome.realized_pnl, fill, stamp, figures=figures, run=send
            )
        self.alongside.one(
            send,
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
        writes.append(("COMMIT", ()))
        # A session the server ended since the first round trip is seen here, before
        # anything of the second is sent: nothing was stored. Lost once it may have
        # been sent, the outcome is unknown (CommitUnknownError), and never retried.
        raise_if_lost(conn, "between the fill's round trips", "the fill")
        try:
            cursor = send_at_once(self.db, conn, writes, commits=True, prepared=True)
        except Exception as e:
            if prepared_statements_lost(e):
                return None  # it ran nothing: the plain path writes the fill
            raise
        rows = first_rows(cursor, len(writes))
        for p, index in opened:
            p.id = rows[index][0]  # type: ignore[index]  # INSERT ... RETURNING's row
        trade_id = rows[0][0]  # type: ignore[index]
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

    def _move_order(
        self, order: ledger.OrderState | None, fill: CheckedFill, stamp: str, run: Execute
    ) -> tuple | None:
        """Apply the fill to its order (if any) and write it with ``run(sql, params)``;
        what the order held before (:func:`order_before`), for the audit log."""
        if order is None:
            return None
        moved = order_before(order)
        order.apply_fill(fill.quantity, fill.price, stamp)
        name, params = order_update(order, moved[2])
        run(self.sql[name], params)
        return moved

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
