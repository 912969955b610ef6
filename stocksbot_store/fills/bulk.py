"""Recording a batch of fills in one transaction with a handful of statements.

:meth:`FillRecorder.record_many <stocksbot_store.fills.FillRecorder.record_many>`
gives the same result as recording the fills one by one, but instead of eight
statements per fill it

1. reads, once, the trades already stored under the batch's external ids, the
   orders the fills belong to, the open positions of their symbols and the
   strategies of those orders (on PostgreSQL after taking the symbols' advisory
   locks and with ``FOR NO KEY UPDATE``, as the single path does);
2. applies every fill in order, in memory, with the rules of
   :mod:`stocksbot_store.ledger` (the same functions the single path calls) and the
   same checks, so a bad fill raises before anything is written;
3. writes the final state of every touched row with one statement per table
   (positions, trades, orders, strategies) for any number of rows on PostgreSQL:
   ``COPY`` for new rows, an ``UPDATE`` from arrays (:mod:`.updates`) for stored
   ones; an ``executemany`` each on SQLite. Stored rows are updated in the order of
   their ids; every one of them was locked by the reads of step 1 already.

Ids of new trades and positions are taken up front (``max(id)`` under SQLite's
write lock, the sequence on PostgreSQL) so the returned trades carry them and
trades keep the order of the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from peewee import Database
from peewee import __exception_wrapper__ as driver_errors  # type: ignore[attr-defined]

from .. import ledger
from ..errors import NotFoundError
from ..fields import datetime_text, utcnow
from ..models import Position, Trade
from .alongside import Alongside, Applied, BatchBefore, order_before
from .rows import (
    CheckedFill,
    build_trade,
    check_same_fill,
    figures_from_row,
    figures_row,
    new_position_row,
    order_from_row,
    order_update_row,
    position_from_row,
    position_update_row,
    trade_from_row,
    trade_row,
)
from .statements import Statements
from .updates import columns, update_sql

log = logging.getLogger("peewee")

#: Ids per ``IN (...)`` list on SQLite (its limit on parameters is far above).
CHUNK = 500
#: Keys per array on PostgreSQL, where a read takes one array whatever its length: the
#: reads of a 20,000-fill batch are 4 statements (round trips, plans) instead of 62 in
#: arrays of 500. Bounded so that one message stays a few megabytes.
PG_CHUNK = 50_000


class BulkFills:
    """One batch on one database, inside a transaction the caller opened."""

    def __init__(self, db: Database, statements: Statements, alongside: Alongside) -> None:
        self.db = db
        self.statements = statements
        self.sql = statements.sql
        self.alongside = alongside
        self.pg = statements.pg
        self.cursor: Any = None

    def record(self, fills: list[CheckedFill]) -> list[Trade]:
        """Apply ``fills`` in order; the trades, new or already stored, in that order."""
        if not fills:
            return []
        with driver_errors:
            self.cursor = self.db.cursor()
            return self._record(fills)

    def _record(self, fills: list[CheckedFill]) -> list[Trade]:
        now = utcnow()
        stamp = datetime_text(now)
        if self.pg:
            for symbol in sorted({f.symbol for f in fills}):
                self.cursor.execute(self.sql["lock_symbol"], (symbol,))
        # Read after the symbols' locks, so a fill of the same symbol committed by another
        # writer meanwhile is seen here as stored, not inserted a second time.
        with self._index_scans():
            stored = {
                row[0]: row[1:]
                for row in self._rows_in(
                    "stored_trades", {f.external_id for f in fills if f.external_id}
                )
            }
            orders = {
                row[0]: order_from_row(row)
                for row in self._rows_in(
                    "orders", {f.order_id for f in fills if f.order_id is not None}
                )
            }
            positions: dict[str, ledger.PositionState | None] = {
                row[0]: position_from_row(row[0], row[1:])
                for row in self._rows_in("positions", {f.symbol for f in fills}, (True,))
            }
            strategy_rows = self._rows_in(
                "strategies", {o.strategy_id for o in orders.values() if o.strategy_id}
            )
        figures = {row[0]: figures_from_row(row[1:]) for row in strategy_rows}
        # What the audit log compares the batch's net changes with (the ledger gives
        # new position states; orders and figures move in place).
        orders_before = {oid: order_before(o) for oid, o in orders.items()}
        positions_before = {
            p.id: p for p in positions.values() if p is not None and p.id is not None
        }  # all read: all stored

        # Ids for the batch's new trades, taken before the fills are applied so that
        # each trade is built once, with its id (a fill is new unless its broker id is
        # stored or came earlier in the batch: the loop below decides the same way).
        trade_ids = self._take_ids(Trade, _new_count(fills, stored))
        next_id = iter(trade_ids).__next__
        # Each result: a new trade, or the id of a trade already stored (read at the end).
        results: list[Trade | int] = []
        # Where each broker id first came: an index of both ``fills`` and ``results``.
        first_of: dict[str, int] = {}
        new_trades: list[tuple] = []
        touched_positions: dict[int, ledger.PositionState] = {}
        touched_orders: dict[int, ledger.OrderState] = {}
        applied: list[Applied] = []  # for the rows written alongside
        new_position_ids = 0
        apply_fill, ADJUSTMENT = ledger.apply_fill, ledger.ADJUSTMENT
        for fill in fills:
            order_id, symbol, side, quantity, price, commission, fees, external_id, at = fill
            if external_id:
                known = stored.get(external_id)
                if known is not None:
                    check_same_fill(fill, known[1:])
                    results.append(known[0])
                    continue
                first = first_of.get(external_id)
                if first is not None:
                    # A checked fill starts with SAME_FILL_COLUMNS' values, in their order.
                    check_same_fill(fill, fills[first][:5])
                    results.append(results[first])
                    continue
                first_of[external_id] = len(results)  # this fill's result comes next
            order = None
            if order_id is not None:
                order = orders.get(order_id)
                if order is None:
                    raise NotFoundError(f"order {order_id} does not exist; create it first")
                order.check_takes(symbol, side, quantity)
            outcome = apply_fill(
                positions.get(symbol), symbol, side, quantity, price, commission, fees, at
            )
            for p in outcome.touched:
                if p.id is None:  # a new position: a negative id until one is taken
                    new_position_ids += 1
                    p.id = -new_position_ids
                touched_positions[p.id] = p
            positions[symbol] = outcome.open_position
            realized_pnl = outcome.realized_pnl
            if order is not None:
                strategy_id = order.strategy_id
                trade_type = outcome.trade_type
                order.apply_fill(quantity, price, stamp)
                touched_orders[order.id] = order
                if strategy_id in figures:
                    figures[strategy_id].add_trade(realized_pnl, commission, fees, at)
            else:
                strategy_id, trade_type = None, ADJUSTMENT
            trade_id = next_id()
            new_trades.append(trade_row(fill, strategy_id, trade_type, realized_pnl, stamp))
            results.append(build_trade(trade_id, fill, strategy_id, trade_type, realized_pnl, now))
            applied.append((fill, trade_id, strategy_id, outcome))

        figures_before = {row[0]: figures_from_row(row[1:]) for row in strategy_rows}
        position_ids = self._write(
            touched_positions,
            new_position_ids,
            new_trades,
            trade_ids,
            touched_orders,
            # Only strategies the batch moved: one whose fills were all re-sent keeps its
            # row (and its updated_at), as the single path leaves it.
            {sid: f for sid, f in figures.items() if f != figures_before[sid]},
            stamp,
        )
        self.alongside.many(
            self.cursor,
            applied,
            stamp,
            new_trades,
            trade_ids,
            touched_orders,
            touched_positions,
            figures,
            BatchBefore(
                orders_before,
                positions_before,
                figures_before,
                position_ids,
            ),
        )
        return self._trades(results)

    # -- reading -----------------------------------------------------------------------

    def _rows_in(self, name: str, values: Iterable[Any], params: tuple = ()) -> list[tuple]:
        values = sorted(values)
        rows: list[tuple] = []
        size = PG_CHUNK if self.pg else CHUNK
        for start in range(0, len(values), size):
            chunk = values[start : start + size]
            sql = self.statements.in_list(name, len(chunk))
            arguments = (*params, chunk) if self.pg else (*params, *chunk)  # an array on PG
            if self.pg:
                # Never a prepared statement: its generic plan, made while the table was
                # small, stays a sequential scan as an import grows it (0.5 s a query).
                self.cursor.execute(sql, arguments, prepare=False)
            else:
                self.cursor.execute(sql, arguments)
            rows += self.cursor.fetchall()
        return rows

    @contextmanager
    def _index_scans(self) -> Iterator[None]:
        """On PostgreSQL, run the block's reads with sequential scans off: each looks up
        at most :data:`CHUNK` keys of a unique or key index, which a scan of the whole
        table never beats, yet the planner picks one while the table's statistics are
        those of a smaller table, as during an import: 500 broker ids took 14 ms instead
        of 0.4 ms on 200,000 trades not analyzed yet. The setting the transaction had is
        put back after the block (after an error, the rollback puts it back)."""
        if not self.pg:
            yield
            return
        self.cursor.execute(self.sql["setting"], ("enable_seqscan",))
        before = self.cursor.fetchone()[0]
        self.cursor.execute(self.sql["set_setting"], ("enable_seqscan", "off", True))
        yield
        self.cursor.execute(self.sql["set_setting"], ("enable_seqscan", before, True))

    def _take_ids(self, model: type, count: int) -> list[int]:
        """``count`` new ids for ``model``, ascending."""
        if not count:
            return []
        self.cursor.execute(*self.statements.take_ids(model, count))
        if self.pg:
            return sorted(row[0] for row in self.cursor.fetchall())
        # The transaction holds SQLite's write lock: nobody else can insert meanwhile.
        first = (self.cursor.fetchone()[0] or 0) + 1
        return list(range(first, first + count))

    # -- writing -----------------------------------------------------------------------

    def _many(
        self,
        name: str,
        rows: Iterable[tuple] | list[list],
        model: Any = None,
        count: int | None = None,
    ) -> None:
        """Run statement ``name`` for every row; new rows of ``model`` (given for the
        inserts) go in by COPY on PostgreSQL: one statement for any number of rows. A
        pipelined executemany still runs a statement (and the notify trigger) per row,
        which made the server the bottleneck of an import. ``count``: how many rows
        there are, when ``rows`` is an iterator."""
        if count is None:
            count = len(rows)  # type: ignore[arg-type]  # a list when not given
        if not count:
            return
        copy_sql = self.statements.copy.get(model)
        sql = copy_sql or self.sql[name]
        if log.isEnabledFor(logging.DEBUG):
            log.debug((sql, f"<{count} rows>"))
        if copy_sql:
            with self.cursor.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            self.cursor.executemany(sql, rows)

    def _update(self, name: str, rows: list[tuple] | list[list]) -> None:
        """Run the update ``name`` (a key of :data:`~.updates.UPDATES`) for every row,
        each row's key last. On PostgreSQL as one statement of one array per column
        (see :mod:`stocksbot_store.fills.updates`): an executemany ran a statement per
        row, 0.57 s of a 20,000-fill import's 2.9 for its 10,000 orders. On SQLite an
        executemany, whose statements cost little there."""
        if not self.pg or not rows:
            self._many(name, rows)
            return
        sql = update_sql(self.db, name)
        if log.isEnabledFor(logging.DEBUG):
            log.debug((sql, f"<{len(rows)} rows>"))
        # A statement of arrays: its plan depends on how many rows they hold, so never a
        # prepared statement's generic plan.
        self.cursor.execute(sql, columns(rows), prepare=False)

    def _write(
        self,
        positions: dict[int, ledger.PositionState],
        new_positions: int,
        trades: list[tuple],
        trade_ids: list[int],
        orders: dict[int, ledger.OrderState],
        figures: dict[int, ledger.StrategyFigures],
        stamp: str,
    ) -> list[int]:
        """Write the batch's final rows; the ids taken for new positions."""
        # Stored positions first: one may close, and a new one open, on the same symbol.
        self._update(
            "update_position",
            [position_update_row(p, stamp) for pid, p in sorted(positions.items()) if pid > 0],
        )
        position_ids = self._take_ids(Position, new_positions)
        self._many(
            "insert_position_with_id",
            [
                (position_ids[-pid - 1], *new_position_row(p, stamp))
                for pid, p in sorted(positions.items(), reverse=True)
                if pid < 0
            ],
            Position,
        )
        self._many(
            "insert_trade_with_id",
            # Made as they are written: not a second copy of the batch's rows.
            ((tid, *row) for tid, row in zip(trade_ids, trades, strict=True)),
            Trade,
            len(trades),
        )
        self._update("update_order", [order_update_row(orders[oid]) for oid in sorted(orders)])
        self._update(
            "update_strategy", [figures_row(figures[sid], stamp) + [sid] for sid in sorted(figures)]
        )
        return position_ids

    def _trades(self, results: list[Trade | int]) -> list[Trade]:
        """``results`` with the trades already stored (given by id) read in."""
        stored_ids = {r for r in results if type(r) is int}
        if not stored_ids:
            return results  # type: ignore[return-value]  # only trades
        stored = {t.id: t for t in map(trade_from_row, self._rows_in("trades", stored_ids))}
        return [stored[r] if type(r) is int else r for r in results]  # type: ignore[misc]


def _new_count(fills: list[CheckedFill], stored: dict[str, tuple]) -> int:
    """How many of ``fills`` are new trades: those without a broker id, and the first
    of each broker id not ``stored`` yet (the rest are re-sent fills)."""
    seen = set(stored)
    count = 0
    for fill in fills:
        external_id = fill.external_id
        if not external_id:
            count += 1
        elif external_id not in seen:
            seen.add(external_id)
            count += 1
    return count
