"""The fill path's statements, built once per database from the models.

The fill path is the hot path of the store (a bot runs it for every execution, an
import for millions), and compiling a query on every fill cost more than running
it. So each statement is built here once per database object with peewee's query
builder, from the models' fields and that database's dialect and parameter style,
with named slots where the values go; the SQL text and the order of its slots are
kept (:class:`Statement`) and run with plain tuples built by
:mod:`stocksbot_store.fills.rows` in that order. Nothing here is SQL text: the
models are the one description of the tables.

On PostgreSQL the rows a fill reads to change are locked ``FOR NO KEY UPDATE``: a
plain ``FOR UPDATE`` would also block the key-share locks that inserting a trade
takes on its strategy, and two fills of one strategy deadlocked on them.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

from peewee import Cast, Database, Entity, Model, Node, Query, Select, Value, fn

from ..audit import IdInDatabase
from ..database import backend_of
from ..ledger import STRATEGY_FIGURES
from ..models import Order, Position, Strategy, Trade
from .rows import (
    ORDER_COLUMNS,
    ORDER_FILL_UPDATE,
    ORDER_UPDATE,
    POSITION_COLUMNS,
    POSITION_HELD_UPDATE,
    POSITION_UPDATE,
    POSITION_VALUES,
    SAME_FILL_COLUMNS,
    STRATEGY_UPDATE,
    TRADE_VALUES,
)


class _Slot:
    """Where one parameter goes in a compiled statement."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def slot(name: str) -> Value:
    """A parameter named ``name``, passed through unconverted (the fill path writes
    the stored text itself, see :mod:`stocksbot_store.fields`)."""
    return Value(_Slot(name), converter=False, unpack=False)


@dataclass(frozen=True)
class Statement:
    """A compiled statement: its SQL text and the names of its parameters, in order."""

    sql: str
    names: tuple[str, ...]


def compile_query(
    db: Database, query: Query | Node, names: tuple[str, ...] | None = None
) -> Statement:
    """``query`` (or an expression) compiled for ``db``; with ``names``, check that its
    parameters are exactly those slots in that order (the order the row builders write
    them in)."""
    sql, params = db.get_sql_context().sql(query).query()
    bad = [p for p in params if not isinstance(p, _Slot)]
    if bad:
        raise RuntimeError(f"statement {sql!r} has values that are not slots: {bad!r}")
    got = tuple(p.name for p in params)
    if names is not None and got != names:
        raise RuntimeError(f"statement {sql!r} takes {got}, not {names}")
    return Statement(sql, got)


def _fields(model: type[Model], names: tuple[str, ...]) -> list[Any]:
    return [model._meta.fields[name] for name in names]


def _values(model: type[Model], names: tuple[str, ...]) -> dict[Any, Value]:
    return {model._meta.fields[name]: slot(name) for name in names}


def _ordered(names: tuple[str, ...], model: type[Model]) -> tuple[str, ...]:
    """``names`` in the order of the model's fields (the order peewee inserts in)."""
    order = [f.name for f in model._meta.sorted_fields]
    return tuple(sorted(names, key=order.index))


