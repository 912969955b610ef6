"""What kind of database a Peewee ``Database`` is, and how to name it in a message.

The lowest step above the driver: :func:`backend_of` (the SQL dialect),
:func:`describe` (the database without its password, for logs, errors and screens)
and :func:`prepare_database` (the column types of the store's custom fields), and
:func:`read_transaction` (one consistent snapshot, in each dialect's words). Every
module that holds a ``Database`` may use these; they change nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from peewee import Database, PostgresqlDatabase, SqliteDatabase

from .errors import ConfigurationError
from .fields import FIELD_TYPES


def backend_of(db: Database) -> str:
    """``"sqlite"`` or ``"postgres"``: which SQL dialect ``db`` speaks."""
    if isinstance(db, SqliteDatabase):
        return "sqlite"
    if isinstance(db, PostgresqlDatabase):
        return "postgres"
    raise ConfigurationError(
        f"{type(db).__name__} is not supported; use a sqlite:// or postgresql:// URL"
    )


def describe(db: Database) -> str:
    """A password-free description of ``db`` (its masked URL) for logs and screens."""
    return getattr(db, "stocksbot_url", None) or f"{backend_of(db)}:{db.database}"


def prepare_database(db: Database) -> Database:
    """Teach ``db`` the column types of the store's custom fields (idempotent).

    :func:`stocksbot_store.database.connect` does this; call it yourself only for a
    ``Database`` you built.
    """
    db._field_types.update(FIELD_TYPES[backend_of(db)])  # type: ignore[attr-defined]
    return db


@contextmanager
def read_transaction(db: Database) -> Iterator[None]:
    """One read transaction on this thread's connection of ``db``: every statement run
    inside sees the same committed state, and it never counts as a write.

    PostgreSQL: ``REPEATABLE READ, READ ONLY`` (one snapshot from the first statement).
    SQLite: a deferred ``BEGIN``, whose snapshot is fixed by the first read (in WAL
    mode writers go on meanwhile). It always ends with a rollback: there is nothing to
    commit, and a commit would tell the replica routing that this process wrote (its
    reads would then wait for a replica to replay past it, or go to the primary).
    With replicas, a transaction of ``db`` runs on the primary; to read a replica in
    one snapshot, open it on the ``replica.db`` of
    :func:`stocksbot_store.replicas.snapshot_replica`. Inside a transaction already,
    the reads simply join it.
    """
    if db.in_transaction():
        yield
        return
    # Entered by hand, not with ``with db.atomic()``, whose exit commits. PostgreSQL
    # takes the modes with the BEGIN (peewee sends ``BEGIN TRANSACTION ISOLATION LEVEL``
    # and the text given): one statement, not a BEGIN and then a SET.
    if isinstance(db, PostgresqlDatabase):
        db.begin("REPEATABLE READ, READ ONLY")
    else:
        db.begin()
    db.push_transaction(db.transaction())
    try:
        yield
    finally:
        db.pop_transaction()
        if not db.is_closed():
            db.rollback()
