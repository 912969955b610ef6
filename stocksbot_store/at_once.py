"""Statements sent to PostgreSQL in one message: one round trip, little client work.

A new order (:mod:`stocksbot_store.new_orders`) and each of a fill's two round trips
(:mod:`stocksbot_store.fills.recorder`) send their statements as one simple query,
their values bound by psycopg on the client (:class:`psycopg.ClientCursor`), and read
each statement's rows with ``cursor.nextset()``. A pipeline of prepared statements
took as many round trips but twice the client's CPU: psycopg's per-statement pipeline
machinery (waiting, sending, dumping each value) cost more than the server's parsing
of the few statements saves.

The values the store binds are the stored text of decimals and times, ints, bools and
None; psycopg quotes them as literals whose types the server infers as it does for the
untyped parameters psycopg sends otherwise (text as ``unknown``), so a row is stored
the same either way (``tests/test_fills.py`` compares the rows of both paths).

The server runs a message's statements in order and stops at the first error: the
rest are not run. :func:`send_at_once` says what a failure means:

* a statement the server refuses (a broker id taken, a lock timeout) leaves the
  transaction aborted: it is rolled back through libpq (:func:`end_transaction`) and
  the error raised;
* a connection lost once a message holding the ``COMMIT`` may have been sent leaves
  the outcome unknown: :class:`~stocksbot_store.errors.CommitUnknownError`, never
  retried, and the read replicas are told a commit may have happened, as after any
  ``COMMIT``. (Whoever sends one checks first that the connection is not known lost,
  :func:`~stocksbot_store.connection.raise_if_lost`: then nothing of it was sent.)

The statement monitor and ``SQL_ECHO`` see the statements as they would one by one
(:func:`report_statements`).
"""

from __future__ import annotations

import hashlib
import logging
import time
import weakref
from collections.abc import Sequence
from contextlib import suppress
from functools import lru_cache
from typing import Any

from peewee import Database, QueryEvent

from .connection import commit_unknown
from .errors import Fault, fault_of
from .monitor import peewee_log
from .replicas import note_commit

try:
    from psycopg import ClientCursor, Connection
    from psycopg.adapt import Transformer
    from psycopg.pq import ExecStatus

    TUPLES_OK, COMMAND_OK = ExecStatus.TUPLES_OK, ExecStatus.COMMAND_OK
except ImportError:  # pragma: no cover - PostgreSQL through psycopg2: the plain paths
    ClientCursor = Connection = Transformer = None  # type: ignore[assignment,misc]
    TUPLES_OK = COMMAND_OK = None  # type: ignore[assignment]

#: One statement of a message: its SQL (``%s`` for each value) and its values.
Statement = tuple[str, Sequence[Any]]


def can_send_at_once(conn: Any) -> bool:
    """Whether ``conn`` takes messages of many statements bound on the client (a
    psycopg 3 connection; not psycopg2's, in a database built by hand)."""
    return Connection is not None and isinstance(conn, Connection)


def send_at_once(
    db: Database,
    conn: Any,
    statements: list[Statement],
    commits: bool = False,
    prepared: bool = False,
) -> Any:
    """Send ``statements`` on ``db``'s psycopg 3 connection ``conn`` as one message and
    wait for all their results; the cursor, on the first statement's result (the next
    with ``nextset()``, or :func:`first_rows`). ``commits``: the message ends with a
    ``COMMIT``. ``prepared``: each statement with values runs as a statement prepared
    on the server (see :class:`_Session`), else it is sent with its values in place.
    See the module for what a failure raises."""
    session = _session(conn) if prepared else None
    if session is None:
        cursor = ClientCursor(conn)
        query: Any = "; ".join(sql for sql, _ in statements)
        params: Any = [v for _, values in statements for v in values]
        preparing: list[str] = []
    else:
        cursor = session.cursor
        query, preparing = session.message(statements)
        params = None
    start = time.perf_counter()
    try:
        cursor.execute(query, params, prepare=False)
    except BaseException as e:
        report_statements(db, statements, time.perf_counter() - start, e)
        if session is not None:
            session.failed(conn, e, preparing)
        lost = not isinstance(e, Exception) or fault_of(e) is Fault.CONNECTION_LOST
        if commits and lost:
            # The COMMIT may have reached the server: the outcome is unknown, and the
            # replicas must not serve reads that miss it if it was stored.
            note_commit(db)
            end_transaction(conn)
            if isinstance(e, Exception):
                with suppress(Exception):  # the error to report is the loss
                    db.rollback()  # discards the lost connection
                raise commit_unknown(db, e) from e
            raise
        end_transaction(conn)  # refused: the server ran nothing after the error
        raise
    if session is not None:
        session.known.update(preparing)
        for _ in preparing:  # past the PREPAREs' results, to the first statement's
            cursor.nextset()
    if commits:
        note_commit(db)
    report_statements(db, statements, time.perf_counter() - start)
    return cursor


