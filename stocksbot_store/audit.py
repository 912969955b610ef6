"""The audit log: who changed which order, trade, position, strategy or setting, when,
and from what to what.

Every write path of the store (fills, bulk fills, hand adjustments, the repositories,
the service, config, adoption, import) writes its rows here **in the transaction of
the change**: a rolled-back change leaves no audit row, a committed one always has
its rows. Because the store's own code writes them (not triggers), the log survives
the table rebuilds SQLite migrations do, and reads the same on every backend. It is
append-only: the store has no method that changes or removes an audit row, and on
PostgreSQL a trigger refuses ``UPDATE`` and ``DELETE`` on the table.

A row is ``(id, at, actor, table_name, row_id, action, changes)``:

* ``table_name``: the store's name of the table, as its repositories are called:
  ``orders``, ``trades``, ``positions``, ``strategies``, ``config``;
* ``actor``: who wrote it, ``StorageService(db, actor="bot-eu-1")``, by default
  :func:`default_actor` (``user@host:pid``);
* ``changes``: JSON ``{field: [before, after]}`` of the fields that changed, exact
  decimals as fixed-point text, times as ISO-8601 text in UTC, enums as their values,
  a foreign key by its id; ``updated_at`` is left out (``at`` is that time);
* ``action``, one of :data:`ACTIONS`:

  - ``create``: a new row; every field, ``before`` null;
  - ``update``: fields set by hand (a repository ``update``, ``attach_external_id``);
  - ``status``: an order's status moved (``update_status``, ``cancel_order``);
  - ``fill``: a fill (or a hand adjustment, which is recorded as one) moved an order's
    fill figures and status, a position's figures or a strategy's figures; a position
    a fill opens is a ``create``. A batch of fills (``record_trades``) writes one row
    per trade and one per order, position and strategy it touched, with the net
    change over the batch;
  - ``set``: a setting written by ``set_config_value`` (``before`` null when new);
  - ``delete`` / ``restore``: a row soft-deleted or brought back (its ``deleted_at``
    and ``deleted_by`` before and after, see :mod:`stocksbot_store.softdelete`);
  - ``purge``: a soft-deleted row removed for good by ``stocksbot-purge`` (its last
    values, ``after`` null);
  - ``adopt`` / ``import``: a summary row (``row_id`` null) per table, written by an
    adoption or by an import, restore or convert into an empty store:
    ``{"rows": [null, n], "first_id": [null, a], "last_id": [null, b], "source": ...}``.

Adoption and import write one summary row per table, not one per row: they write up to
millions of rows in one transaction, and a row each would double that work to record
rows that were not changed here but brought in whole. An adoption's report (kept in
the database, ``stocksbot-migrate adopt``) lists every row it had to change; an
import is verified row for row against its source. An import or restore copies the
source's own audit log with its rows (the log as it was when the backup or archive
was made: changes made after it are gone with the data they changed), then appends
its summary rows.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import getpass
import itertools
import json
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from peewee import Database, Model

from .backends import backend_of
from .errors import CorruptRowError, ValidationError, translate_errors
from .fields import SCALE, datetime_text, decimal_text, to_utc, utcnow
from .ledger import STRATEGY_FIGURES
from .models import AuditLog
from .validation import check_id, check_text

#: The store's name of each audited table, by its SQL name.
TABLES = {
    "order": "orders",
    "trade": "trades",
    "position": "positions",
    "strategy": "strategies",
    "config": "config",
}
#: What an audit row's ``action`` says (see the module docstring).
ACTIONS = (
    "create",
    "update",
    "status",
    "fill",
    "set",
    "delete",
    "restore",
    "purge",
    "adopt",
    "import",
)
#: The most rows :func:`get_audit_log` returns at once.
MAX_LIMIT = 10_000
ACTOR_MAX = 200


class IdInDatabase(NamedTuple):
    """A row id only the database knows yet, written as ``sql`` (with ``params``) in its
    place: on PostgreSQL the fill path sends a new row's insert and its audit row in one
    round trip, the id being the ``currval`` of the row's sequence."""

    sql: str
    params: tuple


