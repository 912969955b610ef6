"""Market prices the bot records, and the unrealized P&L of open positions at them.

:func:`record_marks` keeps, per symbol, the latest price
(:class:`~stocksbot_store.models.Mark`) and the last price of each UTC day
(:class:`~stocksbot_store.models.MarkClose`), so history stays one row per symbol per
day however often the bot records. An older price than the one kept (a late
message) changes nothing.

Unrealized P&L (:func:`position_values`) values a position at its symbol's latest
mark, else at its last fill's price, and says which (``source``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from peewee import Database

from .buckets import day_of
from .database import backend_of, write_transaction
from .fields import (
    datetime_text,
    decimal_text,
    in_money_context,
    quantize,
    to_event_time,
    to_positive_decimal,
    to_utc,
    utcnow,
)
from .models import Position
from .types import PositionSide, Price, When
from .validation import check_symbol

MARK, FILL = "mark", "fill"


def record_marks(db: Database, prices: Mapping[str, Price], at: When | None = None) -> int:
    """Keep ``{symbol: price}`` observed at ``at`` (default now) as the latest and the
    day's closing marks, in one transaction; how many symbols were given."""
    stamp = to_event_time(at, "at") if at is not None else utcnow()
    rows = sorted(
        (check_symbol(symbol), decimal_text(to_positive_decimal(price, "price")))
        for symbol, price in dict(prices).items()
    )
    mark = "%s" if backend_of(db) == "postgres" else "?"
    when, day = datetime_text(stamp), datetime_text(day_of(stamp))
    latest = (
        f"INSERT INTO mark (symbol, price, marked_at) VALUES ({mark}, {mark}, {mark}) "
        "ON CONFLICT (symbol) DO UPDATE SET price = excluded.price, "
        "marked_at = excluded.marked_at WHERE excluded.marked_at >= mark.marked_at"
    )
    close = (
        f"INSERT INTO mark_close (symbol, day, price, marked_at) VALUES "
        f"({mark}, {mark}, {mark}, {mark}) ON CONFLICT (symbol, day) DO UPDATE SET "
        "price = excluded.price, marked_at = excluded.marked_at "
        "WHERE excluded.marked_at >= mark_close.marked_at"
    )
    with write_transaction(db):
        cursor = db.cursor()
        cursor.executemany(latest, [(symbol, price, when) for symbol, price in rows])
        cursor.executemany(close, [(symbol, day, price, when) for symbol, price in rows])
    return len(rows)


def latest_marks(db: Database) -> dict[str, tuple[Decimal, dt.datetime]]:
    """``{symbol: (price, marked_at)}`` of every symbol with a mark."""
    rows = db.execute_sql("SELECT symbol, price, marked_at FROM mark").fetchall()
    return {symbol: (Decimal(str(price)), to_utc(at)) for symbol, price, at in rows}


@dataclass(frozen=True)
class PositionValue:
    """An open position valued at a price."""

    position: Position
    #: The price it is valued at, and when that price was observed.
    price: Decimal
    priced_at: dt.datetime
    #: ``"mark"`` (the symbol's latest mark) or ``"fill"`` (its last fill's price).
    source: str
    unrealized_pnl: Decimal

    def age(self, now: dt.datetime | None = None) -> dt.timedelta:
        """How old the price is."""
        return (now or utcnow()) - self.priced_at


def unrealized(
    side: PositionSide, quantity: Decimal, avg_entry_price: Decimal, price: Decimal
) -> Decimal:
    """What closing ``quantity`` at ``price`` would realize (average-cost rules)."""
    move = price - avg_entry_price
    return quantize(quantity * (move if side == "long" else -move))  # str enums equal too


def last_fill(db: Database, symbol: str) -> tuple[Decimal, dt.datetime] | None:
    """The price and time of the newest recorded fill of ``symbol``."""
    mark = "%s" if backend_of(db) == "postgres" else "?"
    row = db.execute_sql(
        f"SELECT price, executed_at FROM trade WHERE symbol = {mark} ORDER BY id DESC LIMIT 1",
        (symbol,),
    ).fetchone()
    return None if row is None else (Decimal(str(row[0])), to_utc(row[1]))


@in_money_context
def position_values(db: Database, positions: list[Position]) -> list[PositionValue]:
    """Each of ``positions`` valued at its latest mark, else its last fill's price."""
    marks = latest_marks(db)
    values = []
    for p in positions:
        source = MARK
        found = marks.get(p.symbol)
        if found is None:
            source, found = FILL, last_fill(db, p.symbol)
        if found is None:  # opened by hand with no trade: valued at its entry
            found = (p.avg_entry_price, p.opened_at)
        price, at = found
        values.append(
            PositionValue(
                p, price, at, source, unrealized(p.side, p.quantity, p.avg_entry_price, price)
            )
        )
    return values


__all__ = [
    "FILL",
    "MARK",
    "PositionValue",
    "latest_marks",
    "position_values",
    "record_marks",
    "unrealized",
]
