"""Opening the store: a database with the store's schema, created the first time.

:func:`open_store` (exported as ``stocksbot_store.connect``, the entry point a bot
calls) is :func:`stocksbot_store.database.connect` plus the schema step, which sits
above the migration runner and so cannot live in the module that only connects:

* a brand-new empty database is brought to the latest schema, under the migration
  lock, so processes starting together agree
  (:func:`~stocksbot_store.migration.runner.ensure_schema`);
* one that is behind, or was migrated by a newer version of the package, raises
  :class:`~stocksbot_store.errors.SchemaError` naming the migrate command.

Read-only tools (``stocksbot-check``, ``stocksbot-stats``, reports, the dashboard's
reads) open with ``read_only=True`` or ``create=False``: they may be told that a
database is empty or behind, and never give it a schema.

The process-wide databases live here too (:func:`default_database`, what
:func:`get_db` yields and ``init_db()`` initialises): they are stores, so they need
the schema step. :data:`_DEFAULT_DATABASES` is the only process-wide state.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from peewee import Database

from .audit import install_append_only_trigger
from .backends import describe, prepare_database
from .database import connect
from .errors import translate_errors
from .migration.runner import ensure_schema, stamp_new_database
from .models import MODELS
from .notify import install_notify_triggers
from .urls import database_url, sqlite_url_file_path

_DEFAULT_DATABASES: dict[str, Database] = {}
_DEFAULT_LOCK = threading.Lock()


def open_store(
    url: str | None = None, *, migrate: bool = True, create: bool = True, **options: Any
) -> Database:
    """Open the store at ``url``: connect, then check the schema, creating it if the
    database is brand new.

    ``url`` and ``options`` are those of :func:`stocksbot_store.database.connect`
    (``pragmas=``, ``slow_ms=``, ``read_only=``, ``replicas=``...). Then:

    * a brand-new empty database is brought to the latest schema (under the
      migration lock); one that is behind or newer raises :class:`SchemaError`
      naming the migrate command. On a database at head this costs one query;
    * ``create=False``: nothing is created: a SQLite file that does not exist
      raises :class:`ConfigurationError` naming the path, and an empty database
      raises :class:`SchemaError` naming the command that creates the store.
      ``read_only=True`` implies it;
    * ``migrate=False`` skips the schema step: the same as
      :func:`stocksbot_store.database.connect`.

    ``open_store()`` with no URL and no option is the process's default database,
    :func:`default_database`: the object ``init_db()`` initialises and :func:`get_db`
    yields, so a test that sets ``DATABASE_URL=sqlite:///:memory:`` and calls
    ``init_db()`` sees the same tables through both. Give a URL for a database object
    of your own.
    """
    if url is None and migrate and create and not options:
        return default_database()
    db = connect(url, create=create, **options)
    if migrate:
        check_schema(db, create=create and not options.get("read_only"))
    return db


def check_schema(db: Database, *, create: bool = True) -> None:
    """The schema step of :func:`open_store`, for a database opened already (the
    dashboard opens at once and looks at the schema later, on a worker thread).

    With ``create=True`` a brand-new empty database gets the latest schema; with
    ``create=False`` it raises :class:`SchemaError` and nothing is written. Either way
    a database that is behind or newer raises :class:`SchemaError`, and a driver
    error is a :class:`StorageError`.
    """
    with translate_errors(f"checking the schema of {describe(db)}"):
        ensure_schema(db, create=create)


def init_db(db: Database | None = None) -> Database:
    """Create every table and index that is missing (for tests and demos).

    Without an argument (the old module's ``init_db()``) it works on the process's
    default database, :func:`default_database` (``DATABASE_URL``), the very object
    :func:`get_db` yields: ``DATABASE_URL=sqlite:///:memory:``, ``init_db()`` and a
    FastAPI ``TestClient`` with ``Depends(get_db)`` see the same tables from any
    thread. Production databases are created and upgraded with
    ``python -m stocksbot_store.migrate upgrade``; both give the same schema.
    """
    if db is None:
        db = default_database()
    prepare_database(db)
    with db.atomic(), db.bind_ctx(MODELS):
        db.create_tables(MODELS, safe=True)
        install_notify_triggers(db)
        install_append_only_trigger(db)
        stamp_new_database(db)
    return db


def default_database(url: str | None = None) -> Database:
    """The process-wide store for ``url`` (see :func:`~stocksbot_store.urls.database_url`),
    opened once with :func:`open_store`: what :func:`get_db` yields and ``init_db()``
    initialises. The same URL gives the same object (for ``sqlite:///:memory:``, the
    same in-memory database)."""
    url = _absolute_sqlite_url(database_url(url))
    with _DEFAULT_LOCK:
        db = _DEFAULT_DATABASES.get(url)
        if db is None:
            db = _DEFAULT_DATABASES[url] = open_store(url)
        return db


def _absolute_sqlite_url(url: str) -> str:
    """``url`` with a relative SQLite path made absolute: the default database stays
    the file it was opened on after the process changes its working directory. A
    ``file:`` URI names its file as a path does, and keeps its query."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    name, sep, query = url[len(prefix) :].partition("?")
    path = sqlite_url_file_path(url)
    if path is None or name == path:
        return url
    if name.startswith("file:"):
        return f"{prefix}file:{quote(path)}{sep}{query}"
    return f"{prefix}{path}{sep}{query}"


def get_db() -> Iterator[Database]:
    """FastAPI dependency: ``def endpoint(db=Depends(get_db))``.

    Yields the process-wide database, :func:`default_database` (the one ``init_db()``
    with no argument initialises). It opens no connection itself: Peewee
    connects whichever thread runs the endpoint on its first query, so it does
    not matter that FastAPI may run this generator and the endpoint on different
    threads. Afterwards it closes the connection of the thread it runs on (a
    pooled connection goes back to the pool).
    """
    db = default_database()
    try:
        yield db
    finally:
        if not db.is_closed():
            db.close()


def close_default_databases() -> None:
    """Close and forget the databases :func:`get_db` handed out (at app shutdown)."""
    with _DEFAULT_LOCK:
        for db in _DEFAULT_DATABASES.values():
            if hasattr(db, "close_all"):
                db.close_all()
            elif not db.is_closed():
                db.close()
        _DEFAULT_DATABASES.clear()


__all__ = [
    "check_schema",
    "close_default_databases",
    "default_database",
    "get_db",
    "init_db",
    "open_store",
]