#: One audit row to write: (table, row id, action, changes), the changes as a dict or
#: already as JSON text (the fill path's trade rows).
Entry = tuple[str, "int | IdInDatabase | None", str, "dict[str, list[Any]] | str"]

_COLUMNS = ("at", "actor", "table_name", "row_id", "action", "changes")
_ROWS_PER_STATEMENT = 100
#: Rows :meth:`AuditWriter.write_many` holds at once (whole statements of them).
_ROWS_PER_CALL = 50 * _ROWS_PER_STATEMENT
_POSITION_FIELDS = (
    "side",
    "quantity",
    "avg_entry_price",
    "cost_basis",
    "realized_pnl",
    "commission",
    "fees",
    "is_open",
    "opened_at",
    "closed_at",
)
_TRADE_COLUMNS = (
    "order_id",
    "external_id",
    "strategy_id",
    "symbol",
    "side",
    "type",
    "quantity",
    "price",
    "commission",
    "fees",
    "realized_pnl",
    "executed_at",
    "created_at",
)
#: Columns of a new trade that always hold text needing no escaping (an enum's value,
#: a decimal's or a time's text): their quotes are in the template.
_PLAIN_TEXT = frozenset(("side", "type", "quantity", "price", "commission", "fees", "executed_at"))
#: The JSON of a new trade's changes, filled in with :func:`_trade_created`: every value
#: is a number, null, or text that needs no escaping but the free-text ones (symbol,
#: broker id), which are escaped. ``created_at`` is left out: it is the row's ``at``.
_TRADE_JSON = (
    "{"
    + ",".join(
        f'"{name}":[null,"%s"]' if name in _PLAIN_TEXT else f'"{name}":[null,%s]'
        for name in _TRADE_COLUMNS[:-1]
    )
    + "}"
)
_UTC = dt.timezone.utc