def prepared_statements_lost(error: BaseException) -> bool:
    """Whether ``error`` (a driver's, or peewee's wrapping one) says the statements the
    store prepared on the connection are not what it thinks: one is gone (psycopg sends
    ``DEALLOCATE ALL`` when it sees a ``ROLLBACK`` through a cursor while it has prepared
    statements of its own), was there already, or no longer fits its table (a column's
    type changed since: "cached plan must not change result type"). Nothing of the
    message ran past that statement; the next message starts the session afresh (see
    :func:`_session`)."""
    error = getattr(error, "orig", None) or error
    return getattr(error, "sqlstate", None) in _LOST_STATEMENTS


class _Session:
    r"""What the store prepared on one connection's server session, and how it writes
    values as literals.

    A statement sent prepared goes as ``EXECUTE name(value, ...)``, its values quoted
    by psycopg (:meth:`psycopg.adapt.Transformer.as_literal`), and the server reuses its
    plan: parsing and planning the fill's dozen statements every time cost the server
    about 0.3 ms a round trip (a message of literals against one of ``EXECUTE``\ s on
    this machine). Its ``PREPARE`` goes at the head of the first message that needs it,
    so that it has run whatever a later statement of that message does (``PREPARE`` is
    not undone by a rollback). Each name is a hash of the statement and of the types of
    its values (a value that is sometimes None, sometimes an int, gives two). The
    declared types are psycopg's for bound values: ints ``int8``, bools ``bool``, text
    and None ``unknown`` (typed by where they go, as psycopg's untyped text parameters
    are)."""

    def __init__(self, conn: Any) -> None:
        #: The names prepared on the connection.
        self.known: set[str] = set()
        self.cursor = ClientCursor(conn)
        self.quote = Transformer.from_context(conn).as_literal

    def message(self, statements: list[Statement]) -> tuple[bytes, list[str]]:
        """The message that runs ``statements``, and the names it prepares first."""
        quote = self.quote
        preparing: list[str] = []
        heads: list[bytes] = []
        parts: list[bytes] = []
        for sql, values in statements:
            if not values:
                parts.append(sql.encode())
                continue
            found = _prepared(sql, tuple(map(type, values)))
            if found is None:  # not a statement to prepare: its values in place
                pieces = sql.encode().split(b"%s")
                parts.append(
                    pieces[0]
                    + b"".join(quote(v) + p for v, p in zip(values, pieces[1:], strict=True))
                )
                continue
            name, prepare, execute = found
            if name not in self.known and name not in preparing:
                preparing.append(name)
                heads.append(prepare)
            parts.append(execute + b", ".join(map(quote, values)) + b")")
        return b"; ".join(heads + parts), preparing

    def failed(self, conn: Any, error: BaseException, preparing: list[str]) -> None:
        r"""After a message failed: its ``PREPARE``\ s ran (they lead it), unless the
        connection's prepared statements were not what this session thought."""
        if prepared_statements_lost(error):
            _SESSIONS.pop(conn, None)
        else:
            self.known.update(preparing)


#: What the store prepared on each psycopg connection (forgotten with it).
_SESSIONS: weakref.WeakKeyDictionary[Any, _Session] = weakref.WeakKeyDictionary()
#: ``invalid_sql_statement_name``, ``duplicate_prepared_statement`` and
#: ``feature_not_supported`` (the code of a cached plan whose result type changed).
_LOST_STATEMENTS = frozenset(("26000", "42P05", "0A000"))
#: The type code of a value in a prepared statement's name; a statement with a value of
#: any other type (``x``) is sent with its values in place.
_TYPE_CODES = {int: "i", bool: "b", str: "s", type(None): "s"}
_DECLARED = {"i": "int8", "b": "bool", "s": "unknown"}
_PREFIX = "stocksbot_"
_KNOWN_NAMES = (
    f"SELECT name FROM pg_prepared_statements WHERE starts_with(name, '{_PREFIX}')".encode()
)


