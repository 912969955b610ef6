"""A new order and its audit row, written with no more work than the database needs.

``StorageService.create_order`` is a bot's most frequent write after a fill, and its
generic path (a model instance, each value through its field's ``db_value`` and back
through ``python_value``, the audit row's changes from the instance) cost three times
what SQLite spends storing the row. :class:`NewOrders` builds the stored row, the audit
row's changes and the returned :class:`~stocksbot_store.models.Order` straight from
:func:`~stocksbot_store.repositories.check_new_order`'s values, which are known good
and already in the form they are stored in (a quantized decimal, an enum member, an id).
What it writes is what the generic path writes: the same row, and an audit row with the
same changes (``tests/test_repositories.py`` compares both with the generic path's).

On PostgreSQL, outside a caller's transaction, ``BEGIN``, the order's ``INSERT ...
RETURNING``, its audit row's (naming the order by ``currval`` of its sequence) and
``COMMIT`` go in one message: one round trip instead of four. The message is one simple
query with its values bound by psycopg on the client (:class:`psycopg.ClientCursor`): a
pipeline of prepared statements took twice its CPU. Its faults, as on the fill path's
last round trip (:mod:`stocksbot_store.fills.recorder`):

* a connection found lost before the message is sent (a look at its socket that never
  waits, :func:`~stocksbot_store.connection.raise_if_lost`) has stored nothing: the
  order is written on a fresh connection by the plain path;
* one lost once the message may have been sent is a
  :class:`~stocksbot_store.errors.CommitUnknownError`, never retried, and the read
  replicas are told a commit may have happened, as after any ``COMMIT``;
* a statement the server refuses (a broker id taken) ends the message there, the rest
  unrun: the transaction is rolled back and the error is the store's, as on the plain
  path (:class:`~stocksbot_store.errors.DuplicateError`...).

The statement monitor and ``SQL_ECHO`` see the four statements as they would one by one.
Inside a caller's transaction (and on SQLite, where a statement costs no round trip)
the statements run one by one.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from json.encoder import encode_basestring_ascii as _json_text  # what json.dumps uses
from typing import Any

from peewee import Database, QueryEvent
from peewee import __exception_wrapper__ as driver_errors  # type: ignore[attr-defined]

from .audit import TABLES, AuditWriter
from .backends import backend_of
from .connection import commit_unknown, raise_if_lost
from .database import write_transaction
from .errors import Fault, fault_of, translate_errors
from .fields import UTCDateTimeField, datetime_text, scaled_text, utcnow
from .models import AuditLog, Order, OrderStatusEnum
from .monitor import HookedCursor, peewee_log
from .replicas import note_commit

try:
    from psycopg import ClientCursor, Connection
except ImportError:  # pragma: no cover - PostgreSQL through psycopg2: the plain path
    ClientCursor = Connection = None  # type: ignore[assignment,misc]

#: The names of a new order's values :class:`NewOrders` takes: what
#: :func:`~stocksbot_store.repositories.check_new_order` gives, and the strategy's id.
NEW_ORDER_NAMES = frozenset(
    ("symbol", "side", "type", "quantity", "price", "external_id", "strategy")
)
#: The audit log's columns, in the order :meth:`NewOrders._audit_params` gives them.
_AUDIT_COLUMNS = ("at", "actor", "table_name", "row_id", "action", "changes")
_TABLE = TABLES[Order._meta.table_name]


class NewOrders:
    """Inserts new orders made of checked values on one database, with their audit rows
    written by ``audit`` (the order repository's writer: its actor, and its switch)."""

    def __init__(self, db: Database, audit: AuditWriter, insert_sql: Callable[[bool], str]) -> None:
        """``insert_sql(returning)``: the order repository's insert of every column."""
        self.db = db
        self.audit = audit
        self.pg = backend_of(db) == "postgres"
        #: ``INSERT INTO "order" (every column but id) ...``, ``RETURNING "id"`` on
        #: PostgreSQL (SQLite's cursor gives the id as ``lastrowid``).
        self.insert_sql = insert_sql(self.pg)
        #: Whether a new order's statements go in one message with its BEGIN (psycopg 3).
        self.at_once = self.pg and ClientCursor is not None
        meta = Order._meta
        fields = meta.fields
        #: The field names in the order of the insert's columns.
        self.columns = tuple(n for n in meta.sorted_field_names if n != "id")
        #: What a new order holds before it is given anything: the fields' defaults as
        #: stored, and as read back (``python_value(db_value(default))``).
        self.defaults_stored: dict[str, Any] = {}
        self.defaults_read: dict[str, Any] = {}
        for name in self.columns:
            field = fields[name]
            default = field.default() if callable(field.default) else field.default
            stored = None if default is None else field.db_value(default)
            self.defaults_stored[name] = stored
            self.defaults_read[name] = None if stored is None else field.python_value(stored)
        self.defaults_stored["status"] = OrderStatusEnum.PENDING.value
        self.defaults_read["status"] = OrderStatusEnum.PENDING
        #: The audit row's fields as ``created`` gives them, every field but the id and
        #: ``updated_at``: (its key by column name and ``[null,`` in JSON, its name, whether
        #: it is a time).
        self.audited = tuple(
            (
                _json_text(fields[name].column_name) + ":[null,",
                name,
                isinstance(fields[name], UTCDateTimeField),
            )
            for name in self.columns
            if name != "updated_at"
        )
        audit_meta = AuditLog._meta
        param = "%s" if self.pg else "?"
        row_id = (
            f"currval(pg_get_serial_sequence('\"{meta.table_name}\"', "
            f"'{fields['id'].column_name}'))"
            if self.pg
            else param
        )
        self.audit_sql = (
            f'INSERT INTO "{audit_meta.table_name}" ('
            + ", ".join(f'"{audit_meta.fields[n].column_name}"' for n in _AUDIT_COLUMNS)
            + ") VALUES ("
            + ", ".join(row_id if n == "row_id" else param for n in _AUDIT_COLUMNS)
            + ")"
        )

    def insert(self, values: dict[str, Any]) -> Order:
        """Insert the order of ``values`` (:func:`check_new_order`'s, and ``strategy``: a
        strategy id or None) and its audit row in one transaction; the order as stored."""
        now = utcnow()
        stamp = datetime_text(now)
        read = {**self.defaults_read, **values, "created_at": now, "updated_at": now}
        stored = {name: _stored(v) for name, v in values.items()}
        stored = {**self.defaults_stored, **stored, "created_at": stamp, "updated_at": stamp}
        row = [stored[n] for n in self.columns]
        audit = self._audit_params(stored, stamp) if self.audit.enabled else None
        with translate_errors("creating Order"):
            order_id = None
            if self.at_once and not self.db.in_transaction():
                order_id = self._insert_at_once(row, audit)
            if order_id is None:
                with write_transaction(self.db):
                    run = HookedCursor(self.db, self.db.connection()).execute
                    cursor = run(self.insert_sql, row)
                    order_id = cursor.fetchone()[0] if self.pg else cursor.lastrowid
                    self._write_audit(run, order_id, audit)
        order = Order(__no_default__=1)
        read["id"] = order_id
        order.__data__ = read
        return order

    def _audit_params(self, stored: dict[str, Any], stamp: str) -> list:
        """The audit row's values (its row id filled in once known on SQLite), with the
        text ``json.dumps(created(row_values(order)), separators=(",", ":"))`` gives for
        the order as read back, put together from the stored values: decimals as their
        stored text, enums by value, a strategy by its id, times as ISO-8601 (the stored
        text with a ``T``)."""
        parts = []
        for prefix, name, is_time in self.audited:
            v = stored[name]
            if v is None:
                parts.append(prefix + "null]")
            elif is_time:
                parts.append(prefix + '"' + v.replace(" ", "T", 1) + '"]')
            elif type(v) is str:
                parts.append(prefix + _json_text(v) + "]")
            elif type(v) is int:  # a strategy's id
                parts.append(prefix + repr(v) + "]")
            else:
                parts.append(prefix + json.dumps(v) + "]")
        text = "{" + ",".join(parts) + "}"
        if self.pg:  # the row id is the sequence's currval, in the statement
            return [stamp, self.audit.actor, _TABLE, "create", text]
        return [stamp, self.audit.actor, _TABLE, None, "create", text]

    def _write_audit(self, run: Any, order_id: int | None, audit: list | None) -> None:
        """Write the audit row (``audit``, None when the log is switched off) of the order
        just inserted in this transaction with ``run(sql, params)``; ``order_id``: its id
        (SQLite; PostgreSQL's statement takes it from the sequence)."""
        if audit is None:
            return
        if not self.pg:
            audit[3] = order_id
        run(self.audit_sql, audit)

    def _insert_at_once(self, row: list, audit: list | None) -> int | None:
        """The order in one round trip: ``BEGIN``, its statements and ``COMMIT`` as one
        message. Its id, or None if the connection was found lost before the message was
        sent (nothing was written: the caller takes the plain path, whose ``BEGIN``
        replaces the connection). See the module for the faults."""
        statements: list[tuple[str, Any]] = [("BEGIN", ()), (self.insert_sql, row)]
        self._write_audit(lambda sql, params: statements.append((sql, params)), None, audit)
        statements.append(("COMMIT", ()))
        with driver_errors:
            conn = self.db.connection()
            if not isinstance(conn, Connection):  # psycopg2 (a database built by hand)
                return None
            try:
                raise_if_lost(conn, "while the connection was idle", "the order")
            except Exception as e:
                if fault_of(e) is not Fault.CONNECTION_LOST:
                    raise
                self.db.rollback()  # discards the lost connection
                return None
            cursor = ClientCursor(conn)
            start = time.perf_counter()
            try:
                cursor.execute(
                    "; ".join(sql for sql, _ in statements),
                    [v for _, params in statements for v in params],
                )
            except BaseException as e:
                report_statements(self.db, statements, time.perf_counter() - start, e)
                if not isinstance(e, Exception) or fault_of(e) is Fault.CONNECTION_LOST:
                    # The COMMIT may have reached the server: the outcome is unknown, and
                    # the replicas must not serve reads that miss it if it was stored.
                    note_commit(self.db)
                    _end_transaction(conn)
                    if isinstance(e, Exception):
                        with suppress(Exception):  # the error to report is the loss
                            self.db.rollback()  # discards the lost connection
                        raise commit_unknown(self.db, e) from e
                    raise
                _end_transaction(conn)  # refused: the server ran nothing after the error
                raise
            note_commit(self.db)
            report_statements(self.db, statements, time.perf_counter() - start)
            cursor.nextset()  # past BEGIN's result: the order INSERT's
            inserted = cursor.fetchone()
            assert inserted is not None  # INSERT ... RETURNING gives its row
            return int(inserted[0])


def report_statements(
    db: Database,
    statements: list[tuple[str, Any]],
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


def _end_transaction(conn: Any) -> None:
    """Roll back what a message that failed left open (a transaction its error aborted),
    through the libpq wrapper as the fill path does: psycopg answers a ``ROLLBACK`` sent
    through a cursor by deallocating every prepared statement of the connection, the
    fills' included. Nothing when the connection is idle or gone (the server rolled
    back)."""
    try:
        if conn.pgconn.transaction_status != 0:  # not IDLE: a transaction is open
            conn.pgconn.exec_(b"ROLLBACK")
    except Exception:  # the connection is gone: the server rolled back for us
        pass


def _stored(v: Any) -> Any:
    """A checked value as the order's row stores it."""
    if v is None or type(v) is str or type(v) is int:
        return v
    if isinstance(v, enum.Enum):
        return v.value
    return scaled_text(v)  # a checked decimal: at most SCALE places