def default_actor() -> str:
    """Who this process is, as the audit log names it: ``user@host:pid``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a container)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


def check_actor(actor: Any) -> str:
    """``actor`` if it is usable text (1 to 200 printable characters)."""
    return check_text(actor, "actor", ACTOR_MAX)


# -- values ---------------------------------------------------------------------------


def value(v: Any) -> Any:
    """A field value as the audit log stores it: exact decimals as fixed-point text,
    times as ISO-8601 text in UTC, enums as their values, a row by its id."""
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, Decimal):
        return decimal_text(v) if v.is_finite() else str(v)
    if isinstance(v, dt.datetime):
        return to_utc(v).isoformat(timespec="microseconds")
    if isinstance(v, enum.Enum):
        return v.value
    if isinstance(v, Model):
        return v.get_id()
    return v


def _time(v: Any) -> Any:
    """A stored time text (``2026-01-05 14:30:00.000000+00:00``) as ISO-8601."""
    return v.replace(" ", "T", 1) if isinstance(v, str) else value(v)


_LEFT_OUT = ("id", "updated_at")


def created(values: dict[str, Any]) -> dict[str, list[Any]]:
    """The changes of a new row: every field, before null."""
    return {name: [None, value(v)] for name, v in values.items() if name not in _LEFT_OUT}


def last_values(values: dict[str, Any]) -> dict[str, list[Any]]:
    """The changes of a deleted row: every field, after null."""
    return {name: [value(v), None] for name, v in values.items() if name not in _LEFT_OUT}


def changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """``{field: [before, after]}`` of the fields of ``after`` whose value differs."""
    out = {}
    for name, new in after.items():
        if name == "updated_at":
            continue
        old, new = value(before.get(name)), value(new)
        if old != new:
            out[name] = [old, new]
    return out


def row_values(row: Model, names: Iterable[str] | None = None) -> dict[str, Any]:
    """A model row's fields (``names``, default all) by column name, as the fill path
    and :meth:`~stocksbot_store.models.BaseModel.to_dict` name them (``strategy_id``)."""
    fields = row._meta.fields
    return {
        fields[name].column_name: row.__data__.get(name)
        for name in (row._meta.sorted_field_names if names is None else names)
    }


def _dumps(changes: dict[str, list[Any]]) -> str:
    return json.dumps(changes, separators=(",", ":"), default=str)


# -- writing --------------------------------------------------------------------------


class AuditWriter:
    """Writes audit rows on one database for one actor, inside the caller's
    transaction. The statements are built once from :class:`AuditLog`'s fields."""

    def __init__(self, db: Database, actor: str | None = None) -> None:
        self.db = db
        self.actor = default_actor() if actor is None else check_actor(actor)
        #: Switched off only by the benchmark that measures what the log costs
        #: (``bench.audit_overhead``); the store never turns it off.
        self.enabled = True
        self._pg = backend_of(db) == "postgres"
        self._param = "%s" if self._pg else "?"
        meta = AuditLog._meta
        self._head = (
            f'INSERT INTO "{meta.table_name}" ('
            + ", ".join(f'"{meta.fields[n].column_name}"' for n in _COLUMNS)
            + ") VALUES "
        )
        self._copy = (
            f'COPY "{meta.table_name}" ('
            + ", ".join(f'"{meta.fields[n].column_name}"' for n in _COLUMNS)
            + ") FROM STDIN"
        )
        self._row = "(" + ", ".join([self._param] * len(_COLUMNS)) + ")"
        self._inserts: dict[int, str] = {}

    def _insert(self, count: int) -> str:
        sql = self._inserts.get(count)
        if sql is None:
            sql = self._inserts[count] = self._head + ", ".join([self._row] * count)
        return sql

    def _params(self, entries: Iterable[Entry], at: str) -> list[tuple]:
        actor = self.actor
        return [
            (
                at,
                actor,
                table,
                row_id,
                action,
                changes if isinstance(changes, str) else _dumps(changes),
            )
            for table, row_id, action, changes in entries
        ]

    def write(
        self,
        entries: Sequence[Entry],
        at: str | None = None,
        execute: Callable[[str, Sequence], Any] | None = None,
    ) -> None:
        """Insert ``entries`` with one statement; ``at``: the stored text of the time
        (default now); ``execute(sql, params)`` runs it (default: the database's
        ``execute_sql``; the fill path passes its pipeline's). Call it inside the
        transaction of the change."""
        if not self.enabled or not entries:
            return
        at = at or datetime_text(utcnow())
        actor = self.actor
        params: list[Any] = []
        ids_in_database = False
        for table, row_id, action, changes in entries:
            if not isinstance(changes, str):
                changes = _dumps(changes)
            if type(row_id) is IdInDatabase:
                ids_in_database = True
            params += (at, actor, table, row_id, action, changes)
        if ids_in_database:
            width = len(_COLUMNS)
            sql, params = self._with_ids_in_database(
                [tuple(params[i : i + width]) for i in range(0, len(params), width)]
            )
        else:
            sql = self._insert(len(entries))
        with translate_errors("writing the audit log"):
            (execute or self.db.execute_sql)(sql, params)

    def _with_ids_in_database(self, rows: list[tuple]) -> tuple[str, list]:
        """The insert of ``rows`` whose row ids may be :class:`IdInDatabase`: its SQL in
        place of the value."""
        values: list[str] = []
        params: list[Any] = []
        for row in rows:
            row_id = row[3]
            if type(row_id) is IdInDatabase:
                marks = [self._param] * len(_COLUMNS)
                marks[3] = row_id.sql
                values.append("(" + ", ".join(marks) + ")")
                params += (*row[:3], *row_id.params, *row[4:])
            else:
                values.append(self._row)
                params += row
        return self._head + ", ".join(values), params

    def write_many(self, entries: Iterable[Entry], at: str, cursor: Any = None) -> None:
        """Insert many ``entries`` (a batch of fills, an import): ``COPY`` on PostgreSQL,
        statements of 100 rows on SQLite; ``cursor``: the caller's, if it has one.
        ``entries`` are taken :data:`_ROWS_PER_CALL` at a time, so a generator that
        makes each one when asked keeps no more than those in memory at once."""
        if not self.enabled:
            return
        remaining = iter(entries)
        chunks = iter(lambda: self._params(itertools.islice(remaining, _ROWS_PER_CALL), at), [])
        first = next(chunks, None)
        if first is None:
            return
        cursor = cursor if cursor is not None else self.db.cursor()
        if self._pg:
            with cursor.copy(self._copy) as copy:
                for rows in itertools.chain((first,), chunks):
                    for row in rows:
                        copy.write_row(row)
            return
        for rows in itertools.chain((first,), chunks):
            full = len(rows) - len(rows) % _ROWS_PER_STATEMENT
            if full:
                cursor.executemany(
                    self._insert(_ROWS_PER_STATEMENT),
                    [
                        [v for row in rows[start : start + _ROWS_PER_STATEMENT] for v in row]
                        for start in range(0, full, _ROWS_PER_STATEMENT)
                    ],
                )
            if full < len(rows):  # the last chunk's: every other is whole statements
                cursor.execute(
                    self._insert(len(rows) - full), [v for row in rows[full:] for v in row]
                )

    def row(
        self, table: str, row_id: int | None, action: str, changes: dict[str, list[Any]]
    ) -> None:
        """Write one audit row (nothing when ``changes`` is empty and the row is not a
        create or a delete)."""
        if changes or action in ("create", "delete", "restore"):
            self.write([(TABLES.get(table, table), row_id, action, changes)])

    def summaries(self, action: str, **more: Any) -> None:
        """One row per audited table that holds rows, standing for all of them: what an
        adoption or an import wrote at once. Its changes: how many rows, the first and
        the last id, and ``more`` as ``[null, value]``."""
        entries: list[Entry] = []
        for table, name in TABLES.items():
            with translate_errors("reading the audit log"):
                count, first, last = self.db.execute_sql(
                    f'SELECT count(*), min(id), max(id) FROM "{table}"'
                ).fetchone()
            if count:
                changes = {
                    "rows": [None, count],
                    "first_id": [None, first],
                    "last_id": [None, last],
                }
                changes.update({k: [None, value(v)] for k, v in more.items()})
                entries.append((name, None, action, changes))
        self.write(entries)

    # -- the fill path --------------------------------------------------------------

    def fill(
        self,
        stamp: str,
        trade_id: int | IdInDatabase,
        trade: tuple,
        order: Any,
        order_before: tuple,
        position: Any,
        touched: list,
        strategy_id: int | None,
        figures_before: Any,
        figures: Any,
        execute: Callable[[str, Sequence], Any] | None = None,
    ) -> None:
        """The rows of one fill, in one statement: the trade (its ``insert_trade``
        parameters ``trade``), the order (an ``OrderState`` after the fill and its
        ``(filled, avg, status)`` before), the positions (the open one before, the
        ``touched`` ones after) and the strategy's figures before and after;
        ``execute``: as for :meth:`write`."""
        if not self.enabled:
            return
        entries: list[Entry] = [("trades", trade_id, "create", _trade_created(trade))]
        if order is not None:
            entries.append(("orders", order.id, "fill", _order_changes(order_before, order)))
        for p in touched:
            entries.append(
                _position_entry(
                    position if position is not None and position.id == p.id else None, p
                )
            )
        if figures is not None:
            entries.append(
                ("strategies", strategy_id, "fill", _figure_json(figures_before, figures))
            )
        self.write(entries, stamp, execute)

    def fill_batch(
        self,
        cursor: Any,
        stamp: str,
        trades: list[tuple],
        trade_ids: list[int],
        orders_before: dict[int, tuple],
        orders: dict[int, Any],
        positions_before: dict[int, Any],
        positions: dict[int, Any],
        position_ids: list[int],
        figures_before: dict[int, Any],
        figures: dict[int, Any],
    ) -> None:
        """The rows of a batch of fills: one per new trade, and one per order, position
        and strategy touched with its net change over the batch (``position_ids``: the
        ids new positions, numbered -1, -2..., were given)."""
        if not self.enabled:
            return
        entries: list[Entry] = [
            ("orders", oid, "fill", _order_changes(orders_before[oid], order))
            for oid, order in orders.items()
        ]
        for pid, p in positions.items():
            table, _, action, changes = _position_entry(positions_before.get(pid), p)
            entries.append((table, pid if pid > 0 else position_ids[-pid - 1], action, changes))
        for sid, f in figures.items():
            changes = _figure_changes(figures_before[sid], f)
            if changes:  # a strategy whose fills in the batch were all stored already
                entries.append(("strategies", sid, "fill", changes))
        # The trades' rows made as they are written (their JSON is most of the batch's).
        trade_entries: Iterable[Entry] = (
            ("trades", tid, "create", _trade_created(row))
            for tid, row in zip(trade_ids, trades, strict=True)
        )
        self.write_many(itertools.chain(trade_entries, entries), stamp, cursor)


