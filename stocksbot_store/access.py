"""How an opened database is reached, beyond its URL: monitoring, read-only, pool limits
and read replicas.

:func:`connect` takes these options out of its keywords with
:func:`take_access_options` before it builds the Peewee database, and applies them to
the built one with :func:`apply_access` (the replicas it takes out are attached by
``connect`` itself, with :func:`stocksbot_store.replicas.attach_replicas`):

- ``slow_ms=`` (default ``$SQL_SLOW_MS``): statements are counted and timed, the slow
  ones logged (:mod:`stocksbot_store.monitor`);
- ``read_only=True``: a SQLite file is opened ``mode=ro`` (it can never take the write
  lock from the bot), a PostgreSQL session starts ``default_transaction_read_only``;
  a write raises :class:`ReadOnlyError`;
- a pooled URL (``postgresql+pool://``) whose pool stays full past its ``timeout``
  raises :class:`DatabaseUnavailableError` naming the pool size and how to raise it;
- ``replicas=`` / ``replica_url=`` (default ``$DATABASE_REPLICA_URL``), with
  ``replica_max_lag=``: reads go to hot standbys (:mod:`stocksbot_store.replicas`).

Behaviour is added by giving the database a subclass of its own class (:func:`extend`),
so every Peewee database class, pooled or not, gets it the same way.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlparse

import peewee
from peewee import Database, SqliteDatabase
from playhouse.pool import MaxConnectionsExceeded, PooledDatabase

from .backends import describe
from .errors import ConfigurationError, DatabaseUnavailableError, ReadOnlyError, StorageError
from .monitor import attach_monitor
from .urls import sqlite_file_path, sqlite_url_file_path

SQLITE_READONLY = 8
PG_READ_ONLY_TRANSACTION = "25006"


@dataclass(frozen=True)
class AccessOptions:
    """The options of :func:`connect` that are the store's, not Peewee's."""

    slow_ms: float | str | None = None
    read_only: bool = False
    replicas: tuple[str, ...] = ()
    replicas_from_environment: bool = False
    replica_max_lag: float | None = None


def take_access_options(url: str, options: dict[str, Any]) -> AccessOptions:
    """Remove the store's own options from ``options`` (the rest go to Peewee)."""
    replicas: Any = options.pop("replicas", None)
    replica_url = options.pop("replica_url", None)
    if replicas is not None and replica_url is not None:
        raise ConfigurationError("give replicas= or replica_url=, not both")
    if replicas is None:
        replicas = replica_url
    from_environment = replicas is None
    if from_environment:
        replicas = os.environ.get("DATABASE_REPLICA_URL", "")
    if isinstance(replicas, str):
        replicas = [part.strip() for part in replicas.split(",")]
    access = AccessOptions(
        slow_ms=options.pop("slow_ms", None),
        read_only=bool(options.pop("read_only", False)),
        replicas=tuple(r for r in replicas if r),
        replicas_from_environment=from_environment,
        replica_max_lag=options.pop("replica_max_lag", None),
    )
    if access.read_only and urlparse(url).scheme.startswith("sqlite"):
        _check_read_only_file(url)
    return access


def apply_access(db: Database, url: str, access: AccessOptions) -> Database:
    """Give the built ``db`` what ``access`` asks for (see the module docstring)."""
    attach_monitor(db, access.slow_ms)
    if isinstance(db, PooledDatabase):
        _check_pool_options(db)
        extend(db, pool_limit)
    if access.read_only:
        _open_read_only(db)
        extend(db, read_only)
    return db


_CLASSES: dict[tuple[Any, type], type] = {}


def extend(db: Database, make_class: Callable[[type], type]) -> Database:
    """Give ``db`` the subclass ``make_class(type(db))`` of its own class (idempotent).

    A mixin placed before a Peewee class cannot be assigned to an existing object
    (their layouts differ, pooled classes most of all), so each extension is a
    function that subclasses the class it is given; the classes are made once.
    """
    base = type(db)
    if make_class in getattr(base, "stocksbot_extensions", ()):
        return db
    cls = _CLASSES.get((make_class, base))
    if cls is None:
        cls = make_class(base)
        # A marker on the class just made, which mypy only knows as a ``type``.
        cls.stocksbot_extensions = (  # type: ignore[attr-defined]
            *getattr(base, "stocksbot_extensions", ()),
            make_class,
        )
        cls.__name__ = cls.__qualname__ = f"{cls.__name__}{base.__name__}"
        _CLASSES[(make_class, base)] = cls
    db.__class__ = cls
    return db


# -- read-only --------------------------------------------------------------------------


