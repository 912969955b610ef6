"""The ledger check: are the stored books what the trades say they should be?

Trades are the record; orders' fill figures, positions and strategies' figures are
derived from them on every write. :func:`check_ledger` recomputes everything
derived from the trades, with the very rules the store writes by
(:mod:`stocksbot_store.ledger`), and reports every place where the stored figures
disagree:

* each order's ``filled_quantity`` is the sum of its trades, its ``avg_fill_price``
  their weighted average (rounded step by step as :func:`ledger.order_after_fill`
  does), and its status agrees with them; its trades have its symbol, side and
  strategy;
* each trade's type and realized P&L are what the replay of its symbol gives;
* every open position equals the replay of its symbol's trades by average cost
  (side, quantity, average entry, cost basis, realized P&L, commission, fees),
  trades without an order (ADJUSTMENT fills) included; at most one position per
  symbol is open, and each symbol has as many positions as the replay opened;
* each strategy's figures equal their recomputation from its trades;
* the figures reports keep on write (:mod:`stocksbot_store.buckets`: P&L buckets and
  day-end positions) equal their recomputation from the trades;
* foreign keys hold, and on SQLite ``PRAGMA integrity_check`` and
  ``foreign_key_check`` pass.

Soft-deleted rows (:mod:`stocksbot_store.softdelete`) are checked like the others:
deleting hides a row, it does not change what the trades say. A deleted strategy's
figures must still equal its trades; a deleted (closed) position still counts among
the positions its symbol's trades opened. Two rules are the soft delete's own: a
deleted order has no trades (an order with fills cannot be deleted, and a deleted
order takes none), and a deleted position is not open. The summary gives how many of
the rows checked are soft-deleted.

It reads inside one read-only snapshot (a repeatable-read transaction on
PostgreSQL, a read transaction on SQLite), so it can run while the bot writes.
Tables are read in keyset-paged batches of :data:`BATCH` rows: memory grows with
the number of symbols and strategies, and with the report buckets (quarter hours with
trades, times strategies and symbols), never with the number of trades or orders.

Command line: ``python -m stocksbot_store.check [--url URL]`` (also installed as
``stocksbot-check``) exits 0 when the books are clean, 1 with a report of every
violation, 2 when it cannot check (bad URL, no database, no tables).

There is no ``--repair``: the derived rows can be rebuilt from trades, but a
violation may as well mean that a trade is missing or wrong, and no program can
tell which one the broker agrees with. The report says where to look.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TextIO

from peewee import JOIN, Database, Model, PeeweeException, Query, fn

from . import ledger
from .backends import read_transaction
from .buckets import AMOUNTS, COUNTS, FIGURE_COLUMNS, KEY, PARTS, KeptReplay, join
from .database import backend_of, database_url, describe, scrub
from .errors import CorruptRowError, SchemaError, StorageError, first_line, storage_error
from .fields import in_money_context, quantize, tidy, to_utc
from .fills.rows import ORDER_COLUMNS
from .ledger import STRATEGY_FIGURES
from .models import (
    MODELS,
    ZERO,
    Order,
    PnlBucket,
    Position,
    PositionDay,
    Strategy,
    Trade,
)
from .store import open_store
from .urls import ArgumentParser

#: Rows read per query.
BATCH = 5_000
#: Databases with at least this many trades show progress without ``--progress``.
PROGRESS_MIN = 50_000
#: Violations kept in a report; beyond that they are only counted.
MAX_KEPT = 10_000

#: ``progress(phase, done, total)``: ``done`` of ``total`` (ids) read in ``phase``.
ProgressCallback = Callable[[str, int, int], None]

_POSITION_FIGURES = (
    "side",
    "quantity",
    "avg_entry_price",
    "cost_basis",
    "realized_pnl",
    "commission",
    "fees",
)


@dataclass(frozen=True)
class Violation:
    """One place where the books disagree with the trades."""

    #: What kind of row is wrong: order, trade, position, strategy, foreign_key, sqlite.
    kind: str
    #: Which row (``"order 12"``, ``"position AAPL"``).
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"


@dataclass
class LedgerReport:
    """What :func:`check_ledger` found; ``ok`` when there is no violation."""

    database: str
    violations: list[Violation] = field(default_factory=list)
    #: Violations found beyond :data:`MAX_KEPT` (counted, not kept).
    dropped: int = 0
    trades: int = 0
    orders: int = 0
    positions: int = 0
    strategies: int = 0
    #: How many of the rows checked are soft-deleted, by table (only non-zero ones).
    deleted: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the books agree with the trades everywhere."""
        return not self.violations

    @property
    def count(self) -> int:
        """How many violations were found."""
        return len(self.violations) + self.dropped

    def add(self, kind: str, subject: str, message: str) -> None:
        """Record a violation."""
        if len(self.violations) < MAX_KEPT:
            self.violations.append(Violation(kind, subject, message))
        else:
            self.dropped += 1

    def summary(self) -> str:
        """One line: what was checked and the verdict."""
        checked = (
            f"{self.trades:,} trades, {self.orders:,} orders, "
            f"{self.positions:,} positions, {self.strategies:,} strategies"
        )
        if self.deleted:
            checked += (
                " (soft-deleted among them: "
                + ", ".join(f"{table} {n:,}" for table, n in sorted(self.deleted.items()))
                + ")"
            )
        if self.ok:
            return f"ledger OK: {self.database}: {checked} checked"
        return f"ledger has {self.count:,} violation(s): {self.database}: {checked} checked"

    def format(self) -> str:
        """The summary, then every violation grouped by kind, one per line."""
        lines = [self.summary()]
        kinds = sorted({v.kind for v in self.violations})
        for kind in kinds:
            found = [v for v in self.violations if v.kind == kind]
            lines.append(f"\n{kind} ({len(found)}):")
            lines.extend(f"  {v}" for v in found)
        if self.dropped:
            lines.append(f"\n... and {self.dropped:,} more not listed")
        return "\n".join(lines)


