"""Writing a whole store into an empty database, verified before it is kept.

Restore, import and convert all end here (:func:`load_store`): the rows of a
:class:`RowSource` (an archive, another database) go into the target in one
transaction, table by table in dependency order, and before that transaction
commits the copy is verified: each table's row count and the sha256 of its
canonical rows read back from the target equal what the source gave, and the
ledger check passes on the target. Anything that fails rolls everything back, so
a refused copy leaves the target as it was (a SQLite file it created is removed).

The target is brought to the source's schema revision first; after the copy it
is migrated to head, so an archive from an older version comes in upgraded. A
source from a newer version (a revision this package does not know) is refused.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from peewee import Database
from playhouse import migrations as pw_migrations

from .audit import AuditWriter
from .check import LedgerReport, check_ledger
from .database import backend_of, connect, database_url, describe, write_transaction
from .errors import SchemaError, StorageError
from .migration.runner import COMMAND, HISTORY_TABLE, Runner, migrations_directory
from .models import AuditLog
from .rows import (
    Progress,
    Table,
    VerificationError,
    create_missing_tables,
    digest,
    encode_rows,
    require_empty,
    restrict,
    set_sequences,
    store_tables,
)
from .urls import sqlite_url_file_path


class RowSource(Protocol):
    """Where the rows of a copy come from."""

    #: What it is, for messages (no password).
    description: str
    #: Revisions applied to the source, in order.
    history: list[str]

    def tables(self) -> list[tuple[str, tuple[str, ...]]]:
        """Each table the source holds and its columns."""

    def count(self, table: str) -> int:
        """How many rows ``table`` holds."""

    def batches(self, table: Table) -> Iterator[list[Sequence[Any]]]:
        """The canonical rows of ``table`` (as the target describes it, restricted to the
        source's columns) in id order, a batch at a time."""


@dataclass
class CopyReport:
    """What a verified copy wrote."""

    target: str
    rows: dict[str, int] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    ledger: LedgerReport | None = None
    #: Migrations applied after the copy (an archive from an older schema).
    upgraded: list[str] = field(default_factory=list)
    #: Seconds spent writing rows, and verifying them (checksums read back, ledger check).
    copy_seconds: float = 0.0
    verify_seconds: float = 0.0

    def summary(self) -> str:
        """Row counts and the verification, for people."""
        counts = ", ".join(f"{name} {n:,}" for name, n in self.rows.items())
        lines = [
            f"rows: {counts}",
            "verified: row counts and sha256 of every table's rows match the source",
        ]
        if self.ledger is not None:
            lines.append(self.ledger.summary())
        if self.upgraded:
            lines.append(f"migrated after the copy: {', '.join(self.upgraded)}")
        return "\n".join(lines)


def refuse_newer(history: list[str], what: str) -> None:
    """Refuse a source whose schema has revisions this package does not know."""
    known = set(known_revisions())
    unknown = [name for name in history if name not in known]
    if unknown:
        raise SchemaError(
            f"{what} is at schema revision {unknown[-1]}, newer than this version of "
            f"stocksbot-store knows ({max(known, default='none')}); nothing was written: "
            "upgrade stocksbot-store to read it"
        )


def known_revisions() -> list[str]:
    """The migration files' names (as the runner lists them), without a database."""
    return [m.name for m in pw_migrations.Migration.load_directory(migrations_directory())]


def load_store(
    url: str | None, source: RowSource, progress: Progress | None = None, check: bool = True
) -> CopyReport:
    """Copy every table of ``source`` into the empty database at ``url``, verified.

    Raises :class:`SchemaError` for a source newer than this package,
    :class:`StorageError` for a target that holds rows, and
    :class:`VerificationError` when the copy differs from the source or fails the
    ledger check; in every case nothing is kept.
    """
    refuse_newer(source.history, source.description)
    url = database_url(url)
    path = sqlite_url_file_path(url)  # a file this copy creates is removed if refused
    created = path is not None and not os.path.exists(path)
    db = connect(url)
    try:
        report = _load(db, source, progress, check)
    except BaseException:
        db.close()
        if created and path is not None:
            for suffix in ("", "-wal", "-shm", "-journal"):
                if os.path.exists(path + suffix):
                    os.remove(path + suffix)
        raise
    db.close()
    return report


def _load(db: Database, source: RowSource, progress: Progress | None, check: bool) -> CopyReport:
    report = CopyReport(describe(db))
    runner = Runner(db)
    _prepare_target(db, runner, source)
    # A source from an older schema lacks what later migrations add (the kept P&L
    # figures): the ledger check can only judge the copy once it is at head.
    behind = bool(runner.pending())
    targets = {t.name: t for t in store_tables(db)}
    offered = dict(source.tables())
    for name in offered:
        if name not in targets:
            raise StorageError(
                f"{source.description} holds a table {name!r} that is not part "
                "of a stocksbot store; nothing was written"
            )
    with write_transaction(db):
        create_missing_tables(db, offered)
        for name, table in targets.items():
            if name not in offered:
                continue
            columns = offered[name]
            extra = [c for c in columns if c not in table.columns]
            if extra:
                raise StorageError(
                    f"{source.description}: table {name} has column(s) "
                    f"{', '.join(extra)} that the {runner.current()} schema "
                    "lacks; nothing was written"
                )
            _copy_table(db, source, restrict(table, columns), report, progress)
        set_sequences(db, targets.values())
        if check and not behind:
            _check_copy(db, report)
        if not behind:
            _record_import(db, source)
    if behind:
        report.upgraded = runner.upgrade("head")
        if check:
            try:
                _check_copy(db, report)
            except VerificationError:
                _remove_copy(db, targets.values())
                raise
        with write_transaction(db):
            _record_import(db, source)
    return report


def _record_import(db: Database, source: RowSource) -> None:
    """The audit log's summary rows of the copy, after the source's own audit rows (see
    :mod:`stocksbot_store.audit`): one per table, naming the source."""
    AuditWriter(db).summaries("import", source=source.description)


def _check_copy(db: Database, report: CopyReport) -> None:
    """Run the ledger check on the copy; raise :class:`VerificationError` if it fails."""
    started = time.perf_counter()
    report.ledger = check_ledger(db)
    report.verify_seconds += time.perf_counter() - started
    if not report.ledger.ok:
        raise VerificationError(
            f"the copy in {report.target} fails the ledger check, so it was not kept "
            f"(the source's own books disagree with its trades):\n"
            f"{report.ledger.format()[:4000]}"
        )


def _remove_copy(db: Database, tables: Iterable[Table]) -> None:
    """Delete the rows a copy wrote (children first), leaving the migrated, empty schema:
    a copy migrated after it was written and then refused is not kept either."""
    present = set(db.get_tables())
    with write_transaction(db):
        for table in reversed(list(tables)):
            if table.name not in present or table.name == HISTORY_TABLE:
                continue
            if table.name == AuditLog._meta.table_name and backend_of(db) == "postgres":
                # Its trigger refuses DELETE: the copy's audit rows go with the table's
                # whole content, as the rest of the copy does.
                db.execute_sql(f'TRUNCATE "{table.name}"')
            else:
                db.execute_sql(f'DELETE FROM "{table.name}"')


def _prepare_target(db: Database, runner: Runner, source: RowSource) -> None:
    """Bring a new target to the source's revision; accept an existing one only empty and
    at the same revision."""
    tables = [t for t in db.get_tables() if t != HISTORY_TABLE]
    if not tables:
        if not source.history:
            raise SchemaError(
                f"{source.description} records no schema revision: it is not "
                "a stocksbot store copy; nothing was written"
            )
        runner.upgrade(source.history[-1])
        return
    require_empty(db)
    applied = runner.applied_names()
    if applied != source.history:
        raise SchemaError(
            f"{describe(db)} is at schema revision {applied[-1] if applied else 'base'} and "
            f"{source.description} at {source.history[-1] if source.history else 'base'}; "
            f"nothing was written: copy into a new empty database (it is brought to the "
            f"copy's revision, then to head), or run `{COMMAND} upgrade` on the older side"
        )


def _copy_table(
    db: Database, source: RowSource, table: Table, report: CopyReport, progress: Progress | None
) -> None:
    from .rows import write_rows

    total = source.count(table.name)
    sha, seen = hashlib.sha256(), [0]

    def passing() -> Iterator[list[Sequence[Any]]]:
        for rows in source.batches(table):
            sha.update(encode_rows(rows))
            seen[0] += len(rows)
            if progress is not None:
                progress(table.name, seen[0], total)
            yield rows

    started = time.perf_counter()
    if table.name == HISTORY_TABLE:
        db.execute_sql(f'DELETE FROM "{HISTORY_TABLE}"')  # the source's history replaces it
    write_rows(db, table, table.columns, passing())
    copied = time.perf_counter()
    count, written = digest(db, table)
    report.copy_seconds += copied - started
    report.verify_seconds += time.perf_counter() - copied
    if count != seen[0] or written != sha.hexdigest():
        raise VerificationError(
            f"table {table.name}: the copy in {describe(db)} holds {count:,} rows "
            f"(sha256 {written[:12]}...), the source gave {seen[0]:,} "
            f"(sha256 {sha.hexdigest()[:12]}...); nothing was kept"
        )
    report.rows[table.name] = count
    report.digests[table.name] = written
