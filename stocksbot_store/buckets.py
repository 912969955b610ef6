"""The figures reports keep on write: P&L buckets and each symbol's position at day end.

Every fill, on the single and the bulk path, adds itself in the same transaction to

* three :class:`~stocksbot_store.models.PnlBucket` rows: its quarter hour for its
  strategy and symbol, its quarter hour for its strategy and every symbol
  (``symbol = ""``), and its UTC day for its strategy and symbol;
* the :class:`~stocksbot_store.models.PositionDay` row of its symbol and UTC day,
  which then holds the symbol's position after the fill and the fill's price.

Quarter hours are exact for every UTC offset in use (:30 and :45 ones included), so
a report's day can start at the operator's midnight in any zone; day rows let a
report over whole UTC days read one row per day instead of 96. Reports
(:mod:`stocksbot_store.reports`) read these rows, never the trades, and the ledger
check (:mod:`stocksbot_store.check`) recomputes them from the trades with
:class:`Tally`.

Amounts are kept as an integer part and ten-billionths (:func:`split`), so that SQL
adds them exactly on SQLite (whose decimals are text) as on PostgreSQL, in place
(``x = x + excluded.x``) with no read before the write.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

from peewee import Database

from . import ledger
from .fields import (
    MONEY_CONTEXT,
    SCALE,
    datetime_text,
    decimal_text,
    in_money_context,
    scaled_text,
)

QUARTER, DAY = 900, 86_400
#: A flat position's side, quantity and price, in the canonical text every copy writes.
_FLAT = (None, decimal_text(Decimal(0)), decimal_text(Decimal(0)))
#: ``symbol`` of the rows that add up every symbol of a strategy.
ALL_SYMBOLS = ""
_FRAC = 10**SCALE
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_SECOND = dt.timedelta(seconds=1)
_QUARTER = QUARTER * _SECOND
_ZERO = Decimal(0)
#: The :func:`split` parts of zero.
_NO_PARTS = (0, 0, 0, 0)
#: Sums of amounts, exact whatever the caller's context (see :data:`MONEY_CONTEXT`).
_add = MONEY_CONTEXT.add

#: The amounts a bucket keeps, each as ``<name>_<part>`` for each of ``PARTS``.
AMOUNTS = ("gross_pnl", "commission", "fees", "volume")
#: The integer parts of an amount: 10**18s, 10**9s, units and ten-billionths.
PARTS = ("e18", "e9", "e0", "frac")
_BILLION = 10**9
COUNTS = ("trades", "closing_trades", "wins", "losses")
KEY = ("span", "symbol", "strategy_key", "bucket_start")
#: Every figure column of ``pnl_bucket``, in the order :class:`Tally` holds them.
FIGURE_COLUMNS = COUNTS + tuple(f"{name}_{part}" for name in AMOUNTS for part in PARTS)


def split(value: Decimal) -> tuple[int, int, int, int]:
    """``value`` (at most :data:`SCALE` places and below 10**30, as every stored amount)
    as its ``PARTS``: 64-bit integers that add exactly in SQL, many times over."""
    units = math.floor(value)
    high, e0 = divmod(units, _BILLION)
    e18, e9 = divmod(high, _BILLION)
    # In MONEY_CONTEXT: a sum of many amounts has more digits than a caller's context
    # may keep (the ledger check and a rebuild split sums too).
    return e18, e9, e0, int(MONEY_CONTEXT.multiply(MONEY_CONTEXT.subtract(value, units), _FRAC))


def join(e18: Any, e9: Any, e0: Any, frac: Any) -> Decimal:
    """The amount of summed ``split`` parts (PostgreSQL sums bigints as numeric)."""
    units = (int(e18 or 0) * _BILLION + int(e9 or 0)) * _BILLION + int(e0 or 0)
    return Decimal(units) + Decimal(int(frac or 0)).scaleb(-SCALE)


def epoch_seconds(at: dt.datetime) -> int:
    """Whole seconds since the epoch of an aware datetime."""
    return (at - _EPOCH) // _SECOND


def bucket_of(at: dt.datetime, span: int) -> int:
    """The start (epoch seconds) of the ``span`` bucket that holds ``at``."""
    seconds = epoch_seconds(at)
    return seconds - seconds % span


def day_of(at: dt.datetime) -> dt.datetime:
    """Midnight UTC of the day of ``at``."""
    at = at.astimezone(dt.timezone.utc)
    return dt.datetime(at.year, at.month, at.day, tzinfo=dt.timezone.utc)


@functools.lru_cache(maxsize=16)
def day_text(seconds: int) -> str:
    """The stored text of the UTC day that starts ``seconds`` after the epoch (a day
    bucket's key); remembered, as a bot's fills fall on one or two days."""
    return datetime_text(_EPOCH + seconds * _SECOND)


def keys_of(at: dt.datetime, strategy_id: int | None, symbol: str) -> tuple[tuple, ...]:
    """The three bucket keys (``KEY`` order) a trade at ``at`` adds to."""
    strategy_key = strategy_id or 0
    seconds = epoch_seconds(at)
    quarter = seconds - seconds % QUARTER
    return (
        (QUARTER, symbol, strategy_key, quarter),
        (QUARTER, ALL_SYMBOLS, strategy_key, quarter),
        (DAY, symbol, strategy_key, seconds - seconds % DAY),
    )


def figures_of(
    quantity: Decimal,
    price: Decimal,
    commission: Decimal,
    fees: Decimal,
    realized_pnl: Decimal | None,
) -> tuple[int, ...]:
    """One trade's figures, in ``FIGURE_COLUMNS`` order."""
    closing = realized_pnl is not None
    pnl = realized_pnl or _ZERO
    return (
        1,
        int(closing),
        int(closing and pnl > 0),
        int(closing and pnl < 0),
        # Most fills close nothing and pay no fees: no splitting for a zero.
        *(split(pnl) if pnl else _NO_PARTS),
        *split(commission),
        *(split(fees) if fees else _NO_PARTS),
        *split(ledger.cost_basis(quantity, price)),
    )


class Tally:
    """Figures of trades summed per bucket key, in memory.

    Each trade is added once, to the row of its strategy, symbol and quarter hour, as
    counts and exact decimal sums; the rows of every key kind (the every-symbol row
    of the quarter, the symbol's day) are sums of those, made once when asked for
    (:meth:`figures`). A trade costs one dict look-up and a few additions instead of
    three rows of split parts: the bulk path adds every fill of a batch here."""

    def __init__(self) -> None:
        #: ``(strategy_key, symbol, quarter start) -> [trades, closing trades, wins,
        #: losses, gross P&L, commission, fees, volume]``, amounts as decimals.
        self.quarters: dict[tuple[int, str, int], list[Any]] = {}
        #: The quarter hour the last trade fell in: ``(start, end, start in epoch
        #: seconds)``. Trades come in time order, mostly many to a quarter hour, and two
        #: comparisons cost a fraction of working the quarter out again.
        self._last_quarter: tuple[dt.datetime, dt.datetime, int] | None = None

    def add(
        self,
        at: dt.datetime,
        strategy_id: int | None,
        symbol: str,
        quantity: Decimal,
        price: Decimal,
        commission: Decimal,
        fees: Decimal,
        realized_pnl: Decimal | None,
    ) -> int:
        """Count one trade; the start (epoch seconds) of its quarter hour."""
        last = self._last_quarter
        if last is not None and last[0] <= at < last[1]:
            quarter = last[2]
        else:
            quarter = bucket_of(at, QUARTER)
            start = _EPOCH + quarter * _SECOND
            self._last_quarter = (start, start + _QUARTER, quarter)
        key = (strategy_id or 0, symbol, quarter)
        row = self.quarters.get(key)
        if row is None:
            row = self.quarters[key] = [0, 0, 0, 0, _ZERO, _ZERO, _ZERO, _ZERO]
        row[0] += 1
        if realized_pnl is not None:
            row[1] += 1
            if realized_pnl > 0:
                row[2] += 1
            elif realized_pnl < 0:
                row[3] += 1
            row[4] = _add(row[4], realized_pnl)
        if commission:
            row[5] = _add(row[5], commission)
        if fees:
            row[6] = _add(row[6], fees)
        row[7] = _add(row[7], ledger.cost_basis(quantity, price))
        return quarter

    def figures(self) -> dict[tuple, list[int]]:
        """``KEY -> FIGURE_COLUMNS`` of every bucket the trades added to, amounts as
        their :func:`split` parts (what the stored row's parts add up to)."""
        sums: dict[tuple, list[Any]] = {}
        for (strategy_key, symbol, quarter), row in self.quarters.items():
            for key in (
                (QUARTER, symbol, strategy_key, quarter),
                (QUARTER, ALL_SYMBOLS, strategy_key, quarter),
                (DAY, symbol, strategy_key, quarter - quarter % DAY),
            ):
                total = sums.get(key)
                if total is None:
                    sums[key] = list(row)
                else:
                    for i in range(4):
                        total[i] += row[i]
                    for i in range(4, 8):
                        total[i] = _add(total[i], row[i])
        return {
            key: [*row[:4], *(part for amount in row[4:] for part in split(amount))]
            for key, row in sums.items()
        }

    def sorted_rows(self) -> list[tuple]:
        """``KEY + FIGURE_COLUMNS`` tuples sorted by key: writers that lock rows in one
        order cannot deadlock on them."""
        return [(*key, *figures) for key, figures in sorted(self.figures().items())]


def _upsert_bucket_sql(rows: int, mark: str) -> str:
    columns = KEY + FIGURE_COLUMNS
    one = "(" + ", ".join([mark] * len(columns)) + ")"
    return (
        f"INSERT INTO pnl_bucket ({', '.join(columns)}) VALUES "
        + ", ".join([one] * rows)
        + f" ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET "
        + ", ".join(f"{c} = pnl_bucket.{c} + excluded.{c}" for c in FIGURE_COLUMNS)
    )


def _upsert_trade_buckets_sql() -> str:
    """PostgreSQL: the upsert of one trade's three rows (keys in :func:`keys_of`'s order
    with their parameters first, then the figures they all add, once). Sent as three rows
    of values, its 72 parameters made psycopg parse the statement again on every fill
    (it keeps no more than 50): 0.2 ms of a fill's CPU. The keys' rows are read in their
    order, which is the order the rows are locked in."""
    figures = ", ".join(FIGURE_COLUMNS)
    keys = "(" + ", ".join(["%s"] * len(KEY)) + ")"
    return (
        f"INSERT INTO pnl_bucket ({', '.join(KEY)}, {figures}) "
        f"SELECT k.*, f.* FROM (VALUES {', '.join([keys] * 3)}) AS k ({', '.join(KEY)}) "
        f"CROSS JOIN (VALUES ({', '.join(['%s'] * len(FIGURE_COLUMNS))})) AS f ({figures})"
        f" ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET "
        + ", ".join(f"{c} = pnl_bucket.{c} + excluded.{c}" for c in FIGURE_COLUMNS)
    )


def _upsert_day_sql(mark: str) -> str:
    columns = ("symbol", "day", "side", "quantity", "avg_entry_price", "last_price")
    return (
        f"INSERT INTO position_day ({', '.join(columns)}) VALUES "
        f"({', '.join([mark] * len(columns))}) ON CONFLICT (symbol, day) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in columns[2:])
    )


def forget_strategy(db: Database, strategy_id: int) -> None:
    """Move a deleted strategy's buckets to "no strategy", as the database moves its
    trades (``ON DELETE SET NULL``), so the kept figures stay the replay of the trades.
    Run it in the transaction that deletes the strategy."""
    mark = "%s" if db.param == "%s" else "?"
    columns = ", ".join(KEY + FIGURE_COLUMNS)
    figures = ", ".join(FIGURE_COLUMNS)
    db.execute_sql(
        f"INSERT INTO pnl_bucket ({columns}) SELECT span, symbol, 0, bucket_start, {figures} "
        f"FROM pnl_bucket WHERE strategy_key = {mark} "
        f"ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET "
        + ", ".join(f"{c} = pnl_bucket.{c} + excluded.{c}" for c in FIGURE_COLUMNS),
        (strategy_id,),
    )
    db.execute_sql(f"DELETE FROM pnl_bucket WHERE strategy_key = {mark}", (strategy_id,))


class KeptFigures:
    """Adds fills to the kept figures of one database, inside the caller's transaction."""

    def __init__(self, db: Database, backend: str) -> None:
        self.db = db
        self.pg = backend == "postgres"
        self.mark = "%s" if self.pg else "?"
        self.single_bucket_sql = (
            _upsert_trade_buckets_sql() if self.pg else _upsert_bucket_sql(3, self.mark)
        )
        self.bucket_sql = _upsert_bucket_sql(1, self.mark)
        self.day_sql = _upsert_day_sql(self.mark)

    def add(
        self,
        fill: Any,
        strategy_id: int | None,
        outcome: ledger.FillOutcome,
        execute: Callable[[str, Sequence], Any] | None = None,
    ) -> None:
        """One fill (a checked fill of :mod:`stocksbot_store.fills`) and its outcome;
        ``execute(sql, params)`` runs a statement (default: the database's
        ``execute_sql``)."""
        execute = execute or self.db.execute_sql
        # What KeptReplay does for many fills, without its dicts: this runs per fill.
        figures = figures_of(
            fill.quantity, fill.price, fill.commission, fill.fees, outcome.realized_pnl
        )
        quarter, every, day = keys_of(fill.executed_at, strategy_id, fill.symbol)
        execute(
            self.single_bucket_sql,  # in key order, as sorted_rows gives
            [*every, *quarter, *day, *figures]
            if self.pg
            else [*every, *figures, *quarter, *figures, *day, *figures],
        )
        position = outcome.open_position
        # A fill's figures have at most SCALE places: scaled_text is their stored text.
        execute(
            self.day_sql,
            (
                fill.symbol,
                day_text(day[3]),
                *(
                    _FLAT
                    if position is None
                    else (
                        position.side,
                        scaled_text(position.quantity),
                        scaled_text(position.avg_entry_price),
                    )
                ),
                scaled_text(fill.price),
            ),
        )

    def add_many(
        self,
        cursor: Any,
        applied: Iterable[tuple[Any, int | None, ledger.FillOutcome]],
        add_buckets: Callable[[list[tuple]], Any] | None = None,
    ) -> None:
        """Fills in the order they were applied, each with its strategy and outcome.
        ``add_buckets(rows)`` adds the bucket rows (``KEY + FIGURE_COLUMNS``, sorted by
        key) in place of an ``executemany`` of the upsert: the bulk path's one
        statement on PostgreSQL (:mod:`stocksbot_store.fills.updates`)."""
        replay = KeptReplay()
        for fill, strategy_id, outcome in applied:
            replay.add(
                fill.executed_at,
                strategy_id,
                fill.symbol,
                fill.quantity,
                fill.price,
                fill.commission,
                fill.fees,
                outcome.realized_pnl,
                outcome.open_position,
            )
        if replay.tally.quarters:
            rows = replay.tally.sorted_rows()
            if add_buckets is None:
                cursor.executemany(self.bucket_sql, rows)
            else:
                add_buckets(rows)
            cursor.executemany(self.day_sql, replay.day_rows())


class KeptReplay:
    """The kept figures recomputed from trades replayed in id order: what the ledger
    check compares with the stored rows, and what a migration writes for trades
    recorded before the figures were kept. Memory grows with the number of buckets
    (quarter hours with trades times strategies and symbols), not of trades."""

    def __init__(self) -> None:
        self.tally = Tally()
        #: ``(symbol, day start in epoch seconds) -> (side, quantity, avg_entry_price,
        #: last_price)``: the day from the quarter hour the tally found, not a datetime
        #: made per trade.
        self._days: dict[tuple[str, int], tuple] = {}

    @property
    def days(self) -> dict[tuple[str, dt.datetime], tuple]:
        """``(symbol, midnight UTC) -> (side, quantity, avg_entry_price, last_price)``."""
        return {
            (symbol, _EPOCH + day * _SECOND): state for (symbol, day), state in self._days.items()
        }

    def add(
        self,
        at: dt.datetime,
        strategy_id: int | None,
        symbol: str,
        quantity: Decimal,
        price: Decimal,
        commission: Decimal,
        fees: Decimal,
        realized_pnl: Decimal | None,
        position: ledger.PositionState | None,
    ) -> None:
        """One trade and the symbol's open position after it."""
        quarter = self.tally.add(
            at, strategy_id, symbol, quantity, price, commission, fees, realized_pnl
        )
        state: tuple[str | None, Decimal, Decimal, Decimal]
        if position is None:
            state = (None, _ZERO, _ZERO, price)
        else:
            state = (position.side, position.quantity, position.avg_entry_price, price)
        self._days[symbol, quarter - quarter % DAY] = state

    def write(self, db: Database) -> None:
        """Insert the figures into empty ``pnl_bucket`` and ``position_day`` tables."""
        mark = "%s" if db.param == "%s" else "?"
        columns = KEY + FIGURE_COLUMNS
        cursor = db.cursor()
        cursor.executemany(
            f"INSERT INTO pnl_bucket ({', '.join(columns)}) VALUES "
            f"({', '.join([mark] * len(columns))})",
            self.tally.sorted_rows(),
        )
        cursor.executemany(_upsert_day_sql(mark), self.day_rows())

    def day_rows(self) -> list[tuple]:
        """Parameters of the ``position_day`` upsert, by symbol and day."""
        return [
            (
                symbol,
                day_text(day),
                side,
                decimal_text(quantity),
                decimal_text(avg),
                decimal_text(price),
            )
            for (symbol, day), (side, quantity, avg, price) in sorted(self._days.items())
        ]


@in_money_context
def rebuild(db: Database, batch: int = 5_000) -> None:
    """Recompute the kept figures of every stored trade (for a store whose trades were
    recorded before the figures were kept); the tables must be empty."""
    from .fields import to_utc

    replay = KeptReplay()
    positions: dict[str, ledger.PositionState | None] = {}
    last = 0
    mark = "%s" if db.param == "%s" else "?"
    while True:
        rows = db.execute_sql(
            "SELECT id, strategy_id, symbol, side, quantity, price, commission, fees, "
            f"realized_pnl, executed_at FROM trade WHERE id > {mark} ORDER BY id "
            f"LIMIT {int(batch)}",
            (last,),
        ).fetchall()
        if not rows:
            break
        for _, strategy_id, symbol, side, quantity, price, commission, fees, realized, at in rows:
            quantity, price = Decimal(str(quantity)), Decimal(str(price))
            commission, fees = Decimal(str(commission)), Decimal(str(fees))
            realized = None if realized is None else Decimal(str(realized))
            at = to_utc(at)
            outcome = ledger.apply_fill(
                positions.get(symbol), symbol, side, quantity, price, commission, fees, at
            )
            positions[symbol] = outcome.open_position
            replay.add(
                at,
                strategy_id,
                symbol,
                quantity,
                price,
                commission,
                fees,
                realized,
                outcome.open_position,
            )
        last = rows[-1][0]
    replay.write(db)
