"""``python -m stocksbot_store.migrate``: runs :mod:`stocksbot_store.migration.cli`.

The migration code lives in :mod:`stocksbot_store.migration`; this module keeps the
command's name and the names code written before that imported from here.
"""

from __future__ import annotations

from .migration.cli import main, run
from .migration.runner import (
    HISTORY_TABLE,
    MigrationError,
    Runner,
    ensure_schema,
    migrations_directory,
    stamp_new_database,
)

__all__ = [
    "HISTORY_TABLE",
    "MigrationError",
    "Runner",
    "ensure_schema",
    "main",
    "migrations_directory",
    "run",
    "stamp_new_database",
]


if __name__ == "__main__":
    run()
