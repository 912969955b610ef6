"""Opening a database from a URL: ``connect``, ``init_db`` and ``get_db``.

Configuration is a URL, read in one place (:func:`database_url`): the ``url``
argument, else ``DATABASE_URL``, else :data:`DEFAULT_URL`. Any scheme that
``playhouse.db_url`` knows works, pooled ones included
(``postgresql+pool://...?max_connections=20``).

SQLite gets, unless overridden by ``pragmas=``: WAL journal, foreign keys on, a
busy timeout of 30 s (writers queue instead of failing with "database is locked")
and ``synchronous=NORMAL`` (durable across process crashes; a power cut may lose
the last commits but never corrupts the file). A file the store creates is made
readable by its owner only (0600). ``sqlite:///:memory:`` is one database shared
by every thread of the process, kept alive while the returned object lives.

The database objects :func:`connect` returns are the playhouse classes with
:class:`~stocksbot_store.connection.ResilientMixin` in front: a connection the
server dropped is replaced on the next call, and a failure to connect is a
:class:`~stocksbot_store.errors.StorageError`. :func:`mask_url` and :func:`scrub`
keep passwords out of everything shown, whatever the URL's shape.

The only process-wide state is :data:`_DEFAULT_DATABASES`, the databases that
:func:`get_db` hands out, one per URL.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote, urlparse

from peewee import Database, PostgresqlDatabase, SqliteDatabase
from playhouse import db_url

from .access import apply_access, take_access_options
from .connection import resilient_class
from .errors import ConfigurationError, translate_errors
from .fields import FIELD_TYPES
from .models import MODELS

log = logging.getLogger("stocksbot_store")

DEFAULT_URL = "sqlite:///./stocksbot.db"

#: SQLite settings applied to every connection; ``connect(url, pragmas=...)`` overrides.
SQLITE_PRAGMAS: dict[str, Any] = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 30_000,
    "synchronous": "normal",
    "cache_size": -16_000,
}

_DEFAULT_DATABASES: dict[str, Database] = {}
_DEFAULT_LOCK = threading.Lock()


def database_url(url: str | None = None) -> str:
    """The URL to use: ``url``, else ``$DATABASE_URL``, else :data:`DEFAULT_URL`."""
    return url or os.environ.get("DATABASE_URL") or DEFAULT_URL


#: Query parameters that hold a secret (compared lower-cased, after percent-decoding).
_SECRET_KEYS = ("password", "passwd", "sslpassword", "pass", "pwd", "secret", "token")


def mask_url(url: str) -> str:
    """``url`` with every password replaced by ``***``, safe to log or show.

    It does not trust the URL to be well formed: the password of a ``user:pass@``
    form is everything between the first ``:`` of the user part and the last ``@``
    (so an unencoded ``#``, ``/``, ``?``, ``@`` or ``:`` in it stays hidden), and
    the value of every query parameter whose name holds ``pass``, ``pwd``,
    ``secret`` or ``token`` (in any case, percent-encoded or not) is masked up to
    the next ``&``. A URL without ``scheme://`` is shown only if it holds no ``@``
    and no such word.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        lowered = unquote(url).lower()
        if "@" in url or any(key in lowered for key in _SECRET_KEYS):
            return "<database URL hidden: it cannot be parsed>"
        return url
    userinfo, at, after = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.split(':', 1)[0]}:***@{after}"
    head, question, query = rest.partition("?")
    if not question:
        return f"{scheme}://{rest}"
    pairs = []
    for pair in query.split("&"):
        key, equals, _ = pair.partition("=")
        if equals and any(word in unquote(key).lower() for word in _SECRET_KEYS):
            pair = f"{key}=***"
        pairs.append(pair)
    return f"{scheme}://{head}?{'&'.join(pairs)}"


def url_secrets(url: str) -> tuple[str, ...]:
    """The password text of ``url`` in every form a message could show it (as written,
    percent-decoded, and its pieces between unencoded delimiters), longest first."""
    found: set[str] = set()
    _, _, rest = url.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    if at and ":" in userinfo:
        found.add(userinfo.split(":", 1)[1])
    for pair in rest.partition("?")[2].split("&"):
        key, equals, value = pair.partition("=")
        if equals and any(word in unquote(key).lower() for word in _SECRET_KEYS):
            found.add(value)
    pieces = set()
    for secret in found:
        for form in (secret, unquote(secret)):
            pieces.add(form)
            pieces.update(p for p in _split_delimiters(form) if len(p) >= 4)
    return tuple(sorted((p for p in pieces if p), key=len, reverse=True))


