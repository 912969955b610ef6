"""Steps ``playhouse.migrate`` leaves to each backend, for migration files to call.

Generated migrations (:mod:`stocksbot_store.migration.render`) and hand-written ones
import these from here; files written before the migration code moved import them
from ``stocksbot_store.autogen``, which still re-exports them.
"""

from __future__ import annotations

from typing import Any

from peewee import Database, Field
from playhouse.migrate import SchemaMigrator

from ..backends import backend_of


def _is_postgres(db: Database) -> bool:
    return backend_of(db) == "postgres"


def fill_nulls(db: Database, table: str, column: str, field: Field, value: Any) -> None:
    """Set ``column`` to ``value`` (stored as ``field`` stores it) where it is NULL."""
    db.execute_sql(
        f"UPDATE {_quote(table)} SET {_quote(column)} = {db.param} WHERE {_quote(column)} IS NULL",
        [field.db_value(value)],
    )


def alter_type(
    migrator: SchemaMigrator, db: Database, table: str, column: str, field: Field
) -> None:
    """Change the type of ``column`` to that of ``field`` (a rebuild on SQLite)."""
    if _is_postgres(db):
        ctx = db.get_sql_context()
        type_sql, _ = ctx.sql(field.ddl_datatype(ctx)).query()
        migrator.migrate(
            migrator.alter_column_type(table, column, field, cast=f"{_quote(column)}::{type_sql}")
        )
    else:
        migrator.migrate(migrator.alter_column_type(table, column, field))


def drop_column(migrator: SchemaMigrator, db: Database, table: str, column: str) -> None:
    """Drop ``column`` with its indexes and foreign key.

    SQLite's own ``DROP COLUMN`` refuses a column that is indexed or a foreign key,
    so there the table is rebuilt without it (its other indexes are recreated).
    """
    if _is_postgres(db):
        migrator.migrate(migrator.drop_column(table, column))
        return
    indexed = any(column in index.columns for index in db.get_indexes(table))
    keyed = any(fk.column == column for fk in db.get_foreign_keys(table))
    migrator.migrate(migrator.drop_column(table, column, legacy=indexed or keyed))


def set_default(
    migrator: SchemaMigrator, db: Database, table: str, column: str, default_sql: str | None
) -> None:
    """Set the server default of ``column`` to the SQL literal ``default_sql`` (None drops)."""
    if default_sql is None:
        migrator.migrate(migrator.drop_column_default(table, column))
    elif _is_postgres(db):
        migrator.migrate(
            migrator.sql(
                f"ALTER TABLE {_quote(table)} ALTER COLUMN {_quote(column)} "
                f"SET DEFAULT {default_sql}"
            )
        )
    else:
        migrator.migrate(migrator.add_column_default(table, column, default_sql))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


__all__ = ["alter_type", "drop_column", "fill_nulls", "set_default"]