@in_money_context
def check_ledger(db: Database, progress: ProgressCallback | None = None) -> LedgerReport:
    """Check every derived figure in ``db`` against its trades; see the module docstring.

    Called inside a transaction, it checks what that transaction sees (uncommitted
    changes included); otherwise it opens a read-only snapshot of its own.
    Raises :class:`SchemaError` when the store's tables are missing,
    :class:`CorruptRowError` when a trade or order holds NULL where the schema forbids it,
    and :class:`StorageError` when the database cannot be read.
    """
    report = LedgerReport(describe(db))
    try:
        _require_tables(db)
        # Joins a caller's transaction (then it reads what that one sees); its own ends
        # with a rollback, so with read replicas a check is no write of this process.
        with read_transaction(db):
            _Checker(db, report, progress).run()
    except StorageError:
        raise
    except PeeweeException as e:
        raise storage_error(f"checking {describe(db)}", e) from e
    return report


def _require_tables(db: Database) -> None:
    missing = sorted({m._meta.table_name for m in MODELS} - set(db.get_tables()))
    if missing:
        raise SchemaError(
            f"{describe(db)} has no {', '.join(missing)} table(s): it is not a stocksbot "
            "store, or it was never set up; run `stocksbot-migrate upgrade` on it"
        )


def _dec(value: object) -> Decimal | None:
    return None if value is None else tidy(Decimal(str(value)))


def _dec_required(value: object, subject: str, column: str) -> Decimal:
    """A NOT NULL column's value; a NULL (the table was changed outside the store) stops
    the check, as no figure can be computed from it."""
    if value is None:
        raise CorruptRowError(
            f"{subject}: {column} is NULL, but the store's schema declares it NOT NULL: its "
            f"table was changed outside the store; set {column} from the broker's records, "
            "then check again"
        )
    return tidy(Decimal(str(value)))


@dataclass
class _SymbolReplay:
    position: ledger.PositionState | None = None
    opened: int = 0