def _split_delimiters(text: str) -> list[str]:
    for delimiter in "/?#@:&":
        text = text.replace(delimiter, "\0")
    return text.split("\0")


def scrub(text: str, url: str | None) -> str:
    """``text`` with the password of ``url`` (in any of its forms) replaced by ``***``."""
    if url:
        for secret in url_secrets(url):
            text = text.replace(secret, "***")
    return text


def backend_of(db: Database) -> str:
    """``"sqlite"`` or ``"postgres"``: which SQL dialect ``db`` speaks."""
    if isinstance(db, SqliteDatabase):
        return "sqlite"
    if isinstance(db, PostgresqlDatabase):
        return "postgres"
    raise ConfigurationError(
        f"{type(db).__name__} is not supported; use a sqlite:// or postgresql:// URL")


def describe(db: Database) -> str:
    """A password-free description of ``db`` (its masked URL) for logs and screens."""
    return getattr(db, "stocksbot_url", None) or f"{backend_of(db)}:{db.database}"


def prepare_database(db: Database) -> Database:
    """Teach ``db`` the column types of the store's custom fields (idempotent).

    :func:`connect` does this; call it yourself only for a ``Database`` you built.
    """
    db._field_types.update(FIELD_TYPES[backend_of(db)])  # type: ignore[attr-defined]
    return db


def connect(url: str | None = None, *, migrate: bool = True, create: bool = True,
            **options: Any) -> Database:
    """Open the database at ``url`` (see the module docstring for defaults).

    ``options`` go to the Peewee database class (``pragmas=``, ``max_connections=``,
    ``timeout=``...), except the store's own: ``slow_ms=``, ``read_only=``,
    ``replicas=``/``replica_url=`` and ``replica_max_lag=`` (see
    :mod:`stocksbot_store.access`). Raises :class:`ConfigurationError` for a URL or
    option it cannot use and :class:`DatabaseUnavailableError` for a server it cannot
    reach; a dropped connection is replaced on the next call (see
    :mod:`stocksbot_store.connection`).

    What it may change, for tools that must not write:

    * ``migrate=True`` (default): a brand-new empty database is brought to the latest
      schema (under the migration lock, so processes starting together agree); one
      that is behind or newer raises :class:`SchemaError`. ``migrate=False`` skips
      the schema check and creation altogether.
    * ``create=False``: never create anything: a SQLite file that does not exist
      raises :class:`ConfigurationError` naming the path and the command that
      creates it, and an empty database raises :class:`SchemaError` instead of
      being given a schema.
    * ``read_only=True`` (implies ``create=False``): the database itself refuses
      writes: SQLite opens the file with ``mode=ro``, PostgreSQL sessions start
      with ``default_transaction_read_only``. For checks and reports.

    A SQLite URL may also say ``?mode=ro`` (or ``rw``, ``rwc``) itself.

    ``connect()`` with no URL and no option is the process's default database,
    :func:`default_database`: the object ``init_db()`` initialises and :func:`get_db`
    yields, so a test that sets ``DATABASE_URL=sqlite:///:memory:`` and calls
    ``init_db()`` sees the same tables through both. Give a URL for a database object
    of your own.
    """
    if url is None and migrate and create and not options:
        return default_database()
    url = database_url(url)
    create = create and not options.get("read_only")
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme.startswith("sqlite") and not create:
        require_sqlite_file(url)
    try:
        access = take_access_options(url, options)
    except ValueError:  # the parser's words may quote part of a password
        raise ConfigurationError(
            f"bad database URL {mask_url(url)}: it cannot be parsed; percent-encode any "
            "/ ? # @ : [ ] or % in the password (e.g. %2F for /)") from None
    if scheme.startswith("sqlite"):
        db = _connect_sqlite(url, options, create=create)
    elif scheme.startswith("postgres"):
        db = _connect_postgres(url, options)
    else:
        raise ConfigurationError(
            f"unsupported database URL scheme {scheme!r} in {mask_url(url)}; "
            "use sqlite:///path/to/file.db or postgresql://user@host/dbname")
    # Read by ResilientMixin's messages; peewee's Database has no such attributes.
    db.stocksbot_url = mask_url(url)  # type: ignore[attr-defined]
    db.stocksbot_secrets = url_secrets(url)  # type: ignore[attr-defined]
    configure_sql_echo()
    prepare_database(db)
    apply_access(db, url, access)
    if migrate:
        from .runner import ensure_schema

        with translate_errors(f"checking the schema of {mask_url(url)}"):
            ensure_schema(db, create=create)
    return db


