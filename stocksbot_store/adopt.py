"""Adopting a database of the old storage module in place: ``migrate adopt``.

The bot keeps its ``DATABASE_URL``: the old module's tables (see
:mod:`stocksbot_store.legacy`) become this store's, every row with its id. First a
backup (SQLite: a consistent copy beside the file, through SQLite's backup API;
PostgreSQL: the old tables and enum types are moved to the schema
:data:`LEGACY_SCHEMA`, where they stay), then one transaction that

* creates this store's schema (its migrations, recorded as applied);
* copies strategies, config, orders and trades, ids kept: floats become exact
  decimals by their ``repr``, enum names (``PARTIALLY_FILLED``) this store's values,
  naive times aware UTC (:data:`LOCAL_TIME_COLUMNS` are read in the assumed zone;
  the other times were stamped by the database's ``now()``: UTC on SQLite, the
  server's ``TimeZone`` on PostgreSQL);
* rebuilds the books with this store's rules (:mod:`stocksbot_store.ledger`),
  replaying the trades in id order: each trade's type and realized P&L, each
  order's fill state, each strategy's figures and the positions;
* applies the rules of :data:`RULES` to rows the old module let through (orphans,
  duplicate external ids...), listing each one by id in the report;
* keeps the report in the tables ``adoption_report`` and ``adoption_change``.

A failure anywhere rolls the transaction back: the database is exactly as it was.
``dry_run`` reads, computes and reports the same, and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import time
import zoneinfo
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from typing import Any

from peewee import AutoField, CharField, Database, IntegerField, Model, TextField

from . import ledger
from .database import backend_of, describe
from .errors import MigrationError, ValidationError
from .fields import (
    UTC,
    UTCDateTimeField,
    datetime_text,
    decimal_text,
    tidy,
    to_decimal,
    utcnow,
)
from .fills import _STATEMENTS, OrderState, _CheckedFill, figures_row, new_position_row, trade_row
from .fills_bulk import _with_id
from .legacy import ALEMBIC_TABLE, OLD_REVISION, OLD_TABLES, REPORT_TABLES, is_legacy
from .models import (
    MODELS,
    ZERO,
    Config,
    ConfigValueType,
    Order,
    OrderSideEnum,
    OrderStatusEnum,
    OrderTypeEnum,
    PositionSideEnum,
    Strategy,
    TradeTypeEnum,
)
from .runner import HISTORY_TABLE, LOCK_KEY, Runner
from .validation import check_text

#: Where the old tables go on PostgreSQL (the backup).
LEGACY_SCHEMA = "stocksbot_legacy"
#: The old module's PostgreSQL enum types, moved with the tables.
OLD_ENUM_TYPES = ("positionsideenum", "ordersideenum", "ordertypeenum", "orderstatusenum",
                  "tradetypeenum")
#: Times the old module's code stamped with the bot machine's clock (``datetime.now()``):
#: read in the assumed zone. Every other time was a database default.
LOCAL_TIME_COLUMNS = frozenset({("trades", "executed_at"), ("orders", "filled_at"),
                                ("positions", "closed_at"), ("strategies", "last_run_at")})
#: Rows read per query.
BATCH = 5_000
#: Changes printed per kind unless the full report is asked for.
SHOWN = 20

#: How rows that this store's rules do not allow are handled (also in the README).
RULES = {
    "orphan": "a trade whose order does not exist is kept, without an order: its order_id "
              "becomes empty and it is an ADJUSTMENT trade (the missing id is in the report)",
    "mismatch": "a trade whose symbol or side differs from its order's is kept, without "
                "an order, as an ADJUSTMENT trade",
    "duplicate": "of several rows with one external id, the lowest id keeps it; the later "
                 "ones keep their rows and figures, their external_id becomes empty",
    "strategy": "an order naming a strategy that does not exist loses the link (as deleting "
                "a strategy does in this store); its trades count for no strategy",
    "overfill": "an order whose trades fill more than its quantity gets the filled "
                "quantity as its quantity",
    "unfilled": "an order the old row calls filled or partially filled beyond what its "
                "trades fill stays open (or partially filled) for the rest",
    "adjustment": "--positions as-stored: where the replay of a symbol's trades does not "
                  "give the open position the old bot held, ADJUSTMENT trades (at the "
                  "average price, so they realize nothing) bring the book to it",
    "position": "positions are rebuilt from the trades (and adjustments); an open position "
                "keeps the id of the old open row of its symbol, the old rows' figures are "
                "in the report and in the backup",
}

ProgressCallback = Callable[[str, int, int], None]


class AdoptionError(MigrationError):
    """The old database cannot be adopted as it is; nothing was changed."""


class _OldOrder(OrderState):
    """An order being adopted: its fill state as the trades build it, and the old one."""

    __slots__ = ("old", "last_fill")


class AdoptionReportRow(Model):
    """One adoption: when, from what, with which options, and its printed summary."""

    id = AutoField()
    adopted_at = UTCDateTimeField()
    source = CharField(max_length=500)
    backup = TextField(null=True)
    time_zone = CharField(max_length=100)
    positions = CharField(max_length=20)
    counts = TextField()
    summary = TextField()

    class Meta:
        table_name = REPORT_TABLES[0]


class AdoptionChange(Model):
    """One figure an adoption changed, or one row it handled by a rule."""

    id = AutoField()
    adoption = IntegerField()
    kind = CharField(max_length=20)
    table_name = CharField(max_length=20)
    row_id = IntegerField(null=True)
    field = CharField(max_length=40)
    old = TextField(null=True)
    new = TextField(null=True)
    why = TextField()

    class Meta:
        table_name = REPORT_TABLES[1]


_REPORT_MODELS = [AdoptionReportRow, AdoptionChange]


@dataclass
class AdoptionReport:
    """What an adoption did (or, dry, would do)."""

    database: str
    time_zone: str
    positions: str
    dry_run: bool
    backup: str | None = None
    adopted_at: dt.datetime = field(default_factory=utcnow)
    #: table -> (rows in the old table, rows in this store's table)
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: (kind, table, row id, field, old, new, why)
    changes: list[tuple] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: (table, field) -> [rows, first id, last id]: figures the old module left empty
    #: and the replay filled in (the new values are in the rows themselves).
    filled_in: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def fill_in(self, table: str, name: str, row_id: int) -> None:
        """Count one figure the old module left empty and the replay filled in."""
        found = self.filled_in.get((table, name))
        if found is None:
            self.filled_in[(table, name)] = [1, row_id, row_id]
        else:
            found[0] += 1
            found[2] = row_id

    def filled_in_changes(self) -> list[tuple]:
        """The filled-in figures as report rows, one per table and field."""
        return [("filled in", table, None, name, None, f"{count:,} rows",
                 f"ids {first} to {last}: {_FILLED_IN.get(name, '')}")
                for (table, name), (count, first, last) in self.filled_in.items()]

    def change(self, kind: str, table: str, row_id: int | None, name: str, old: Any,
               new: Any, why: str) -> None:
        """Record one changed figure or handled row."""
        self.changes.append((kind, table, row_id, name, _text(old), _text(new), why))

    def by_kind(self) -> dict[str, list[tuple]]:
        """The changes grouped by kind, in a stable order."""
        groups: dict[str, list[tuple]] = {}
        for change in self.changes:
            groups.setdefault(change[0], []).append(change)
        return groups

    def format(self, full: bool = False) -> str:
        """The report as printed: counts, notes, and the changes by kind (the first
        :data:`SHOWN` of each unless ``full``)."""
        verb = "would adopt (dry run: nothing written)" if self.dry_run else "adopted"
        lines = [f"{verb}: {self.database}",
                 f"times: naive times stamped by the bot read in {self.time_zone}, "
                 "stored as UTC",
                 f"positions: {self.positions}"]
        if self.backup:
            lines.append(f"backup: {self.backup}")
        lines.append("rows (old -> now):")
        for table, (old, new) in self.counts.items():
            lines.append(f"  {table}: {old:,} -> {new:,}")
        lines += [f"note: {note}" for note in self.notes]
        groups = self.by_kind()
        lines.append(f"changes: {len(self.changes):,}" + ("" if self.changes else " (none)"))
        if self.filled_in:
            lines.append("\nfilled in: figures the old module left empty, now in the rows")
            for _, table, _, name, _, new, why in self.filled_in_changes():
                lines.append(f"  {table} {name}: {new}, {why}")
        for kind, found in groups.items():
            lines.append(f"\n{kind} ({len(found):,}): {RULES.get(kind, _WHY.get(kind, ''))}")
            for _, table, row_id, name, old, new, why in found[:None if full else SHOWN]:
                lines.append(f"  {table} {row_id} {name}: {old} -> {new} ({why})")
            if not full and len(found) > SHOWN:
                where = ("run again with --full to list them" if self.dry_run else
                         f"all are in the table {REPORT_TABLES[1]}, or use --full")
                lines.append(f"  ... and {len(found) - SHOWN:,} more: {where}")
        return "\n".join(lines)


_FILLED_IN = {
    "realized_pnl": "closing trades the old module recorded without P&L, given the P&L of "
                    "the replay",
    "fill state": "orders the old module never updated (pending, nothing filled), given "
                  "the status, filled quantity and average price of their trades",
}

_WHY = {
    "figure": "figures this store derives from the trades, recomputed by its rules",
    "time": "times that could not be kept as they were",
    "config": "config rows this store reads differently",
}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return str(tidy(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(" ")
    return str(value)


# -- the state of a database ---------------------------------------------------------------


def adoption_status(db: Database) -> str | None:
    """None if ``db`` holds an old module's database to adopt; else why there is nothing
    to do (already adopted, or already a store). Raises :class:`AdoptionError` for a
    database that is neither."""
    tables = set(db.get_tables())
    if is_legacy(tables):
        return None
    if REPORT_TABLES[0] in tables:
        last = AdoptionReportRow.select().order_by(AdoptionReportRow.id.desc()).bind(db).first()
        when = "" if last is None else f" on {last.adopted_at:%Y-%m-%d %H:%M UTC}"
        backup = "" if last is None or not last.backup else f"; its backup: {last.backup}"
        return f"{describe(db)} was already adopted{when}; nothing to do{backup}"
    if {m._meta.table_name for m in MODELS} <= tables:
        return f"{describe(db)} is already a stocksbot store; nothing to adopt"
    if not tables:
        raise AdoptionError(f"{describe(db)} is empty: there is nothing to adopt (check the "
                            "URL: --url or DATABASE_URL)")
    raise AdoptionError(f"{describe(db)} holds neither the old storage module's tables "
                        f"({', '.join(OLD_TABLES)}) nor this store's; nothing to adopt")


def local_zone() -> tuple[dt.tzinfo, str]:
    """The machine's time zone and its name (``$TZ``, else ``/etc/localtime``)."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return zoneinfo.ZoneInfo(name), name
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            key = target.split("zoneinfo/", 1)[1]
            return zoneinfo.ZoneInfo(key), key
        with open("/etc/localtime", "rb") as source:
            return zoneinfo.ZoneInfo.from_file(source, key="localtime"), "localtime"
    except (OSError, zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC, "UTC"


def resolve_zone(name: str | None) -> tuple[dt.tzinfo, str]:
    """The zone called ``name`` (an IANA name like ``America/New_York``), or the
    machine's when None."""
    if not name:
        return local_zone()
    try:
        return zoneinfo.ZoneInfo(name), name
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise AdoptionError(f"unknown time zone {name!r}; use an IANA name such as "
                            "Europe/Berlin, America/New_York or UTC") from None


# -- adopting ---------------------------------------------------------------------------------


def adopt(db: Database, *, dry_run: bool = False, zone: str | None = None,
          positions: str = "as-stored", progress: ProgressCallback | None = None,
          echo: Callable[[str], None] = lambda _: None) -> AdoptionReport:
    """Adopt the old module's database ``db`` in place (see the module docstring).

    Raises :class:`AdoptionError` (nothing changed) when it cannot; call
    :func:`adoption_status` first to tell an already adopted database apart.
    """
    if positions not in ("as-stored", "from-trades"):
        raise AdoptionError(f"--positions must be as-stored or from-trades, not {positions!r}")
    tzinfo, zone_name = resolve_zone(zone)
    if db.in_transaction():
        raise AdoptionError("adopt runs its own transaction; call it outside one")
    opened = db.is_closed()
    if opened:
        db.connect()
    try:
        status = adoption_status(db)
        if status is not None:
            raise AdoptionError(status)
        report = AdoptionReport(describe(db), zone_name, positions, dry_run)
        job = _Adoption(db, report, tzinfo, progress, echo)
        job.preflight()
        if not dry_run and job.backend == "sqlite":
            report.backup = sqlite_backup(db)
            if report.backup is None:
                report.notes.append("an in-memory database has no file: no backup was made")
            else:
                echo(f"backup written: {report.backup}")
        with _transaction(db, dry_run):
            job.run()
        return report
    finally:
        if opened and not db.is_closed():
            db.close()


@contextmanager
def _transaction(db: Database, dry_run: bool) -> Iterator[None]:
    if dry_run:
        yield  # reads only
        return
    if backend_of(db) == "sqlite":
        with db.atomic("IMMEDIATE"):
            yield
        return
    with db.atomic():
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        yield


def sqlite_backup(db: Database) -> str | None:
    """Copy the SQLite file of ``db`` beside it through SQLite's backup API (a consistent
    copy even while others read it); return the copy's path (None in memory)."""
    path = db.database
    if path.startswith("file:") or path == ":memory:":
        return None
    stem, suffix = os.path.splitext(os.path.abspath(path))
    target = f"{stem}.before-adopt-{utcnow():%Y%m%dT%H%M%SZ}{suffix or '.db'}"
    fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    copy = sqlite3.connect(target)
    try:
        db.connection().backup(copy)
    finally:
        copy.close()
    return target


_SIDES = {**{m.name: m.value for m in OrderSideEnum}, **{m.value: m.value for m in OrderSideEnum}}
_POSITION_SIDES = {**{m.name: m.value for m in PositionSideEnum},
                   **{m.value: m.value for m in PositionSideEnum}}
_TYPES = {**{m.name: m.value for m in OrderTypeEnum}, **{m.value: m.value for m in OrderTypeEnum}}
_STATUSES = {**{m.name: m.value for m in OrderStatusEnum},
             **{m.value: m.value for m in OrderStatusEnum}}
_TRADE_TYPES = {**{m.name: m.value for m in TradeTypeEnum},
                **{m.value: m.value for m in TradeTypeEnum}}
_CONFIG_TYPES = {m.value for m in ConfigValueType}
_FILLED, _PARTIAL, _OPEN = "filled", "partially_filled", "open"
_CLOSED_STATUSES = ("cancelled", "rejected")


def _insert_sql(model: type[Model], with_id: bool = True) -> tuple[str, list[str]]:
    """``INSERT`` of every column of ``model`` (built from its fields) and the columns."""
    columns = [f.column_name for f in model._meta.sorted_fields
               if with_id or f.column_name != "id"]
    sql = (f'INSERT INTO "{model._meta.table_name}" ({", ".join(columns)}) '
           f'VALUES ({", ".join("?" * len(columns))})')
    return sql, columns


class _Adoption:
    """One adoption: reads the old tables, writes this store's, fills the report."""

    def __init__(self, db: Database, report: AdoptionReport, zone: dt.tzinfo,
                 progress: ProgressCallback | None, echo: Callable[[str], None]) -> None:
        self.db = db
        self.report = report
        self.zone = zone
        self.progress = progress
        self.echo = echo
        self.backend = backend_of(db)
        self.write = not report.dry_run
        self.source = ""  # schema prefix of the old tables
        self.db_zone: dt.tzinfo = UTC
        self._money: dict[Any, Decimal] = {}
        self._texts: dict[Decimal, str] = {}
        self._symbols: set[str] = set()
        self.indexes: list[str] = []
        self._offsets: dict[str, dt.timedelta] = {}
        self.now = utcnow()
        self.stamp = datetime_text(self.now)

    # -- helpers ------------------------------------------------------------------------

    def sql(self, text: str) -> str:
        return text if self.backend == "sqlite" else text.replace("?", "%s")

    def rows(self, text: str, params: tuple = ()) -> list[tuple]:
        return self.db.execute_sql(self.sql(text), params).fetchall()

    def many(self, text: str, rows: list) -> None:
        if self.write and rows:
            self.db.cursor().executemany(self.sql(text), rows)

    def old(self, table: str) -> str:
        return f'{self.source}"{table}"'

    def batches(self, table: str, columns: str) -> Iterator[list[tuple]]:
        """The old table's rows by id, in keyset-paged batches."""
        total = self.rows(f"SELECT MAX(id) FROM {self.old(table)}")[0][0] or 0
        last = None
        while True:
            where = "" if last is None else "WHERE id > ? "
            rows = self.rows(f"SELECT {columns} FROM {self.old(table)} {where}ORDER BY id "
                             f"LIMIT {BATCH}", () if last is None else (last,))
            if not rows:
                return
            last = rows[-1][0]
            yield rows
            if self.progress is not None:
                self.progress(table, last, total)

    def fail(self, table: str, row_id: Any, column: str, problem: str) -> AdoptionError:
        return AdoptionError(
            f"{table} row {row_id}: {column} {problem}; it cannot be converted, so nothing "
            "was changed. Correct or delete that row in the old database (its tables are "
            "untouched), then run adopt again")

    def money(self, value: Any, table: str, row_id: Any, column: str,
              positive: bool = False) -> Decimal:
        """An old float as an exact decimal, by its repr (cached: prices repeat)."""
        number = self._money.get(value) if isinstance(value, float) else None
        if number is None:
            try:
                number = to_decimal(0 if value is None and not positive else value, column)
            except ValidationError as e:
                raise self.fail(table, row_id, column, f"is {value!r}: {e}") from None
            if isinstance(value, float):
                if len(self._money) > 200_000:
                    self._money.clear()
                self._money[value] = number
        if positive and number <= 0:
            raise self.fail(table, row_id, column, f"is {value!r}; it must be positive")
        if number < 0 and column in ("commission", "fees"):
            raise self.fail(table, row_id, column, f"is {value!r}; it must not be negative")
        return number

    def text_of(self, number: Decimal) -> str:
        """:func:`decimal_text`, cached: the same prices and quantities recur."""
        text = self._texts.get(number)
        if text is None:
            if len(self._texts) > 200_000:
                self._texts.clear()
            text = self._texts[number] = decimal_text(number)
        return text

    def symbol(self, value: Any, table: str, row_id: Any) -> str:
        if value in self._symbols:
            return value
        symbol = self.text(value, table, row_id, "symbol", 64)
        self._symbols.add(symbol)
        return symbol

    def figure(self, value: Any) -> Decimal | str | None:
        """An old figure to report, exact when it can be."""
        if isinstance(value, float) and value in self._money:
            return self._money[value]
        try:
            return None if value is None else to_decimal(value)
        except ValidationError:
            return repr(value)

    def when(self, value: Any, table: str, column: str, row_id: Any) -> dt.datetime | None:
        """An old naive time as aware UTC (see :data:`LOCAL_TIME_COLUMNS`)."""
        if value is None:
            return None
        try:
            if isinstance(value, str):
                value = dt.datetime.fromisoformat(value.strip())
            if not isinstance(value, dt.datetime):
                raise ValueError(f"not a time: {value!r}")
        except ValueError as e:
            raise self.fail(table, row_id, column, f"is {str(value)[:40]!r}: {e}") from None
        if value.tzinfo is not None:
            return value.astimezone(UTC)
        zone = self.zone if (table, column) in LOCAL_TIME_COLUMNS else self.db_zone
        return value.replace(tzinfo=zone).astimezone(UTC)

    def local(self, value: Any, table: str, column: str,
              row_id: Any) -> tuple[dt.datetime | None, str | None]:
        """A time the bot stamped, read in the assumed zone: aware UTC and its stored text.
        The zone's offset is kept per minute of the text (no zone changes its offset
        within a minute), so most values cost a parse and a subtraction."""
        key = value[:16] if isinstance(value, str) else None
        offset = self._offsets.get(key) if key else None
        if offset is not None:
            try:
                naive = dt.datetime.fromisoformat(value) - offset
            except ValueError:
                pass
            else:
                return naive.replace(tzinfo=UTC), naive.isoformat(" ", "microseconds") + "+00:00"
        when = self.when(value, table, column, row_id)
        if when is None:
            return None, None
        if key and len(value) >= 19:
            self._offsets[key] = dt.datetime.fromisoformat(value) - when.replace(tzinfo=None)
        return when, datetime_text(when)

    def enum(self, names: dict[str, str], value: Any, table: str, row_id: Any,
             column: str) -> str:
        found = names.get(value) if isinstance(value, str) else None
        if found is None:
            allowed = ", ".join(sorted(k for k in names if k.isupper()))
            raise self.fail(table, row_id, column, f"is {value!r}, not one of {allowed}")
        return found

    def text(self, value: Any, table: str, row_id: Any, column: str, limit: int,
             optional: bool = False) -> str | None:
        try:
            return check_text(value, column, limit, optional=optional)
        except ValidationError as e:
            raise self.fail(table, row_id, column, str(e)) from None

    # -- steps ---------------------------------------------------------------------------

    def preflight(self) -> None:
        """Refuse, before any backup or write, what adopt does not know how to convert."""
        tables = set(self.db.get_tables())
        missing = [t for t in OLD_TABLES if t not in tables]
        if missing:
            raise AdoptionError(f"{describe(self.db)} lacks the old module's table(s) "
                                f"{', '.join(missing)}; it is not a complete database of "
                                "the old storage module")
        if ALEMBIC_TABLE in tables:
            revisions = [r[0] for r in self.rows(f'SELECT version_num FROM "{ALEMBIC_TABLE}"')]
            if revisions and revisions != [OLD_REVISION]:
                raise AdoptionError(
                    f"{describe(self.db)} is at alembic revision {', '.join(revisions)}; "
                    f"adopt converts the old module's schema at revision {OLD_REVISION}")
        self.leftovers = [m._meta.table_name for m in reversed(MODELS)
                          if m._meta.table_name in tables and m is not Config]
        for table in self.leftovers:
            if self.rows(f'SELECT 1 FROM "{table}" LIMIT 1'):
                raise AdoptionError(
                    f"{describe(self.db)} holds both the old module's tables and this "
                    f"store's, and {table} has rows; adopt would not know which to keep. "
                    "Move this store's tables away (or restore a backup) and run it again")
        if self.backend == "postgres":
            zone = self.rows("SELECT current_setting('TimeZone')")[0][0]
            try:
                self.db_zone = zoneinfo.ZoneInfo(zone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                self.db_zone = UTC
            if self.write and self.rows("SELECT 1 FROM information_schema.tables WHERE "
                                        "table_schema = %s LIMIT 1", (LEGACY_SCHEMA,)):
                raise AdoptionError(f"schema {LEGACY_SCHEMA} already holds tables; adopt "
                                    "keeps the old tables there, so it must be empty")

    def run(self) -> None:
        report = self.report
        started = time.monotonic()
        config = self.rows("SELECT id, key, value, value_type, description, created_at, "
                           f"updated_at FROM {self.old('config')} ORDER BY id")
        old_positions = self.rows(
            "SELECT id, symbol, side, quantity, avg_entry_price, cost_basis, realized_pnl, "
            f"is_open FROM {self.old('positions')} ORDER BY id")
        if self.write:
            self.make_room()
        strategies = self.strategies()
        self.config(config)
        orders = self.orders(strategies)
        books, figures, trade_count, last_trade_id = self.trades(orders)
        adjustments = 0
        if report.positions == "as-stored":
            if old_positions:
                adjustments = self.adjust(books, old_positions, last_trade_id)
            else:
                report.notes.append("the old positions table is empty: the bot kept no "
                                    "positions, so the trades alone decide them")
        position_count = self.positions(books, old_positions)
        self.finish_orders(orders)
        self.finish_strategies(strategies, figures)
        report.counts = {
            "strategies -> strategy": (len(strategies), len(strategies)),
            "config -> config": (len(config), len(config)),
            "orders -> order": (len(orders), len(orders)),
            "trades -> trade": (trade_count, trade_count + adjustments),
            "positions -> position": (len(old_positions), position_count),
        }
        if self.write:
            self.finish()
        self.echo(f"adoption computed in {time.monotonic() - started:.1f} s")

    def make_room(self) -> None:
        """Back up (PostgreSQL), clear the way for this store's tables and create them."""
        db = self.db
        for table in self.leftovers:  # an empty store schema made beside the old tables
            db.execute_sql(f'DROP TABLE "{table}"')
            self.report.notes.append(f"the empty {table} table that `upgrade` had created "
                                     "beside the old tables was replaced")
        if self.leftovers:
            db.execute_sql(f'DROP TABLE IF EXISTS "{HISTORY_TABLE}"')
        if self.backend == "postgres":
            db.execute_sql(f'CREATE SCHEMA IF NOT EXISTS "{LEGACY_SCHEMA}"')
            for table in (*OLD_TABLES, ALEMBIC_TABLE):
                if table in db.get_tables():
                    db.execute_sql(f'ALTER TABLE "{table}" SET SCHEMA "{LEGACY_SCHEMA}"')
            types = {r[0] for r in self.rows(
                "SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = current_schema() AND typtype = 'e'")}
            for name in OLD_ENUM_TYPES:
                if name in types:
                    db.execute_sql(f'ALTER TYPE "{name}" SET SCHEMA "{LEGACY_SCHEMA}"')
            self.source = f'"{LEGACY_SCHEMA}".'
            self.report.backup = (f"the old tables, unchanged, in the schema {LEGACY_SCHEMA} "
                                  f"of the same database ({LEGACY_SCHEMA}.trades ...)")
        else:
            # The old config table has this store's table name: its rows are read already.
            db.execute_sql('ALTER TABLE "config" RENAME TO "stocksbot_legacy_config"')
            self.renamed_config = True
        runner = Runner(db)
        runner.History.create_table(safe=True)
        for migration in runner.migrations():
            module = migration.load()
            module.upgrade(runner.migrator, db)
            runner.History.create(name=migration.name)
        with db.bind_ctx(_REPORT_MODELS):
            db.create_tables(_REPORT_MODELS, safe=True)
        if self.backend == "sqlite":
            # Rows go in faster without the secondary indexes; the very statements that
            # made them make them again at the end (unique ones re-checking every row).
            for table in ("trade", "order", "position"):
                for index in db.get_indexes(table):
                    if index.sql:
                        self.indexes.append(index.sql)
                        db.execute_sql(f'DROP INDEX "{index.name}"')

    def strategies(self) -> dict[int, dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        sql, columns = _insert_sql(Strategy)
        rows = []
        for (sid, name, description, kind, config, active, enabled, total_trades, win_rate,
             total_pnl, created, updated, last_run) in self.rows(
                "SELECT id, name, description, strategy_type, config, is_active, is_enabled, "
                "total_trades, win_rate, total_pnl, created_at, updated_at, last_run_at "
                f"FROM {self.old('strategies')} ORDER BY id"):
            if isinstance(config, str):
                try:
                    config = json.loads(config)
                except ValueError:
                    raise self.fail("strategies", sid, "config", "is not JSON") from None
            values = {c: 0 if c in ("total_trades", "closing_trades", "winning_trades",
                                    "losing_trades") else decimal_text(ZERO)
                      for c in columns}
            values.update(
                id=sid, name=self.text(name, "strategies", sid, "name", 200),
                description=description,
                strategy_type=self.text(kind, "strategies", sid, "strategy_type", 100,
                                        optional=True),
                config=None if config is None else json.dumps(config, sort_keys=True),
                is_active=bool(active), is_enabled=bool(enabled), last_trade_at=None,
                created_at=self._time_text(created, "strategies", "created_at", sid),
                updated_at=self._time_text(updated, "strategies", "updated_at", sid),
                last_run_at=self._time_text(last_run, "strategies", "last_run_at", sid,
                                            optional=True))
            found[sid] = {"name": name, "total_trades": total_trades,
                          "win_rate": self.figure(win_rate), "total_pnl": self.figure(total_pnl),
                          "updated_at": values["updated_at"]}
            rows.append(tuple(values[c] for c in columns))
        self.many(sql, rows)
        return found

    def _time_text(self, value: Any, table: str, column: str, row_id: Any,
                   optional: bool = False) -> str | None:
        if (isinstance(value, str) and len(value) == 26 and self.db_zone is UTC
                and (table, column) not in LOCAL_TIME_COLUMNS):
            # SQLite's own UTC stamp in SQLAlchemy's text form: checked, then kept as is.
            try:
                dt.datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                return value + "+00:00"
        when = self.when(value, table, column, row_id)
        if when is None:
            return None if optional else self.stamp
        return datetime_text(when)

    def config(self, rows: list[tuple]) -> None:
        sql, columns = _insert_sql(Config)
        out = []
        for cid, key, value, value_type, description, created, updated in rows:
            kind = (value_type or "string").strip().lower()
            if kind not in _CONFIG_TYPES:
                self.report.change("config", "config", cid, "value_type", value_type, "string",
                                   f"this store knows {', '.join(sorted(_CONFIG_TYPES))}")
                kind = "string"
            values = {"id": cid, "key": self.text(key, "config", cid, "key", 200),
                      "value": value, "value_type": kind, "description": description,
                      "created_at": self._time_text(created, "config", "created_at", cid),
                      "updated_at": self._time_text(updated, "config", "updated_at", cid)}
            out.append(tuple(values[c] for c in columns))
        self.many(sql, out)

    def orders(self, strategies: dict[int, dict[str, Any]]) -> dict[int, _OldOrder]:
        """Copy the orders with an empty fill state (the trades fill it in); return them."""
        sql, columns = _insert_sql(Order)
        row_of = itemgetter(*columns)
        orders: dict[int, _OldOrder] = {}
        seen: set[str] = set()
        report = self.report
        for batch in self.batches(
                "orders", "id, external_id, symbol, side, type, status, quantity, price, "
                "filled_quantity, avg_fill_price, strategy_id, created_at, updated_at, "
                "filled_at"):
            out = []
            for (oid, external_id, symbol, side, kind, status, quantity, price, filled, avg,
                 strategy_id, created, updated, filled_at) in batch:
                t = "orders"
                external_id = self.text(None if external_id is None else str(external_id), t,
                                        oid, "external_id", 200, optional=True)
                if external_id is not None:
                    if external_id in seen:
                        report.change("duplicate", "order", oid, "external_id", external_id,
                                      None, "an earlier order has the same external id")
                        external_id = None
                    else:
                        seen.add(external_id)
                if strategy_id is not None and strategy_id not in strategies:
                    report.change("strategy", "order", oid, "strategy_id", strategy_id, None,
                                  f"strategy {strategy_id} does not exist")
                    strategy_id = None
                order = _OldOrder()
                order.id, order.strategy_id = oid, strategy_id
                order.symbol = self.symbol(symbol, t, oid)
                order.side = self.enum(_SIDES, side, t, oid, "side")
                order.status = self.enum(_STATUSES, status, t, oid, "status")
                order.quantity = self.money(quantity, t, oid, "quantity")
                order.filled, order.avg = ZERO, None
                order.updated_at = self._time_text(updated, t, "updated_at", oid)
                order.filled_at = self.when(filled_at, t, "filled_at", oid)
                order.old, order.last_fill = (self.figure(filled), self.figure(avg)), None
                orders[oid] = order
                values = {"id": oid, "external_id": external_id, "symbol": order.symbol,
                          "side": order.side, "type": self.enum(_TYPES, kind, t, oid, "type"),
                          "status": order.status, "quantity": self.text_of(order.quantity),
                          "price": None if price is None else self.text_of(
                              self.money(price, t, oid, "price")),
                          "filled_quantity": self.text_of(ZERO), "avg_fill_price": None,
                          "strategy_id": strategy_id,
                          "created_at": self._time_text(created, t, "created_at", oid),
                          "updated_at": order.updated_at, "filled_at": None}
                out.append(row_of(values))
            self.many(sql, out)
        return orders

    def trades(self, orders: dict[int, _OldOrder]) -> tuple[
            dict[str, list[ledger.PositionState]], dict[int, ledger.StrategyFigures], int, int]:
        """Copy the trades in id order, replaying each with the ledger's rules."""
        insert = _with_id(_STATEMENTS["insert_trade"])
        books: dict[str, list[ledger.PositionState]] = {}
        figures: dict[int, ledger.StrategyFigures] = {}
        seen: set[str] = set()
        report = self.report
        count = last_id = 0
        t = "trades"
        # Bound methods as locals: this loop runs once per trade.
        enum, money, text_of, local = self.enum, self.money, self.text_of, self.local
        time_text, figure = self._time_text, self.figure
        for batch in self.batches(
                t, "id, order_id, external_id, symbol, side, type, quantity, price, "
                "commission, fees, realized_pnl, executed_at, created_at"):
            out = []
            for (tid, order_id, external_id, symbol, side, old_type, quantity, price,
                 commission, fees, realized, executed, created) in batch:
                symbol = self.symbol(symbol, t, tid)
                side = enum(_SIDES, side, t, tid, "side")
                old_type = enum(_TRADE_TYPES, old_type, t, tid, "type")
                quantity = money(quantity, t, tid, "quantity", True)
                price = money(price, t, tid, "price", True)
                commission = money(commission, t, tid, "commission")
                fees = money(fees, t, tid, "fees")
                created_text = time_text(created, t, "created_at", tid)
                executed_at, executed_text = local(executed, t, "executed_at", tid)
                if executed_at is None:
                    executed_at, executed_text = (dt.datetime.fromisoformat(created_text),
                                                  created_text)
                external_id = self.text(None if external_id is None else str(external_id), t,
                                        tid, "external_id", 200, optional=True)
                order = None if order_id is None else orders.get(order_id)
                if order_id is not None and order is None:
                    report.change("orphan", "trade", tid, "order_id", order_id, None,
                                  f"order {order_id} does not exist")
                    order_id = None
                elif order is not None and (order.symbol, order.side) != (symbol, side):
                    report.change("mismatch", "trade", tid, "order_id", order_id, None,
                                  f"order {order_id} is {order.side} {order.symbol}; the "
                                  f"trade is {side} {symbol}")
                    order, order_id = None, None
                if external_id is not None:
                    if external_id in seen:
                        report.change("duplicate", "trade", tid, "external_id", external_id,
                                      None, "an earlier trade has the same external id")
                        external_id = None
                    else:
                        seen.add(external_id)
                outcome = _replay(books, symbol, side, quantity, price, commission, fees,
                                  executed_at)
                trade_type = outcome.trade_type if order is not None else ledger.ADJUSTMENT
                if trade_type != old_type:
                    report.change("figure", "trade", tid, "type", old_type, trade_type,
                                  "no order" if order is None else f"the replay of {symbol}")
                old_realized = figure(realized)
                if old_realized is None and outcome.realized_pnl is not None:
                    report.fill_in("trade", "realized_pnl", tid)
                elif old_realized != outcome.realized_pnl:
                    report.change("figure", "trade", tid, "realized_pnl", old_realized,
                                  outcome.realized_pnl, f"the replay of {symbol}")
                strategy_id = None
                if order is not None:
                    order.filled, order.avg = ledger.order_after_fill(
                        order.filled, order.avg, quantity, price)
                    order.last_fill = executed_at
                    strategy_id = order.strategy_id
                if strategy_id is not None:
                    figures.setdefault(strategy_id, ledger.StrategyFigures()).add_trade(
                        outcome.realized_pnl, commission, fees, executed_at)
                realized = outcome.realized_pnl
                # trade_row's columns, with the decimals' text cached
                out.append((tid, order_id, external_id, strategy_id, symbol, side, trade_type,
                            text_of(quantity), text_of(price), text_of(commission),
                            text_of(fees),
                            None if realized is None else decimal_text(realized),
                            executed_text, created_text))
            self.many(insert, out)
            count += len(batch)
            last_id = batch[-1][0]
        return books, figures, count, last_id

    def adjust(self, books: dict[str, list[ledger.PositionState]], old_positions: list[tuple],
               last_trade_id: int) -> int:
        """ADJUSTMENT trades that bring each symbol's book to what the old bot held."""
        held: dict[str, list[tuple[str, Decimal, Decimal]]] = {}
        for pid, symbol, side, quantity, avg, _cost, _realized, is_open in old_positions:
            if not is_open:
                continue
            side = self.enum(_POSITION_SIDES, side, "positions", pid, "side")
            quantity = self.money(quantity, "positions", pid, "quantity")
            avg = self.money(avg, "positions", pid, "avg_entry_price")
            if quantity > 0:
                held.setdefault(symbol, []).append((side, quantity, avg))
        trades = []
        for symbol in sorted(set(held) | set(books)):
            target = _net(held.get(symbol, []))
            rows = books.get(symbol, [])
            current = rows[-1] if rows and rows[-1].is_open else None
            fills = _adjustment_fills(current, target)
            before, after = _describe(current), _describe(target)
            if fills is None:
                self.report.change("adjustment", "position", None, f"{symbol} position",
                                   before, before, f"the old bot held {after}, but its average "
                                   "price is not positive: no trade reaches it; the trades "
                                   "decide")
                continue
            for side, quantity, price in fills:
                last_trade_id += 1
                outcome = _replay(books, symbol, side, quantity, price, ZERO, ZERO, self.now)
                fill = _CheckedFill(None, symbol, side, quantity, price, ZERO, ZERO, None,
                                    self.now)
                trades.append((last_trade_id, *trade_row(fill, None, ledger.ADJUSTMENT,
                                                         outcome.realized_pnl, self.stamp)))
                self.report.change("adjustment", "trade", last_trade_id, f"{symbol} position",
                                   before, after, f"{side} {quantity} @ {price}: the old bot "
                                   f"held {after}, the trades give {before}")
        self.many(_with_id(_STATEMENTS["insert_trade"]), trades)
        return len(trades)

    def positions(self, books: dict[str, list[ledger.PositionState]],
                  old_positions: list[tuple]) -> int:
        """Write the replayed positions; report how they differ from the old rows."""
        old_open: dict[str, tuple] = {}
        next_id = max((row[0] for row in old_positions), default=0)
        for row in old_positions:
            if row[7]:
                old_open[row[1]] = row  # the latest open row of the symbol
        rows = []
        for symbol in sorted(books):
            for state in books[symbol]:
                old = old_open.get(symbol) if state.is_open else None
                if old is not None:
                    state.id = old[0]
                else:
                    next_id += 1
                    state.id = next_id
                rows.append((state.id, *new_position_row(state, self.stamp)))
        for symbol, old in sorted(old_open.items()):
            states = books.get(symbol, [])
            now_open = states[-1] if states and states[-1].is_open else None
            pid = old[0]
            for name, value, new in (
                    ("side", old[2], None if now_open is None else now_open.side),
                    ("quantity", old[3], now_open and now_open.quantity),
                    ("avg_entry_price", old[4], now_open and now_open.avg_entry_price),
                    ("cost_basis", old[5], now_open and now_open.cost_basis),
                    ("realized_pnl", old[6], now_open and now_open.realized_pnl)):
                before = _POSITION_SIDES.get(value, value) if name == "side" else \
                    self.figure(value)
                if before != new:
                    self.report.change("position", "position", pid, name, before, new,
                                       f"the replay of {symbol}'s trades" if now_open else
                                       f"its trades leave nothing of {symbol} open")
        self.many(_with_id(_STATEMENTS["insert_position"]), rows)
        return len(rows)

    def finish_orders(self, orders: dict[int, _OldOrder]) -> None:
        """Give each order the fill state its trades say."""
        report = self.report
        updates, quantities = [], []
        for order in orders.values():
            filled, status = order.filled, order.status
            if filled > order.quantity:
                report.change("overfill", "order", order.id, "quantity", order.quantity, filled,
                              f"its trades fill {filled}")
                order.quantity = filled
                quantities.append((decimal_text(filled), order.id))
            if filled == 0:
                new_status = _OPEN if status in (_FILLED, _PARTIAL) else status
            elif filled < order.quantity:
                new_status = status if status in (*_CLOSED_STATUSES, _PARTIAL) else _PARTIAL
            else:
                new_status = _FILLED
            old_filled, old_avg = order.old
            if status == "pending" and not old_filled and old_avg is None and filled:
                report.fill_in("order", "fill state", order.id)
                old_filled, old_avg, status = filled, order.avg, new_status  # not listed again
            if new_status != status:
                report.change("unfilled" if status in (_FILLED, _PARTIAL) else "figure",
                              "order", order.id, "status", status, new_status,
                              f"its trades fill {tidy(filled)} of {tidy(order.quantity)}")
            if old_filled != filled:
                report.change("figure", "order", order.id, "filled_quantity", old_filled,
                              filled, "the sum of its trades")
            if old_avg != order.avg and filled:
                report.change("figure", "order", order.id, "avg_fill_price", old_avg,
                              order.avg, "the average of its trades")
            order.status = new_status
            if new_status == _FILLED:
                when = order.filled_at or order.last_fill or self.now
                order.filled_at = datetime_text(when)
            else:
                order.filled_at = None
            if filled or new_status != "pending":
                updates.append(order.row())
        self.many(_STATEMENTS["update_order"], updates)
        self.many('UPDATE "order" SET quantity = ? WHERE id = ?', quantities)

    def finish_strategies(self, strategies: dict[int, dict[str, Any]],
                          figures: dict[int, ledger.StrategyFigures]) -> None:
        updates = []
        for sid, old in strategies.items():
            new = figures.get(sid, ledger.StrategyFigures())
            for name in ("total_trades", "win_rate", "total_pnl"):
                before, after = old[name], getattr(new, name)
                if (before or 0) != after:
                    self.report.change("figure", "strategy", sid, name, before, after,
                                       f"the trades of strategy {old['name']!r}")
            updates.append(figures_row(new, old["updated_at"]) + [sid])
        self.many(_STATEMENTS["update_strategy"], updates)

    def finish(self) -> None:
        """Sequences (PostgreSQL), the old tables (SQLite: in the backup) and the report."""
        db = self.db
        if self.backend == "postgres":
            for model in MODELS:
                table = model._meta.table_name
                db.execute_sql(
                    f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                    f'COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM "{table}"')
        else:
            for table in (*OLD_TABLES[:4], "stocksbot_legacy_config", ALEMBIC_TABLE):
                db.execute_sql(f'DROP TABLE IF EXISTS "{table}"')
            for sql in self.indexes:
                db.execute_sql(sql)
        report = self.report
        adoption = AdoptionReportRow.insert(
            adopted_at=report.adopted_at, source=report.database, backup=report.backup,
            time_zone=report.time_zone, positions=report.positions,
            counts=json.dumps({k: list(v) for k, v in report.counts.items()}),
            summary=report.format()).bind(db).execute()
        sql, _ = _insert_sql(AdoptionChange, with_id=False)
        self.many(sql, [(adoption, *change)
                        for change in report.changes + report.filled_in_changes()])


def _replay(books: dict[str, list[ledger.PositionState]], symbol: str, side: str,
            quantity: Decimal, price: Decimal, commission: Decimal, fees: Decimal,
            at: dt.datetime) -> ledger.FillOutcome:
    """Apply one fill to the symbol's book: its positions in the order they opened."""
    rows = books.setdefault(symbol, [])
    current = rows[-1] if rows and rows[-1].is_open else None
    outcome = ledger.apply_fill(current, symbol, side, quantity, price, commission, fees, at)
    if outcome.existing is not None:
        rows[-1] = outcome.existing
    if outcome.opened is not None:
        rows.append(outcome.opened)
    return outcome


def _net(rows: list[tuple[str, Decimal, Decimal]]) -> tuple[str, Decimal, Decimal] | None:
    """One position from the old open rows of a symbol: the side with more quantity, net
    of the other, at that side's quantity-weighted average price."""
    if not rows:
        return None
    sides: dict[str, list[Decimal]] = {}
    for side, quantity, avg in rows:
        totals = sides.setdefault(side, [ZERO, ZERO])
        totals[0] += quantity
        totals[1] += quantity * avg
    side = max(sides, key=lambda s: sides[s][0])
    quantity, amount = sides[side]
    other = sum((v[0] for s, v in sides.items() if s != side), ZERO)
    net = quantity - other
    if net <= 0:
        return None
    return side, tidy(net), tidy(to_decimal(amount / quantity))


def _adjustment_fills(current: ledger.PositionState | None,
                      target: tuple[str, Decimal, Decimal] | None
                      ) -> list[tuple[str, Decimal, Decimal]] | None:
    """The fills (side, quantity, price) that turn ``current`` into ``target``; None if
    no fill can (a target average that is not positive)."""
    if target is None:
        if current is None:
            return []
        return [(_closing(current.side), current.quantity, current.avg_entry_price)]
    side, quantity, avg = target
    if current is not None and (current.side, current.quantity,
                                current.avg_entry_price) == (side, quantity, avg):
        return []
    if avg <= 0:
        return None
    fills = []
    if current is not None:
        if current.side == side and current.avg_entry_price == avg:
            change = quantity - current.quantity
            opening = ledger.BUY if side == ledger.LONG else ledger.SELL
            return [(opening if change > 0 else _closing(side), abs(change), avg)]
        fills.append((_closing(current.side), current.quantity, current.avg_entry_price))
    fills.append((ledger.BUY if side == ledger.LONG else ledger.SELL, quantity, avg))
    return fills


def _closing(side: str) -> str:
    return ledger.SELL if side == ledger.LONG else ledger.BUY


def _describe(state: Any) -> str:
    if state is None:
        return "nothing open"
    if isinstance(state, ledger.PositionState):
        return f"{state.side} {tidy(state.quantity)} @ {tidy(state.avg_entry_price)}"
    side, quantity, avg = state
    return f"{side} {quantity} @ {avg}"


__all__ = ["RULES", "AdoptionError", "AdoptionReport", "adopt", "adoption_status"]


# -- command line: ``python -m stocksbot_store.migrate adopt`` ------------------------------

DESCRIPTION = (
    "Convert, in place, a database written by the old SQLAlchemy storage module (tables "
    "positions, orders, trades, strategies, config; alembic revision " + OLD_REVISION + ") "
    "into this store, so the bot keeps its DATABASE_URL. First a backup, named in the "
    "output (SQLite: a copy beside the file; PostgreSQL: the old tables moved to the schema "
    + LEGACY_SCHEMA + "), then one transaction: every row is copied with its id, floats "
    "become exact decimals, enum names this store's values, naive times UTC; the books "
    "(orders' fill state, strategies' figures, positions) are rebuilt from the trades by "
    "this store's rules; rows the old module let through (orphan trades, duplicate "
    "external ids, deleted strategies) are handled by the documented rules and listed. "
    "The report is printed and kept in the tables adoption_report and adoption_change. "
    "A failure leaves the database exactly as it was. Running it on an adopted database "
    "says so and exits 0.")


def add_arguments(parser: Any) -> None:
    """The options of ``adopt`` (its ``--url`` comes from the common options)."""
    parser.add_argument("--dry-run", action="store_true",
                        help="read, convert and print the report; write nothing (no backup)")
    parser.add_argument("--assume-timezone", metavar="ZONE",
                        help="IANA zone the old bot's clock was in: trade execution times "
                             "and other times its code stamped are read in it (default: this "
                             "machine's zone, printed)")
    parser.add_argument("--positions", choices=("as-stored", "from-trades"),
                        default="as-stored",
                        help="as-stored (default): keep each open position the old bot "
                             "held, recording the difference from its trades as ADJUSTMENT "
                             "trades; from-trades: the trades alone decide the positions")
    parser.add_argument("--full", action="store_true",
                        help=f"print every change, not the first {SHOWN} of each kind")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--progress", action="store_true",
                       help="show progress on stderr even when it is not a terminal")
    shown.add_argument("--no-progress", action="store_true", help="never show progress")


class _Progress:
    """``adopting trades: 42% (420,000/1,000,000 ids)`` on stderr, in place."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.shown: dict[str, int] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not total:
            return
        percent = min(100, done * 100 // total)
        if self.tty:
            end = "\n" if done >= total else ""
            self.stream.write(f"\radopting {phase}: {percent:3d}% ({done:,}/{total:,} ids){end}")
        elif percent // 10 > self.shown.get(phase, -1):
            self.shown[phase] = percent // 10
            self.stream.write(f"adopting {phase}: {percent}% ({done:,}/{total:,} ids)\n")
        self.stream.flush()


def command(db: Database, args: Any, out: Any, err: Any) -> int:
    """Run ``adopt`` on ``db`` as the command line asked; return the exit code."""
    status = adoption_status(db)
    if status is not None:
        print(status, file=out)
        return 0
    show = args.progress or (err.isatty() and not args.no_progress)
    tzinfo, name = resolve_zone(args.assume_timezone)
    if not args.assume_timezone:
        print(f"naive times stamped by the bot are read in this machine's zone, {name} "
              "(--assume-timezone to choose another)", file=err, flush=True)
    report = adopt(db, dry_run=args.dry_run, zone=args.assume_timezone,
                   positions=args.positions, progress=_Progress(err) if show else None,
                   echo=lambda text: print(text, file=err, flush=True))
    print(report.format(full=args.full), file=out)
    if not args.dry_run:
        print("\nnext: `stocksbot-check` verifies the books; the bot keeps its DATABASE_URL",
              file=out)
    return 0
