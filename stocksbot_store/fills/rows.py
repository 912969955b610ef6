"""What the fill path reads and writes, as plain tuples: one home for both paths.

A fill as the caller gives it (:class:`Fill`) is checked into a :class:`CheckedFill`
before anything is read; the builders below turn the ledger's states into the
parameters of the statements of :mod:`stocksbot_store.fills.statements` (in the
order of the names each statement declares there) and turn the rows those read back
into states. The single path, the bulk path and the adoption of an old database
all use them, so a column cannot be written one way here and another way there.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from .. import ledger
from ..errors import ConflictError
from ..fields import (
    coerce_enum,
    datetime_text,
    decimal_text,
    scaled_text,
    tidy,
    to_event_time,
    to_non_negative_decimal,
    to_positive_decimal,
    to_utc,
    utcnow,
)
from ..models import OrderSideEnum, Trade, TradeTypeEnum
from ..validation import check_external_id, check_id, check_symbol

#: Columns read to apply a fill to an order (:func:`order_from_row`).
ORDER_COLUMNS = (
    "id",
    "symbol",
    "side",
    "status",
    "quantity",
    "filled_quantity",
    "avg_fill_price",
    "strategy",
    "deleted_at",
)
#: Columns read of a symbol's open position (:func:`position_from_row`).
POSITION_COLUMNS = (
    "id",
    "side",
    "quantity",
    "avg_entry_price",
    "realized_pnl",
    "commission",
    "fees",
    "opened_at",
)
#: Columns of a stored trade compared with a re-sent fill (:func:`check_same_fill`).
SAME_FILL_COLUMNS = ("order", "symbol", "side", "quantity", "price")

#: Parameters of each write, in order (the statements are built with these names).
TRADE_VALUES = (
    "order",
    "external_id",
    "strategy",
    "symbol",
    "side",
    "type",
    "quantity",
    "price",
    "commission",
    "fees",
    "realized_pnl",
    "executed_at",
    "created_at",
)
POSITION_VALUES = (
    "symbol",
    "side",
    "quantity",
    "avg_entry_price",
    "cost_basis",
    "realized_pnl",
    "commission",
    "fees",
    "is_open",
    "created_at",
    "updated_at",
    "opened_at",
    "closed_at",
)
#: (Each in the order of the model's fields, which is the order peewee writes them in;
#: :mod:`.statements` refuses to build a statement whose order differs.)
ORDER_UPDATE = ("status", "filled_quantity", "avg_fill_price", "updated_at", "filled_at")
POSITION_UPDATE = (
    "quantity",
    "avg_entry_price",
    "cost_basis",
    "realized_pnl",
    "commission",
    "fees",
    "is_open",
    "updated_at",
    "closed_at",
)
#: What a fill writes of an order whose status it leaves as it was, and of a position it
#: leaves open: not the columns the status and open-position indexes hold. SQLite
#: rewrites the index entries of every column a ``SET`` names, changed or not, and each
#: index so rewritten is one more page the fill's commit writes.
ORDER_FILL_UPDATE = ("filled_quantity", "avg_fill_price", "updated_at")
POSITION_HELD_UPDATE = (*POSITION_UPDATE[:6], "updated_at")
STRATEGY_UPDATE = (
    "total_trades",
    "win_rate",
    "total_pnl",
    "closing_trades",
    "winning_trades",
    "losing_trades",
    "gross_profit",
    "gross_loss",
    "commission",
    "fees",
    "pnl_peak",
    "max_drawdown",
    "last_trade_at",
    "updated_at",
)


@dataclass(frozen=True)
class Fill:
    """One execution reported by a broker, as
    :meth:`FillRecorder.record <stocksbot_store.fills.FillRecorder.record>` takes it."""

    order_id: int | None
    symbol: str
    side: Any
    quantity: Any
    price: Any
    commission: Any = 0
    fees: Any = 0
    external_id: str | None = None
    executed_at: dt.datetime | str | None = None


class CheckedFill(NamedTuple):
    """A fill whose fields are checked and normalised (:func:`check_fill`).

    A NamedTuple rather than a frozen dataclass: as immutable, and several times
    cheaper to build, which counts when an import checks a million fills."""

    order_id: int | None
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    fees: Decimal
    external_id: str | None
    executed_at: dt.datetime


def check_fill(fill: Fill) -> CheckedFill:
    """Validate and normalise a fill's own fields (no database access)."""
    return check_fill_values(
        fill.order_id,
        fill.symbol,
        fill.side,
        fill.quantity,
        fill.price,
        fill.commission,
        fill.fees,
        fill.external_id,
        fill.executed_at,
    )