def _check_read_only_file(url: str) -> None:
    name = urlparse(url).path[1:]  # as playhouse.db_url reads it
    path = sqlite_url_file_path(url)
    if path is None:
        raise ConfigurationError(f"read_only=True needs a SQLite file, not {name or ':memory:'!r}")
    if not os.path.exists(path):
        raise ConfigurationError(
            f"cannot open {name!r} read-only: no such file (the bot creates it; "
            "check the path, or run stocksbot-migrate upgrade first)"
        )


def _open_read_only(db: Database) -> None:
    if isinstance(db, SqliteDatabase):
        # A file: URI is opened by the path it names: mode=ro replaces whatever it said.
        path = sqlite_file_path(db.database)
        db.database = f"file:{quote(str(path))}?mode=ro"
        db.connect_params["uri"] = True
        # Changing the journal mode is a write; a WAL file stays WAL anyway.
        # peewee's own pragma list, not in its stubs.
        pragmas = db._pragmas  # type: ignore[attr-defined]
        db._pragmas = [  # type: ignore[attr-defined]
            (k, v) for k, v in pragmas if k != "journal_mode"
        ]
    else:
        given = db.connect_params.get("options", "")
        db.connect_params["options"] = f"{given} -c default_transaction_read_only=on".strip()


def driver_error(error: BaseException) -> BaseException:
    """The driver's own exception behind a Peewee one (Peewee raises its copy while
    handling the driver's), or ``error`` itself."""
    for candidate in (error.__cause__, error.__context__, *error.args[:1]):
        if isinstance(candidate, Exception) and not isinstance(candidate, peewee.PeeweeException):
            return candidate
    return error


def is_read_only_refusal(error: BaseException) -> bool:
    """Whether a driver error is the database refusing a write on a read-only connection
    (SQLite ``SQLITE_READONLY``, PostgreSQL SQLSTATE 25006)."""
    original = driver_error(error)
    if isinstance(original, sqlite3.Error):
        code = getattr(original, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF == SQLITE_READONLY
        return "readonly" in str(original).replace(" ", "").lower()
    return getattr(original, "sqlstate", None) == PG_READ_ONLY_TRANSACTION


def read_only(base: type) -> type:
    """Extension: the database's refusal of a write becomes :class:`ReadOnlyError`, be it
    a statement or the ``BEGIN IMMEDIATE`` of a write transaction on SQLite."""

    class ReadOnly(base):
        def execute_sql(self, sql: str, params: Any = None) -> Any:
            with _refusals(self, sql.split(None, 1)[0].upper()):
                return super().execute_sql(sql, params)

        def begin(self, *args: Any, **kwargs: Any) -> Any:
            with _refusals(self, "a write transaction"):
                return super().begin(*args, **kwargs)

    return ReadOnly


@contextmanager
def _refusals(db: Database, what: str) -> Iterator[None]:
    try:
        yield
    except (peewee.DatabaseError, StorageError) as e:
        # A BEGIN that failed is already a StorageError raised from the driver's error.
        refusal = e.__cause__ if isinstance(e, StorageError) else e
        if refusal is not None and is_read_only_refusal(refusal):
            raise ReadOnlyError(
                f"{describe(db)} was opened read-only (read_only=True), so it refuses "
                f"{what}; write through a database opened without read_only"
            ) from e
        raise


# -- pool limits ------------------------------------------------------------------------


def pool_limit(base: type) -> type:
    """Extension: "every pooled connection is taken" becomes
    :class:`DatabaseUnavailableError`, which says how to raise the limit."""

    class PoolLimit(base):
        def connect(self, reuse_if_open: bool = False) -> bool:
            try:
                return super().connect(reuse_if_open)
            except MaxConnectionsExceeded as e:
                raise DatabaseUnavailableError(pool_exhausted_message(self)) from e

    return PoolLimit


def _check_pool_options(db: Any) -> None:
    """Refuse a negative pool size or time: the pool would refuse every connection (and
    advise an even smaller size) or treat each connection as stale at once."""
    for option, value in (
        ("max_connections", db._max_connections),
        ("timeout", db._wait_timeout),
        ("stale_timeout", db._stale_timeout),
    ):
        if value is not None and value < 0:
            raise ConfigurationError(
                f"bad pool option for {describe(db)}: {option}={value:g} is negative; give "
                "a number of connections (max_connections) or seconds (timeout, "
                "stale_timeout), e.g. ?max_connections=20&stale_timeout=300&timeout=10"
            )


def pool_exhausted_message(db: Any) -> str:
    """What to say when ``db``'s pool has no connection to give."""
    size = db._max_connections
    wait = db._wait_timeout
    waited = (
        "without waiting (the URL sets no timeout=)"
        if not wait
        else f"and none came back within timeout={wait:g} s"
    )
    return (
        f"all {size} connections of the pool to {describe(db)} are in use {waited}; "
        f"raise max_connections= (now {size}) or timeout= in the database URL, e.g. "
        f"?max_connections={size * 2}&timeout=10, or give connections back sooner "
        "(db.close() after each unit of work)"
    )
