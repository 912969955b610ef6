"""Opening a database from a URL: :func:`connect` opens and configures, nothing more.

:func:`connect` never creates, checks or migrates a schema: that is a step above it,
:func:`stocksbot_store.store.open_store` (``stocksbot_store.connect``), which read-only
tools never take. The URL is chosen by :func:`~stocksbot_store.urls.database_url`
(the ``url`` argument, else ``DATABASE_URL``, else ``sqlite:///./stocksbot.db``). Any
scheme that ``playhouse.db_url`` knows works, pooled ones included
(``postgresql+pool://...?max_connections=20``).

SQLite gets, unless overridden by ``pragmas=``: WAL journal, foreign keys on, a
busy timeout of 30 s (writers queue instead of failing with "database is locked";
``?timeout=SECONDS`` in the URL or ``connect(timeout=)`` sets it) and
``synchronous=NORMAL`` (durable across process crashes; a power cut may lose the
last commits but never corrupts the file). A file the store creates is made
readable by its owner only (0600). ``sqlite:///:memory:`` is one database shared
by every thread of the process, kept alive while the returned object lives.

The database objects :func:`connect` returns are the playhouse classes with
:class:`~stocksbot_store.connection.ResilientMixin` in front: a connection the
server dropped is replaced on the next call, and a failure to connect is a
:class:`~stocksbot_store.errors.StorageError`. Passwords never show: see
:mod:`stocksbot_store.urls`.

The URL helpers and :func:`backend_of` / :func:`describe` / :func:`prepare_database`
live in :mod:`stocksbot_store.urls` and :mod:`stocksbot_store.backends`; they are
re-exported here for the modules that import them from this one.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import uuid
from typing import Any
from urllib.parse import quote, urlparse

from peewee import Database, SqliteDatabase
from playhouse import db_url

from .access import apply_access, take_access_options
from .backends import backend_of, describe, prepare_database
from .connection import resilient_class
from .errors import ConfigurationError, translate_path_errors
from .replicas import attach_replicas
from .urls import DEFAULT_URL, database_url, mask_url, scrub, sqlite_url_file_path, url_secrets

log = logging.getLogger("stocksbot_store")

#: Query parameters of a SQLite URL that are SQLite's own URI parameters
#: (https://www.sqlite.org/uri.html), passed on in the ``file:`` URI it opens.
SQLITE_URI_PARAMETERS = ("mode", "cache", "immutable", "nolock", "psow", "vfs", "modeof")
#: SQLite settings applied to every connection; ``connect(url, pragmas=...)`` overrides.
SQLITE_PRAGMAS: dict[str, Any] = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 30_000,
    "synchronous": "normal",
    "cache_size": -16_000,
}


def connect(url: str | None = None, *, create: bool = True, **options: Any) -> Database:
    """Open the database at ``url`` (see the module docstring for defaults).

    It only connects: no table is created or looked at, so an empty database opens
    as it is. ``stocksbot_store.connect`` (:func:`stocksbot_store.store.open_store`)
    is this plus the schema check and first-time creation.

    ``options`` go to the Peewee database class (``pragmas=``, ``max_connections=``,
    ``timeout=``...), except the store's own: ``slow_ms=``, ``read_only=``,
    ``replicas=``/``replica_url=`` and ``replica_max_lag=`` (see
    :mod:`stocksbot_store.access`). Raises :class:`ConfigurationError` for a URL or
    option it cannot use and :class:`DatabaseUnavailableError` for a server it cannot
    reach; a dropped connection is replaced on the next call (see
    :mod:`stocksbot_store.connection`).

    What it may change, for tools that must not write:

    * ``create=False``: a SQLite file that does not exist raises
      :class:`ConfigurationError` naming the path and the command that creates it,
      instead of being created empty.
    * ``read_only=True`` (implies ``create=False``): the database itself refuses
      writes: SQLite opens the file with ``mode=ro``, PostgreSQL sessions start
      with ``default_transaction_read_only``. For checks and reports.

    A SQLite URL may also say ``?mode=ro`` (or ``rw``, ``rwc``) itself.
    """
    if "migrate" in options:
        raise TypeError(
            "stocksbot_store.database.connect() only connects and takes no migrate=; "
            "use stocksbot_store.connect() (open_store) for the schema check"
        )
    url = database_url(url)
    create = create and not options.get("read_only")
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme.startswith("sqlite"):
        _refuse_folder(url)
        if not create:
            require_sqlite_file(url)
    try:
        access = take_access_options(url, options)
    except ValueError:  # the parser's words may quote part of a password
        raise ConfigurationError(
            f"bad database URL {mask_url(url)}: it cannot be parsed; percent-encode any "
            "/ ? # @ : [ ] or % in the password (e.g. %2F for /)"
        ) from None
    if scheme.startswith("sqlite"):
        db = _connect_sqlite(url, options, create=create)
    elif scheme.startswith("postgres"):
        db = _connect_postgres(url, options)
    else:
        raise ConfigurationError(
            f"unsupported database URL scheme {scheme!r} in {mask_url(url)}; "
            "use sqlite:///path/to/file.db or postgresql://user@host/dbname"
        )
    # Read by ResilientMixin's messages; peewee's Database has no such attributes.
    db.stocksbot_url = mask_url(url)  # type: ignore[attr-defined]
    db.stocksbot_secrets = url_secrets(url)  # type: ignore[attr-defined]
    configure_sql_echo()
    prepare_database(db)
    apply_access(db, url, access)
    if access.replicas:
        attach_replicas(
            db,
            access.replicas,
            max_lag=access.replica_max_lag,
            from_environment=access.replicas_from_environment,
            open_replica=_open_replica,
        )
    return db


def _open_replica(url: str, **options: Any) -> Database:
    """A standby's database: opened like any other, without replicas of its own."""
    return connect(url, replicas=(), **options)


