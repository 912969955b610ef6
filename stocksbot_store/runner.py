"""The migration runner's old import path: it lives in :mod:`stocksbot_store.migration.runner`."""

from __future__ import annotations

from .migration.runner import (
    COMMAND,
    HISTORY_TABLE,
    LOCK_KEY,
    MigrationError,
    Runner,
    ensure_schema,
    migrations_directory,
    stamp_new_database,
)

__all__ = [
    "COMMAND",
    "HISTORY_TABLE",
    "LOCK_KEY",
    "MigrationError",
    "Runner",
    "ensure_schema",
    "migrations_directory",
    "stamp_new_database",
]
