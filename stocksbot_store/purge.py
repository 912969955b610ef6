"""Hard delete: ``stocksbot-purge --older-than DAYS`` removes old soft-deleted rows.

The store's API only ever soft-deletes (:mod:`stocksbot_store.softdelete`). A purge
removes, for good, the rows soft-deleted more than ``DAYS`` days ago that nothing
still needs:

* **orders** that no trade names (an order with fills is never deleted anyway);
* **strategies** that no trade and no order names, deleted or not (a strategy's
  trades are its history, so a strategy that traded is never purged; a deleted
  order that names it holds it until that order is purged);
* **config** rows;
* **positions never**: a position is the replay of its symbol's trades, which are
  never deleted, and the ledger check counts every position they opened. A deleted
  position stays hidden from the lists.

What is kept, and why, is counted in the report. Before anything is removed a backup
is taken where the backend has one (:func:`stocksbot_store.backups.backup`: a
verified copy of a SQLite file beside it, the portable archive of a PostgreSQL
database), unless ``--no-backup`` says otherwise; a SQLite database in memory has
none. The rows removed were deleted before the cutoff, so before the backup started:
every one of them is in it. The removal is one write transaction: all of it or
nothing.
``--dry-run`` counts what would go and writes nothing. Each row removed leaves an
audit row (action ``purge``, its last values) in the same transaction.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import dataclass, field
from typing import Any, cast

from peewee import Database, Expression, ModelAlias, PeeweeException, fn

from .audit import TABLES, AuditWriter, last_values, row_values
from .commands import BACKUP_PATH_HELP, URL_HELP
from .database import backend_of, connect, database_url, describe, scrub, write_transaction
from .errors import StorageError, ValidationError, first_line, translate_errors
from .fields import utcnow
from .models import BaseModel, Config, Order, Position, Strategy, Trade
from .urls import ArgumentParser, sqlite_file_path

#: Ids per ``IN (...)`` list of a DELETE.
_CHUNK = 500
#: The largest age a purge takes: 100 years (an older cutoff would fall before year 1).
MAX_DAYS = 36_500
#: Why the rows of a table are kept although they are old enough, by table.
KEPT_REASONS = {
    "order": "named by a trade",
    "strategy": "named by a trade or an order",
    "position": "a position is the replay of its trades: never purged",
}


@dataclass
class PurgeReport:
    """What a purge removed (or, dry, would remove) and kept, by table."""

    database: str
    #: Rows soft-deleted before this instant were candidates.
    cutoff: dt.datetime
    dry_run: bool
    #: Where the backup went, or None (see ``backup_note``).
    backup_path: str | None = None
    backup_note: str = ""
    removed: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Rows removed (or that would be)."""
        return sum(self.removed.values())

    def summary(self) -> str:
        """Lines for people: the backup, then per table what went and what stayed."""
        verb = "would remove" if self.dry_run else "removed"
        lines = [
            f"purge: {self.database}: rows soft-deleted before "
            f"{self.cutoff:%Y-%m-%d %H:%M:%S} UTC"
            + (" (dry run: nothing written)" if self.dry_run else "")
        ]
        if self.backup_path:
            lines.append(f"backup: {self.backup_path}")
        elif self.backup_note:
            lines.append(f"backup: {self.backup_note}")
        for table in self.removed:
            line = f"  {table}: {verb} {self.removed[table]:,}"
            if self.kept.get(table):
                line += f", kept {self.kept[table]:,} ({KEPT_REASONS[table]})"
            lines.append(line)
        lines.append(f"total: {verb} {self.total:,} row(s)")
        return "\n".join(lines)


def _old(model: type[BaseModel] | ModelAlias[Any], cutoff: dt.datetime) -> Expression:
    # deleted_at is a field of the soft-delete models only, so not known on BaseModel
    return (
        model.deleted_at.is_null(False)  # type: ignore[union-attr]
        & (model.deleted_at < cutoff)  # type: ignore[union-attr]
    )


def _rules(cutoff: dt.datetime) -> list[tuple[str, type[BaseModel], Expression | None, bool]]:
    """Per table: its model, the condition an old soft-deleted row must also meet to
    go (None: none), and whether it may go at all. A strategy held only by orders that
    go in the same run goes too (orders are removed first; a dry run counts the same)."""
    order_goes = _old(Order, cutoff) & ~fn.EXISTS(
        Trade.select(Trade.id).where(Trade.order == Order.id)
    )
    holder, holder_fill = Order.alias(), Trade.alias()
    holder_goes = _old(holder, cutoff) & ~fn.EXISTS(
        holder_fill.select(holder_fill.id).where(holder_fill.order == holder.id)
    )
    strategy_goes = ~fn.EXISTS(
        Trade.select(Trade.id).where(Trade.strategy == Strategy.id)
    ) & ~fn.EXISTS(holder.select(holder.id).where((holder.strategy == Strategy.id) & ~holder_goes))
    return [
        ("order", Order, order_goes, True),
        ("strategy", Strategy, strategy_goes, True),
        ("config", Config, None, True),
        ("position", Position, None, False),
    ]