class _Checker:
    """One run of the check; keeps only per-symbol and per-strategy state."""

    def __init__(
        self, db: Database, report: LedgerReport, progress: ProgressCallback | None
    ) -> None:
        self.db = db
        self.report = report
        self.progress = progress
        self.symbols: dict[str, _SymbolReplay] = {}
        self.strategies: dict[int, ledger.StrategyFigures] = {}
        self.kept = KeptReplay()

    def run(self) -> None:
        if backend_of(self.db) == "sqlite":
            self.check_sqlite()
        self.check_foreign_keys()
        self.replay_trades()
        self.check_orders()
        self.check_positions()
        self.check_strategies()
        self.check_kept_figures()
        self.check_position_days()

    def check_kept_figures(self) -> None:
        expected = self.kept.tally.figures()
        for rows in self.batches("report figures", PnlBucket, ("id", *KEY, *FIGURE_COLUMNS)):
            for row in rows:
                key = tuple(int(v) if isinstance(v, (int, Decimal)) else v for v in row[1:5])
                have, summed = _bucket_figures(row[5:]), expected.pop(key, None)
                want = None if summed is None else _bucket_figures(summed)
                subject = f"pnl_bucket {row[0]}"
                if want is None:
                    self.report.add("report", subject, f"bucket {key} has no trades")
                    continue
                for name, value in have.items():
                    if value != want[name]:
                        self.report.add(
                            "report",
                            subject,
                            f"{name} of bucket {key} is {value}; its trades give {want[name]}",
                        )
        for key in sorted(expected):
            self.report.add("report", f"pnl_bucket {key}", "missing; its trades make one")

    def check_position_days(self) -> None:
        days = {
            (symbol, day): (side, _dec(quantity), _dec(avg), _dec(last))
            for symbol, day, side, quantity, avg, last in self.rows(
                PositionDay.select(
                    *_fields(
                        PositionDay,
                        ("symbol", "day", "side", "quantity", "avg_entry_price", "last_price"),
                    )
                )
            )
        }
        stored = {(symbol, to_utc(day)): value for (symbol, day), value in days.items()}
        for (symbol, day), (side, quantity, avg, last) in sorted(self.kept.days.items()):
            want = (side, tidy(quantity), tidy(avg), tidy(last))
            have = stored.pop((symbol, day), None)
            if have != want:
                self.report.add(
                    "report",
                    f"position_day {symbol} {day.date()}",
                    f"holds {have}; its trades give {want}",
                )
        for symbol, day in sorted(stored):
            self.report.add(
                "report", f"position_day {symbol} {day.date()}", "has no trades that day"
            )

    def rows(self, query: Query | str) -> list[tuple]:
        """The rows of ``query`` as the driver gives them (stored text, not converted
        by the fields: the check compares what is stored)."""
        if isinstance(query, str):  # a PRAGMA
            return self.db.execute_sql(query).fetchall()
        return self.db.execute(query).fetchall()

    def batches(
        self, phase: str, model: type[Model], names: tuple[str, ...]
    ) -> Iterator[list[tuple]]:
        """The fields ``names`` of ``model``'s rows by id in batches (keyset paging);
        the first name is ``id``."""
        key = model._meta.primary_key
        total = self.rows(model.select(fn.MAX(key)))[0][0] or 0
        last = 0
        while True:
            rows = self.rows(
                model.select(*_fields(model, names)).where(key > last).order_by(key).limit(BATCH)
            )
            if not rows:
                return
            last = rows[-1][0]
            yield rows
            if self.progress is not None:
                self.progress(phase, last, total)

    # -- checks ------------------------------------------------------------------

    def check_sqlite(self) -> None:
        for (line,) in self.rows("PRAGMA integrity_check"):
            if line != "ok":
                self.report.add("sqlite", "integrity_check", line)
        for table, rowid, parent, _ in self.rows("PRAGMA foreign_key_check"):
            self.report.add(
                "sqlite",
                f"{table} row {rowid}",
                f"foreign_key_check: refers to a missing {parent} row",
            )

    def check_foreign_keys(self) -> None:
        for link in (Trade.order, Trade.strategy, Order.strategy):
            child, parent = link.model.alias("c"), link.rel_model.alias("p")
            column = getattr(child, link.name)
            found = self.rows(
                child.select(child.id, column)
                .join(parent, JOIN.LEFT_OUTER, on=(parent.id == column))
                .where(column.is_null(False) & parent.id.is_null())
                .order_by(child.id)
                .limit(MAX_KEPT)
            )
            table, column = link.model._meta.table_name, link.column_name
            parent = link.rel_model._meta.table_name
            for row_id, ref in found:
                self.report.add(
                    "foreign_key",
                    f"{table} {row_id}",
                    f"{column} = {ref}, but {parent} {ref} does not exist",
                )

    def replay_trades(self) -> None:
        columns = (
            "id",
            "order",
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
        )
        for rows in self.batches("trades", Trade, columns):
            for row in rows:
                self.replay_trade(row)
            self.report.trades += len(rows)

    def replay_trade(self, row: tuple) -> None:
        (
            trade_id,
            order_id,
            strategy_id,
            symbol,
            side,
            trade_type,
            quantity,
            price,
            commission,
            fees,
            realized,
            executed_at,
        ) = row
        subject = f"trade {trade_id}"
        quantity = _dec_required(quantity, subject, "quantity")
        price = _dec_required(price, subject, "price")
        commission = _dec_required(commission, subject, "commission")
        fees = _dec_required(fees, subject, "fees")
        realized = _dec(realized)
        executed_at = to_utc(executed_at)
        if quantity <= 0 or price <= 0:
            self.report.add(
                "trade", subject, f"quantity {quantity} and price {price} must be positive"
            )
        if commission < 0 or fees < 0:
            self.report.add(
                "trade", subject, f"commission {commission} and fees {fees} must not be negative"
            )
        replay = self.symbols.setdefault(symbol, _SymbolReplay())
        outcome = ledger.apply_fill(
            replay.position, symbol, side, quantity, price, commission, fees, executed_at
        )
        replay.position = outcome.open_position
        replay.opened += outcome.opened is not None
        expected_type = outcome.trade_type if order_id is not None else ledger.ADJUSTMENT
        if trade_type != expected_type:
            self.report.add(
                "trade",
                subject,
                f"type is {trade_type}; the replay of {symbol} makes it {expected_type}",
            )
        if realized != outcome.realized_pnl:
            self.report.add(
                "trade",
                subject,
                f"realized_pnl is {realized}; the replay of "
                f"{symbol} gives {_dec(outcome.realized_pnl)}",
            )
        if strategy_id is not None:
            figures = self.strategies.setdefault(strategy_id, ledger.StrategyFigures())
            figures.add_trade(outcome.realized_pnl, commission, fees, executed_at)
        self.kept.add(
            executed_at,
            strategy_id,
            symbol,
            quantity,
            price,
            commission,
            fees,
            outcome.realized_pnl,
            outcome.open_position,
        )

    def check_orders(self) -> None:
        for orders in self.batches("orders", Order, ORDER_COLUMNS):
            trades: dict[int, list[tuple]] = {}
            for row in self.rows(
                Trade.select(
                    *_fields(
                        Trade, ("order", "id", "symbol", "side", "strategy", "quantity", "price")
                    )
                )
                .where(Trade.order.between(orders[0][0], orders[-1][0]))
                .order_by(Trade.order, Trade.id)
            ):
                trades.setdefault(row[0], []).append(row[1:])
            for order in orders:
                self.check_order(order, trades.get(order[0], []))
            self.report.orders += len(orders)

    def check_order(self, order: tuple, trades: list[tuple]) -> None:
        (
            order_id,
            symbol,
            side,
            status,
            quantity,
            stored_filled,
            stored_avg,
            strategy_id,
            deleted_at,
        ) = order
        subject = f"order {order_id}"
        if deleted_at is not None:
            self.count_deleted("order")
            if trades:
                self.report.add(
                    "order",
                    subject,
                    f"is soft-deleted but has {len(trades)} "
                    "trade(s); an order with fills is never deleted: restore it "
                    "(restore_order)",
                )
        filled, avg = ZERO, None
        for trade_id, t_symbol, t_side, t_strategy, t_quantity, t_price in trades:
            if (t_symbol, t_side, t_strategy) != (symbol, side, strategy_id):
                self.report.add(
                    "order",
                    subject,
                    f"trade {trade_id} is {t_side} {t_symbol} "
                    f"(strategy {t_strategy}); the order is {side} {symbol} "
                    f"(strategy {strategy_id})",
                )
            filled, avg = ledger.order_after_fill(
                filled,
                avg,
                _dec_required(t_quantity, f"trade {trade_id}", "quantity"),
                _dec_required(t_price, f"trade {trade_id}", "price"),
            )
        filled, avg = tidy(filled), None if avg is None else tidy(avg)
        quantity = _dec_required(quantity, subject, "quantity")
        stored_filled, stored_avg = _dec(stored_filled), _dec(stored_avg)
        if stored_filled != filled:
            self.report.add(
                "order",
                subject,
                f"filled_quantity is {stored_filled}; its {len(trades)} trade(s) sum to {filled}",
            )
        if stored_avg != avg:
            self.report.add(
                "order", subject, f"avg_fill_price is {stored_avg}; its trades average {avg}"
            )
        if filled > quantity:
            self.report.add("order", subject, f"its trades fill {filled} of {quantity}")
        allowed = ledger.statuses_for(filled, quantity)
        if status not in allowed:
            self.report.add(
                "order",
                subject,
                f"status is {status} with {filled} of "
                f"{quantity} filled; expected "
                f"{' or '.join(sorted(allowed))}",
            )

    def count_deleted(self, table: str, n: int = 1) -> None:
        if n:
            self.report.deleted[table] = self.report.deleted.get(table, 0) + n

    def check_positions(self) -> None:
        counts = dict(
            self.rows(
                Position.select(Position.symbol, fn.COUNT(Position.id)).group_by(Position.symbol)
            )
        )
        for row_id, symbol in self.rows(
            Position.select(Position.id, Position.symbol)
            .where(Position.deleted_at.is_null(False) & (Position.is_open == True))  # noqa: E712
            .order_by(Position.id)
        ):
            self.report.add(
                "position",
                f"position {symbol}",
                f"position {row_id} is open "
                "but soft-deleted; an open position is never deleted: restore it "
                "(restore_position)",
            )
        self.count_deleted(
            "position",
            self.rows(
                Position.select(fn.COUNT(Position.id)).where(Position.deleted_at.is_null(False))
            )[0][0],
        )
        self.report.positions = sum(counts.values())
        for symbol in sorted(set(counts) | set(self.symbols)):
            replay = self.symbols.get(symbol, _SymbolReplay())
            if counts.get(symbol, 0) != replay.opened:
                self.report.add(
                    "position",
                    f"position {symbol}",
                    f"{counts.get(symbol, 0)} position row(s) stored; its trades "
                    f"open {replay.opened}",
                )
        stored: dict[str, list[tuple]] = {}
        for row in self.rows(
            Position.select(*_fields(Position, ("symbol", "id", *_POSITION_FIGURES)))
            .where(Position.is_open == True)  # noqa: E712
            .order_by(Position.symbol, Position.id)
        ):
            stored.setdefault(row[0], []).append(row[1:])
        for symbol in sorted(set(stored) | set(self.symbols)):
            rows = stored.get(symbol, [])
            expected = self.symbols.get(symbol, _SymbolReplay()).position
            subject = f"position {symbol}"
            if len(rows) > 1:
                self.report.add(
                    "position",
                    subject,
                    f"{len(rows)} open positions (ids "
                    f"{', '.join(str(r[0]) for r in rows)}); at most one may be",
                )
            if not rows:
                if expected is not None:
                    self.report.add(
                        "position",
                        subject,
                        "none is open, but its trades leave "
                        f"{expected.side} {expected.quantity} open",
                    )
                continue
            if expected is None:
                self.report.add(
                    "position",
                    subject,
                    f"position {rows[0][0]} is open, but its trades leave nothing open",
                )
                continue
            self.compare_position(subject, rows[0], expected)

    def compare_position(self, subject: str, row: tuple, expected: ledger.PositionState) -> None:
        stored = dict(zip(_POSITION_FIGURES, row[1:], strict=True))
        for name in _POSITION_FIGURES:
            want = getattr(expected, name)
            want = tidy(want) if isinstance(want, Decimal) else want
            have = stored[name] if name == "side" else _dec(stored[name])
            if have != want:
                self.report.add(
                    "position",
                    subject,
                    f"{name} of position {row[0]} is {have}; the replay of its trades gives {want}",
                )

    def check_strategies(self) -> None:
        rows = self.rows(
            Strategy.select(
                *_fields(Strategy, ("id", "name", *STRATEGY_FIGURES, "win_rate", "deleted_at"))
            ).order_by(Strategy.id)
        )
        self.report.strategies = len(rows)
        for *row, deleted_at in rows:
            strategy_id, name = row[0], row[1]
            if deleted_at is not None:
                self.count_deleted("strategy")
            expected = self.strategies.get(strategy_id, ledger.StrategyFigures())
            stored = dict(zip((*STRATEGY_FIGURES, "win_rate"), row[2:], strict=True))
            for key in (*STRATEGY_FIGURES, "win_rate"):
                want, have = getattr(expected, key), stored[key]
                if key == "last_trade_at":
                    have = None if have is None else to_utc(have)
                elif isinstance(want, Decimal):
                    have = _dec(have)
                    want = tidy(quantize(want))
                if have != want:
                    self.report.add(
                        "strategy",
                        f"strategy {strategy_id} {name!r}",
                        f"{key} is {have}; its trades give {want}",
                    )