class Statements:
    """Every statement of the fill path for one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.pg = backend_of(db) == "postgres"
        self._lists: dict[tuple[str, int], Statement] = {}
        self._current_ids: dict[type[Model], IdInDatabase] = {}
        self._lock = threading.Lock()
        built = {
            "trade_by_external_id": (
                Trade.select(Trade.id, *_fields(Trade, SAME_FILL_COLUMNS)).where(
                    Trade.external_id == slot("external_id")
                ),
                ("external_id",),
            ),
            "order": (
                self._locking(
                    Order.select(*_fields(Order, ORDER_COLUMNS)).where(Order.id == slot("id"))
                ),
                ("id",),
            ),
            "open_position": (
                self._locking(
                    Position.select(*_fields(Position, POSITION_COLUMNS)).where(
                        (Position.symbol == slot("symbol")) & (Position.is_open == slot("is_open"))
                    )
                ),
                ("symbol", "is_open"),
            ),
            "strategy": (
                self._locking(
                    Strategy.select(*_fields(Strategy, STRATEGY_FIGURES)).where(
                        Strategy.id == slot("id")
                    )
                ),
                ("id",),
            ),
            "insert_trade": (
                Trade.insert(_values(Trade, TRADE_VALUES)).returning(Trade.id),
                _ordered(TRADE_VALUES, Trade),
            ),
            # Idempotency without a lookup: a broker id stored already gives no row.
            "insert_new_trade": (
                Trade.insert(_values(Trade, TRADE_VALUES))
                .on_conflict(conflict_target=[Trade.external_id], action="NOTHING")
                .returning(Trade.id),
                _ordered(TRADE_VALUES, Trade),
            ),
            # The figures of an order's strategy and its id, read in the same round trip
            # as the order (the PostgreSQL fill reads its rows in one pipeline).
            "strategy_of_order": (
                self._locking(
                    Strategy.select(Strategy.id, *_fields(Strategy, STRATEGY_FIGURES)).where(
                        Strategy.id
                        == Order.select(Order.strategy).where(Order.id == slot("order_id"))
                    )
                ),
                ("order_id",),
            ),
            "insert_position": (
                Position.insert(_values(Position, POSITION_VALUES)).returning(Position.id),
                _ordered(POSITION_VALUES, Position),
            ),
            "insert_trade_with_id": (
                Trade.insert(_values(Trade, ("id", *TRADE_VALUES))),
                _ordered(("id", *TRADE_VALUES), Trade),
            ),
            "insert_position_with_id": (
                Position.insert(_values(Position, ("id", *POSITION_VALUES))),
                _ordered(("id", *POSITION_VALUES), Position),
            ),
            "update_order": (
                Order.update(_values(Order, ORDER_UPDATE)).where(Order.id == slot("id")),
                (*ORDER_UPDATE, "id"),
            ),
            "update_position": (
                Position.update(_values(Position, POSITION_UPDATE)).where(
                    Position.id == slot("id")
                ),
                (*POSITION_UPDATE, "id"),
            ),
            "update_order_fill": (
                Order.update(_values(Order, ORDER_FILL_UPDATE)).where(Order.id == slot("id")),
                (*ORDER_FILL_UPDATE, "id"),
            ),
            "update_held_position": (
                Position.update(_values(Position, POSITION_HELD_UPDATE)).where(
                    Position.id == slot("id")
                ),
                (*POSITION_HELD_UPDATE, "id"),
            ),
            "update_strategy": (
                Strategy.update(_values(Strategy, STRATEGY_UPDATE)).where(
                    Strategy.id == slot("id")
                ),
                (*STRATEGY_UPDATE, "id"),
            ),
        }
        if self.pg:
            built["lock_symbol"] = (
                Select(columns=[fn.pg_advisory_xact_lock(fn.hashtext(slot("symbol")))]),
                ("symbol",),
            )
            # The pipelined fill's look-up: the columns a re-sent fill is compared on,
            # then the whole row in the model's field order, the trade it answers with.
            built["stored_trade"] = (
                Trade.select(*_fields(Trade, SAME_FILL_COLUMNS), *Trade._meta.sorted_fields).where(
                    Trade.external_id == slot("external_id")
                ),
                ("external_id",),
            )
            # A setting of the planner, read and set for the rest of the transaction
            # (see BulkFills: its reads by key always take the index).
            built["setting"] = (Select(columns=[fn.current_setting(slot("name"))]), ("name",))
            built["set_setting"] = (
                Select(columns=[fn.set_config(slot("name"), slot("value"), slot("local"))]),
                ("name", "value", "local"),
            )
        self.sql = {
            name: compile_query(db, query, names).sql for name, (query, names) in built.items()
        }
        for name, names in (("insert_trade", TRADE_VALUES), ("insert_position", POSITION_VALUES)):
            model = built[name][0].model  # type: ignore[attr-defined]  # an insert's
            if _ordered(names, model) != names:  # pragma: no cover
                raise RuntimeError(f"{name}: the row builders' order is not the model's")
        self.copy = (
            {
                Trade: self._copy(Trade, ("id", *TRADE_VALUES)),
                Position: self._copy(Position, ("id", *POSITION_VALUES)),
            }
            if self.pg
            else {}
        )

    def _locking(self, query: Select) -> Select:
        # NO KEY UPDATE, not UPDATE: a concurrent insert that references the row (its
        # foreign-key check takes KEY SHARE) must not block it, or two fills of one
        # strategy deadlock.
        return (
            query.for_update("FOR NO KEY UPDATE")  # type: ignore[arg-type]  # text is ok
            if self.pg
            else query
        )

    def _copy(self, model: type[Model], names: tuple[str, ...]) -> str:
        """PostgreSQL's ``COPY`` of the fields ``names`` of ``model`` (the columns of the
        ``insert_*_with_id`` rows); peewee builds no COPY, so this one is put together
        from the model's metadata and the database's quoting."""
        columns = ", ".join(self.quoted(f.column_name) for f in _fields(model, names))
        return f"COPY {self.quoted(model._meta.table_name)} ({columns}) FROM STDIN"

    def quoted(self, name: str) -> str:
        """``name`` quoted as an identifier the way this database quotes them."""
        return self.db.get_sql_context().sql(Entity(name)).query()[0]

    def in_list(self, name: str, count: int) -> str:
        """The bulk path's reads of ``count`` keys, built on first use: an ``IN`` list
        on SQLite; on PostgreSQL ``= ANY`` of one array parameter holding the keys,
        whatever their number (psycopg parses a statement of more than 50 parameters
        again on every run, and the server takes longer over 500 of them: 15 ms
        instead of 10 for 5,000 broker ids in lists of 500)."""
        key = (name, 0 if self.pg else count)
        statement = self._lists.get(key)
        if statement is None:
            with self._lock:
                statement = self._lists[key] = compile_query(self.db, self._list_query(name, count))
        return statement.sql

    def _list_query(self, name: str, count: int) -> Query:
        def among(field: Any) -> Any:
            if self.pg:
                return field == fn.ANY(slot(name))
            return field.in_([slot(name) for _ in range(count)])

        if name == "stored_trades":
            return Trade.select(
                Trade.external_id, Trade.id, *_fields(Trade, SAME_FILL_COLUMNS)
            ).where(among(Trade.external_id))
        if name == "trades":  # whole rows, in the model's field order
            return Trade.select(*Trade._meta.sorted_fields).where(among(Trade.id))
        if name == "orders":
            return self._locking(
                Order.select(*_fields(Order, ORDER_COLUMNS))
                .where(among(Order.id))
                .order_by(Order.id)
            )
        if name == "positions":
            return self._locking(
                Position.select(Position.symbol, *_fields(Position, POSITION_COLUMNS))
                .where((Position.is_open == slot("is_open")) & among(Position.symbol))
                .order_by(Position.symbol)
            )
        if name == "strategies":
            return self._locking(
                Strategy.select(Strategy.id, *_fields(Strategy, STRATEGY_FIGURES))
                .where(among(Strategy.id))
                .order_by(Strategy.id)
            )
        raise KeyError(name)

    def current_id(self, model: type[Model]) -> IdInDatabase:
        """PostgreSQL: the id the last row inserted into ``model``'s table on this
        connection took (the ``currval`` of its sequence), as SQL to write in its place
        in a later statement of the transaction: the audit row of a new trade or position
        sent in the same round trip as its insert."""
        found = self._current_ids.get(model)
        if found is None:
            expression = fn.currval(fn.pg_get_serial_sequence(slot("table"), slot("column")))
            statement = compile_query(self.db, expression, ("table", "column"))
            column = model._meta.primary_key.column_name  # type: ignore[union-attr]
            found = IdInDatabase(statement.sql, (self.quoted(model._meta.table_name), column))
            with self._lock:
                self._current_ids[model] = found
        return found

    def take_ids(self, model: type[Model], count: int) -> tuple[str, tuple]:
        """A statement and its parameters that give new ids for ``model``: on
        PostgreSQL ``count`` values of its sequence, on SQLite the largest id so far
        (or None), under the write lock, so nobody else inserts meanwhile."""
        key = ("take_ids:" + model._meta.table_name, 0)
        statement = self._lists.get(key)
        if statement is None:
            if self.pg:
                # Looked up once, in a subquery: as a plain argument of nextval the
                # catalog look-up ran for every id, 19 ms of 21 for 5,000 ids.
                sequence = Cast(
                    Select(columns=[fn.pg_get_serial_sequence(slot("table"), slot("column"))]),
                    "regclass",
                )
                query = Select(
                    [
                        fn.generate_series(
                            slot("first").cast("bigint"), slot("count").cast("bigint")
                        )
                    ],
                    [fn.nextval(sequence)],
                )
            else:
                query = model.select(fn.max(model._meta.primary_key))
            with self._lock:
                statement = self._lists[key] = compile_query(self.db, query)
        if not self.pg:
            return statement.sql, ()
        column = model._meta.primary_key.column_name  # type: ignore[union-attr]
        values = {
            "table": self.quoted(model._meta.table_name),
            "column": column,
            "first": 1,
            "count": count,
        }
        return statement.sql, tuple(values[name] for name in statement.names)


_BUILT: weakref.WeakKeyDictionary[Database, Statements] = weakref.WeakKeyDictionary()
_BUILT_LOCK = threading.Lock()


def statements_for(db: Database) -> Statements:
    """The fill path's statements for ``db``, built on first use and kept while ``db``
    lives."""
    statements = _BUILT.get(db)
    if statements is None:
        with _BUILT_LOCK:
            statements = _BUILT.get(db)
            if statements is None:
                statements = _BUILT[db] = Statements(db)
    return statements
