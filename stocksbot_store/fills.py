"""Recording fills: one transaction updates trade, order, position and strategy.

This is the hot path of the store (a bot calls it for every execution, an import
for millions), so its statements are written out once here, per backend, and
reused: building SQL through the query builder on every fill cost more than
running it. The book-keeping itself lives in :mod:`stocksbot_store.ledger`.

A fill is checked completely before anything is written; a rejected fill raises
a :class:`~stocksbot_store.errors.StorageError` and leaves the database as it was.

Concurrency: on SQLite the transaction starts ``BEGIN IMMEDIATE``, so writers
queue on the busy timeout instead of failing mid-way. On PostgreSQL it takes a
transaction-scoped advisory lock on the symbol, then locks the order, position
and strategy rows it reads (``FOR NO KEY UPDATE``: a plain ``FOR UPDATE`` would
also block the key-share locks that inserting a trade takes on its strategy, and
two fills of one strategy deadlocked on them), always in that order.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from peewee import Database

from . import ledger
from .audit import AuditWriter
from .buckets import KeptFigures
from .database import backend_of, write_transaction
from .errors import (
    ConflictError,
    DeletedError,
    NotFoundError,
    OverfillError,
    StorageError,
    ValidationError,
    is_unique_violation,
    translate_errors,
)
from .fields import (
    coerce_enum,
    datetime_text,
    decimal_text,
    in_money_context,
    tidy,
    to_non_negative_decimal,
    to_positive_decimal,
    to_utc,
    utcnow,
)
from .models import ZERO, OrderSideEnum, OrderStatusEnum, Trade, TradeTypeEnum
from .types import Amount, OrderSide, Price, Quantity, When
from .validation import check_external_id, check_id, check_symbol

_ORDER_COLUMNS = ("id, symbol, side, status, quantity, filled_quantity, avg_fill_price, "
                  "strategy_id, deleted_at")
_POSITION_COLUMNS = ("id, side, quantity, avg_entry_price, realized_pnl, commission, fees, "
                     "opened_at")
_STRATEGY_FIGURES = ("total_trades", "closing_trades", "winning_trades", "losing_trades",
                     "total_pnl", "gross_profit", "gross_loss", "commission", "fees",
                     "pnl_peak", "max_drawdown", "last_trade_at")

_STATEMENTS = {
    "trade_by_external_id": (
        "SELECT id, order_id, symbol, side, quantity, price FROM trade WHERE external_id = ?"),
    "lock_symbol": "SELECT pg_advisory_xact_lock(hashtext(?))",
    "order": f'SELECT {_ORDER_COLUMNS} FROM "order" WHERE id = ?',
    "open_position": (
        f"SELECT {_POSITION_COLUMNS} FROM position WHERE symbol = ? AND is_open = ?"),
    "insert_trade": (
        "INSERT INTO trade (order_id, external_id, strategy_id, symbol, side, type, quantity, "
        "price, commission, fees, realized_pnl, executed_at, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
    "update_order": (
        'UPDATE "order" SET filled_quantity = ?, avg_fill_price = ?, status = ?, '
        "filled_at = ?, updated_at = ? WHERE id = ?"),
    "update_position": (
        "UPDATE position SET quantity = ?, avg_entry_price = ?, cost_basis = ?, "
        "realized_pnl = ?, commission = ?, fees = ?, is_open = ?, closed_at = ?, "
        "updated_at = ? WHERE id = ?"),
    "insert_position": (
        "INSERT INTO position (symbol, side, quantity, avg_entry_price, cost_basis, "
        "realized_pnl, commission, fees, is_open, created_at, updated_at, opened_at, "
        "closed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"),
    "strategy": f"SELECT {', '.join(_STRATEGY_FIGURES)} FROM strategy WHERE id = ?",
    "update_strategy": (
        "UPDATE strategy SET "
        + ", ".join(f"{name} = ?" for name in _STRATEGY_FIGURES)
        + ", win_rate = ?, updated_at = ? WHERE id = ?"),
}
#: How many times a batch runs when other writers keep storing its broker ids first.
_RACE_ATTEMPTS = 3
#: Statements that lock the rows they read on PostgreSQL.
_LOCKING = ("order", "open_position", "strategy")


def _statements_for(backend: str) -> dict[str, str]:
    if backend == "sqlite":
        return {name: sql for name, sql in _STATEMENTS.items() if name != "lock_symbol"}
    compiled = {name: sql.replace("?", "%s") for name, sql in _STATEMENTS.items()}
    for name in _LOCKING:
        # NO KEY UPDATE, not UPDATE: a concurrent insert that references the row (its
        # foreign-key check takes KEY SHARE) must not block it, or two fills of one
        # strategy deadlock.
        compiled[name] += " FOR NO KEY UPDATE"
    return compiled


@dataclass(frozen=True)
class Fill:
    """One execution reported by a broker, as :meth:`FillRecorder.record` takes it."""

    order_id: int | None
    symbol: str
    side: OrderSide
    quantity: Quantity
    price: Price
    commission: Amount = 0
    fees: Amount = 0
    external_id: str | None = None
    executed_at: When | None = None


class _CheckedFill(NamedTuple):
    # A NamedTuple rather than a frozen dataclass: as immutable, and several times
    # cheaper to build, which counts when an import checks a million fills.
    order_id: int | None
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    fees: Decimal
    external_id: str | None
    executed_at: dt.datetime


def check_fill(fill: Fill) -> _CheckedFill:
    """Validate and normalise a fill's own fields (no database access)."""
    return _CheckedFill(
        None if fill.order_id is None else check_id(fill.order_id, "order_id"),
        check_symbol(fill.symbol),
        _side(fill.side),
        to_positive_decimal(fill.quantity, "quantity"),
        to_positive_decimal(fill.price, "price"),
        to_non_negative_decimal(fill.commission, "commission"),
        to_non_negative_decimal(fill.fees, "fees"),
        check_external_id(fill.external_id),
        # Only None means "now": "", 0 or False is a mistake, not a time.
        utcnow() if fill.executed_at is None else to_utc(fill.executed_at, "executed_at"),
    )


