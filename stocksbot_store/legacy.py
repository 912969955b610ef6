"""Recognising a database by its tables: this store's, the old storage module's, or neither.

The old SQLAlchemy storage module wrote the tables ``positions``, ``orders``,
``trades``, ``strategies`` and ``config``, with alembic's ``alembic_version`` holding
revision :data:`OLD_REVISION`. Such a database must be adopted
(``python -m stocksbot_store.migrate adopt``, see :mod:`stocksbot_store.adopt`)
before the store can use it: creating this store's tables beside the old ones would
hide the history, and stamping it would record a schema it does not have.
:func:`refuse_legacy` is what ``stocksbot_store.connect()``, ``upgrade`` and ``stamp`` call.
"""

from __future__ import annotations

from peewee import Database

from .backends import describe
from .errors import SchemaError
from .models import MODELS

#: The old module's tables, as its SQLAlchemy models named them.
OLD_TABLES = ("positions", "orders", "trades", "strategies", "config")
#: The alembic revision of the old module's schema that ``adopt`` converts.
OLD_REVISION = "bff7b7883242"
ALEMBIC_TABLE = "alembic_version"
#: Tables ``adopt`` adds: the kept report (see :mod:`stocksbot_store.adopt`).
REPORT_TABLES = ("adoption_report", "adoption_change")
ADOPT_COMMAND = "python -m stocksbot_store.migrate adopt"

#: Tables this store creates (its models, the migration history, the adoption report).
STORE_TABLES = frozenset(
    {m._meta.table_name for m in MODELS} | {"schema_migration"} | set(REPORT_TABLES)
)
#: Names only the old module uses (``config`` is shared by both).
_OLD_ONLY = frozenset(OLD_TABLES) - STORE_TABLES | {ALEMBIC_TABLE}


def is_legacy(tables: set[str] | list[str]) -> bool:
    """Whether ``tables`` include any table that only the old storage module creates."""
    return bool(_OLD_ONLY & set(tables))


def legacy_message(db: Database) -> str:
    """Why a database of the old module cannot be used as it is, and the command that
    converts it."""
    return (
        f"{describe(db)} was written by the old SQLAlchemy storage module (tables "
        f"{', '.join(OLD_TABLES)}); this store cannot use it as it is. Convert it in "
        f"place, keeping every row, with `{ADOPT_COMMAND}` (it makes a backup first; "
        "add --dry-run to see the report without writing)"
    )


def refuse_legacy(db: Database, tables: list[str] | None = None) -> None:
    """Raise :class:`SchemaError` naming ``adopt`` if ``db`` holds the old module's tables."""
    if is_legacy(db.get_tables() if tables is None else tables):
        raise SchemaError(legacy_message(db))


def refuse_unversioned(db: Database, tables: list[str]) -> None:
    """Raise the right :class:`SchemaError` for a database that has ``tables`` but no
    migration history: adopt it (the old module's), stamp it (this store's own tables),
    or neither (someone else's tables: advice to stamp would record a schema it lacks)."""
    refuse_legacy(db, tables)
    foreign = sorted(set(tables) - STORE_TABLES)
    if foreign:
        raise SchemaError(
            f"{describe(db)} holds tables that are neither this store's nor the old "
            f"storage module's ({', '.join(foreign[:8])}{', ...' if len(foreign) > 8 else ''})"
            "; point DATABASE_URL at an empty database or at a stocksbot store"
        )
    raise SchemaError(
        f"{describe(db)} has tables but no migration history; if they hold the current "
        "schema, record that with `python -m stocksbot_store.migrate stamp head`"
    )
