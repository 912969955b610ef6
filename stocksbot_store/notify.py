"""Change notification on PostgreSQL: a trigger that ``pg_notify``\\ s on commit.

Every statement that writes to a store table sends one notification on
:data:`CHANNEL` with the table's name as payload. PostgreSQL delivers
notifications only when (and if) the writing transaction commits, so a listener
(the dashboard) learns of committed changes without polling. Notifications sent
while nobody listens are lost: listeners keep a slow poll as well.

SQLite has no such thing; there ``PRAGMA data_version`` tells a reader whether
another connection committed.
"""

from __future__ import annotations

from peewee import Database

from .backends import backend_of

CHANNEL = "stocksbot_changes"
TABLES = ("order", "trade", "position", "strategy", "config")
_FUNCTION = "stocksbot_notify_change"


def install_notify_triggers(db: Database) -> None:
    """Create (or replace) the notify function and a trigger on every store table.

    Does nothing on SQLite.
    """
    if backend_of(db) != "postgres":
        return
    db.execute_sql(
        f"CREATE OR REPLACE FUNCTION {_FUNCTION}() RETURNS trigger AS $$ "
        f"BEGIN PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME); RETURN NULL; END; "
        "$$ LANGUAGE plpgsql"
    )
    for table in TABLES:
        db.execute_sql(f'DROP TRIGGER IF EXISTS "{table}_notify" ON "{table}"')
        db.execute_sql(
            f'CREATE TRIGGER "{table}_notify" AFTER INSERT OR UPDATE OR DELETE ON "{table}" '
            f"FOR EACH STATEMENT EXECUTE FUNCTION {_FUNCTION}()"
        )


def drop_notify_triggers(db: Database) -> None:
    """Remove the triggers and the function (for a downgrade). Nothing on SQLite."""
    if backend_of(db) != "postgres":
        return
    for table in TABLES:
        db.execute_sql(f'DROP TRIGGER IF EXISTS "{table}_notify" ON "{table}"')
    db.execute_sql(f"DROP FUNCTION IF EXISTS {_FUNCTION}()")
