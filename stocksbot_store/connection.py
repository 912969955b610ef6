"""The database classes ``connect()`` returns: a dropped connection is replaced, not kept.

PostgreSQL ends sessions on its own (``pg_terminate_backend``, a failover, an idle
timeout, a restart). Peewee keeps a thread's connection until it is closed, so
without help every later call on that thread fails on the dead one. Each class
``connect()`` builds is the playhouse class (plain or pooled) with
:class:`ResilientMixin` in front, which, in one place:

* discards a connection the driver reports broken (and its pool slot), so
  ``is_closed()`` tells the truth and the next statement opens a fresh one;
* retries what is safe to retry on a fresh connection, once: a read outside a
  transaction, and a transaction whose ``BEGIN`` found the connection dead (nothing
  of it ran). An ``INSERT``/``UPDATE``/``DELETE`` outside a transaction runs in a
  transaction of its own for that reason: its ``BEGIN`` can be retried, and a loss
  before its ``COMMIT`` means it was not stored;
* never repeats a write that may have committed: a connection lost during
  ``COMMIT`` raises :class:`~stocksbot_store.errors.CommitUnknownError`, which says
  to check before writing again; a connection lost in the middle of a transaction
  rolls it back on the server (nothing half-written) and raises
  :class:`~stocksbot_store.errors.DatabaseUnavailableError`;
* turns a failure to connect into a :class:`~stocksbot_store.errors.StorageError`
  (server down, no such database, a bad option, a file that is not a database);
* skips a ``ROLLBACK`` (or a savepoint's ``ROLLBACK TO``, as a nested
  ``atomic()`` unwinds) that has nothing to roll back (SQLite already rolled back
  after ``SQLITE_FULL``; PostgreSQL dropped the session), so the error that caused
  it is the one reported.

This follows ``playhouse.shortcuts.ReconnectMixin`` (reconnect only outside a
transaction) and the pool's ``_is_closed`` checks, with errors told apart by code
(:func:`stocksbot_store.errors.fault_of`) instead of message fragments.
"""

from __future__ import annotations

import os
import select
import sqlite3
from functools import cache
from typing import TYPE_CHECKING, Any

import peewee
from playhouse.pool import MaxConnectionsExceeded, PooledDatabase

from .errors import (
    DRIVER_ERRORS,
    CommitUnknownError,
    ConfigurationError,
    DatabaseUnavailableError,
    Fault,
    StorageError,
    fault_of,
    first_line,
    storage_error,
)
from .urls import sqlite_file_path

_READS = ("SELECT", "SHOW", "VALUES", "EXPLAIN")
_WRITES = ("INSERT", "UPDATE", "DELETE")


def _verb(sql: str) -> str:
    return sql.lstrip(" \t\r\n(").split(None, 1)[0].upper() if sql.strip() else ""


#: The smallest SQLite database file that is not empty: one page of the smallest size.
SMALLEST_DATABASE = 512


def refuse_what_is_no_database(path: str | None) -> None:
    """Raise a ConfigurationError if the file at ``path`` holds fewer bytes than any
    SQLite database does (but some): SQLite takes such a file (a note, a typo'd path)
    for an empty database and writes a store over it; larger files that are no
    database it refuses itself. Checked as each connection opens, so a file mended
    meanwhile (a restore) is taken on the next try.

    By its size alone: the file is never opened here. Closing any descriptor of a
    database file drops every POSIX lock this process holds on it, and another
    thread's connection would go on writing without its lock (a malformed file)."""
    if path is None:
        return
    try:
        size = os.stat(path).st_size
    except OSError:
        return  # missing or unreachable: opening it says which, with the fix
    if 0 < size < SMALLEST_DATABASE:
        raise ConfigurationError(
            f"{path!r} is not a SQLite database (it holds {size} bytes of something "
            "else, left as it was): point the URL at a stocksbot store, or at a new file "
            "to create one"
        )