def _bucket_figures(values: list | tuple) -> dict[str, object]:
    """Counts and amounts of a bucket's figure columns, by name."""
    figures: dict[str, object] = dict(zip(COUNTS, (int(v) for v in values[:4]), strict=True))
    for i, name in enumerate(AMOUNTS):
        start = len(COUNTS) + len(PARTS) * i
        figures[name] = tidy(join(*values[start : start + len(PARTS)]))
    return figures


def _fields(model: type[Model], names: tuple[str, ...]) -> list:
    """The fields ``names`` of ``model`` (model field names, e.g. ``order`` for
    ``order_id``)."""
    return [model._meta.fields[name] for name in names]


# -- command line --------------------------------------------------------------------


class _Progress:
    """Prints ``phase: done/total`` to stderr: in place on a terminal, else every 10 %."""

    def __init__(self, stream: TextIO, force: bool) -> None:
        self.stream = stream
        self.force = force
        self.tty = stream.isatty()
        self.shown: dict[str, int] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase == "trades" and total >= PROGRESS_MIN:
            self.force = True  # a large database: show the later phases too
        if not total or (total < PROGRESS_MIN and not self.force):
            return
        percent = min(100, done * 100 // total)
        if self.tty:
            end = "\n" if done >= total else ""
            self.stream.write(f"\rchecking {phase}: {percent:3d}% ({done:,}/{total:,} ids){end}")
        elif percent // 10 > self.shown.get(phase, -1):
            self.shown[phase] = percent // 10
            self.stream.write(f"checking {phase}: {percent}% ({done:,}/{total:,} ids)\n")
        self.stream.flush()


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``stocksbot-check`` (its usage errors mask a password)."""
    parser = ArgumentParser(
        prog="stocksbot-check",
        description="Check that a stocksbot store's books agree with its trades: order fill "
        "figures and statuses, open positions (replayed by average cost), "
        "strategy figures, foreign keys and, on SQLite, the file's integrity. "
        "Read-only; safe to run while the bot trades.",
        epilog="Exit status: 0 the books are clean; 1 violations found (each is listed on "
        "stdout); 2 the check could not run (bad URL, unreachable database, missing "
        "tables; the reason is on stderr). There is no repair: a violation may mean "
        "a wrong derived figure or a missing trade, and only the broker's records "
        "can tell which.",
    )
    parser.add_argument(
        "--url",
        metavar="URL",
        help="database URL, e.g. sqlite:///stocksbot.db or "
        "postgresql://user:password@host/db (default: $DATABASE_URL, "
        "else sqlite:///./stocksbot.db)",
    )
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument(
        "--progress",
        action="store_true",
        help="show progress on stderr whatever the size (by default it shows "
        f"from {PROGRESS_MIN:,} trades)",
    )
    shown.add_argument("--no-progress", action="store_true", help="never show progress")
    return parser


def open_read_only(url: str) -> Database:
    """The store at ``url``, opened so that it creates nothing and writes nothing: a
    SQLite file ``mode=ro`` can never take the write lock from the bot. Its schema is
    looked at (an empty, behind or newer one is a :class:`SchemaError` naming the
    migrate command), never created."""
    return open_store(url, read_only=True)


def main(argv: list[str] | None = None) -> int:
    """Run the check from the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    url = database_url(args.url)
    try:
        db = open_read_only(url)
        try:
            progress = None if args.no_progress else _Progress(sys.stderr, args.progress)
            report = check_ledger(db, progress)
        finally:
            db.close()
    except (StorageError, PeeweeException, OSError) as e:
        message = str(e) if isinstance(e, StorageError) else first_line(e)
        print(f"stocksbot-check: error: {scrub(message, url)}", file=sys.stderr)
        return 2
    print(report.format() if not report.ok else report.summary())
    return 0 if report.ok else 1


def run() -> None:
    """Console-script entry point: ``sys.exit(main())``."""
    sys.exit(main())


if __name__ == "__main__":
    run()