def purge(
    db: Database,
    older_than_days: float,
    *,
    dry_run: bool = False,
    backup: bool = True,
    backup_path: str | None = None,
    actor: str | None = None,
) -> PurgeReport:
    """Remove the rows soft-deleted more than ``older_than_days`` days ago that nothing
    needs (see the module docstring); with ``dry_run`` only count them. A backup is
    taken first (``backup_path``, else beside the database) when there is something
    to remove, unless ``backup`` is False. ``actor`` names who purges in the audit log
    (default ``user@host:pid``)."""
    days = _days(older_than_days)
    cutoff = utcnow() - dt.timedelta(days=days)
    report = PurgeReport(describe(db), cutoff, dry_run)
    counted = _run(db, cutoff, remove=False)
    if dry_run or not any(removable for removable, _ in counted.values()):
        _fill(report, counted)
        report.backup_note = "none needed (nothing written)"
        return report
    if not backup:
        report.backup_note = "none taken (--no-backup)"
    elif backend_of(db) == "sqlite" and _in_memory(db):
        report.backup_note = "none: the database is in memory"
    else:
        from .backups import backup as take_backup

        report.backup_path = take_backup(db, backup_path).path
    with write_transaction(db):
        removed = _run(db, cutoff, remove=True, audit=AuditWriter(db, actor))
    _fill(report, removed)
    return report


def _days(value: float | str) -> float:
    try:
        days = float(value)
    except (TypeError, ValueError):
        raise ValidationError("older_than", f"{value!r} is not a number of days") from None
    if not days >= 0 or days == float("inf"):
        raise ValidationError("older_than", f"{value!r} must be a number of days, 0 or more")
    if days > MAX_DAYS:
        raise ValidationError(
            "older_than",
            f"{value!r} days is before any row was deleted; give at most {MAX_DAYS:,} (100 years)",
        )
    return days


def _in_memory(db: Database) -> bool:
    # connect("sqlite://") opens a memdb file: URI, which holds no file to back up.
    return sqlite_file_path(str(db.database)) is None


def _run(
    db: Database, cutoff: dt.datetime, remove: bool, audit: AuditWriter | None = None
) -> dict[str, tuple[int, int]]:
    """Per table: (rows that may go, old soft-deleted rows kept); with ``remove``,
    delete those that may go and write their ``audit`` rows (call it inside the write
    transaction)."""
    done = {}
    with translate_errors("purging soft-deleted rows" if remove else "counting soft-deleted rows"):
        for table, model, condition, may_go in _rules(cutoff):
            old = model.select().where(_old(model, cutoff)).bind(db).count()
            if not may_go:
                done[table] = (0, old)
                continue
            wanted = _old(model, cutoff) if condition is None else _old(model, cutoff) & condition
            if not remove:
                # tuples() rows, which the stubs still type as model instances
                ids = cast(
                    "list[int]",
                    [i for (i,) in model.select(model.id).where(wanted).bind(db).tuples()],
                )
                done[table] = (len(ids), old - len(ids))
                continue
            query = model.select().where(wanted).order_by(model.id).bind(db)
            if backend_of(db) == "postgres":
                query = query.for_update()
            rows = list(query)
            ids = [row.id for row in rows]
            for start in range(0, len(ids), _CHUNK):
                model.delete().where(model.id.in_(ids[start : start + _CHUNK])).execute(db)
            if audit is not None:
                audit.write(
                    [(TABLES[table], row.id, "purge", last_values(row_values(row))) for row in rows]
                )
            done[table] = (len(ids), old - len(ids))
    return done


def _fill(report: PurgeReport, counts: dict[str, tuple[int, int]]) -> None:
    for table, (removed, kept) in counts.items():
        report.removed[table] = removed
        report.kept[table] = kept


# -- command line ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``stocksbot-purge``."""
    parser = ArgumentParser(
        prog="stocksbot-purge",
        description="Remove for good the rows of a stocksbot store that were soft-deleted "
        "more than DAYS days ago and that nothing needs any more: orders no trade "
        "names, strategies no trade or order names, config rows. Positions are "
        "never removed (they are the replay of their trades), nor are trades. A "
        "backup is taken first (SQLite: a verified copy beside the file; "
        "PostgreSQL: the portable archive), then the rows are removed in one "
        "transaction, and the counts per table are printed.",
        epilog="Exit status: 0 done (or nothing to do); 2 it could not run (bad argument "
        "or URL, unreachable database, failed backup; the reason is on stderr and "
        "nothing was removed). Example: stocksbot-purge --older-than 90 --dry-run",
    )
    parser.add_argument(
        "--older-than",
        metavar="DAYS",
        required=True,
        type=_days_arg,
        help=f"remove rows soft-deleted more than DAYS days ago (0 to {MAX_DAYS:,}; "
        "a fraction is allowed, e.g. 0.5 for 12 hours)",
    )
    parser.add_argument("--url", metavar="URL", help=URL_HELP)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="count what would be removed and kept; write nothing, take no backup",
    )
    parser.add_argument(
        "--backup-to", metavar="PATH", help=f"where the backup goes ({BACKUP_PATH_HELP})"
    )
    parser.add_argument(
        "--no-backup",
        action="store_true",
        help="remove without taking a backup first (only if you have one)",
    )
    return parser


def _days_arg(text: str) -> float:
    try:
        return _days(text)
    except ValidationError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    """Run a purge from the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    url = database_url(args.url)
    try:
        db = connect(url, create=False)
        try:
            report = purge(
                db,
                args.older_than,
                dry_run=args.dry_run,
                backup=not args.no_backup,
                backup_path=args.backup_to,
            )
        finally:
            db.close()
    except (StorageError, PeeweeException, OSError) as e:
        message = str(e) if isinstance(e, StorageError) else first_line(e)
        print(
            f"stocksbot-purge: error: {scrub(message, url)}; nothing was removed", file=sys.stderr
        )
        return 2
    print(scrub(report.summary(), url))
    return 0


def run() -> None:
    """Console-script entry point: ``sys.exit(main())``."""
    sys.exit(main())


if __name__ == "__main__":
    run()


__all__ = ["PurgeReport", "main", "purge"]
