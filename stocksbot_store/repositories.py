"""Repositories: single-table reads and writes, with the old module's method names.

Each repository works on the database it is given and returns model instances.
They do no book-keeping across tables: recording fills, opening positions and
moving order statuses with the rules of the ledger is
:class:`~stocksbot_store.service.StorageService`'s job, and the service owns the
transaction. A repository write outside a transaction commits on its own; inside
one (``with db.atomic():``) it joins it.

Lists that say "recent" are newest first; every list pages with ``limit``/``offset``.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from peewee import Database, ModelSelect

from .database import prepare_database
from .errors import NotFoundError, ValidationError, translate_errors
from .fields import coerce_enum, to_decimal, utcnow
from .ledger import cost_basis
from .models import (
    BaseModel,
    Config,
    ConfigValueType,
    Order,
    OrderStatusEnum,
    Position,
    Strategy,
    Trade,
)
from .validation import NAME_MAX, check_free_text, check_symbol, check_text

M = TypeVar("M", bound=BaseModel)


class Repository(Generic[M]):
    """CRUD for one model on one database."""

    model: type[M]

    def __init__(self, db: Database) -> None:
        self.db = prepare_database(db)
        self._columns = tuple(name for name in self.model._meta.sorted_field_names
                              if name != "id")
        self._insert_statement: str | None = None

    def _select(self, *fields: Any) -> ModelSelect:
        return self.model.select(*fields).bind(self.db)

    def _first(self, query: ModelSelect) -> M | None:
        with translate_errors(f"reading {self.model.__name__}"):
            return query.limit(1).first()

    def _list(self, query: ModelSelect, limit: int | None, offset: int = 0) -> list[M]:
        if limit is not None:
            query = query.limit(limit).offset(offset)
        with translate_errors(f"listing {self.model.__name__}"):
            return list(query)

    def _check_names(self, values: dict[str, Any]) -> dict[str, Any]:
        fields = self.model._meta.fields
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValidationError(unknown[0], f"{self.model.__name__} has no such field")
        if "id" in values:
            raise ValidationError("id", "is assigned by the database")
        for name, value in values.items():
            check_free_text(value, name)
        return values

    def _check_fields(self, values: dict[str, Any]) -> dict[str, Any]:
        fields = self.model._meta.fields
        for name, value in self._check_names(values).items():
            if value is not None:
                fields[name].db_value(value)  # raises ValidationError for bad input
        return values

    def create(self, **values: Any) -> M:
        """Insert a row and return it as stored.

        The row is not read back: the instance holds each value as the database
        stores it (``field.python_value(field.db_value(value))``), with the fields'
        defaults applied, and the id the ``INSERT ... RETURNING`` gave.
        """
        fields = self.model._meta.fields
        self._check_names(values)
        now = utcnow()
        values.setdefault("created_at", now)
        if "updated_at" in fields:
            values["updated_at"] = now
        instance = self.model(**values)  # applies the fields' defaults
        data = instance.__data__
        stored = [None if data.get(n) is None else fields[n].db_value(data[n])
                  for n in self._columns]
        with translate_errors(f"creating {self.model.__name__}"):
            instance.id = self.db.execute_sql(self._insert_sql(), stored).fetchone()[0]
        for name, value in zip(self._columns, stored, strict=True):
            instance.__data__[name] = None if value is None else fields[name].python_value(value)
        instance._dirty.clear()
        return instance

    def _insert_sql(self) -> str:
        """``INSERT ... RETURNING id`` of every column, built once: building it with the
        query builder for each row cost more than running it."""
        if self._insert_statement is None:
            meta = self.model._meta
            columns = ", ".join(f'"{meta.fields[n].column_name}"' for n in self._columns)
            marks = ", ".join([self.db.param] * len(self._columns))
            self._insert_statement = (
                f'INSERT INTO "{meta.table_name}" ({columns}) VALUES ({marks}) RETURNING "id"')
        return self._insert_statement

    def get_by_id(self, row_id: int) -> M | None:
        """The row with this id, or None."""
        return self._first(self._select().where(self.model.id == row_id))

    def exists(self, row_id: int) -> bool:
        """Whether a row with this id exists (one small query, no model built)."""
        sql = (f'SELECT 1 FROM "{self.model._meta.table_name}" '
               f'WHERE "id" = {self.db.param}')
        with translate_errors(f"reading {self.model.__name__}"):
            return self.db.execute_sql(sql, (row_id,)).fetchone() is not None

    def get(self, row_id: int) -> M:
        """The row with this id; :class:`NotFoundError` if there is none."""
        row = self.get_by_id(row_id)
        if row is None:
            raise NotFoundError(f"{self.model.__name__} {row_id} does not exist")
        return row

    def get_for_update(self, row_id: int) -> M:
        """The row with this id, locked until the transaction ends (``FOR UPDATE`` on
        PostgreSQL; on SQLite the write transaction already excludes other writers)."""
        query = self._select().where(self.model.id == row_id)
        if self.db.for_update:
            query = query.for_update()
        row = self._first(query)
        if row is None:
            raise NotFoundError(f"{self.model.__name__} {row_id} does not exist")
        return row

    def get_all(self, limit: int | None = 100, offset: int = 0) -> list[M]:
        """Rows by id, newest first."""
        return self._list(self._select().order_by(self.model.id.desc()), limit, offset)

    def update(self, instance: M, **values: Any) -> M:
        """Set ``values`` on the row of ``instance`` (and on ``instance``); ``updated_at``
        is set by the store."""
        self._check_fields(values)
        if "updated_at" in self.model._meta.fields:
            values["updated_at"] = utcnow()
        with translate_errors(f"updating {self.model.__name__} {instance.id}"):
            count = (self.model.update(**values).where(self.model.id == instance.id)
                     .execute(self.db))
        if not count:
            raise NotFoundError(f"{self.model.__name__} {instance.id} does not exist")
        for name, value in values.items():
            field = self.model._meta.fields[name]
            setattr(instance, name, None if value is None else field.python_value(
                field.db_value(value)))
        return instance

    def delete(self, instance: M) -> bool:
        """Delete the row of ``instance``; False if it was already gone."""
        with translate_errors(f"deleting {self.model.__name__} {instance.id}"):
            return bool(self.model.delete().where(self.model.id == instance.id)
                        .execute(self.db))


class PositionRepository(Repository[Position]):
    """Positions. ``create``/``update``/``close_position`` write the row as told and do
    not record trades; :class:`StorageService` keeps positions and trades in step."""

    model = Position

    def create(self, **values: Any) -> Position:
        values["symbol"] = check_symbol(values.get("symbol"))
        if "cost_basis" not in values and {"quantity", "avg_entry_price"} <= set(values):
            values["cost_basis"] = cost_basis(to_decimal(values["quantity"], "quantity"),
                                              to_decimal(values["avg_entry_price"],
                                                         "avg_entry_price"))
        return super().create(**values)

    def get_by_symbol(self, symbol: str, is_open: bool | None = True) -> Position | None:
        """The symbol's open position (``is_open=True``), its latest closed one
        (``False``) or its latest of either (``None``)."""
        query = self._select().where(Position.symbol == symbol)
        if is_open is not None:
            query = query.where(Position.is_open == is_open)
        return self._first(query.order_by(Position.id.desc()))

    def get_all_open(self) -> list[Position]:
        """Every open position, by symbol."""
        return self._list(self._select().where(Position.is_open == True)  # noqa: E712
                          .order_by(Position.symbol), None)

    def close_position(self, position: Position, realized_pnl: Any = None) -> Position:
        """Mark ``position`` closed now, with ``realized_pnl`` if given."""
        values: dict[str, Any] = {"is_open": False, "closed_at": utcnow()}
        if realized_pnl is not None:
            values["realized_pnl"] = realized_pnl
        return self.update(position, **values)


class OrderRepository(Repository[Order]):
    """Orders."""

    model = Order

    def create(self, **values: Any) -> Order:
        values["symbol"] = check_symbol(values.get("symbol"))
        return super().create(**values)

    def get_by_external_id(self, external_id: str) -> Order | None:
        """The order the broker knows by ``external_id``, or None."""
        return self._first(self._select().where(Order.external_id == external_id))

    def get_by_status(self, status: Any, limit: int | None = 100, offset: int = 0) -> list[Order]:
        """Orders in ``status``, newest first."""
        status = coerce_enum(OrderStatusEnum, status, "status")
        return self._list(self._select().where(Order.status == status)
                          .order_by(Order.id.desc()), limit, offset)

    def get_by_symbol(self, symbol: str, limit: int | None = 100, offset: int = 0) -> list[Order]:
        """Orders in ``symbol``, newest first."""
        return self._list(self._select().where(Order.symbol == symbol)
                          .order_by(Order.id.desc()), limit, offset)

    def get_recent(self, limit: int = 100, offset: int = 0) -> list[Order]:
        """The newest orders first."""
        return self._list(self._select().order_by(Order.id.desc()), limit, offset)

    def page(self, *, symbol: str | None = None, status: Any = None, side: Any = None,
             strategy_id: int | None = None, before_id: int | None = None,
             limit: int = 100) -> list[Order]:
        """A page of orders, newest first, filtered; pass the last id of a page as
        ``before_id`` for the next one (keyset paging: as fast on page 1,000 as on 1)."""
        query = self._select()
        if symbol:
            query = query.where(Order.symbol == symbol)
        if status:
            query = query.where(Order.status == coerce_enum(OrderStatusEnum, status, "status"))
        if side:
            query = query.where(Order.side == side)
        if strategy_id is not None:
            query = query.where(Order.strategy == strategy_id)
        if before_id is not None:
            query = query.where(Order.id < before_id)
        return self._list(query.order_by(Order.id.desc()), limit)

    def update_status(self, order: Order, status: Any, filled_quantity: Any = None,
                      avg_fill_price: Any = None) -> Order:
        """Set the status (and, if given, fill figures) as told, without the forward-only
        rule; :meth:`StorageService.update_order_status` enforces it."""
        values: dict[str, Any] = {"status": coerce_enum(OrderStatusEnum, status, "status")}
        if filled_quantity is not None:
            values["filled_quantity"] = filled_quantity
        if avg_fill_price is not None:
            values["avg_fill_price"] = avg_fill_price
        if values["status"] == OrderStatusEnum.FILLED and order.filled_at is None:
            values["filled_at"] = utcnow()
        return self.update(order, **values)


class TradeRepository(Repository[Trade]):
    """Trades (executions). Record new ones with :meth:`StorageService.record_trade`."""

    model = Trade

    def get_by_order_id(self, order_id: int) -> list[Trade]:
        """The fills of one order, oldest first."""
        return self._list(self._select().where(Trade.order == order_id).order_by(Trade.id), None)

    def get_by_symbol(self, symbol: str, limit: int | None = 100, offset: int = 0) -> list[Trade]:
        """Trades in ``symbol``, newest first."""
        return self._list(self._select().where(Trade.symbol == symbol)
                          .order_by(Trade.id.desc()), limit, offset)

    def get_by_external_id(self, external_id: str) -> Trade | None:
        """The trade the broker knows by ``external_id``, or None."""
        return self._first(self._select().where(Trade.external_id == external_id))

    def get_recent(self, limit: int = 100, offset: int = 0) -> list[Trade]:
        """The most recently recorded trades first."""
        return self._list(self._select().order_by(Trade.id.desc()), limit, offset)


class StrategyRepository(Repository[Strategy]):
    """Strategies."""

    model = Strategy

    def create(self, name: str, strategy_type: str | None = None, config: Any = None,
               description: str | None = None, **values: Any) -> Strategy:
        """A new strategy; :class:`DuplicateError` if the name is taken."""
        check_text(name, "name", NAME_MAX)
        check_text(strategy_type, "strategy_type", 100, optional=True)
        return super().create(name=name, strategy_type=strategy_type, config=config,
                              description=description, **values)

    def get_by_name(self, name: str) -> Strategy | None:
        """The strategy called ``name``, or None."""
        return self._first(self._select().where(Strategy.name == name))

    def id_for_name(self, name: str) -> int | None:
        """The id of the strategy called ``name``, or None (no model built)."""
        sql = f'SELECT "id" FROM "strategy" WHERE "name" = {self.db.param}'
        with translate_errors("reading Strategy"):
            row = self.db.execute_sql(sql, (name,)).fetchone()
        return None if row is None else row[0]

    def get_active(self) -> list[Strategy]:
        """Strategies that are active, by name."""
        return self._list(self._select().where(Strategy.is_active == True)  # noqa: E712
                          .order_by(Strategy.name), None)

    def get_all(self, limit: int | None = None, offset: int = 0) -> list[Strategy]:
        """Every strategy, by name."""
        return self._list(self._select().order_by(Strategy.name), limit, offset)


class ConfigRepository(Repository[Config]):
    """Key/value settings. Values are text; ``value_type`` says how to read them."""

    model = Config

    def create(self, key: str, value: Any, value_type: Any = ConfigValueType.STRING,
               description: str | None = None) -> Config:
        check_text(key, "key", NAME_MAX)
        return super().create(key=key, value=value, value_type=value_type,
                              description=description)

    def get_by_key(self, key: str) -> Config | None:
        """The setting called ``key``, or None."""
        return self._first(self._select().where(Config.key == key))

    def get_all(self, limit: int | None = None, offset: int = 0) -> list[Config]:
        """Every setting, by key."""
        return self._list(self._select().order_by(Config.key), limit, offset)

    def upsert(self, key: str, value: Any, value_type: Any = ConfigValueType.STRING,
               description: str | None = None) -> Config:
        """Create the setting or replace its value (and type and description)."""
        check_text(key, "key", NAME_MAX)
        check_free_text(value, "value")
        check_free_text(description, "description")
        now = utcnow()
        update: dict[Any, Any] = {Config.value: value, Config.value_type: value_type,
                                  Config.updated_at: now}
        if description is not None:
            update[Config.description] = description
        with translate_errors(f"saving config {key!r}"):
            (Config.insert(key=key, value=value, value_type=value_type,
                           description=description, created_at=now, updated_at=now)
             .on_conflict(conflict_target=[Config.key], update=update)
             .execute(self.db))
        return self.get_by_key(key)