def _connect_sqlite(url: str, options: dict[str, Any], *, create: bool) -> Database:
    pragmas = dict(SQLITE_PRAGMAS)
    chosen = options.pop("pragmas", None) or {}
    pragmas.update(chosen)
    try:
        params = db_url.parse(url)
    except ValueError as e:
        raise ConfigurationError(f"bad SQLite URL {mask_url(url)}: {e}") from None
    if "pragmas" in params:
        raise ConfigurationError(
            f"bad SQLite URL {mask_url(url)}: pragmas cannot be given in the URL; pass "
            "connect(url, pragmas={...})"
        )
    path = params.pop("database", "") or ":memory:"
    params.update(options)
    if "timeout" in params and "busy_timeout" not in chosen:
        pragmas["busy_timeout"] = _busy_timeout_ms(url, params["timeout"])
    # SQLite's own URI parameters (mode=ro...): they go into the file: URI it opens, be
    # the URL's database a plain path or already a file: URI (whose query the URL parser
    # split off), never to the driver as options.
    uri_query = {name: params.pop(name) for name in SQLITE_URI_PARAMETERS if name in params}
    mode = uri_query.get("mode")
    if path == ":memory:":
        # A plain in-memory connection is a separate empty database per thread;
        # the memdb VFS gives every connection of the process the same one.
        name = f"file:/stocksbot-{uuid.uuid4().hex}?vfs=memdb"
        pragmas.pop("journal_mode", None)
        keeper = sqlite3.connect(name, uri=True, check_same_thread=False)
        db = _build(url, name, pragmas=pragmas, uri=True, **params)
        db.stocksbot_memory_keeper = keeper  # type: ignore[attr-defined]
        return db
    if not path.startswith("file:"):
        if not os.path.exists(path):
            if not create or mode in ("ro", "rw"):
                require_sqlite_file(url)
            _create_private_file(path)
        if uri_query:
            path = f"file:{quote(os.path.abspath(path))}"
    if path.startswith("file:"):
        if uri_query:
            joiner = "&" if "?" in path else "?"
            path += joiner + "&".join(f"{k}={quote(str(v))}" for k, v in uri_query.items())
        params["uri"] = True
    if mode == "ro":
        pragmas.pop("journal_mode", None)  # stored in the file; setting it would write
    return _build(url, path, pragmas=pragmas, **params)


def _busy_timeout_ms(url: str, timeout: Any) -> int:
    """``timeout`` (seconds, from the URL's ``?timeout=`` or ``connect(timeout=)``) as
    the busy timeout in milliseconds: how long a write waits for another connection's
    write lock before it fails (the store's default is 30 s)."""
    try:
        seconds = float(timeout)
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 <= seconds < 86_400:
        raise ConfigurationError(
            f"bad SQLite URL {mask_url(url)}: timeout={timeout!r} is not a number of "
            "seconds from 0 to 86400 (how long a write waits for another writer)"
        )
    return int(seconds * 1000)


