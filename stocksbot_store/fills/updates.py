"""On PostgreSQL, the batch's updates of many rows of one table as one statement.

An ``executemany`` of an ``UPDATE ... WHERE id = %s``, even pipelined, runs one
statement per row on the server, each with its planning, its executor start-up
and its statement trigger (the notify trigger, see :mod:`stocksbot_store.notify`):
for 10,000 orders that was half of a 20,000-fill import's writes. Here the rows go
as one array per column instead, and one statement joins them to the table::

    UPDATE "order" SET "status" = "v"."status", ...
    FROM (SELECT unnest(CAST(%s AS VARCHAR[])) AS "status", ...,
                 unnest(CAST(%s AS INTEGER[])) AS "id") AS "v"
    WHERE ("order"."id" = "v"."id")

The unnests run side by side, so the arrays' n-th elements make the n-th row.
Each array is cast to its column's type without its length (the assignment then
checks a too-long text, where a cast would cut it): decimals arrive as their exact
text and are parsed by the server as ``NUMERIC``, times as UTC text into
``TIMESTAMPTZ``, and a ``None`` is a NULL element. Like the fill path's other
statements (:mod:`stocksbot_store.fills.statements`), each is built once per
database with peewee's query builder from the models' fields.

Measured against the executemany, updating 10,000 rows of 50,000 in a table of
the orders' columns and indexes (five rounds, medians): 0.27 s wall instead of
0.55, 18 ms of the client's CPU instead of 151. ``COPY`` into a temporary table and
one ``UPDATE ... FROM`` it took as long (0.29 s, 9 ms of CPU) but creates and drops
a table in the catalog every batch.

The batch's report buckets (:mod:`stocksbot_store.buckets`) go the same way: an
upsert that adds each row's figures to the stored ones (:data:`ADDS`), its rows as
arrays, ``INSERT ... SELECT unnest(...) ON CONFLICT (key) DO UPDATE SET x = x +
excluded.x``. The rows come sorted by key and the unnests keep their order, so the
buckets are locked in key order as before. As an executemany, the 2,000 buckets of
a 20,000-fill import were 2,000 statements.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

from peewee import (
    EXCLUDED,
    AutoField,
    BigAutoField,
    BigIntegerField,
    Database,
    IntegerField,
    Model,
    Select,
    fn,
)

from ..buckets import FIGURE_COLUMNS, KEY
from ..models import Order, PnlBucket, Position, Strategy
from .rows import ORDER_UPDATE, POSITION_UPDATE, STRATEGY_UPDATE
from .statements import compile_query, slot

#: The batch's updates: the table each changes, and the columns its rows hold, in the
#: order the row builders of :mod:`stocksbot_store.fills.rows` write them (the key last).
UPDATES: dict[str, tuple[type[Model], tuple[str, ...]]] = {
    "update_order": (Order, (*ORDER_UPDATE, "id")),
    "update_position": (Position, (*POSITION_UPDATE, "id")),
    "update_strategy": (Strategy, (*STRATEGY_UPDATE, "id")),
}

#: The batch's upserts that add to stored rows: the table, the columns of its conflict
#: key, and the columns whose values are added to a stored row's (or inserted), in the
#: order :meth:`stocksbot_store.buckets.Tally.sorted_rows` writes them (the key first).
ADDS: dict[str, tuple[type[Model], tuple[str, ...], tuple[str, ...]]] = {
    "add_buckets": (PnlBucket, KEY, FIGURE_COLUMNS),
}

_BUILT: weakref.WeakKeyDictionary[Database, dict[str, str]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def update_sql(db: Database, name: str) -> str:
    """The one-statement form of the update ``name`` (a key of :data:`UPDATES` or of
    :data:`ADDS`) for the PostgreSQL database ``db``, built on first use; it takes
    :func:`columns` of the rows."""
    built = _BUILT.get(db)
    if built is None:
        with _LOCK:
            built = _BUILT.setdefault(db, {})
    sql = built.get(name)
    if sql is None:
        if name in ADDS:
            sql = built[name] = _build_add(db, *ADDS[name])
        else:
            model, names = UPDATES[name]
            sql = built[name] = _build(db, model, names)
    return sql


def columns(rows: Sequence[Sequence[Any]]) -> list[str]:
    """The statement's parameters: ``rows`` (not empty) as one array per column, each
    written as PostgreSQL's text of an array. Not lists for psycopg to adapt: its
    adapter took 90 ms for the six columns of 10,000 orders, these 18."""
    return ["{" + ",".join(map(_element, column)) + "}" for column in zip(*rows, strict=True)]


def _element(value: Any) -> str:
    """``value`` as an element of an array's text: NULL, a boolean, an integer, or
    any other value's text quoted (so a comma, a brace, a space or the word NULL in it
    stays text), its quotes and backslashes escaped."""
    if value is None:
        return "NULL"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if type(value) is int:
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _build(db: Database, model: type[Model], names: tuple[str, ...]) -> str:
    *changed, key = names
    fields = model._meta.fields
    source = Select(
        columns=[
            fn.unnest(slot(name).cast(_array_type(db, fields[name]))).alias(name) for name in names
        ]
    ).alias("v")
    query = (
        model.update({fields[name]: getattr(source.c, name) for name in changed})
        .from_(source)
        .where(fields[key] == getattr(source.c, key))
    )
    return compile_query(db, query, names).sql


def _build_add(
    db: Database, model: type[Model], key: tuple[str, ...], added: tuple[str, ...]
) -> str:
    fields = model._meta.fields
    names = key + added
    source = Select(
        columns=[fn.unnest(slot(name).cast(_array_type(db, fields[name]))) for name in names]
    )
    query = model.insert_from(source, [fields[name] for name in names]).on_conflict(
        conflict_target=[fields[name] for name in key],
        update={fields[name]: fields[name] + getattr(EXCLUDED, name) for name in added},
    )
    return compile_query(db, query, names).sql


def _array_type(db: Database, field: Any) -> str:
    """The type of an array of ``field``'s values: its column's type without a length
    (``VARCHAR(16)`` -> ``VARCHAR[]``); an auto-increment key's is its integer type."""
    if isinstance(field, AutoField):
        field = BigIntegerField() if isinstance(field, BigAutoField) else IntegerField()
    ctx = db.get_sql_context()
    column_type = ctx.sql(field.ddl_datatype(ctx)).query()[0]
    return column_type.split("(", 1)[0] + "[]"
