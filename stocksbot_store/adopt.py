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
import os
import sqlite3
import zoneinfo
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from peewee import Database

from .adopt_convert import LEGACY_SCHEMA, Adoption, ProgressCallback
from .adopt_report import RULES, SHOWN, AdoptionError, AdoptionReport, AdoptionReportRow
from .backups import claim_new_file, unused_path
from .database import backend_of, describe
from .fields import UTC, utcnow
from .legacy import OLD_REVISION, OLD_TABLES, REPORT_TABLES, is_legacy
from .migration.runner import LOCK_KEY
from .models import MODELS
from .urls import sqlite_file_path

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
        raise AdoptionError(
            f"{describe(db)} is empty: there is nothing to adopt (check the "
            "URL: --url or DATABASE_URL)"
        )
    raise AdoptionError(
        f"{describe(db)} holds neither the old storage module's tables "
        f"({', '.join(OLD_TABLES)}) nor this store's; nothing to adopt"
    )


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
        raise AdoptionError(
            f"unknown time zone {name!r}; use an IANA name such as "
            "Europe/Berlin, America/New_York or UTC"
        ) from None


# -- adopting ---------------------------------------------------------------------------------


def adopt(
    db: Database,
    *,
    dry_run: bool = False,
    zone: str | None = None,
    positions: str = "as-stored",
    progress: ProgressCallback | None = None,
    echo: Callable[[str], None] = lambda _: None,
    actor: str | None = None,
) -> AdoptionReport:
    """Adopt the old module's database ``db`` in place (see the module docstring);
    ``actor`` names who adopted in the audit log (default ``user@host:pid``).

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
        job = Adoption(db, report, tzinfo, progress, echo, actor)
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
    copy even while others read it); return the copy's path (None in memory). A
    ``file:`` URI names its file as a path does."""
    path = sqlite_file_path(str(db.database))
    if path is None:
        return None
    stem, suffix = os.path.splitext(path)
    while True:  # a name of its own, also when another adoption took one meanwhile
        target = unused_path(f"{stem}.before-adopt-{utcnow():%Y%m%dT%H%M%SZ}", suffix or ".db")
        try:  # a path refused before anything was changed: an AdoptionError, one line
            claim_new_file(target, "the backup before adoption", AdoptionError)
        except FileExistsError:
            continue
        break
    copy = sqlite3.connect(target)
    try:
        db.connection().backup(copy)
    finally:
        copy.close()
    return target


__all__ = ["RULES", "AdoptionError", "AdoptionReport", "adopt", "adoption_status"]


# -- command line: ``python -m stocksbot_store.migrate adopt`` ------------------------------

DESCRIPTION = (
    "Convert, in place, a database written by the old SQLAlchemy storage module (tables "
    "positions, orders, trades, strategies, config; alembic revision " + OLD_REVISION + ") "
    "into this store, so the bot keeps its DATABASE_URL. First a backup, named in the "
    "output (SQLite: a copy beside the file; PostgreSQL: the old tables moved to the schema "
    + LEGACY_SCHEMA
    + "), then one transaction: every row is copied with its id, floats "
    "become exact decimals, enum names this store's values, naive times UTC; the books "
    "(orders' fill state, strategies' figures, positions) are rebuilt from the trades by "
    "this store's rules; rows the old module let through (orphan trades, duplicate "
    "external ids, deleted strategies) are handled by the documented rules and listed. "
    "The report is printed and kept in the tables adoption_report and adoption_change. "
    "A failure leaves the database exactly as it was. Running it on an adopted database "
    "says so and exits 0."
)


def add_arguments(parser: Any) -> None:
    """The options of ``adopt`` (its ``--url`` comes from the common options)."""
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="read, convert and print the report; write nothing (no backup)",
    )
    parser.add_argument(
        "--assume-timezone",
        metavar="ZONE",
        help="IANA zone the old bot's clock was in: trade execution times "
        "and other times its code stamped are read in it (default: this "
        "machine's zone, printed)",
    )
    parser.add_argument(
        "--positions",
        choices=("as-stored", "from-trades"),
        default="as-stored",
        help="as-stored (default): keep each open position the old bot "
        "held, recording the difference from its trades as ADJUSTMENT "
        "trades; from-trades: the trades alone decide the positions",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help=f"print every change, not the first {SHOWN} of each kind",
    )
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument(
        "--progress",
        action="store_true",
        help="show progress on stderr even when it is not a terminal",
    )
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
        print(
            f"naive times stamped by the bot are read in this machine's zone, {name} "
            "(--assume-timezone to choose another)",
            file=err,
            flush=True,
        )
    report = adopt(
        db,
        dry_run=args.dry_run,
        zone=args.assume_timezone,
        positions=args.positions,
        progress=_Progress(err) if show else None,
        echo=lambda text: print(text, file=err, flush=True),
    )
    print(report.format(full=args.full), file=out)
    if not args.dry_run:
        print(
            "\nnext: `stocksbot-check` verifies the books; the bot keeps its DATABASE_URL", file=out
        )
    return 0
