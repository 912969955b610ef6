"""Positions changed by hand, kept equal to the replay of their trades.

A position is what its trades add up to, so every hand edit (opening a holding the
bot did not trade, resizing one, closing one at a given P&L) is recorded as an
ADJUSTMENT trade through the fill path (:class:`~stocksbot_store.fills.FillRecorder`)
rather than by writing the position row. :class:`StorageService` and the old
repository forms (``PositionRepository.create``/``update``/``close_position``) both
come here, so there is one home for the rule.

Each edit reads the position inside its write transaction with the symbol locked,
the same lock the fill path takes (the advisory lock of
:class:`~stocksbot_store.fills.FillRecorder` on PostgreSQL, ``BEGIN IMMEDIATE`` on
SQLite), so two edits, or an edit and a fill, of one symbol never work from the
same stale read.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from peewee import Database, ModelSelect

from .database import write_transaction
from .errors import DuplicateError, NotFoundError, ValidationError, translate_errors
from .fields import (
    MONEY_CONTEXT,
    coerce_enum,
    in_money_context,
    quantize,
    to_decimal,
    to_positive_decimal,
)
from .fills import Fill, FillRecorder
from .models import Position, PositionSideEnum
from .validation import check_id, check_symbol


def opening_side(side: PositionSideEnum | str) -> str:
    """The order side that opens or adds to a position of ``side``."""
    return "buy" if side == PositionSideEnum.LONG else "sell"


def closing_side(side: PositionSideEnum | str) -> str:
    """The order side that reduces or closes a position of ``side``."""
    return "sell" if side == PositionSideEnum.LONG else "buy"


class Adjustments:
    """Hand edits of positions on one database, each in its own write transaction
    (a savepoint when the caller has one open)."""

    def __init__(self, db: Database, fills: FillRecorder | None = None) -> None:
        self.db = db
        self.fills = fills or FillRecorder(db)

    # -- locks -------------------------------------------------------------------------

    def lock_symbol(self, symbol: str) -> None:
        """Take the fill path's lock on ``symbol`` until the transaction ends
        (PostgreSQL; on SQLite the write transaction already excludes other writers)."""
        if "lock_symbol" in self.fills.sql:
            with translate_errors(f"locking {symbol}"):
                self.db.execute_sql(self.fills.sql["lock_symbol"], (symbol,))

    def _select(self) -> ModelSelect[Position]:
        query = Position.select().bind(self.db)
        if self.fills.backend == "postgres":
            query = query.for_update("FOR NO KEY UPDATE")  # type: ignore[arg-type]  # text is ok
        return query

    def open_position(self, symbol: str) -> Position | None:
        """The open position of ``symbol``, locked (call inside a write transaction,
        after :meth:`lock_symbol`)."""
        with translate_errors("reading Position"):
            return (
                self._select()
                .where((Position.symbol == symbol) & (Position.is_open == True))  # noqa: E712
                .first()
            )

    def locked(self, position: Position | int) -> Position:
        """The current row of ``position`` (a Position or its id), with its symbol
        locked; :class:`NotFoundError` if there is none."""
        position_id = (
            position.id if isinstance(position, Position) else check_id(position, "position_id")
        )
        with translate_errors("reading Position"):
            symbol = (
                Position.select(Position.symbol)
                .where(Position.id == position_id)
                .bind(self.db)
                .scalar()
            )
        if symbol is None:
            raise NotFoundError(f"Position {position_id} does not exist")
        self.lock_symbol(symbol)  # the symbol of a position never changes: lock, then read
        with translate_errors("reading Position"):
            return self._select().where(Position.id == position_id).get()

    def _current(self, position: Position) -> Position:
        with translate_errors("reading Position"):
            return Position.select().where(Position.id == position.id).bind(self.db).get()

    # -- edits -------------------------------------------------------------------------

    @in_money_context
    def open(self, symbol: Any, side: Any, quantity: Any, price: Any) -> Position:
        """Open a position by hand at ``price``; :class:`DuplicateError` if the symbol
        has an open position already."""
        symbol = check_symbol(symbol)
        side = coerce_enum(PositionSideEnum, side, "side")
        quantity = to_positive_decimal(quantity, "quantity")
        price = to_positive_decimal(price, "price")  # the field the fill path names
        with write_transaction(self.db):
            self.lock_symbol(symbol)
            if self.open_position(symbol) is not None:
                raise DuplicateError(
                    f"{symbol} has an open position already; record a fill "
                    "(record_trade) to change it"
                )
            self.fills.record(Fill(None, symbol, opening_side(side), quantity, price))
            return cast(Position, self.open_position(symbol))  # opened just above

    @in_money_context
    def set_quantity(self, position: Position | int, quantity: Any) -> Position:
        """Set an open position's quantity, adjusting by the difference at its average
        entry price (so no P&L is realized)."""
        target = to_positive_decimal(quantity, "quantity")
        with write_transaction(self.db):
            row = self._open(position)
            change = target - row.quantity
            if change:
                side = opening_side(row.side) if change > 0 else closing_side(row.side)
                self.fills.record(Fill(None, row.symbol, side, abs(change), row.avg_entry_price))
            return self._current(row)

    @in_money_context
    def change(self, position: Position | int, quantity_delta: Any, price: Any) -> Position:
        """Add ``quantity_delta`` (signed: more shares in the position's direction, or
        fewer) at ``price``: an add moves the average cost, a reduction realizes P&L
        against it, and reaching zero closes the position. Going past zero is refused
        (a flip is a fill: :meth:`StorageService.record_trade`)."""
        delta = to_decimal(quantity_delta, "quantity_delta")
        price = to_positive_decimal(price, "price")
        if not delta:
            raise ValidationError("quantity_delta", "must not be zero")
        with write_transaction(self.db):
            row = self._open(position)
            if -delta > row.quantity:
                raise ValidationError(
                    "quantity_delta",
                    f"{delta} would take position {row.id} "
                    f"({row.quantity} {row.symbol}) past zero; record a fill "
                    "to flip it",
                )
            side = opening_side(row.side) if delta > 0 else closing_side(row.side)
            self.fills.record(Fill(None, row.symbol, side, abs(delta), price))
            return self._current(row)

    @in_money_context
    def close(self, position: Position | int, realized_pnl: Any = None) -> Position:
        """Close an open position by an adjustment of its whole quantity. With
        ``realized_pnl`` (the position's total, as the old module took it) the
        adjustment is priced so that the position ends with exactly that P&L;
        without, it closes at its average entry price."""
        with write_transaction(self.db):
            row = self._open(position)
            price = row.avg_entry_price
            if realized_pnl is not None:
                price = _closing_price(row, to_decimal(realized_pnl, "realized_pnl"))
            self.fills.record(Fill(None, row.symbol, closing_side(row.side), row.quantity, price))
            return self._current(row)

    def _open(self, position: Position | int) -> Position:
        row = self.locked(position)
        if not row.is_open:
            raise ValidationError(
                "position_id", f"position {row.id} ({row.symbol}) is closed; open a new one"
            )
        return row


def _closing_price(row: Position, realized_pnl: Decimal) -> Decimal:
    """The price at which closing ``row`` realizes P&L so that its total is
    ``realized_pnl`` exactly; ValidationError when no price of 10 places does."""
    wanted = realized_pnl - row.realized_pnl
    per_share = MONEY_CONTEXT.divide(wanted, row.quantity)
    if row.side == PositionSideEnum.SHORT:
        per_share = -per_share
    price = quantize(MONEY_CONTEXT.add(row.avg_entry_price, per_share))
    move = price - row.avg_entry_price
    got = quantize(
        MONEY_CONTEXT.multiply(row.quantity, move if row.side == PositionSideEnum.LONG else -move)
    )
    if price <= 0 or got != wanted:
        raise ValidationError(
            "realized_pnl",
            f"closing {row.quantity} {row.symbol} at a "
            f"positive price of at most 10 decimal places cannot realize "
            f"exactly {wanted} more; record the closing fill with "
            "record_trade",
        )
    return price


__all__ = ["Adjustments", "closing_side", "opening_side"]