def _trade_created(trade: tuple) -> str:
    """The changes of a new trade as JSON text, from its ``insert_trade`` parameters
    (built from a template: a dict and ``json.dumps`` cost as much as the insert)."""
    (
        order_id,
        external_id,
        strategy_id,
        symbol,
        side,
        kind,
        quantity,
        price,
        commission,
        fees,
        realized_pnl,
        executed_at,
        _,
    ) = trade
    return _TRADE_JSON % (
        "null" if order_id is None else order_id,
        "null" if external_id is None else _json_text(external_id),
        "null" if strategy_id is None else strategy_id,
        _json_text(symbol),
        side,
        kind,
        quantity,
        price,
        commission,
        fees,
        "null" if realized_pnl is None else f'"{realized_pnl}"',
        _time(executed_at),
    )


def _json_text(text: str) -> str:
    """``json.dumps(text)``, for a third of its cost in the common case: printable
    ASCII with no quote or backslash is its own JSON, quoted (every other text goes
    through ``json.dumps``)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return json.dumps(text)


#: How the fill path's decimals are written: every one has at most ``SCALE`` places
#: (see :func:`~stocksbot_store.fields.scaled_text`), so this is their stored text.
_PLACES = f".{SCALE}f"
#: How a field of a state is written in a changes object (:func:`_pairs`): as decimal
#: text, as an integer, or as :func:`_json` makes it.
_DECIMAL, _INTEGER, _OTHER = range(3)
_POSITION_KINDS = tuple(
    (name, _OTHER if name in ("side", "is_open", "opened_at", "closed_at") else _DECIMAL)
    for name in _POSITION_FIELDS
)
_FIGURE_KINDS = tuple(
    (name, _INTEGER if name.endswith("_trades") else _OTHER if name.endswith("_at") else _DECIMAL)
    for name in STRATEGY_FIGURES
)


def _json(v: Any) -> str:
    """The JSON text of :func:`value` of ``v``, as :func:`_dumps` writes it, without
    ``json.dumps`` for what the fill path holds (decimals, times in UTC, plain text,
    numbers, null): a dict and ``json.dumps`` per audit row cost more than its insert."""
    if v is None:
        return "null"
    kind = type(v)
    if kind is Decimal and v.is_finite():
        return f'"{v:{_PLACES}}"'
    if kind is dt.datetime and v.tzinfo is _UTC:
        return _iso_json(v)
    if kind is str:
        return _json_text(v)
    if kind is int:
        return str(v)
    if kind is bool:
        return "true" if v else "false"
    return _dumps(value(v))


@functools.lru_cache(maxsize=64)
def _iso_json(at: dt.datetime) -> str:
    """The JSON text of a time in UTC; remembered: a strategy's last trade time is
    written after one fill and again before the next (``isoformat`` costs more than the
    look-up)."""
    return f'"{at.isoformat(timespec="microseconds")}"'


def _pair(name: str, before: Any, after: Any) -> str:
    """One field of a changes object as JSON text: ``"name":[before,after]``."""
    return f'"{name}":[{_json(before)},{_json(after)}]'


def _pairs(before: Any, after: Any, kinds: tuple[tuple[str, int], ...]) -> list[str]:
    """:func:`_pair` of each field of ``kinds`` whose value differs between the states
    ``before`` and ``after``; a decimal or an integer field is written in place (a
    function call per value costs as much as the rest)."""
    pairs = []
    for name, kind in kinds:
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            if kind == _DECIMAL and type(old) is Decimal and type(new) is Decimal:
                pairs.append(f'"{name}":["{old:{_PLACES}}","{new:{_PLACES}}"]')
            elif kind == _INTEGER and type(old) is int and type(new) is int:
                pairs.append(f'"{name}":[{old},{new}]')
            else:
                pairs.append(_pair(name, old, new))
    return pairs


def _order_changes(before: tuple, order: Any) -> str:
    """The JSON changes of an order a fill moved, from its ``(filled, avg, status)``
    before and its state after."""
    filled, avg, status = before
    pairs = [_pair("filled_quantity", filled, order.filled)]
    if avg != order.avg:
        pairs.append(_pair("avg_fill_price", avg, order.avg))
    if status != order.status:
        pairs.append(_pair("status", status, order.status))
    if order.filled_at is not None:
        pairs.append(_pair("filled_at", None, _time(order.filled_at)))
    return "{" + ",".join(pairs) + "}"


def _position_entry(before: Any, after: Any) -> Entry:
    """The audit row of a position a fill touched: ``create`` when it opened it."""
    if before is None:
        changes = ",".join(_pair(name, None, getattr(after, name)) for name in _POSITION_FIELDS)
        return ("positions", after.id, "create", "{" + changes + "}")
    return (
        "positions",
        after.id,
        "fill",
        "{" + ",".join(_pairs(before, after, _POSITION_KINDS)) + "}",
    )


def _win_rates(before: Any, after: Any) -> tuple[Decimal, Decimal] | None:
    """A strategy's win rate before and after, if it moved; worked out only when the
    counts it comes from moved (a division and a rounding twice a fill otherwise)."""
    if (
        before.closing_trades == after.closing_trades
        and before.winning_trades == after.winning_trades
    ):
        return None
    old, new = before.win_rate, after.win_rate
    return None if old == new else (old, new)


def _figure_changes(before: Any, after: Any) -> dict[str, list[Any]]:
    changes = {}
    for name in STRATEGY_FIGURES:
        old, new = getattr(before, name), getattr(after, name)
        if old != new:
            changes[name] = [value(old), value(new)]
    rates = _win_rates(before, after)
    if rates is not None:
        changes["win_rate"] = [value(rates[0]), value(rates[1])]
    return changes


def _figure_json(before: Any, after: Any) -> str:
    """:func:`_figure_changes` as the JSON text the audit row holds."""
    pairs = _pairs(before, after, _FIGURE_KINDS)
    rates = _win_rates(before, after)
    if rates is not None:
        pairs.append(_pair("win_rate", *rates))
    return "{" + ",".join(pairs) + "}"


# -- the PostgreSQL guard ---------------------------------------------------------------

_GUARD = "audit_log_append_only"


def install_append_only_trigger(db: Database) -> None:
    """Make ``audit_log`` refuse UPDATE and DELETE on PostgreSQL, whoever asks (a
    trigger raising SQLSTATE 42501). Nothing on SQLite, whose only writer is the
    store."""
    if backend_of(db) != "postgres":
        return
    db.execute_sql(
        f"CREATE OR REPLACE FUNCTION {_GUARD}() RETURNS trigger AS $$ BEGIN "
        "RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'audit_log is append-only: "
        "' || TG_OP || ' refused'; END; $$ LANGUAGE plpgsql"
    )
    db.execute_sql(f'DROP TRIGGER IF EXISTS "{_GUARD}" ON "audit_log"')
    db.execute_sql(
        f'CREATE TRIGGER "{_GUARD}" BEFORE UPDATE OR DELETE ON "audit_log" '
        f"FOR EACH ROW EXECUTE FUNCTION {_GUARD}()"
    )


def drop_append_only_trigger(db: Database) -> None:
    """Remove the trigger and its function (for a downgrade). Nothing on SQLite."""
    if backend_of(db) != "postgres":
        return
    db.execute_sql(f'DROP TRIGGER IF EXISTS "{_GUARD}" ON "audit_log"')
    db.execute_sql(f"DROP FUNCTION IF EXISTS {_GUARD}()")


# -- reading --------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    """One audit row as :func:`get_audit_log` returns it."""

    id: int
    at: dt.datetime
    actor: str
    #: The store's name of the table: orders, trades, positions, strategies, config.
    table: str
    #: The changed row's id; None on a summary row (adopt, import).
    row_id: int | None
    action: str
    #: ``{field: [before, after]}``.
    changes: dict[str, list[Any]]

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON values (``at`` as ISO-8601 text)."""
        return {
            "id": self.id,
            "at": value(self.at),
            "actor": self.actor,
            "table": self.table,
            "row_id": self.row_id,
            "action": self.action,
            "changes": self.changes,
        }


