"""The equity curve: realized P&L to date, fees, and open positions at closing marks.

One point per UTC day from the first day with a trade or a mark: realized P&L and
fees to the end of the day (from the day buckets of :mod:`stocksbot_store.buckets`),
unrealized P&L of the positions open at the end of the day (the kept
``position_day`` rows, carried forward over days without fills) valued at the
symbol's latest closing mark up to that day, else at its last fill price, and their
sum ``equity = realized - fees + unrealized``; drawdown is the fall from the highest
equity so far (starting at 0, the books' value before the first trade).

It reads one row per day per strategy and symbol, per symbol and per marked symbol:
never the trades.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from peewee import Database

from .buckets import AMOUNTS, DAY, PARTS, join
from .fields import in_money_context, tidy, to_utc
from .marks import unrealized
from .models import ZERO
from .reports import bound
from .types import RangeBound

_UTC = dt.timezone.utc


@dataclass(frozen=True)
class EquityPoint:
    """The books at the end of one UTC day."""

    day: dt.date
    realized_pnl: Decimal
    fees: Decimal
    unrealized_pnl: Decimal
    #: ``realized_pnl - fees + unrealized_pnl``.
    equity: Decimal
    #: Highest equity up to this day less this day's.
    drawdown: Decimal
    #: Net realized P&L of this day alone (``gross - fees``).
    day_net_pnl: Decimal
    #: Symbols open at the day's end valued at their last fill price (no mark yet).
    unmarked: tuple[str, ...] = ()


@in_money_context
def equity_curve(
    db: Database, since: RangeBound | None = None, until: RangeBound | None = None
) -> list[EquityPoint]:
    """One :class:`EquityPoint` per UTC day in ``[since, until)`` (dates or datetimes,
    taken at their UTC day), oldest first."""
    low, high = bound(since, _UTC, "since"), bound(until, _UTC, "until")
    pieces = ", ".join(f"SUM({name}_{part})" for name in AMOUNTS[:3] for part in PARTS)
    days: dict[int, list[Any]] = {}
    entry: list[Any] | None
    for start, *parts in db.execute_sql(
        f"SELECT bucket_start, {pieces} FROM pnl_bucket WHERE span = {DAY} GROUP BY bucket_start"
    ).fetchall():
        gross, commission, fees = (
            join(*parts[n : n + len(PARTS)]) for n in range(0, 3 * len(PARTS), len(PARTS))
        )
        days[int(start) // DAY] = [gross, commission + fees, [], []]
    for symbol, day, side, quantity, avg, last in db.execute_sql(
        "SELECT symbol, day, side, quantity, avg_entry_price, last_price FROM position_day"
    ).fetchall():
        entry = days.setdefault(_day_number(day), [ZERO, ZERO, [], []])
        entry[2].append(
            (symbol, side, Decimal(str(quantity)), Decimal(str(avg)), Decimal(str(last)))
        )
    for symbol, day, price in db.execute_sql(
        "SELECT symbol, day, price FROM mark_close"
    ).fetchall():
        entry = days.setdefault(_day_number(day), [ZERO, ZERO, [], []])
        entry[3].append((symbol, Decimal(str(price))))
    if not days:
        return []

    points: list[EquityPoint] = []
    realized = fees = peak = ZERO
    open_positions: dict[str, tuple[str, Decimal, Decimal]] = {}
    last_price: dict[str, Decimal] = {}
    close: dict[str, Decimal] = {}
    # Each open symbol's unrealized P&L and whether it is at a mark, and their sum:
    # recomputed only for the symbols a day's fills or marks changed.
    values: dict[str, tuple[Decimal, bool]] = {}
    unmarked: tuple[str, ...]
    shown: tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal] | None
    value, unmarked, shown = ZERO, (), None
    first, last = min(days), max(days)
    for number in range(first, last + 1):
        entry = days.get(number)
        if entry is not None:
            gross, day_fees, positions, marks = entry
            realized += gross
            fees += day_fees
            changed = set()
            for symbol, side, quantity, avg, price in positions:
                last_price[symbol] = price
                changed.add(symbol)
                if side is None:
                    open_positions.pop(symbol, None)
                else:
                    open_positions[symbol] = (side, quantity, avg)
            for symbol, price in marks:
                close[symbol] = price
                changed.add(symbol)
            for symbol in changed:
                value -= values.pop(symbol, (ZERO, True))[0]
                held = open_positions.get(symbol)
                if held is not None:
                    price = close.get(symbol)
                    values[symbol] = (
                        unrealized(*held, price if price is not None else last_price[symbol]),
                        price is not None,
                    )
                    value += values[symbol][0]
            unmarked = tuple(sorted(s for s, (_, marked) in values.items() if not marked))
            equity = realized - fees + value
            peak = max(peak, equity)
            shown = (
                tidy(realized),
                tidy(fees),
                tidy(value),
                tidy(equity),
                tidy(peak - equity),
                tidy(gross - day_fees),
            )
        elif shown is not None and shown[5]:
            shown = (*shown[:5], ZERO)  # a day without fills or marks: nothing moved
        seconds = number * DAY
        if (low is None or seconds >= low - low % DAY) and (high is None or seconds < high):
            assert shown is not None  # set on the first day, which has figures
            points.append(
                EquityPoint(dt.date(1970, 1, 1) + dt.timedelta(days=number), *shown, unmarked)
            )
    return points


def _day_number(value: Any) -> int:
    return int(to_utc(value).timestamp()) // DAY


__all__ = ["EquityPoint", "equity_curve"]
