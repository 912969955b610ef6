"""Moving a store between databases: SQLite to PostgreSQL and back.

:func:`convert` reads the source in one snapshot (the bot may keep writing to it)
and writes every table, ids kept, into an empty target with
:func:`stocksbot_store.transfer.load_store`, which verifies the copy before it
commits: row counts and the sha256 of every table's canonical rows equal on both
sides, and the ledger check passes on the target. PostgreSQL sequences are set
past the highest id, so the bot goes on from where it was.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from peewee import Database

from .backends import read_transaction
from .database import connect, describe
from .errors import SchemaError
from .migration.runner import Runner
from .models import MODELS
from .rows import Progress, Table, canonical_batches, count_rows, store_tables
from .transfer import CopyReport, load_store


class DatabaseSource:
    """The rows of a live database, read inside the caller's :func:`read_transaction`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.description = describe(db)
        present = set(db.get_tables())
        missing = sorted(m._meta.table_name for m in MODELS if m._meta.table_name not in present)
        if missing:
            raise SchemaError(
                f"{self.description} has no {', '.join(missing)} table(s): it "
                "is not a stocksbot store (or was never set up); nothing to copy"
            )
        self._tables = {t.name: t for t in store_tables(db) if t.name in present}
        self.history = Runner(db).applied_names()

    def tables(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(name, table.columns) for name, table in self._tables.items()]

    def count(self, table: str) -> int:
        return count_rows(self.db, table)

    def batches(self, table: Table) -> Iterator[list[Sequence[Any]]]:
        return canonical_batches(self.db, self._tables[table.name])


def copy_database(
    source: Database, to_url: str | None, progress: Progress | None = None, check: bool = True
) -> CopyReport:
    """Copy the open database ``source`` into the empty database at ``to_url`` (None:
    ``$DATABASE_URL``), verified."""
    with read_transaction(source):
        return load_store(to_url, DatabaseSource(source), progress, check)


def convert(from_url: str, to_url: str, progress: Progress | None = None) -> CopyReport:
    """Copy the store at ``from_url`` into the empty (or new) database at ``to_url``.

    Every table, ids kept; verified before it commits (see the module docstring).
    Raises :class:`~stocksbot_store.errors.StorageError` subclasses naming the
    problem (a target with rows, a table that differs); nothing is kept then.
    """
    source = connect(from_url)
    try:
        return copy_database(source, to_url, progress)
    finally:
        source.close()