def check_fill_values(
    order_id: int | None,
    symbol: Any,
    side: Any,
    quantity: Any,
    price: Any,
    commission: Any = 0,
    fees: Any = 0,
    external_id: Any = None,
    executed_at: Any = None,
) -> CheckedFill:
    """:func:`check_fill` of a fill's fields as they are given (a :class:`Fill`'s, or
    a dict's by keyword), in the order and with the defaults of :class:`Fill`."""
    return CheckedFill(
        None if order_id is None else check_id(order_id, "order_id"),
        symbol if type(symbol) is str and symbol in _CHECKED_SYMBOLS else _new_symbol(symbol),
        side_value(side),
        to_positive_decimal(quantity, "quantity"),
        to_positive_decimal(price, "price"),
        to_non_negative_decimal(commission, "commission"),
        to_non_negative_decimal(fees, "fees"),
        check_external_id(external_id),
        # Only None means "now": "", 0 or False is a mistake, not a time.
        utcnow() if executed_at is None else to_event_time(executed_at, "executed_at"),
    )


#: Symbols :func:`check_symbol` accepted: a broker's fills name the same few again and
#: again, and the set look-up costs a fifth of checking one. Bounded, so that a stream
#: of new names cannot grow it without end (those are checked every time).
_CHECKED_SYMBOLS: set[str] = set()
_CHECKED_SYMBOLS_MAX = 10_000


def _new_symbol(value: Any) -> str:
    symbol = check_symbol(value)
    if type(symbol) is str and len(_CHECKED_SYMBOLS) < _CHECKED_SYMBOLS_MAX:
        _CHECKED_SYMBOLS.add(symbol)
    return symbol


_SIDES = {side.value: side for side in OrderSideEnum}
# Plain strings for the values compared and written for every fill: an enum member's
# ``.value`` is a descriptor call, measurable at a million fills.
_SIDE_VALUES: dict[Any, str] = {
    **{side: side.value for side in OrderSideEnum},
    **{side.value: side.value for side in OrderSideEnum},
}
_TRADE_TYPES = {kind.value: kind for kind in TradeTypeEnum}


def side_value(value: Any) -> str:
    """The stored text of an order side given as its text or its enum member."""
    if isinstance(value, str) and value in _SIDE_VALUES:
        return _SIDE_VALUES[value]
    return coerce_enum(OrderSideEnum, value, "side").value


def text_or_none(value: Decimal | None) -> str | None:
    """The stored text of a decimal that may be missing."""
    return None if value is None else decimal_text(value)


# -- reading -------------------------------------------------------------------------


def stored(value: Any) -> Decimal:
    """A stored figure as a Decimal. The store writes only finite numbers, so anything
    else (text that is no number, NaN, Infinity: a row changed outside the store) raises
    ``InvalidOperation`` before the fill computes with it and writes its result back
    (see ``recorder.stored_numbers``); NaN would otherwise pass through the arithmetic."""
    number = Decimal(value)
    if not number.is_finite():
        raise InvalidOperation(f"stored figure {value!r} is not a finite number")
    return number


