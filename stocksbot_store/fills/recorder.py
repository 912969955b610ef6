"""One fill, one transaction: :class:`FillRecorder`.

A fill is checked completely before anything is written; a rejected fill raises
a :class:`~stocksbot_store.errors.StorageError` and leaves the database as it was.

Concurrency: on SQLite the transaction starts ``BEGIN IMMEDIATE``, so writers
queue on the busy timeout instead of failing mid-way. On PostgreSQL it takes a
transaction-scoped advisory lock on the symbol, then locks the order, position
and strategy rows it reads (see :mod:`.statements`), always in that order.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from peewee import Database

from .. import ledger
from ..database import backend_of, write_transaction
from ..errors import NotFoundError, StorageError, is_unique_violation, translate_errors
from ..fields import datetime_text, in_money_context, utcnow
from ..models import Trade
from .alongside import Alongside
from .bulk import BulkFills
from .rows import (
    CheckedFill,
    Fill,
    build_trade,
    check_fill,
    check_same_fill,
    figures_from_row,
    figures_row,
    new_position_row,
    order_from_row,
    order_update_row,
    position_from_row,
    position_update_row,
    trade_row,
)
from .statements import statements_for

#: How many times a batch runs when other writers keep storing its broker ids first.
RACE_ATTEMPTS = 3


class FillRecorder:
    """Applies fills to one database; one instance per :class:`StorageService`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.backend = backend_of(db)
        self.statements = statements_for(db)
        self.sql = self.statements.sql
        self.alongside = Alongside(db, self.backend)

    @in_money_context
    def record(self, fill: Fill) -> Trade:
        """Record one fill in its own transaction; idempotent on ``external_id``."""
        checked = check_fill(fill)
        with translate_errors("record_trade"):
            try:
                with write_transaction(self.db):
                    return self._apply(checked)
            except StorageError:
                raise
            except Exception as e:
                # Two writers raced on the same external id: the loser sees the
                # winner's row now, and answers as for any re-sent fill.
                if checked.external_id and is_unique_violation(e):
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
        checked = [check_fill(f) for f in fills]
        with translate_errors("record_trades"):
            attempts = RACE_ATTEMPTS
            while True:
                try:
                    with write_transaction(self.db):
                        return BulkFills(self.db, self.statements,
                                         self.alongside).record(checked)
                except StorageError:
                    raise
                except Exception as e:
                    # Another writer stored a fill under one of the batch's broker ids
                    # after the batch looked for them (fills of different symbols do not
                    # wait for each other). Nothing of the batch was written: run it
                    # again, and it finds that fill stored, as for any re-sent fill: the
                    # stored trade if it is the same fill, ConflictError if it is not.
                    attempts -= 1
                    if (not attempts or not is_unique_violation(e)
                            or not any(f.external_id for f in checked)):
                        raise

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
        outcome = ledger.apply_fill(position, fill.symbol, fill.side, fill.quantity, fill.price,
                                    fill.commission, fill.fees, fill.executed_at)
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
        if order is not None:
            order.apply_fill(fill.quantity, fill.price, stamp)
            self._run("update_order", order_update_row(order))
        self._write_positions(outcome, stamp)
        if strategy_id is not None:
            self._update_strategy(strategy_id, outcome.realized_pnl, fill, stamp, strategy)
        self.alongside.one(fill, trade_id, strategy_id, outcome)
        return build_trade(trade_id, fill, strategy_id, trade_type, outcome.realized_pnl, now)

    def _order_for(self, fill: CheckedFill) -> ledger.OrderState:
        row = self._run("order", (fill.order_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"order {fill.order_id} does not exist; create it first")
        order = order_from_row(row)
        order.check_takes(fill.symbol, fill.side, fill.quantity)
        return order

    def _open_position(self, symbol: str) -> ledger.PositionState | None:
        row = self._run("open_position", (symbol, True)).fetchone()
        return None if row is None else position_from_row(symbol, row)

    def _write_positions(self, outcome: ledger.FillOutcome, stamp: str) -> None:
        for p in outcome.touched:
            if p.id is None:
                p.id = self._run("insert_position", new_position_row(p, stamp)
                                 ).fetchone()[0]
            else:
                self._run("update_position", position_update_row(p, stamp))

    def _update_strategy(self, strategy_id: int, realized_pnl: Decimal | None,
                         fill: CheckedFill, stamp: str, row: tuple | None = None) -> None:
        """Add the fill to the strategy's figures; ``row``: its figures if already read
        (and locked) in this transaction."""
        if row is None:
            row = self._run("strategy", (strategy_id,)).fetchone()
        if row is None:  # deleted meanwhile: the order's link was set to NULL
            return
        figures = figures_from_row(row)
        figures.add_trade(realized_pnl, fill.commission, fill.fees, fill.executed_at)
        self._run("update_strategy", figures_row(figures, stamp) + [strategy_id])