class ResilientMixin:
    """Reconnect after a dropped connection and report driver errors as StorageErrors.

    Put in front of a peewee ``Database`` class; see the module docstring.
    """

    #: Whether connections can drop under the program (client/server databases).
    reconnects = False
    #: How a failure is described: the masked URL, set by ``connect()``.
    stocksbot_url: str | None = None
    #: Text that must never appear in a message (the password), set by ``connect()``.
    stocksbot_secrets: tuple[str, ...] = ()

    if TYPE_CHECKING:  # given by the peewee Database class the mixin is put in front of
        database: Any

        def atomic(self) -> Any: ...

    # -- connecting --------------------------------------------------------------------

    def connect(self, reuse_if_open: bool = False) -> bool:
        """Open this thread's connection; a failure is a ConfigurationError or a
        DatabaseUnavailableError that names the database and says what to check."""
        if not self.is_closed():
            return super().connect(reuse_if_open)  # type: ignore[misc]
        if isinstance(self, peewee.SqliteDatabase):
            refuse_what_is_no_database(sqlite_file_path(str(self.database)))
        try:
            return super().connect(reuse_if_open)  # type: ignore[misc]
        except (StorageError, MaxConnectionsExceeded):
            raise  # a full pool is named by access.pool_limit, which knows its size
        except DRIVER_ERRORS + (TypeError, ValueError) as e:
            self._discard()
            raise self._connect_error(e) from None

    def _connect_error(self, error: BaseException) -> StorageError:
        where = self.stocksbot_url or str(self.database)
        reason = self._scrub(first_line(error))
        driver = getattr(error, "orig", error)
        if isinstance(error, (TypeError, ValueError)) or type(driver).__name__ in (
            "ProgrammingError",
            "InterfaceError",
        ):
            return ConfigurationError(
                f"cannot connect to {where}: bad connection option or "
                f"URL ({reason}); fix the URL's options"
            )
        if fault_of(error) in (Fault.CONNECTION_LOST, Fault.CONFIGURATION):
            return DatabaseUnavailableError(
                f"cannot connect to {where} ({reason}); check that the server is running and "
                "that the URL's host, port, database name and user are right"
            )
        return storage_error(f"opening {where}", error)

    def _scrub(self, text: str) -> str:
        for secret in self.stocksbot_secrets:
            text = text.replace(secret, "***")
        return text

    # -- the connection's health -------------------------------------------------------------

    def is_closed(self) -> bool:
        """True when this thread has no usable connection: one the driver knows is broken
        is discarded (outside a transaction), so the next statement opens a new one."""
        if self._state.closed:  # type: ignore[attr-defined]
            return True
        if self.reconnects and _broken(self._state.conn) and not self.in_transaction():  # type: ignore[attr-defined]
            self._discard()
            return True
        return False

    def _discard(self) -> None:
        """Forget this thread's connection (and its pool slot) without talking to it."""
        state = self._state  # type: ignore[attr-defined]
        conn, state.conn, state.closed = state.conn, None, True
        if conn is None:
            return
        if isinstance(self, PooledDatabase):
            self._close(conn, close_conn=True)
            return
        try:
            conn.close()
        except Exception:  # it is dead already; closing it is a courtesy
            pass

    def _lost(self, error: BaseException) -> bool:
        return self.reconnects and fault_of(error) is Fault.CONNECTION_LOST

    # -- statements and transactions --------------------------------------------------------

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        """Run ``sql``; outside a transaction a read is retried once on a fresh connection
        after a lost one, and a write runs in a transaction of its own (see the module)."""
        if sql.startswith("ROLLBACK TO SAVEPOINT") and self._rolled_back():
            return None  # a nested atomic() unwinding a transaction that is gone already
        if not self.reconnects or self.in_transaction():  # type: ignore[attr-defined]
            return super().execute_sql(sql, params)  # type: ignore[misc]
        verb = _verb(sql)
        if verb in _WRITES:
            try:
                with self.atomic():
                    return super().execute_sql(sql, params)  # type: ignore[misc]
            except CommitUnknownError:
                raise
            except peewee.PeeweeException as e:
                if not self._lost(e):
                    raise
            with self.atomic():  # lost before COMMIT: not stored, so safe to run again
                return super().execute_sql(sql, params)  # type: ignore[misc]
        try:
            return super().execute_sql(sql, params)  # type: ignore[misc]
        except peewee.PeeweeException as e:
            if not self._lost(e) or verb not in _READS:
                if self._lost(e):
                    self._discard()
                raise
            self._discard()
        return super().execute_sql(sql, params)  # type: ignore[misc]

    def begin(self, *args: Any, **kwargs: Any) -> Any:
        """Start a transaction; a connection found dead here is replaced and BEGIN sent
        again (nothing of the transaction has run yet). A BEGIN that fails otherwise (a
        SQLite file whose write lock another connection held past the busy timeout) is
        a :class:`~stocksbot_store.errors.StorageError` saying so: nothing ran yet, so
        nothing was written, whichever method asked for the transaction."""
        try:
            return super().begin(*args, **kwargs)  # type: ignore[misc]
        except peewee.PeeweeException as e:
            if not self._lost(e) or self.in_transaction():  # type: ignore[attr-defined]
                raise self._begin_error(e) from e
            self._discard()
        try:
            return super().begin(*args, **kwargs)  # type: ignore[misc]
        except peewee.PeeweeException as e:
            raise self._begin_error(e) from e

    def _begin_error(self, error: BaseException) -> StorageError:
        where = self.stocksbot_url or str(self.database)
        if fault_of(error) is Fault.RETRYABLE and isinstance(self, peewee.SqliteDatabase):
            return DatabaseUnavailableError(
                f"starting a transaction on {where}: another connection held the write "
                f"lock longer than the busy timeout ({first_line(error)}); nothing was "
                "written; retry later, or wait longer with the URL's ?timeout=SECONDS"
            )
        return storage_error(f"starting a transaction on {where}", error)

    def commit(self) -> Any:
        """Commit; a connection lost now leaves the outcome unknown, and says so."""
        try:
            return super().commit()  # type: ignore[misc]
        except peewee.PeeweeException as e:
            if not self._lost(e):
                raise
            raise commit_unknown(self, e) from e

    def rollback(self) -> Any:
        """Roll back, unless there is nothing left to roll back (see the module)."""
        conn = self._state.conn  # type: ignore[attr-defined]
        if conn is None or (self.reconnects and _broken(conn)):
            self._discard_outside_transaction()
            return None
        if self._rolled_back():
            return None  # SQLite rolled back by itself (SQLITE_FULL, SQLITE_IOERR...)
        try:
            return super().rollback()  # type: ignore[misc]
        except peewee.PeeweeException as e:
            if not self._lost(e):
                raise
            self._discard_outside_transaction()  # the server rolled back with the session
            return None

    def _rolled_back(self) -> bool:
        """Whether this thread's transaction ended without a ROLLBACK: the server dropped
        the session with it, or SQLite rolled back by itself (``SQLITE_FULL``,
        ``SQLITE_IOERR``...)."""
        conn = self._state.conn  # type: ignore[attr-defined]
        if conn is None or (self.reconnects and _broken(conn)):
            return True
        return isinstance(conn, sqlite3.Connection) and not conn.in_transaction

    def _discard_outside_transaction(self) -> None:
        if not self.in_transaction():  # type: ignore[attr-defined]
            self._discard()