def _session(conn: Any) -> _Session | None:
    """``conn``'s session. When the connection is new to the store (once a connection,
    and after its statements turned out not to be what the store thought), any statement
    of the store's the server holds is dropped first (one more round trip when there are
    some), so that each is prepared again as it is now; None if that failed (the caller
    sends values in place, and the failure shows there)."""
    session = _SESSIONS.get(conn)
    if session is None:
        try:
            pgconn = conn.pgconn
            result = pgconn.exec_(_KNOWN_NAMES)
            if result.status != TUPLES_OK:
                return None
            names = [result.get_value(i, 0).decode() for i in range(result.ntuples)]
            if names:
                dropped = pgconn.exec_("; ".join(f"DEALLOCATE {n}" for n in names).encode())
                if dropped.status != COMMAND_OK:
                    return None
        except Exception:
            return None
        session = _SESSIONS[conn] = _Session(conn)
    return session


@lru_cache(maxsize=1024)
def _prepared(sql: str, types: tuple[type, ...]) -> tuple[str, bytes, bytes] | None:
    """The name, ``PREPARE`` and ``EXECUTE ...(`` of ``sql`` with values of ``types``;
    None for one that is sent with its values in place (a value of another type, or a
    ``%`` that is not a ``%s``)."""
    pieces = sql.split("%s")
    codes = "".join(_TYPE_CODES.get(t, "x") for t in types)
    if any("%" in p for p in pieces) or len(codes) != len(pieces) - 1 or "x" in codes:
        return None
    digest = hashlib.blake2b(f"{codes} {sql}".encode(), digest_size=12).hexdigest()
    name = _PREFIX + digest
    body = pieces[0] + "".join(f"${i}{p}" for i, p in enumerate(pieces[1:], 1))
    declared = ", ".join(_DECLARED[c] for c in codes)
    prepare = f"PREPARE {name} ({declared}) AS {body}"
    return name, prepare.encode(), f"EXECUTE {name}(".encode()


def first_rows(cursor: Any, count: int) -> list[tuple | None]:
    """The first row of each of the ``count`` results of a message :func:`send_at_once`
    sent, from the one the cursor is on (None where a statement gave no row)."""
    rows: list[tuple | None] = []
    for i in range(count):
        if i:
            cursor.nextset()
        # By the result's status: ``description`` would build every column's details.
        rows.append(cursor.fetchone() if cursor.pgresult.status == TUPLES_OK else None)
    return rows


def report_statements(
    db: Database,
    statements: list[Statement],
    seconds: float,
    error: BaseException | None = None,
) -> None:
    """Tell the database's query hooks (the statement monitor) and the SQL echo about
    ``statements``, sent together in ``seconds``, as ``execute_sql`` would have one by
    one (each with its share of the time, and the error if the message failed)."""
    if peewee_log.isEnabledFor(logging.DEBUG):  # SQL_ECHO, as peewee logs each statement
        for statement in statements:
            peewee_log.debug(statement)
    hooks = db.query_hooks
    if not hooks:
        return
    share = seconds / len(statements)
    for sql, params in statements:
        event = QueryEvent(sql, params, share, error)
        for hook in hooks:
            hook(event)


def end_transaction(conn: Any) -> None:
    """Roll back what a message left open (a transaction its error aborted, or one that
    wrote nothing: a re-sent fill) through the libpq wrapper, not a cursor: psycopg
    answers a ``ROLLBACK`` it sees go through a cursor by deallocating every prepared
    statement of the connection (one more round trip, and each of them prepared again
    on its next use). Nothing when the connection is idle or gone (the server rolled
    back)."""
    try:
        if conn.pgconn.transaction_status != 0:  # not IDLE: a transaction is open
            conn.pgconn.exec_(b"ROLLBACK")
    except Exception:  # the connection is gone: the server rolled back for us
        pass
