"""What ``migrate upgrade`` and ``downgrade`` do before they touch the schema.

* On a SQLite file that holds tables, a backup is taken first
  (:func:`backup_before`, a page copy with SQLite's online backup API beside the
  database), so a migration that goes wrong can be undone by restoring it.
* A downgrade says what it would destroy: :func:`rows_dropped` runs the planned
  downgrades inside a transaction that is always rolled back and reports the
  tables that would disappear and the rows they hold now.
"""

from __future__ import annotations

import os

from peewee import Database

from ..backends import backend_of
from ..backups import backup, default_backup_path
from ..errors import MigrationError
from ..rows import count_rows
from ..urls import sqlite_file_path
from .runner import HISTORY_TABLE, Runner


def backup_before(db: Database) -> str | None:
    """Back up a SQLite file that holds tables; its path, or None when there was nothing
    to back up (PostgreSQL, a memory database, a file without tables). A ``file:`` URI
    names its file as a path does (:func:`~stocksbot_store.urls.sqlite_file_path`)."""
    if backend_of(db) != "sqlite":
        return None
    path = sqlite_file_path(str(db.database))
    if path is None or not os.path.exists(path):
        return None
    if not [t for t in db.get_tables() if t != HISTORY_TABLE]:
        return None
    return backup(db, default_backup_path(db), verify=False).path


def downgrade_plan(runner: Runner, target: str) -> list[str]:
    """The migrations a downgrade to ``target`` reverts, newest first."""
    done = set(runner.applied_names())
    applied = [n for n in runner.revisions() if n in done]
    if target.startswith("-") and target[1:].isdigit():
        return list(reversed(applied))[: int(target[1:])]
    keep = runner.resolve(target)
    if keep is not None and keep not in applied:
        raise MigrationError(f"{keep} is not applied; nothing to downgrade to")
    return list(reversed(applied[applied.index(keep) + 1 :] if keep else applied))


def rows_dropped(runner: Runner, target: str) -> dict[str, int]:
    """Tables a downgrade to ``target`` would drop that hold rows, and how many.

    The downgrades run in a transaction that is rolled back, so nothing changes."""
    db = runner.database
    plan = downgrade_plan(runner, target)
    if not plan:
        return {}
    before = {t: count_rows(db, t) for t in db.get_tables() if t != HISTORY_TABLE}
    migrations = {m.name: m for m in runner.migrations()}
    with db.atomic() as transaction:
        for name in plan:
            module = migrations[name].load()
            getattr(module, "downgrade", None) and module.downgrade(runner.migrator, db)
        after = set(db.get_tables())
        transaction.rollback()
    return {t: n for t, n in before.items() if t not in after and n}
