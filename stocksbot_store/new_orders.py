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
query with its values bound by psycopg on the client (:mod:`stocksbot_store.at_once`):
a pipeline of prepared statements took twice its CPU. Its faults, as on the fill path's
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
the statements run one by one. On SQLite, outside a caller's transaction, they run
between a ``BEGIN IMMEDIATE`` and a ``COMMIT`` of their own without peewee's transaction
objects (:meth:`NewOrders._insert_sqlite`); inside one, in a savepoint as usual.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _json_text  # what json.dumps uses
from typing import Any

from peewee import Database
from peewee import __exception_wrapper__ as driver_errors  # type: ignore[attr-defined]

from .at_once import ClientCursor, Statement, can_send_at_once, send_at_once
from .audit import TABLES, AuditWriter
from .backends import backend_of
from .connection import raise_if_lost
from .database import write_transaction
from .errors import Fault, fault_of, translate_errors
from .fields import UTCDateTimeField, datetime_text, scaled_text, utcnow
from .models import AuditLog, Order, OrderStatusEnum
from .monitor import HookedCursor

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
        #: Where each field's value goes in the insert's parameters.
        self.index = {name: i for i, name in enumerate(self.columns)}
        #: The insert's parameters before the order's values are put in: the defaults.
        self.row = [self.defaults_stored[name] for name in self.columns]
        self.stamped = (self.index["created_at"], self.index["updated_at"])
        # The audit row's changes as ``created`` gives them, every field but the id and
        # ``updated_at``, in JSON (``"column":[null,value]``): the fields an order is
        # given and its creation time change from order to order; the rest are always
        # their defaults, written once here.
        audited = [name for name in self.columns if name != "updated_at"]
        #: The changes' parts, the defaults' filled in.
        self.audit_parts: list[str] = []
        #: The parts to fill in: (its place in the parts, its key and ``[null,`` in JSON,
        #: its place in the row, whether it is a time).
        self.audit_varying: list[tuple[int, str, int, bool]] = []
        for name in audited:
            key = _json_text(fields[name].column_name) + ":[null,"
            is_time = isinstance(fields[name], UTCDateTimeField)
            if name in NEW_ORDER_NAMES or name == "created_at":
                self.audit_varying.append((len(self.audit_parts), key, self.index[name], is_time))
                self.audit_parts.append("")
            else:
                self.audit_parts.append(key + _json_value(self.defaults_stored[name], is_time))
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
        row = self.row.copy()
        index = self.index
        for name, v in values.items():
            if v is not None and type(v) is not str and type(v) is not int:
                v = _stored(v)
            row[index[name]] = v
        created, updated = self.stamped
        row[created] = row[updated] = stamp
        audit = self._audit_params(row, stamp) if self.audit.enabled else None
        db = self.db
        with translate_errors("creating Order"):
            order_id = None
            if self.pg:
                if self.at_once and not db.in_transaction():
                    order_id = self._insert_at_once(row, audit)
            elif not db.in_transaction():
                order_id = self._insert_sqlite(row, audit)
            if order_id is None:
                with write_transaction(db):
                    run = HookedCursor(db, db.connection()).execute
                    cursor = run(self.insert_sql, row)
                    order_id = cursor.fetchone()[0] if self.pg else cursor.lastrowid
                    self._write_audit(run, order_id, audit)
        order = Order(__no_default__=1)
        order.__data__ = {
            **self.defaults_read,
            **values,
            "created_at": now,
            "updated_at": now,
            "id": order_id,
        }
        return order

    def _insert_sqlite(self, row: list, audit: list | None) -> int:
        """The order in a transaction of its own on SQLite, as ``write_transaction``
        runs it outside a caller's transaction, without peewee's transaction objects
        (in Python they cost more than SQLite's own work for the ``COMMIT``). The
        ``BEGIN IMMEDIATE`` is the database's ``begin``: a writer waits for another's
        lock on the busy timeout, and one that waited in vain is the same
        :class:`~stocksbot_store.errors.DatabaseUnavailableError`. The ``COMMIT`` goes
        straight to the cursor, with peewee's error wrapper: the database's ``commit``
        adds only a lost connection's handling, which a SQLite file has no use for. A
        failed statement or ``COMMIT`` is rolled back through the database's
        ``rollback``. Its id."""
        db = self.db
        hooked = HookedCursor(db, db.connection())
        run = hooked.execute
        db.begin("IMMEDIATE")  # type: ignore[call-arg]  # SqliteDatabase.begin(lock_type)
        try:
            order_id = run(self.insert_sql, row).lastrowid
            self._write_audit(run, order_id, audit)
        except BaseException:
            db.rollback()
            raise
        try:
            with driver_errors:
                hooked.cursor.execute("COMMIT")
        except Exception:
            db.rollback()
            raise
        return order_id

    def _audit_params(self, row: list, stamp: str) -> list:
        """The audit row's values (its row id filled in once known on SQLite), with the
        text ``json.dumps(created(row_values(order)), separators=(",", ":"))`` gives for
        the order as read back, put together from the stored values (``row``, the
        insert's): decimals as their stored text, enums by value, a strategy by its id,
        times as ISO-8601 (the stored text with a ``T``)."""
        parts = self.audit_parts.copy()
        for slot, key, i, is_time in self.audit_varying:
            v = row[i]
            # The usual values inline: a call per field is a tenth of this method.
            if v is None:
                parts[slot] = key + "null]"
            elif type(v) is str and not is_time:
                parts[slot] = key + _json_text(v) + "]"
            else:
                parts[slot] = key + _json_value(v, is_time)
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
        statements: list[Statement] = [("BEGIN", ()), (self.insert_sql, row)]
        self._write_audit(lambda sql, params: statements.append((sql, params)), None, audit)
        statements.append(("COMMIT", ()))
        with driver_errors:
            conn = self.db.connection()
            if not can_send_at_once(conn):  # psycopg2 (a database built by hand)
                return None
            try:
                raise_if_lost(conn, "while the connection was idle", "the order")
            except Exception as e:
                if fault_of(e) is not Fault.CONNECTION_LOST:
                    raise
                self.db.rollback()  # discards the lost connection
                return None
            cursor = send_at_once(self.db, conn, statements, commits=True)
            cursor.nextset()  # past BEGIN's result: the order INSERT's
            inserted = cursor.fetchone()
            assert inserted is not None  # INSERT ... RETURNING gives its row
            return int(inserted[0])


def _stored(v: Any) -> Any:
    """A checked value that is not text, an id or None as the order's row stores it."""
    if isinstance(v, enum.Enum):
        return v._value_  # what ``value`` gives, without the property's two calls
    return scaled_text(v)  # a checked decimal: at most SCALE places


def _json_value(v: Any, is_time: bool) -> str:
    """A stored value of an order in the audit row's changes, and the ``]`` closing its
    pair: as ``json.dumps`` writes the value read back (a time in ISO-8601 with a
    ``T``, a decimal as its text, a strategy as its id)."""
    if v is None:
        return "null]"
    if is_time:
        return '"' + v.replace(" ", "T", 1) + '"]'
    if type(v) is str:
        return _json_text(v) + "]"
    if type(v) is int:  # a strategy's id
        return repr(v) + "]"
    return json.dumps(v) + "]"