def table_name(table: str) -> str:
    """The store's name of ``table``, given that or its SQL name (``order``)."""
    if table in TABLES.values():
        return table
    if table in TABLES:
        return TABLES[table]
    raise ValidationError(
        "table", f"{table!r} is not an audited table; one of {', '.join(TABLES.values())}"
    )


def get_audit_log(
    db: Database,
    table: str | None = None,
    row_id: int | None = None,
    since: dt.datetime | str | None = None,
    limit: int = 100,
    actor: str | None = None,
    before_id: int | None = None,
) -> list[AuditEntry]:
    """Audit rows newest first, filtered by table (and row id), time (``since``,
    inclusive), actor; page with ``before_id``: the last id of the previous page."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_LIMIT:
        raise ValidationError("limit", f"must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    # The page's ids first, then its rows: with a table filter SQLite finds the ids in
    # the (table_name, row_id, id) index alone, but sorting whole rows (with their
    # changes) by id took it 10 times longer, linear in the table's rows.
    query = AuditLog.select(AuditLog.id).bind(db)
    if table is not None:
        query = query.where(AuditLog.table_name == table_name(table))
    if row_id is not None:
        if table is None:
            raise ValidationError("row_id", "give the table too: ids repeat across tables")
        query = query.where(AuditLog.row_id == check_id(row_id, "row_id"))
    if since is not None:
        query = query.where(AuditLog.at >= to_utc(since, "since"))
    if actor is not None:
        query = query.where(AuditLog.actor == actor)
    if before_id is not None:
        query = query.where(AuditLog.id < check_id(before_id, "before_id"))
    page = (
        AuditLog.select()
        .bind(db)
        .where(AuditLog.id.in_(query.order_by(AuditLog.id.desc()).limit(limit)))
    )
    query = page.order_by(AuditLog.id.desc())
    with translate_errors("reading the audit log"):
        return [
            AuditEntry(
                row.id,
                row.at,
                row.actor,
                row.table_name,
                row.row_id,
                row.action,
                _changes_of(row),
            )
            for row in query
        ]


def _changes_of(row: AuditLog) -> dict[str, Any]:
    """An audit row's changes; text that is not the JSON object the store writes (the
    table edited by hand) is a :class:`CorruptRowError` naming the row."""
    try:
        changes = json.loads(row.changes)
    except (TypeError, ValueError):
        changes = None
    if not isinstance(changes, dict):
        raise CorruptRowError(
            f"audit_log row {row.id}: its changes are not the JSON object the store writes "
            f"({str(row.changes)[:60]!r}): the table was changed outside the store; read "
            "the rows around it with before_id, or restore the log from a backup"
        )
    return changes


__all__ = [
    "ACTIONS",
    "TABLES",
    "AuditEntry",
    "AuditWriter",
    "default_actor",
    "get_audit_log",
]
