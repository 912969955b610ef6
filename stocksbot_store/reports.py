"""P&L by period and by symbol, read from the buckets fills keep (never from trades).

:func:`pnl_by_period` sums the quarter-hour rows of :mod:`stocksbot_store.buckets`
by the operator's day in SQL (the day rows, when the days are UTC ones), one row per
day, then adds days into weeks (Monday first) or months; :func:`pnl_by_symbol` sums
day rows for the whole UTC days of its range and quarter-hour rows for the ragged
ends. Either reads a number of rows that grows with the span of history and the
number of strategies and symbols, not with the number of trades. The figures are
exact decimals.

Times: ``since``/``until`` are a :class:`~datetime.date` (midnight in ``tz``) or a
datetime, and bound the range ``[since, until)``; a datetime inside a quarter hour is
taken from the start of its quarter hour (the grain the buckets are kept at). ``tz``
is an IANA zone name or a ``tzinfo``; None means UTC. Daylight-saving changes are
followed: a day is the operator's midnight to midnight.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from peewee import Database

from .buckets import ALL_SYMBOLS, AMOUNTS, COUNTS, DAY, PARTS, QUARTER, join
from .database import backend_of
from .errors import ValidationError
from .fields import in_money_context, tidy, to_utc
from .types import RangeBound, Zone
from .validation import check_symbol

PERIODS = ("day", "week", "month")
UTC = dt.timezone.utc
_EPOCH_DATE = dt.date(1970, 1, 1)
_SUMS = ", ".join(
    [f"SUM({c})" for c in COUNTS] + [f"SUM({name}_{part})" for name in AMOUNTS for part in PARTS]
)


@dataclass(frozen=True)
class PnlRow:
    """Realized P&L of one period or one symbol, like :class:`StrategyStats`' figures.

    ``fees`` is commission plus fees, ``net_pnl`` is ``gross_pnl - fees``, ``volume``
    the traded value (sum of quantity x price).
    """

    #: ``2026-01-05`` (day), the Monday of the week, the first of the month, or a symbol.
    key: str
    #: The period's first instant in the report's zone (None for a by-symbol row).
    start: dt.datetime | None
    trades: int
    closing_trades: int
    wins: int
    losses: int
    gross_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    volume: Decimal

    @property
    def win_rate(self) -> Decimal | None:
        """Winning closing trades over closing trades (None when nothing closed)."""
        return (
            None
            if not self.closing_trades
            else (Decimal(self.wins) / Decimal(self.closing_trades)).quantize(Decimal("0.0001"))
        )


class _Sum:
    """Running totals of bucket rows (counts and split amounts)."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values = [0] * (len(COUNTS) + len(PARTS) * len(AMOUNTS))

    def add(self, row: tuple | list) -> None:
        for i, value in enumerate(row):
            self.values[i] += int(value or 0)

    def row(self, key: str, start: dt.datetime | None) -> PnlRow:
        trades, closing, wins, losses = self.values[:4]
        gross, commission, fees, volume = (
            join(*self.values[start : start + len(PARTS)])
            for start in range(len(COUNTS), len(self.values), len(PARTS))
        )
        return PnlRow(
            key,
            start,
            trades,
            closing,
            wins,
            losses,
            tidy(gross),
            tidy(commission + fees),
            tidy(gross - commission - fees),
            tidy(volume),
        )


def zone_of(tz: Zone | None) -> dt.tzinfo:
    """The tzinfo ``tz`` names (None: UTC)."""
    if tz is None:
        return UTC
    if isinstance(tz, dt.tzinfo):
        return tz
    try:
        return ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            "tz",
            f"{tz!r} is not a time zone; give an IANA name such as "
            "'Europe/Paris' or 'Asia/Kolkata'",
        ) from None


