"""What kind of database a Peewee ``Database`` is, and how to name it in a message.

The lowest step above the driver: :func:`backend_of` (the SQL dialect),
:func:`describe` (the database without its password, for logs, errors and screens)
and :func:`prepare_database` (the column types of the store's custom fields). Every
module that holds a ``Database`` may use these; they open and change nothing.
"""

from __future__ import annotations

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