class FillRecorder:
    """Applies fills to one database; one instance per :class:`StorageService`."""

    def __init__(self, db: Database, actor: str | None = None) -> None:
        self.db = db
        #: Writes each fill's audit rows in its transaction, as ``actor``.
        self.audit = AuditWriter(db, actor)
        self.backend = backend_of(db)
        self.sql = _statements_for(self.backend)
        self.kept = KeptFigures(db, self.backend)

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
        position and strategy figures); see :mod:`stocksbot_store.fills_bulk` for how
        it gets there with a handful of statements instead of eight per fill.
        """
        from .fills_bulk import BulkFills

        checked = [check_fill(f) for f in fills]
        with translate_errors("record_trades"):
            attempts = _RACE_ATTEMPTS
            while True:
                try:
                    with write_transaction(self.db):
                        return BulkFills(self.db, self.backend, self.kept,
                                         self.audit).record(checked)
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

    def _stored_trade(self, fill: _CheckedFill) -> Trade | None:
        row = self._run("trade_by_external_id", (fill.external_id,)).fetchone()
        if row is None:
            return None
        check_same_fill(fill, row[1:])
        return Trade.select().where(Trade.id == row[0]).bind(self.db).get()

    def _apply(self, fill: _CheckedFill) -> Trade:
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
        order_before = None
        if order is not None:
            order_before = (order.filled, order.avg, order.status)
            apply_to_order(order, fill, stamp)
            self._run("update_order", order.row())
        self._write_positions(outcome, stamp)
        figures = None, None
        if strategy_id is not None:
            figures = self._update_strategy(strategy_id, outcome.realized_pnl, fill, stamp,
                                            strategy)
        self.kept.add(fill, strategy_id, outcome)
        self.audit.fill(stamp, trade_id, row, order, order_before, position, outcome.touched,
                        strategy_id, *figures)
        return build_trade(trade_id, fill, strategy_id, trade_type, outcome.realized_pnl, now)

    def _order_for(self, fill: _CheckedFill) -> OrderState:
        row = self._run("order", (fill.order_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"order {fill.order_id} does not exist; create it first")
        order = OrderState.from_row(row)
        order.check_takes(fill)
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
                         fill: _CheckedFill, stamp: str, row: tuple | None = None
                         ) -> tuple[ledger.StrategyFigures | None, ledger.StrategyFigures | None]:
        """Add the fill to the strategy's figures; ``row``: its figures if already read
        (and locked) in this transaction. The figures before and after (for the audit
        log), or None twice if the strategy is gone."""
        if row is None:
            row = self._run("strategy", (strategy_id,)).fetchone()
        if row is None:  # deleted meanwhile: the order's link was set to NULL
            return None, None
        figures = figures_from_row(row)
        figures.add_trade(realized_pnl, fill.commission, fill.fees, fill.executed_at)
        self._run("update_strategy", figures_row(figures, stamp) + [strategy_id])
        return figures_from_row(row), figures


# -- rows: what the single and the bulk path read and write, in one place --------------


class OrderState:
    """The fill figures of one order while fills are applied to it."""

    __slots__ = ("id", "symbol", "side", "status", "quantity", "filled", "avg",
                 "strategy_id", "filled_at", "updated_at", "deleted")
    id: int
    symbol: str
    side: str
    status: str
    quantity: Decimal
    filled: Decimal
    avg: Decimal | None
    strategy_id: int | None
    filled_at: str | None  # times as their stored text
    updated_at: str | None
    deleted: bool

    @classmethod
    def from_row(cls, row: tuple) -> OrderState:
        """From the columns of ``_ORDER_COLUMNS``."""
        order = cls()
        (order.id, order.symbol, order.side, order.status, quantity, filled, avg,
         order.strategy_id, deleted_at) = row
        order.deleted = deleted_at is not None
        order.quantity, order.filled = Decimal(quantity), Decimal(filled)
        order.avg = None if avg is None else Decimal(avg)
        order.filled_at = order.updated_at = None
        return order

    def check_takes(self, fill: _CheckedFill) -> None:
        """Raise unless ``fill`` fits this order (not deleted; symbol, side, status,
        what is left)."""
        if self.deleted:
            raise DeletedError(f"order {fill.order_id} is deleted and takes no fills; "
                               f"restore it (restore_order({fill.order_id})) to record "
                               "this fill")
        if self.symbol != fill.symbol:
            raise ValidationError("symbol", f"{fill.symbol!r} is not the symbol of order "
                                            f"{fill.order_id} ({self.symbol!r})")
        if self.side != fill.side:
            raise ValidationError("side", f"{fill.side!r} is not the side of order "
                                          f"{fill.order_id} ({self.side!r})")
        if self.status in _FINAL_STATUSES:
            raise ValidationError("order_id", f"order {fill.order_id} is {self.status}; it "
                                              "takes no more fills")
        remaining = self.quantity - self.filled
        if fill.quantity > remaining:
            raise OverfillError("quantity", f"{fill.quantity} is more than the "
                                            f"{tidy(remaining)} left of order {fill.order_id}")

    def row(self) -> tuple:
        """Parameters of the ``update_order`` statement."""
        return (decimal_text(self.filled), _text_or_none(self.avg), self.status,
                self.filled_at, self.updated_at, self.id)


def apply_to_order(order: OrderState, fill: _CheckedFill, stamp: str) -> None:
    """Move ``order``'s filled quantity, average price and status by ``fill``
    (``stamp``: the stored text of the time it is recorded)."""
    order.filled, order.avg = ledger.order_after_fill(order.filled, order.avg, fill.quantity,
                                                      fill.price)
    if order.filled == order.quantity:
        order.status = _FILLED
        order.filled_at = stamp
    else:
        order.status = _PARTIALLY_FILLED
    order.updated_at = stamp


def check_same_fill(fill: _CheckedFill, stored: tuple) -> None:
    """Raise :class:`ConflictError` unless the stored trade (order_id, symbol, side,
    quantity, price) is the fill re-sent."""
    order_id, symbol, side, quantity, price = stored
    if (order_id != fill.order_id or symbol != fill.symbol or side != fill.side
            or Decimal(quantity) != fill.quantity or Decimal(price) != fill.price):
        raise ConflictError(
            f"trade {fill.external_id!r} is already stored as {side} {Decimal(quantity)} "
            f"{symbol} @ {Decimal(price)} on order {order_id}; the re-sent fill says "
            f"{fill.side} {fill.quantity} {fill.symbol} @ {fill.price} on order "
            f"{fill.order_id}")


def position_from_row(symbol: str, row: tuple) -> ledger.PositionState:
    """From the columns of ``_POSITION_COLUMNS``."""
    pid, side, quantity, avg, realized, commission, fees, opened_at = row
    return ledger.PositionState(symbol, side, Decimal(quantity), Decimal(avg),
                                Decimal(realized), Decimal(commission), Decimal(fees),
                                id=pid, opened_at=to_utc(opened_at))


def new_position_row(p: ledger.PositionState, stamp: str) -> tuple:
    """Parameters of ``insert_position`` (the bulk path puts the id in front)."""
    return (p.symbol, p.side, decimal_text(p.quantity), decimal_text(p.avg_entry_price),
            decimal_text(p.cost_basis), decimal_text(p.realized_pnl),
            decimal_text(p.commission), decimal_text(p.fees), p.is_open, stamp, stamp,
            datetime_text(p.opened_at) if p.opened_at else stamp,
            None if p.closed_at is None else datetime_text(p.closed_at))


def position_update_row(p: ledger.PositionState, stamp: str) -> tuple:
    """Parameters of ``update_position``."""
    return (decimal_text(p.quantity), decimal_text(p.avg_entry_price),
            decimal_text(p.cost_basis), decimal_text(p.realized_pnl),
            decimal_text(p.commission), decimal_text(p.fees), p.is_open,
            None if p.closed_at is None else datetime_text(p.closed_at), stamp, p.id)


def figures_from_row(row: tuple) -> ledger.StrategyFigures:
    """From the columns of ``_STRATEGY_FIGURES``."""
    return ledger.StrategyFigures(*row[:4], *(Decimal(v) for v in row[4:11]),
                                  None if row[11] is None else to_utc(row[11]))


def figures_row(figures: ledger.StrategyFigures, stamp: str) -> list:
    """Parameters of ``update_strategy`` but the id."""
    values = [getattr(figures, name) for name in _STRATEGY_FIGURES]
    params = [v if isinstance(v, int) else _text_or_none(v) for v in values[:11]]
    params.append(None if figures.last_trade_at is None
                  else datetime_text(figures.last_trade_at))
    params += [decimal_text(figures.win_rate), stamp]
    return params


def trade_row(fill: _CheckedFill, strategy_id: int | None, trade_type: str,
              realized_pnl: Decimal | None, stamp: str) -> tuple:
    """Parameters of ``insert_trade`` (the bulk path puts the id in front)."""
    return (fill.order_id, fill.external_id, strategy_id, fill.symbol, fill.side, trade_type,
            decimal_text(fill.quantity), decimal_text(fill.price),
            decimal_text(fill.commission), decimal_text(fill.fees),
            _text_or_none(realized_pnl), datetime_text(fill.executed_at), stamp)


_SIDES = {side.value: side for side in OrderSideEnum}
# Plain strings for the values compared and written for every fill: an enum member's
# ``.value`` is a descriptor call, measurable at a million fills.
_SIDE_VALUES: dict[Any, str] = {**{side: side.value for side in OrderSideEnum}, **{
    side.value: side.value for side in OrderSideEnum}}
_FINAL_STATUSES = (OrderStatusEnum.CANCELLED.value, OrderStatusEnum.REJECTED.value)
_FILLED, _PARTIALLY_FILLED = OrderStatusEnum.FILLED.value, OrderStatusEnum.PARTIALLY_FILLED.value
_TRADE_TYPES = {kind.value: kind for kind in TradeTypeEnum}


def build_trade(trade_id: int, fill: _CheckedFill, strategy_id: int | None, trade_type: str,
                realized_pnl: Decimal | None, now: dt.datetime) -> Trade:
    """The :class:`Trade` just written, as a query would return it (no defaults run,
    nothing dirty), without building it field by field."""
    trade = Trade.__new__(Trade)
    trade._dirty, trade.__rel__ = set(), {}
    trade.__data__ = {
        "id": trade_id, "order": fill.order_id, "external_id": fill.external_id,
        "strategy": strategy_id, "symbol": fill.symbol, "side": _SIDES[fill.side],
        "type": _TRADE_TYPES[trade_type], "quantity": fill.quantity, "price": fill.price,
        "commission": fill.commission, "fees": fill.fees, "realized_pnl": realized_pnl,
        "executed_at": fill.executed_at, "created_at": now}
    return trade


def _side(value: Any) -> str:
    if isinstance(value, str) and value in _SIDE_VALUES:
        return _SIDE_VALUES[value]
    return coerce_enum(OrderSideEnum, value, "side").value


def _text_or_none(value: Decimal | None) -> str | None:
    return None if value is None else decimal_text(value)


__all__ = ["Fill", "FillRecorder", "check_fill", "ZERO"]