def require_sqlite_file(url: str) -> None:
    """Raise a ConfigurationError naming the path and the fix if the SQLite file of
    ``url`` is missing."""
    try:
        db_url.parse(url)
        path = sqlite_url_file_path(url)  # a file: URI's file too
    except ValueError:
        return  # _connect_sqlite says what is wrong with the URL
    if path is None or os.path.exists(path):  # in memory, or there
        return
    raise ConfigurationError(
        f"no SQLite database at {os.path.abspath(path)!r} (no such file): check the path, "
        "or create the "
        f"store with `python -m stocksbot_store.migrate upgrade --url {mask_url(url)}`"
    )


def _refuse_folder(url: str) -> None:
    """Raise a ConfigurationError naming the folder if the SQLite URL ``url`` names one
    (SQLite says only "disk I/O error" or "unable to open database file"). A file that
    is no database is refused as each connection opens
    (:func:`~stocksbot_store.connection.refuse_what_is_no_database`)."""
    try:
        path = sqlite_url_file_path(url)
    except ValueError:
        return  # _connect_sqlite says what is wrong with the URL
    if path is not None and os.path.isdir(path):
        raise ConfigurationError(
            f"{path!r} is a folder, not a SQLite database file: point the URL at the "
            f"database file (e.g. sqlite:///{os.path.join(path, 'stocksbot.db')})"
        )


def _create_private_file(path: str) -> None:
    """Create the SQLite file readable by its owner only; a path where it cannot be (no
    such folder, a file on the path, /proc) is a ConfigurationError naming the fix."""
    with translate_path_errors("the SQLite database", path, ConfigurationError):
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)


def _connect_postgres(url: str, options: dict[str, Any]) -> Database:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                "no PostgreSQL driver is installed: pip install 'stocksbot-store[postgres]'"
            ) from None
    else:
        options.setdefault("prefer_psycopg3", True)
    try:
        scheme = urlparse(url).scheme
        params = db_url.parse(url, unquote_password=True, unquote_user=True)
    except ValueError:
        # The parser's words may quote part of a password; say what to fix instead.
        raise ConfigurationError(
            f"bad PostgreSQL URL {mask_url(url)}: it cannot be parsed; write it as "
            "postgresql://user:password@host:port/dbname, with any / ? # @ : or % in the "
            "password percent-encoded (e.g. %2F for /)"
        ) from None
    database = params.pop("database", "")
    if not database:
        raise ConfigurationError(
            f"{mask_url(url)} names no database: use postgresql://user@host/dbname"
        )
    params.update(options)
    return _build(scheme + "://", database, **params)


def _build(url: str, database: str, **params: Any) -> Database:
    scheme = urlparse(url).scheme
    database_class = db_url.schemes.get(scheme)
    if database_class is None:
        raise ConfigurationError(f"unsupported database URL scheme {scheme!r}")
    try:
        return resilient_class(database_class)(database, **params)
    except (TypeError, ValueError) as e:
        raise ConfigurationError(f"bad connection option: {e}") from None


def configure_sql_echo() -> None:
    """Log every SQL statement (logger ``peewee``) when ``SQL_ECHO`` is true.

    Statements and their parameters are logged; the URL, and so the password,
    never is.
    """
    if os.environ.get("SQL_ECHO", "").strip().lower() not in ("1", "true", "yes", "on"):
        return
    logger = logging.getLogger("peewee")
    logger.setLevel(logging.DEBUG)
    if not any(isinstance(h, SqlEchoHandler) for h in logger.handlers):
        logger.addHandler(SqlEchoHandler())


class SqlEchoHandler(logging.StreamHandler):
    """Writes echoed SQL to whatever ``sys.stderr`` is at the time of each record, so a
    program (or a test runner) that swaps stderr does not leave it writing to a closed one."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(asctime)s SQL %(message)s"))

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """The stream is always the current ``sys.stderr``; nothing to set."""


def write_transaction(db: Database) -> Any:
    """A transaction for read-modify-write work.

    On SQLite it begins ``IMMEDIATE``: the write lock is taken up front, so a
    second writer waits on the busy timeout rather than failing with "database is
    locked" when it tries to upgrade a read lock. Nested, it is a savepoint.
    """
    if isinstance(db, SqliteDatabase) and db.transaction_depth() == 0:
        return db.atomic("IMMEDIATE")
    return db.atomic()


__all__ = [
    "DEFAULT_URL",
    "SQLITE_PRAGMAS",
    "backend_of",
    "configure_sql_echo",
    "connect",
    "database_url",
    "describe",
    "mask_url",
    "prepare_database",
    "require_sqlite_file",
    "scrub",
    "url_secrets",
    "write_transaction",
]