def _connect_sqlite(url: str, options: dict[str, Any], *, create: bool) -> Database:
    pragmas = dict(SQLITE_PRAGMAS)
    pragmas.update(options.pop("pragmas", None) or {})
    try:
        params = db_url.parse(url)
    except ValueError as e:
        raise ConfigurationError(f"bad SQLite URL {mask_url(url)}: {e}") from None
    path = params.pop("database", "") or ":memory:"
    params.update(options)
    mode = params.pop("mode", None)
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
        if mode is not None:
            path = f"file:{quote(os.path.abspath(path))}?mode={quote(str(mode))}"
            params["uri"] = True
    if mode == "ro":
        pragmas.pop("journal_mode", None)  # stored in the file; setting it would write
    return _build(url, path, pragmas=pragmas, **params)


def require_sqlite_file(url: str) -> None:
    """Raise a ConfigurationError naming the path and the fix if the SQLite file of
    ``url`` is missing."""
    try:
        path = db_url.parse(url).get("database") or ":memory:"
    except ValueError:
        return  # _connect_sqlite says what is wrong with the URL
    if path == ":memory:" or path.startswith("file:") or os.path.exists(path):
        return
    raise ConfigurationError(
        f"no SQLite database at {os.path.abspath(path)!r} (no such file): check the path, "
        "or create the "
        f"store with `python -m stocksbot_store.migrate upgrade --url {mask_url(url)}`")


def _create_private_file(path: str) -> None:
    """Create the SQLite file readable by its owner only."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigurationError(
            f"cannot create the SQLite database {path!r}: folder {directory!r} does not exist")
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
            "password percent-encoded (e.g. %2F for /)") from None
    database = params.pop("database", "")
    if not database:
        raise ConfigurationError(
            f"{mask_url(url)} names no database: use postgresql://user@host/dbname")
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


def init_db(db: Database | None = None) -> Database:
    """Create every table and index that is missing (for tests and demos).

    Without an argument (the old module's ``init_db()``) it works on the process's
    default database, :func:`default_database` (``DATABASE_URL``), the very object
    :func:`get_db` yields: ``DATABASE_URL=sqlite:///:memory:``, ``init_db()`` and a
    FastAPI ``TestClient`` with ``Depends(get_db)`` see the same tables from any
    thread. Production databases are created and upgraded with
    ``python -m stocksbot_store.migrate upgrade``; both give the same schema.
    """
    from .notify import install_notify_triggers

    if db is None:
        db = default_database()
    prepare_database(db)
    with db.atomic(), db.bind_ctx(MODELS):
        db.create_tables(MODELS, safe=True)
        install_notify_triggers(db)
        from .audit import install_append_only_trigger

        install_append_only_trigger(db)
        from .migrate import stamp_new_database

        stamp_new_database(db)
    return db


def default_database(url: str | None = None) -> Database:
    """The process-wide database for ``url`` (see :func:`database_url`), made once:
    what :func:`get_db` yields and ``init_db()`` initialises. The same URL gives the
    same object (for ``sqlite:///:memory:``, the same in-memory database)."""
    url = _absolute_sqlite_url(database_url(url))
    with _DEFAULT_LOCK:
        db = _DEFAULT_DATABASES.get(url)
        if db is None:
            db = _DEFAULT_DATABASES[url] = connect(url)
        return db


def _absolute_sqlite_url(url: str) -> str:
    """``url`` with a relative SQLite path made absolute: the default database stays
    the file it was opened on after the process changes its working directory."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    path, sep, query = url[len(prefix):].partition("?")
    if not path or path == ":memory:" or path.startswith(("/", "file:")):
        return url
    return f"{prefix}{os.path.abspath(path)}{sep}{query}"


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


def write_transaction(db: Database) -> Any:
    """A transaction for read-modify-write work.

    On SQLite it begins ``IMMEDIATE``: the write lock is taken up front, so a
    second writer waits on the busy timeout rather than failing with "database is
    locked" when it tries to upgrade a read lock. Nested, it is a savepoint.
    """
    if isinstance(db, SqliteDatabase) and db.transaction_depth() == 0:
        return db.atomic("IMMEDIATE")
    return db.atomic()


def close_default_databases() -> None:
    """Close and forget the databases :func:`get_db` handed out (at app shutdown)."""
    with _DEFAULT_LOCK:
        for db in _DEFAULT_DATABASES.values():
            if hasattr(db, "close_all"):
                db.close_all()
            elif not db.is_closed():
                db.close()
        _DEFAULT_DATABASES.clear()