def order_from_row(row: tuple) -> ledger.OrderState:
    """From the columns of :data:`ORDER_COLUMNS`."""
    order_id, symbol, side, status, quantity, filled, avg, strategy_id, deleted_at = row
    return ledger.OrderState(
        order_id,
        symbol,
        side,
        status,
        stored(quantity),
        stored(filled),
        None if avg is None else stored(avg),
        strategy_id,
        deleted=deleted_at is not None,
    )


def position_from_row(symbol: str, row: tuple) -> ledger.PositionState:
    """From the columns of :data:`POSITION_COLUMNS`."""
    pid, side, quantity, avg, realized, commission, fees, opened_at = row
    return ledger.PositionState(
        symbol,
        side,
        stored(quantity),
        stored(avg),
        stored(realized),
        stored(commission),
        stored(fees),
        id=pid,
        opened_at=to_utc(opened_at),
    )


def figures_from_row(row: tuple) -> ledger.StrategyFigures:
    """From the columns of :data:`STRATEGY_FIGURES`."""
    total, closing, winning, losing = row[:4]
    pnl, profit, loss, commission, fees, peak, drawdown = (stored(v) for v in row[4:11])
    return ledger.StrategyFigures(
        total,
        closing,
        winning,
        losing,
        pnl,
        profit,
        loss,
        commission,
        fees,
        peak,
        drawdown,
        None if row[11] is None else to_utc(row[11]),
    )


def check_same_fill(fill: CheckedFill, stored: tuple) -> None:
    """Raise :class:`ConflictError` unless the stored trade (:data:`SAME_FILL_COLUMNS`)
    is the fill re-sent."""
    order_id, symbol, side, quantity, price = stored
    if (
        order_id != fill.order_id
        or symbol != fill.symbol
        or side != fill.side
        or Decimal(quantity) != fill.quantity
        or Decimal(price) != fill.price
    ):
        raise ConflictError(
            f"trade {fill.external_id!r} is already stored as {side} {Decimal(quantity)} "
            f"{symbol} @ {Decimal(price)} on order {order_id}; the re-sent fill says "
            f"{fill.side} {fill.quantity} {fill.symbol} @ {fill.price} on order "
            f"{fill.order_id}"
        )


# -- writing: parameters in the order of the statements' names ----------------------


def trade_row(
    fill: CheckedFill,
    strategy_id: int | None,
    trade_type: str,
    realized_pnl: Decimal | None,
    stamp: str,
) -> tuple:
    """:data:`TRADE_VALUES` of a new trade (the bulk path puts the id in front)."""
    # Unpacked once: a field of a NamedTuple by name costs a look-up each.
    order_id, symbol, side, quantity, price, commission, fees, external_id, at = fill
    return (
        order_id,
        external_id,
        strategy_id,
        symbol,
        side,
        trade_type,
        scaled_text(quantity),
        scaled_text(price),
        scaled_text(commission),
        scaled_text(fees),
        None if realized_pnl is None else scaled_text(realized_pnl),
        datetime_text(at),
        stamp,
    )


def _position_amounts(p: ledger.PositionState) -> tuple:
    """A position's six stored amounts, quantity to fees, as the store writes them."""
    return (
        decimal_text(p.quantity),
        decimal_text(p.avg_entry_price),
        decimal_text(p.cost_basis),
        decimal_text(p.realized_pnl),
        decimal_text(p.commission),
        decimal_text(p.fees),
    )


def new_position_row(p: ledger.PositionState, stamp: str) -> tuple:
    """:data:`POSITION_VALUES` of a new position (the bulk path puts the id in front)."""
    return (
        p.symbol,
        p.side,
        *_position_amounts(p),
        p.is_open,
        stamp,
        stamp,
        datetime_text(p.opened_at) if p.opened_at else stamp,
        None if p.closed_at is None else datetime_text(p.closed_at),
    )


def position_update_row(p: ledger.PositionState, stamp: str) -> tuple:
    """:data:`POSITION_UPDATE` of a stored position, then its id."""
    return (
        *_position_amounts(p),
        p.is_open,
        stamp,
        None if p.closed_at is None else datetime_text(p.closed_at),
        p.id,
    )