def commit_unknown(db: Any, error: BaseException) -> CommitUnknownError:
    """What a connection of ``db`` lost while its transaction committed means (``error``:
    the driver's): the outcome is unknown, and what to do about it. For whoever sends a
    ``COMMIT`` (:meth:`ResilientMixin.commit`, the fill path's last round trip)."""
    where = getattr(db, "stocksbot_url", None) or db.database
    return CommitUnknownError(
        f"the connection to {where} was lost while a transaction committed "
        f"({first_line(error)}): it may or may not have been stored. Check before writing "
        "it again (for a fill, look it up by its broker id; record_trade with the same "
        "external_id is safe to repeat)"
    )


def raise_if_lost(conn: Any, when: str, what: str) -> None:
    """Raise a driver error if the server ended psycopg 3 connection ``conn``'s session
    since its last round trip. Between two round trips a server says nothing unless it
    ends the session (it sends why, then closes): anything to read means it is over.
    Called before a message that ends with a ``COMMIT`` is sent, so that a loss found
    here is known to have stored nothing of it; a look that never waits. ``when`` and
    ``what`` name the moment and the work for the message (``"between the fill's round
    trips"``, ``"the fill"``)."""
    pgconn = conn.pgconn
    if not readable(pgconn.socket):
        return
    pgconn.consume_input()  # raises the driver's own error if the close was read too
    import psycopg

    raise psycopg.OperationalError(
        f"the server ended the session {when} (it sent a message unasked); nothing of "
        f"{what} was sent"
    )


def readable(fd: int) -> bool:
    """Whether socket ``fd`` has something to read now (never waits)."""
    if hasattr(select, "poll"):
        poll = select.poll()
        poll.register(fd, select.POLLIN)
        return bool(poll.poll(0))
    return bool(select.select([fd], [], [], 0)[0])  # pragma: no cover - Windows


def _broken(conn: Any) -> bool:
    """Whether the driver knows ``conn`` is closed or lost (psycopg 3 and 2)."""
    if conn is None:
        return True
    if getattr(conn, "broken", False):
        return True
    closed = getattr(conn, "closed", False)
    return bool(closed) if not callable(closed) else False


@cache
def resilient_class(database_class: type[peewee.Database]) -> type[peewee.Database]:
    """``database_class`` with :class:`ResilientMixin` in front (one class per class)."""
    reconnects = issubclass(database_class, peewee.PostgresqlDatabase)
    return type(
        database_class.__name__,
        (ResilientMixin, database_class),
        {"reconnects": reconnects, "__module__": __name__},
    )