def bound(value: RangeBound | None, zone: dt.tzinfo, field: str) -> int | None:
    """Epoch seconds of a range bound, rounded down to its quarter hour."""
    if value is None:
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day, tzinfo=zone)
    elif isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    seconds = int(to_utc(value, field).timestamp() // 1)
    return seconds - seconds % QUARTER


class _Reader:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.pg = backend_of(db) == "postgres"

    def rows(self, sql: str, params: list) -> list[tuple]:
        if self.pg:
            sql = sql.replace("?", "%s")
        return self.db.execute_sql(sql, params).fetchall()


def _filters(
    strategy_key: int | None, symbol: str | None, since: int | None, until: int | None
) -> tuple[str, list]:
    where, params = "", []
    if strategy_key is not None:
        where += " AND strategy_key = ?"
        params.append(strategy_key)
    if since is not None:
        where += " AND bucket_start >= ?"
        params.append(since)
    if until is not None:
        where += " AND bucket_start < ?"
        params.append(until)
    return where, params


def _offsets(zone: dt.tzinfo, first: int, last: int) -> list[tuple[int, int]]:
    """``(from, offset)`` pairs: ``zone``'s UTC offset in seconds from each epoch second
    ``from`` on, over ``[first, last]`` (a quarter-hour grain: every zone's changes fall
    on one)."""

    def offset(second: int) -> int:
        at = dt.datetime.fromtimestamp(second, UTC)
        delta = zone.utcoffset(at.astimezone(zone))
        assert delta is not None  # a zone's own local time always has an offset
        return int(delta.total_seconds())

    pairs = [(first, offset(first))]
    if isinstance(zone, dt.timezone):  # a fixed offset
        return pairs
    day = first - first % DAY
    while day <= last:
        nxt = min(day + DAY, last)
        if offset(nxt) != pairs[-1][1]:
            low, high = day, nxt  # the change is in (low, high]: find it by quarter hours
            while high - low > QUARTER:
                middle = low + (high - low) // 2 // QUARTER * QUARTER
                middle = middle if middle > low else low + QUARTER
                if offset(middle) == pairs[-1][1]:
                    low = middle
                else:
                    high = middle
            pairs.append((high, offset(high)))
        day += DAY
    return pairs


def _local_day_expression(pairs: list[tuple[int, int]]) -> str:
    if len(pairs) == 1:
        return f"(bucket_start + {pairs[0][1]}) / {DAY}"
    cases = " ".join(
        f"WHEN bucket_start < {start} THEN {offset}"
        for (_, offset), (start, _) in zip(pairs, pairs[1:], strict=False)
    )
    return f"(bucket_start + CASE {cases} ELSE {pairs[-1][1]} END) / {DAY}"


def _period_start(day: dt.date, period: str) -> dt.date:
    if period == "week":
        return day - dt.timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


@in_money_context
def pnl_by_period(
    db: Database,
    period: str = "day",
    since: RangeBound | None = None,
    until: RangeBound | None = None,
    strategy_key: int | None = None,
    symbol: str | None = None,
    tz: Zone | None = None,
) -> list[PnlRow]:
    """Realized P&L per ``period`` (day, week or month) in ``tz``, oldest first; only
    periods with trades. ``strategy_key``: a strategy id, 0 for trades without one."""
    if period not in PERIODS:
        raise ValidationError("period", f"{period!r} is not one of {', '.join(PERIODS)}")
    zone = zone_of(tz)
    since_s, until_s = bound(since, zone, "since"), bound(until, zone, "until")
    reader = _Reader(db)
    where, params = _filters(strategy_key, symbol, since_s, until_s)
    if symbol is not None:
        symbol = check_symbol(symbol)
    target = [QUARTER, ALL_SYMBOLS if symbol is None else symbol]
    extent = reader.rows(
        "SELECT MIN(bucket_start), MAX(bucket_start) FROM pnl_bucket "
        f"WHERE span = ? AND symbol = ?{where}",
        target + params,
    )[0]
    if extent[0] is None:
        return []
    offsets = _offsets(zone, int(extent[0]), int(extent[1]))
    if offsets == [(int(extent[0]), 0)] and all(
        b is None or b % DAY == 0 for b in (since_s, until_s)
    ):
        # UTC days: one day row per strategy and symbol instead of 96 quarter hours.
        rows = reader.rows(
            f"SELECT bucket_start / {DAY} AS utc_day, {_SUMS} FROM pnl_bucket "
            f"WHERE span = ?{' AND symbol = ?' if symbol else ''}{where} "
            "GROUP BY utc_day ORDER BY utc_day",
            [DAY, *([symbol] if symbol else []), *params],
        )
    else:
        day = _local_day_expression(offsets)
        rows = reader.rows(
            f"SELECT {day} AS local_day, {_SUMS} FROM pnl_bucket "
            f"WHERE span = ? AND symbol = ?{where} GROUP BY local_day "
            "ORDER BY local_day",
            target + params,
        )
    sums: dict[dt.date, _Sum] = {}
    for local_day, *figures in rows:
        start = _period_start(_EPOCH_DATE + dt.timedelta(days=int(local_day)), period)
        sums.setdefault(start, _Sum()).add(figures)
    return [
        total.row(start.isoformat(), dt.datetime(start.year, start.month, start.day, tzinfo=zone))
        for start, total in sums.items()
    ]


@in_money_context
def pnl_by_symbol(
    db: Database,
    since: RangeBound | None = None,
    until: RangeBound | None = None,
    strategy_key: int | None = None,
    tz: Zone | None = None,
) -> list[PnlRow]:
    """Realized P&L per symbol over ``[since, until)``, by symbol."""
    zone = zone_of(tz)
    since_s, until_s = bound(since, zone, "since"), bound(until, zone, "until")
    reader = _Reader(db)
    # Whole UTC days from day rows; the quarter hours before the first and after the
    # last whole day from quarter rows.
    first_day = None if since_s is None else -(-since_s // DAY) * DAY
    last_day = None if until_s is None else until_s - until_s % DAY
    pieces: list[tuple[int, int | None, int | None]] = []
    if first_day is not None and last_day is not None and first_day >= last_day:
        pieces.append((QUARTER, since_s, until_s))
    else:
        pieces.append((DAY, first_day, last_day))
        if since_s is not None and first_day is not None and since_s < first_day:
            pieces.append((QUARTER, since_s, first_day))
        if until_s is not None and last_day is not None and last_day < until_s:
            pieces.append((QUARTER, last_day, until_s))
    sums: dict[str, _Sum] = {}
    for span, low, high in pieces:
        where, params = _filters(strategy_key, None, low, high)
        for symbol, *figures in reader.rows(
            f"SELECT symbol, {_SUMS} FROM pnl_bucket WHERE span = ? AND symbol <> ?"
            f"{where} GROUP BY symbol",
            [span, ALL_SYMBOLS] + params,
        ):
            sums.setdefault(symbol, _Sum()).add(figures)
    return [sums[symbol].row(symbol, None) for symbol in sorted(sums)]


__all__ = ["PERIODS", "PnlRow", "pnl_by_period", "pnl_by_symbol", "zone_of"]