def position_update(p: ledger.PositionState, stamp: str) -> tuple[str, tuple]:
    """The statement (its name in :mod:`.statements`) and parameters that write a stored
    position after a fill: the whole :data:`POSITION_UPDATE`, or only
    :data:`POSITION_HELD_UPDATE` when it stays open (it was open: the fill read it so)."""
    if not p.is_open:
        return "update_position", position_update_row(p, stamp)
    return "update_held_position", (
        *_position_amounts(p),
        stamp,
        p.id,
    )


def order_update(order: ledger.OrderState, status_before: str) -> tuple[str, tuple]:
    """The statement (its name in :mod:`.statements`) and parameters that write an order
    after a fill: the whole :data:`ORDER_UPDATE`, or only :data:`ORDER_FILL_UPDATE` when
    its status stays as it was (then so does ``filled_at``: it is set as it fills)."""
    if order.status != status_before:
        return "update_order", order_update_row(order)
    return "update_order_fill", (
        decimal_text(order.filled),
        text_or_none(order.avg),
        order.updated_at,
        order.id,
    )


def order_update_row(order: ledger.OrderState) -> tuple:
    """:data:`ORDER_UPDATE` of an order fills moved, then its id."""
    return (
        order.status,
        decimal_text(order.filled),
        text_or_none(order.avg),
        order.updated_at,
        order.filled_at,
        order.id,
    )


def figures_row(figures: ledger.StrategyFigures, stamp: str) -> list:
    """:data:`STRATEGY_UPDATE` of a strategy's figures (its id is not included)."""
    params: list = []
    for name in STRATEGY_UPDATE[:-1]:
        value = getattr(figures, name)
        if isinstance(value, Decimal):
            value = decimal_text(value)
        elif isinstance(value, dt.datetime):
            value = datetime_text(value)
        params.append(value)
    params.append(stamp)
    return params


def build_trade(
    trade_id: int,
    fill: CheckedFill,
    strategy_id: int | None,
    trade_type: str,
    realized_pnl: Decimal | None,
    now: dt.datetime,
) -> Trade:
    """The :class:`Trade` just written, as a query would return it (no defaults run,
    nothing dirty), without building it field by field."""
    order_id, symbol, side, quantity, price, commission, fees, external_id, at = fill
    trade = Trade.__new__(Trade)
    trade._dirty, trade.__rel__ = set(), {}
    trade.__data__ = {
        "id": trade_id,
        "order": order_id,
        "external_id": external_id,
        "strategy": strategy_id,
        "symbol": symbol,
        "side": _SIDES[side],
        "type": _TRADE_TYPES[trade_type],
        "quantity": quantity,
        "price": price,
        "commission": commission,
        "fees": fees,
        # Tidied as a read gives it (0.9, not the ledger's 0.9000000000): equal either
        # way, but a caller's str() or JSON of the trade must not depend on the path.
        "realized_pnl": None if realized_pnl is None else tidy(realized_pnl),
        "executed_at": at,
        "created_at": now,
    }
    return trade


#: Each field of a trade with the conversion peewee applies to its column when it reads
#: a row (``python_value``), in the order of the model's fields.
_TRADE_READERS = tuple((f.name, f.python_value) for f in Trade._meta.sorted_fields)


def trade_from_row(row: tuple) -> Trade:
    """The :class:`Trade` of a row of all its columns in the model's field order, as a
    query returns it (each column converted by its field, no defaults run, nothing
    dirty), without peewee's per-row keyword call and ``setattr`` per field (which
    cost several times more, for every re-sent fill of a batch)."""
    trade = Trade.__new__(Trade)
    trade._dirty, trade.__rel__ = set(), {}
    trade.__data__ = {
        name: None if value is None else read(value)
        for (name, read), value in zip(_TRADE_READERS, row, strict=True)
    }
    return trade
