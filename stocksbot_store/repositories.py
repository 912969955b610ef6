"""Repositories: single-table reads and writes, with the old module's methods.

Each repository works on the database it is given and returns model instances.
Every method of the old storage module's repositories works as it was called
there, positionally or by keyword (``OrderRepository(db).create("AAPL", "buy",
"limit", 10, 150.0, strategy_id=3)``; ``repo.update(row)`` after setting
attributes on it; ``delete(row_id)``), next to this store's keyword forms.

Where an old call would break a rule of the books (positions are the replay of
their trades, an order's fill figures come from its fills, a trade is history),
the call does it the book-keeping way or is refused with a
:class:`~stocksbot_store.errors.StorageError` that names the call to use; the
README's "Coming from the old module" lists each case. A repository write outside
a transaction commits on its own; inside one (``with db.atomic():``) it joins it.

Lists that say "recent" are newest first; every list pages with ``limit``/``offset``.

``delete`` is a soft delete (see :mod:`stocksbot_store.softdelete`): the row gets
``deleted_at``/``deleted_by`` and every read leaves it out unless it is asked for with
``include_deleted=True``; ``restore`` brings it back.
"""

from __future__ import annotations

import enum
from typing import Any, Generic, TypeVar, cast

from peewee import BooleanField, Database, ForeignKeyField, ModelSelect

from . import config_values, ledger
from .adjustments import Adjustments
from .audit import AuditWriter, changed, created, row_values
from .database import prepare_database, write_transaction
from .errors import (
    CorruptRowError,
    DuplicateError,
    NotFoundError,
    ValidationError,
    translate_errors,
)
from .fields import EnumField, coerce_enum, to_decimal, to_positive_decimal, utcnow
from .fills import Fill, FillRecorder
from .ledger import cost_basis as cost_basis_of
from .models import (
    LIVE,
    BaseModel,
    Config,
    ConfigValueType,
    Order,
    OrderSideEnum,
    OrderStatusEnum,
    OrderTypeEnum,
    Position,
    Strategy,
    Trade,
    TradeTypeEnum,
)
from .new_orders import NEW_ORDER_NAMES, NewOrders
from .queries import order_page
from .softdelete import is_soft, live, not_found
from .types import (
    Amount,
    ConfigValue,
    JSONValue,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    Price,
    Quantity,
    RowId,
    ValueType,
)
from .validation import (
    NAME_MAX,
    check_external_id,
    check_free_text,
    check_id,
    check_symbol,
    check_text,
)

M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", bound=enum.Enum)


class Repository(Generic[M]):
    """CRUD for one model on one database."""

    model: type[M]
    #: The field whose value is unique among the rows that are not deleted, if any.
    unique_key: str | None = None

    def __init__(self, db: Database, actor: str | None = None) -> None:
        self.db = prepare_database(db)
        #: Writes this repository's audit rows in the transaction of each change.
        self.audit = AuditWriter(self.db, actor)
        self._columns = tuple(name for name in self.model._meta.sorted_field_names if name != "id")
        self._insert_statement: tuple[str, str] | None = None
        #: Whether rows are soft-deleted (``deleted_at``), so reads leave them out.
        self.soft = is_soft(self.model)

    def _select(self, *fields: Any, include_deleted: bool = False) -> ModelSelect[M]:
        query = self.model.select(*fields).bind(self.db)
        if self.soft and not include_deleted:
            query = query.where(live(self.model))
        return query

    def _first(self, query: ModelSelect[M]) -> M | None:
        with translate_errors(f"reading {self.model.__name__}"):
            return query.limit(1).first()

    def _list(self, query: ModelSelect[M], limit: int | None, offset: int = 0) -> list[M]:
        if limit is not None:
            query = query.limit(limit).offset(offset)
        with translate_errors(f"listing {self.model.__name__}"):
            return list(query)

    def _check_names(self, values: dict[str, Any]) -> dict[str, Any]:
        fields = self.model._meta.fields
        for name in list(values):  # a foreign key by its column name: strategy_id=3
            field = self.model._meta.columns.get(name)
            if name not in fields and isinstance(field, ForeignKeyField):
                values[field.name] = values.pop(name)
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValidationError(unknown[0], f"{self.model.__name__} has no such field")
        if "id" in values:
            raise ValidationError("id", "is assigned by the database")
        for name in ("deleted_at", "deleted_by"):
            if name in values and self.soft:
                raise ValidationError(name, "is set by delete() and cleared by restore()")
        for name, value in values.items():
            check_free_text(value, name)
            if isinstance(fields[name], BooleanField) and value is not None:
                # Peewee would store bool(value): "false" would become True.
                values[name] = config_values.to_bool(value, name)
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
        return self._insert(self._check_names(values))

    def _insert(self, values: dict[str, Any]) -> M:
        """:meth:`create` for ``values`` whose names were checked already."""
        fields = self.model._meta.fields
        now = utcnow()
        values.setdefault("created_at", now)
        if "updated_at" in fields:
            values["updated_at"] = now
        instance = self.model(**values)  # applies the fields' defaults
        data = instance.__data__
        stored = [
            None if data.get(n) is None else fields[n].db_value(data[n]) for n in self._columns
        ]
        for name, value in zip(self._columns, stored, strict=True):
            instance.__data__[name] = None if value is None else fields[name].python_value(value)
        with translate_errors(f"creating {self.model.__name__}"), write_transaction(self.db):
            instance.id = self.db.execute_sql(self._insert_sql(), stored).fetchone()[0]
            self.audit.row(
                self.model._meta.table_name, instance.id, "create", created(row_values(instance))
            )
        instance._dirty.clear()
        return instance

    def _insert_sql(self, returning: bool = True) -> str:
        """``INSERT ... RETURNING id`` of every column (without ``RETURNING`` if not
        ``returning``: on SQLite the cursor's ``lastrowid`` gives the id for less), built
        once: building it with the query builder for each row cost more than running it."""
        if self._insert_statement is None:
            meta = self.model._meta
            columns = ", ".join(f'"{meta.fields[n].column_name}"' for n in self._columns)
            marks = ", ".join([self.db.param] * len(self._columns))
            plain = f'INSERT INTO "{meta.table_name}" ({columns}) VALUES ({marks})'
            self._insert_statement = (plain, plain + ' RETURNING "id"')
        return self._insert_statement[returning]

    def get_by_id(self, row_id: int, include_deleted: bool = False) -> M | None:
        """The row with this id, or None (also when it is soft-deleted, unless
        ``include_deleted``)."""
        return self._first(
            self._select(include_deleted=include_deleted).where(self.model.id == row_id)
        )

    def exists(self, row_id: int, include_deleted: bool = False) -> bool:
        """Whether a row with this id exists (one small query, no model built)."""
        sql = f'SELECT 1 FROM "{self.model._meta.table_name}" WHERE "id" = {self.db.param}'
        if self.soft and not include_deleted:
            sql += ' AND "deleted_at" IS NULL'
        with translate_errors(f"reading {self.model.__name__}"):
            return self.db.execute_sql(sql, (row_id,)).fetchone() is not None

    def get(self, row_id: int, include_deleted: bool = False) -> M:
        """The row with this id; :class:`NotFoundError` if there is none,
        :class:`~stocksbot_store.errors.DeletedError` if it is soft-deleted (unless
        ``include_deleted``)."""
        row = self.get_by_id(row_id, include_deleted)
        if row is None:
            raise self._missing(row_id)
        return row

    def get_for_update(self, row_id: int, include_deleted: bool = False) -> M:
        """The row with this id, locked until the transaction ends (``FOR NO KEY UPDATE``
        on PostgreSQL, as the fill path locks it, so inserting a trade that references
        the row is not blocked; on SQLite the write transaction already excludes other
        writers). Call it inside :func:`~stocksbot_store.database.write_transaction`.
        A soft-deleted row is a :class:`~stocksbot_store.errors.DeletedError` unless
        ``include_deleted``."""
        query = self._select(include_deleted=include_deleted).where(self.model.id == row_id)
        if self.db.for_update:
            query = query.for_update("FOR NO KEY UPDATE")  # type: ignore[arg-type]  # text is ok
        row = self._first(query)
        if row is None:
            raise self._missing(row_id)
        return row

    def _missing(self, row_id: int) -> NotFoundError:
        """The error for a row not found among the live ones: is it deleted or absent?"""
        deleted = self.soft and self.exists(row_id, include_deleted=True)
        return not_found(self.model, row_id, deleted)

    def get_all(
        self, limit: int | None = 100, offset: int = 0, include_deleted: bool = False
    ) -> list[M]:
        """Rows by id, newest first."""
        return self._list(
            self._select(include_deleted=include_deleted).order_by(self.model.id.desc()),
            limit,
            offset,
        )

    def get_deleted(self, limit: int | None = 100, offset: int = 0) -> list[M]:
        """The soft-deleted rows, most recently deleted first (what ``restore`` can
        bring back, and what ``stocksbot-purge`` may remove)."""
        if not self.soft:
            return []
        # deleted_at is a field of the soft-delete models only, so not known on M
        query = (
            self.model.select()
            .where(self.model.deleted_at.is_null(False))  # type: ignore[attr-defined]
            .order_by(self.model.deleted_at.desc(), self.model.id.desc())  # type: ignore[attr-defined]
            .bind(self.db)
        )
        return self._list(query, limit, offset)

    def update(self, instance: M, **values: Any) -> M:
        """Set ``values`` on the row of ``instance`` (and on ``instance``); ``updated_at``
        is set by the store.

        Called without values (the old module's ``update(row)``), it saves the fields
        that were assigned on ``instance`` since it was read.
        """
        if not values:
            values = changed_fields(instance)
            if not values:
                return instance
        self._check_fields(values)
        return self._write(instance, values)

    def _write(
        self,
        instance: M,
        values: dict[str, Any],
        action: str = "update",
        include_deleted: bool = False,
    ) -> M:
        """Write ``values`` to the row of ``instance`` (the row as stored: what the audit
        row's ``before`` values are) and record them as ``action``. A soft-deleted row
        is not written (DeletedError) unless ``include_deleted``."""
        if "updated_at" in self.model._meta.fields:
            values["updated_at"] = utcnow()
        fields = self.model._meta.fields
        stored = {
            name: None if value is None else fields[name].python_value(fields[name].db_value(value))
            for name, value in values.items()
        }
        query = self.model.update(**values).where(self.model.id == instance.id)
        if self.soft and not include_deleted:
            query = query.where(live(self.model))
        with (
            translate_errors(f"updating {self.model.__name__} {instance.id}"),
            write_transaction(self.db),
        ):
            count = query.execute(self.db)
            if not count:
                raise self._missing(instance.id)
            self.audit.row(
                self.model._meta.table_name,
                instance.id,
                action,
                changed(
                    row_values(instance, values),
                    {fields[name].column_name: value for name, value in stored.items()},
                ),
            )
        for name, value in stored.items():
            instance.__data__[name] = value
            instance._dirty.discard(name)
        return instance

    def delete(self, row: M | int, deleted_by: str | None = None) -> bool:
        """Soft-delete a row, given as an instance or (the old module's form) its id:
        it gets ``deleted_at`` (now) and ``deleted_by`` (default: this repository's
        actor, as its audit rows name it) and every read leaves it out. False if there
        was no such row, or it was deleted already; refused (ValidationError, nothing
        written) where the books still need the row (see
        :mod:`stocksbot_store.softdelete`)."""
        row_id = row.id if isinstance(row, self.model) else check_id(row, "id")
        with write_transaction(self.db):
            try:
                current = self.get_for_update(row_id)
            except NotFoundError:
                return False
            self.check_delete(current)
            self._write(
                current,
                {"deleted_at": utcnow(), "deleted_by": deleted_by or self.audit.actor},
                "delete",
            )
        _refresh(row, current)
        return True

    def check_delete(self, row: M) -> None:
        """Raise a StorageError if ``row`` may not be soft-deleted; nothing by default."""

    def restore(self, row: M | int) -> M:
        """Bring back a soft-deleted row (given as an instance or its id): reads see it
        again. A row that is not deleted is returned as it is.
        :class:`DuplicateError` if its unique key (a strategy's name, a config key, an
        order's broker id) was taken by another row since; :class:`NotFoundError` if
        there is no such row."""
        row_id = row.id if isinstance(row, self.model) else check_id(row, "id")
        if not self.soft:
            raise ValidationError(
                "id",
                f"{self.model.__name__} rows are never deleted, so there is nothing to restore",
            )
        with write_transaction(self.db):
            current = self.get_for_update(row_id, include_deleted=True)
            if current.deleted_at is None:  # type: ignore[attr-defined]  # soft-delete model
                return _refresh(row, current)
            self._check_key_free(current)
            try:  # a savepoint: the transaction stays usable if it fails
                self._write(
                    current,
                    {"deleted_at": None, "deleted_by": None},
                    "restore",
                    include_deleted=True,
                )
            except DuplicateError:
                self._check_key_free(current)  # taken by a row committed meanwhile: name it
                raise
        return _refresh(row, current)

    def _by_key(self, value: Any, include_deleted: bool) -> M | None:
        """The live row whose :attr:`unique_key` is ``value``; with ``include_deleted``
        and no live one, the most recently deleted one."""
        field = self.model._meta.fields[self.unique_key]
        query = self._select(include_deleted=include_deleted).where(field == value)
        if include_deleted:
            query = query.order_by(
                self.model.deleted_at.is_null(False),  # type: ignore[attr-defined]
                self.model.deleted_at.desc(),  # type: ignore[attr-defined]
                self.model.id.desc(),
            )
        return self._first(query)

    def _check_key_free(self, row: M) -> None:
        """DuplicateError if another live row holds ``row``'s unique key."""
        if self.unique_key is None:
            return
        value = getattr(row, self.unique_key)
        if value is None:
            return
        field = self.model._meta.fields[self.unique_key]
        holder = self._first(
            self._select(self.model.id).where((field == value) & (self.model.id != row.id))
        )
        if holder is not None:
            name = self.model.__name__
            raise DuplicateError(
                f"{name} {row.id} cannot be restored: its {self.unique_key} {value!r} is "
                f"taken by {name} {holder.id} since it was deleted; delete or rename "
                f"{name} {holder.id} first"
            )


def changed_fields(instance: BaseModel) -> dict[str, Any]:
    """The fields assigned on ``instance`` since it was read, with their new values."""
    return {name: instance.__data__.get(name) for name in instance._dirty if name != "id"}


def refuse_changes(
    current: BaseModel, values: dict[str, Any], fields: tuple[str, ...], why: str
) -> None:
    """ValidationError if ``values`` changes any of ``fields`` of the stored row
    ``current``."""
    for name in fields:
        if name in values and _stored(current, name) != _stored(current, name, values[name]):
            raise ValidationError(name, why)


def _stored(row: BaseModel, name: str, value: Any = ...) -> Any:
    """``value`` (default: ``row``'s own) as the database would give it back."""
    field = row._meta.fields[name]
    value = row.__data__.get(name) if value is ... else value
    if isinstance(value, BaseModel):
        value = value.id
    if value is None or isinstance(field, ForeignKeyField):
        return value
    return field.python_value(field.db_value(value))


class PositionRepository(Repository[Position]):
    """Positions: reads, and hand edits that go through the books.

    A position is the replay of its trades, so ``create``, ``update`` and
    ``close_position`` record ADJUSTMENT trades (see
    :mod:`stocksbot_store.adjustments`) instead of writing the row, and ``delete``
    is refused.
    """

    model = Position

    def __init__(
        self, db: Database, fills: FillRecorder | None = None, actor: str | None = None
    ) -> None:
        super().__init__(db, actor)
        self.adjustments = Adjustments(self.db, fills or FillRecorder(self.db, actor))

    def create(
        self,
        symbol: str | None = None,
        side: PositionSide | None = None,
        quantity: Quantity | None = None,
        avg_entry_price: Price | None = None,
        cost_basis: Amount | None = None,
        **values: Any,
    ) -> Position:
        """Open a position by hand (the old module's ``create``), recorded as an
        ADJUSTMENT trade at ``avg_entry_price``. ``cost_basis``, if given, must be
        ``quantity x avg_entry_price``; a symbol with an open position already is a
        :class:`DuplicateError`."""
        self._check_names(values)
        for name in values:
            raise ValidationError(
                name, "is kept by the position's trades; open the position, then record fills"
            )
        price = to_decimal(avg_entry_price, "avg_entry_price")
        if cost_basis is not None:
            expected = cost_basis_of(to_decimal(quantity, "quantity"), price)
            if to_decimal(cost_basis, "cost_basis") != expected:
                raise ValidationError(
                    "cost_basis",
                    f"{cost_basis!r} is not quantity x avg_entry_price ({expected}); leave it out",
                )
        return self.adjustments.open(symbol, side, quantity, price)

    def get_by_symbol(
        self, symbol: str, is_open: bool | None = True, include_deleted: bool = False
    ) -> Position | None:
        """The symbol's open position (``is_open=True``), its latest closed one
        (``False``) or its latest of either (``None``)."""
        query = self._select(include_deleted=include_deleted).where(Position.symbol == symbol)
        if is_open is not None:
            query = query.where(Position.is_open == config_values.to_bool(is_open, "is_open"))
        return self._first(query.order_by(Position.id.desc()))

    def get_all_open(self) -> list[Position]:
        """Every open position, by symbol."""
        return self._list(
            self._select()
            .where(Position.is_open == True)  # noqa: E712
            .order_by(Position.symbol),
            None,
        )

    def update(self, instance: Position, **values: Any) -> Position:
        """Change a position through its trades: a new ``quantity`` is an adjustment
        at the average entry price; ``is_open=False`` (with a ``realized_pnl``, or
        not) closes it as :meth:`close_position` does. Other figures follow from the
        trades and are refused. Without values, the fields assigned on ``instance``
        are what is asked for (the old module's ``update(position)``)."""
        if not values:
            values = changed_fields(instance)
        self._check_fields(values)
        asked = {k: v for k, v in values.items() if k not in ("updated_at", "closed_at")}
        current = self.get(instance.id)
        asked = {k: v for k, v in asked.items() if _stored(current, k) != _stored(current, k, v)}
        if not asked:
            return _refresh(instance, current)
        if set(asked) == {"quantity"}:
            return _refresh(instance, self.adjustments.set_quantity(current, asked["quantity"]))
        if asked.get("is_open") is False and set(asked) <= {"is_open", "realized_pnl"}:
            return self.close_position(instance, asked.get("realized_pnl"))
        name = sorted(asked)[0]
        raise ValidationError(
            name,
            "a position is the replay of its trades: change its "
            "quantity (an adjustment at its average price), close it "
            "(close_position), or record a fill (record_trade)",
        )

    def close_position(
        self, position: Position | RowId, realized_pnl: Amount | None = None
    ) -> Position:
        """Close ``position`` by an ADJUSTMENT trade of its whole quantity. With
        ``realized_pnl`` (its total realized P&L, as in the old module) the trade is
        priced so that the position ends with exactly that; without, it closes at
        its average entry price and realizes nothing more."""
        closed = self.adjustments.close(position, realized_pnl)
        return _refresh(position, closed) if isinstance(position, Position) else closed

    def check_delete(self, row: Position) -> None:
        """An open position cannot be deleted: the next fill of its symbol moves it."""
        if row.is_open:
            raise ValidationError(
                "position_id",
                f"position {row.id} ({row.side} "
                f"{row.quantity} {row.symbol}) is open and the next fill of "
                f"{row.symbol} moves it; close it (close_position) first, "
                "then delete it",
            )


def check_new_order(
    symbol: Any,
    side: Any,
    order_type: Any,
    quantity: Any,
    price: Any,
    external_id: Any,
    type_field: str = "type",
) -> dict[str, Any]:
    """The checked values of a new order, whichever door it comes in by: a symbol, a
    side and a type; a positive quantity; a positive price, which every order type but
    MARKET needs; an optional broker id. ``type_field`` names the type in errors."""
    values: dict[str, Any] = {
        "symbol": check_symbol(symbol),
        "side": _member(_SIDES, OrderSideEnum, side, "side"),
        "type": _member(_TYPES, OrderTypeEnum, order_type, type_field),
        "quantity": to_positive_decimal(quantity, "quantity"),
        "price": None if price is None else to_positive_decimal(price, "price"),
        "external_id": None if external_id is None else check_external_id(external_id),
    }
    if values["type"] is not OrderTypeEnum.MARKET and values["price"] is None:
        raise ValidationError("price", f"a {values['type'].value} order needs a price")
    return values


#: A new order's sides and types by the text they are stored as, which is what a bot
#: usually gives: found by one look-up instead of :func:`coerce_enum`'s stripping,
#: lower-casing and enum call (a microsecond each, a tenth of create_order's Python).
_SIDES = {member.value: member for member in OrderSideEnum}
_TYPES = {member.value: member for member in OrderTypeEnum}


def _member(members: dict[str, E], enum_class: type[E], value: Any, field: str) -> E:
    """:func:`coerce_enum` of ``value``, ``members[value]`` when it is text stored as is."""
    member = members.get(value) if type(value) is str else None
    return member if member is not None else coerce_enum(enum_class, value, field)


class OrderRepository(Repository[Order]):
    """Orders. Fill figures (``filled_quantity``, ``avg_fill_price``, ``filled_at``)
    come from the order's trades; statuses move forward only."""

    model = Order
    unique_key = "external_id"
    _new_orders: NewOrders | None = None

    def create(
        self,
        symbol: str | None = None,
        side: OrderSide | None = None,
        type: OrderType | None = None,
        quantity: Quantity | None = None,
        price: Price | None = None,
        strategy_id: RowId | None = None,
        external_id: str | None = None,
        **values: Any,
    ) -> Order:
        """A new PENDING order (the old module's ``create``; ``strategy=`` is the same
        as ``strategy_id=``)."""
        refuse_fill_state(values)
        status = values.get("status")
        if status is not None and coerce_enum(OrderStatusEnum, status, "status") in (
            OrderStatusEnum.PARTIALLY_FILLED,
            OrderStatusEnum.FILLED,
        ):
            raise ValidationError(
                "status", "an order is filled by its trades; create it, then record_trade"
            )
        if strategy_id is not None:
            if values.get("strategy") not in (None, strategy_id):
                raise ValidationError("strategy_id", "give strategy_id or strategy, not both")
            values["strategy"] = strategy_id
        values.update(check_new_order(symbol, side, type, quantity, price, external_id))
        return self._insert(self._check_names(values))

    def insert_checked(self, values: dict[str, Any]) -> Order:
        """Insert an order made of :func:`check_new_order`'s values and a strategy id
        only (the service's ``create_order``): every name and value is known good, so
        the generic name check of :meth:`create` is skipped, and the row, its audit row
        and the returned order are built straight from them (:mod:`.new_orders`). Any
        other name (a ``created_at`` of the caller's) takes the generic insert."""
        if not values.keys() <= NEW_ORDER_NAMES:
            return self._insert(values)
        if self._new_orders is None:
            self._new_orders = NewOrders(self.db, self.audit, self._insert_sql)
        return self._new_orders.insert(values)

    def get_by_external_id(self, external_id: str, include_deleted: bool = False) -> Order | None:
        """The order the broker knows by ``external_id``, or None. With
        ``include_deleted``, the live one if there is one, else the newest deleted one."""
        return self._by_key(external_id, include_deleted)

    def get_by_status(
        self,
        status: OrderStatus,
        limit: int | None = 100,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> list[Order]:
        """Orders in ``status``, newest first."""
        status = coerce_enum(OrderStatusEnum, status, "status")
        return self._list(
            self._select(include_deleted=include_deleted)
            .where(Order.status == status)
            .order_by(Order.id.desc()),
            limit,
            offset,
        )

    def get_by_symbol(
        self, symbol: str, limit: int | None = 100, offset: int = 0, include_deleted: bool = False
    ) -> list[Order]:
        """Orders in ``symbol``, newest first."""
        return self._list(
            self._select(include_deleted=include_deleted)
            .where(Order.symbol == symbol)
            .order_by(Order.id.desc()),
            limit,
            offset,
        )

    def get_recent(
        self, limit: int = 100, offset: int = 0, include_deleted: bool = False
    ) -> list[Order]:
        """The newest orders first."""
        return self._list(
            self._select(include_deleted=include_deleted).order_by(Order.id.desc()), limit, offset
        )

    def page(
        self,
        *,
        symbol: str | None = None,
        status: OrderStatus | None = None,
        side: OrderSide | None = None,
        strategy_id: int | None = None,
        before_id: int | None = None,
        limit: int = 100,
        include_deleted: bool = False,
    ) -> list[Order]:
        """A page of orders, newest first, filtered; pass the last id of a page as
        ``before_id`` for the next one (keyset paging: as fast on page 1,000 as on 1).
        The dashboard's :func:`~stocksbot_store.queries.order_page` without a sort."""
        return order_page(
            self.db,
            symbol=symbol,
            status=status,
            side=side,
            strategy_id=strategy_id,
            before_id=before_id,
            limit=limit,
            include_deleted=include_deleted,
        )

    def check_delete(self, row: Order) -> None:
        """An order with fills cannot be deleted: its trades name it, and trades are
        never deleted."""
        fills = self.db.execute_sql(
            f'SELECT COUNT(*) FROM "trade" WHERE "order_id" = {self.db.param}', (row.id,)
        ).fetchone()[0]
        if fills or row.filled_quantity:
            raise ValidationError(
                "order_id",
                f"order {row.id} has {fills} fill(s) "
                f"({row.filled_quantity} of {row.quantity} filled); trades "
                "are never deleted and name their order, so it stays; "
                "cancel what is left of it (cancel_order) instead",
            )

    def update_status(
        self,
        order: Order | RowId,
        status: OrderStatus,
        filled_quantity: Quantity | None = None,
        avg_fill_price: Price | None = None,
    ) -> Order:
        """Move an order forward: PENDING -> OPEN -> PARTIALLY_FILLED -> FILLED, or to
        CANCELLED / REJECTED (steps may be skipped). Going back, or out of FILLED,
        CANCELLED or REJECTED, is an :class:`InvalidTransitionError`.

        The order is read and written in one write transaction with its row locked.
        Fill figures are kept by its trades: ``filled_quantity`` and
        ``avg_fill_price`` are accepted only when they agree with them, and
        PARTIALLY_FILLED / FILLED only when the recorded fills say so.
        """
        status = coerce_enum(OrderStatusEnum, status, "status")
        order_id = order.id if isinstance(order, Order) else check_id(order, "order_id")
        with write_transaction(self.db):
            current = self.get_for_update(order_id)
            check_transition(current, status)
            check_fill_figures(current, status, filled_quantity, avg_fill_price)
            if status != current.status:
                values: dict[str, Any] = {"status": status}
                self._write(current, values, "status")
        return _refresh(order, current) if isinstance(order, Order) else current

    def update(self, instance: Order, **values: Any) -> Order:
        """Set fields of an order. A new ``status`` moves it as :meth:`update_status`
        does; fill figures must agree with its trades; symbol, side, quantity and
        strategy cannot change once it has fills."""
        if not values:
            values = changed_fields(instance)
        self._check_fields(values)
        with write_transaction(self.db):
            current = self.get_for_update(instance.id)
            values = {
                k: v
                for k, v in values.items()
                if k == "updated_at" or _stored(current, k) != _stored(current, k, v)
            }
            refuse_changes(
                current,
                values,
                ("filled_quantity", "avg_fill_price", "filled_at"),
                f"order {current.id}'s fill figures come from its trades; record "
                "fills with record_trade",
            )
            if current.filled_quantity:
                refuse_changes(
                    current,
                    values,
                    ("symbol", "side", "quantity", "strategy"),
                    f"order {current.id} has fills already; its trades are this "
                    "symbol, side and strategy",
                )
            if "quantity" in values:
                refuse_below_filled(current, values["quantity"])
            status = values.pop("status", None)
            if values:
                self._write(current, values)
            if status is not None:
                self.update_status(current, status)
        return _refresh(instance, current)


class TradeRepository(Repository[Trade]):
    """Trades (executions). A trade is history: new ones are recorded through the fill
    path, which keeps the books; stored ones are neither changed nor deleted."""

    model = Trade

    def __init__(
        self, db: Database, fills: FillRecorder | None = None, actor: str | None = None
    ) -> None:
        super().__init__(db, actor)
        self._fills = fills or FillRecorder(self.db, actor)

    def create(
        self,
        order_id: Any = None,
        symbol: Any = None,
        side: Any = None,
        type: Any = None,
        quantity: Any = None,
        price: Any = None,
        commission: Any = 0,
        fees: Any = 0,
        external_id: Any = None,
        executed_at: Any = None,
        **values: Any,
    ) -> Trade:
        """Record a fill (the old module's ``create``), exactly as
        :meth:`StorageService.record_trade` does: order, position and strategy move
        with it, and a re-sent ``external_id`` returns the stored trade.

        ``type`` is checked but not taken: the store derives it from what the fill
        does (``open`` or ``close`` for a fill of an order, ``adjustment`` for one
        without). ``order_id=None`` records a hand adjustment of the symbol's position.
        """
        if "order" in values:
            order = values.pop("order")
            order_id = order.id if isinstance(order, Order) else order
        self._check_names(values)
        for name in values:
            raise ValidationError(name, "is derived by the store from the fill")
        if type is not None:
            coerce_enum(TradeTypeEnum, type, "type")
        return self._fills.record(
            Fill(
                order_id, symbol, side, quantity, price, commission, fees, external_id, executed_at
            )
        )

    def get_by_order_id(self, order_id: int) -> list[Trade]:
        """The fills of one order, oldest first."""
        return self._list(self._select().where(Trade.order == order_id).order_by(Trade.id), None)

    def get_by_symbol(self, symbol: str, limit: int | None = 100, offset: int = 0) -> list[Trade]:
        """Trades in ``symbol``, newest first."""
        return self._list(
            self._select().where(Trade.symbol == symbol).order_by(Trade.id.desc()), limit, offset
        )

    def get_by_external_id(self, external_id: str) -> Trade | None:
        """The trade the broker knows by ``external_id``, or None."""
        return self._first(self._select().where(Trade.external_id == external_id))

    def get_recent(self, limit: int = 100, offset: int = 0) -> list[Trade]:
        """The most recently recorded trades first."""
        return self._list(self._select().order_by(Trade.id.desc()), limit, offset)

    def update(self, instance: Trade, **values: Any) -> Trade:
        """Refused: a trade is history. Record a correcting fill instead."""
        raise ValidationError(
            "trade",
            f"trade {instance.id} is history and cannot be "
            "changed; record a correcting fill (record_trade)",
        )

    def delete(self, row: Trade | int, deleted_by: str | None = None) -> bool:
        """Refused for a stored trade (the books are its replay); False if none.
        ``deleted_by`` is taken as every repository's ``delete`` takes it, and unused."""
        row_id = row.id if isinstance(row, Trade) else check_id(row, "trade_id")
        if not self.exists(row_id):
            return False
        raise ValidationError(
            "trade_id",
            f"trade {row_id} is history and cannot be deleted; "
            "record a correcting fill (record_trade)",
        )


#: Strategy figures maintained by fills; not set by hand.
_STRATEGY_FIGURES = (
    "total_trades",
    "win_rate",
    "total_pnl",
    "closing_trades",
    "winning_trades",
    "losing_trades",
    "gross_profit",
    "gross_loss",
    "commission",
    "fees",
    "pnl_peak",
    "max_drawdown",
    "last_trade_at",
)


class StrategyRepository(Repository[Strategy]):
    """Strategies. A new one is inactive (``is_active`` False) and enabled, as in the
    old module: a bot activates it when it should run."""

    model = Strategy
    unique_key = "name"

    # Takes a name first, where Repository.create takes only field keywords.
    def create(  # type: ignore[override]
        self,
        name: str,
        strategy_type: str | None = None,
        config: JSONValue = None,
        description: str | None = None,
        **values: Any,
    ) -> Strategy:
        """A new strategy, inactive unless ``is_active=True``; :class:`DuplicateError`
        if the name is taken."""
        check_text(name, "name", NAME_MAX)
        check_text(strategy_type, "strategy_type", 100, optional=True)
        self._check_names(values)
        refuse_changes(Strategy(), values, _STRATEGY_FIGURES, "is kept by the strategy's fills")
        values.setdefault("is_active", False)
        return super().create(
            name=name, strategy_type=strategy_type, config=config, description=description, **values
        )

    def update(self, instance: Strategy, **values: Any) -> Strategy:
        """Set a strategy's name, settings or switches; its figures come from fills."""
        if not values:
            values = changed_fields(instance)
        self._check_fields(values)
        with translate_errors(f"updating Strategy {instance.id}"), write_transaction(self.db):
            current = self.get_for_update(instance.id)
            refuse_changes(current, values, _STRATEGY_FIGURES, "is kept by the strategy's fills")
            return _refresh(instance, self._write(current, values))

    def get_by_name(self, name: str, include_deleted: bool = False) -> Strategy | None:
        """The strategy called ``name``, or None. With ``include_deleted``, the live one
        if there is one, else the most recently deleted one."""
        return self._by_key(name, include_deleted)

    def id_for_name(self, name: str) -> int | None:
        """The id of the live strategy called ``name``, or None (no model built)."""
        sql = f'SELECT "id" FROM "strategy" WHERE "name" = {self.db.param} AND "deleted_at" IS NULL'
        with translate_errors("reading Strategy"):
            row = self.db.execute_sql(sql, (name,)).fetchone()
        return None if row is None else row[0]

    def get_active(self) -> list[Strategy]:
        """Strategies that are active, by name."""
        return self._list(
            self._select()
            .where(Strategy.is_active == True)  # noqa: E712
            .order_by(Strategy.name),
            None,
        )

    def get_all(
        self, limit: int | None = None, offset: int = 0, include_deleted: bool = False
    ) -> list[Strategy]:
        """Every strategy, by name (then id: a deleted one may share a live one's name)."""
        return self._list(
            self._select(include_deleted=include_deleted).order_by(Strategy.name, Strategy.id),
            limit,
            offset,
        )


class ConfigRepository(Repository[Config]):
    """Key/value settings. Values are stored as text and must read as their
    ``value_type`` (a bool is stored as ``true`` or ``false``)."""

    model = Config
    unique_key = "key"

    # Takes a key and a value first, where Repository.create takes only field keywords.
    def create(  # type: ignore[override]
        self,
        key: str,
        value: ConfigValue,
        value_type: ValueType = ConfigValueType.STRING,
        description: str | None = None,
    ) -> Config:
        """A new setting; :class:`DuplicateError` if the key is taken."""
        check_text(key, "key", NAME_MAX)
        text, kind = config_values.to_text(value, value_type, key)
        return super().create(key=key, value=text, value_type=kind, description=description)

    def get_by_key(self, key: str, include_deleted: bool = False) -> Config | None:
        """The setting called ``key``, or None. With ``include_deleted``, the live one if
        there is one, else the most recently deleted one."""
        return self._by_key(key, include_deleted)

    def get_all(
        self, limit: int | None = None, offset: int = 0, include_deleted: bool = False
    ) -> list[Config]:
        """Every setting, by key (then id: a deleted one may share a live one's key)."""
        return self._list(
            self._select(include_deleted=include_deleted).order_by(Config.key, Config.id),
            limit,
            offset,
        )

    def update(self, instance: Config, value: Any = ..., **values: Any) -> Config:
        """Set a setting's value (the old module's ``update(config, value)``), type or
        description; the value must read as its type."""
        if value is not ...:
            values["value"] = value
        if not values:
            values = changed_fields(instance)
        self._check_names(values)
        with write_transaction(self.db):
            current = self.get_for_update(instance.id)
            if "value" in values or "value_type" in values:
                values["value"], values["value_type"] = config_values.to_text(
                    values.get("value", current.value),
                    values.get("value_type", current.value_type),
                    current.key,
                )
            self._write(current, values)
        return _refresh(instance, current)

    def upsert(
        self,
        key: str,
        value: ConfigValue,
        value_type: ValueType = ConfigValueType.STRING,
        description: str | None = None,
    ) -> Config:
        """Create the setting or replace its value (and type and description); what
        is returned is what this call wrote, read in its own transaction."""
        check_text(key, "key", NAME_MAX)
        check_free_text(value, "value")
        check_free_text(description, "description")
        text, kind = config_values.to_text(value, value_type, key)
        now = utcnow()
        update: dict[Any, Any] = {
            Config.value: text,
            Config.value_type: kind,
            Config.updated_at: now,
        }
        if description is not None:
            update[Config.description] = description
        with write_transaction(self.db), translate_errors(f"saving config {key!r}"):
            before = self._by_key_for_update(key)
            if before is None:
                inserted = (
                    Config.insert(
                        key=key,
                        value=text,
                        value_type=kind,
                        description=description,
                        created_at=now,
                        updated_at=now,
                    )
                    .on_conflict(conflict_target=[Config.key], conflict_where=LIVE, action="IGNORE")
                    .returning(Config.id)
                    .execute(self.db)
                )
                if not list(inserted):
                    # A live row was committed meanwhile (another process set the key or
                    # restored it): update that one, with its values as the audit's before.
                    before = self._by_key_for_update(key)
            if before is not None:
                Config.update(update).where(Config.id == before.id).execute(self.db)
            after = cast(Config, self.get_by_key(key))  # written just above
            self.audit.row(
                "config",
                after.id,
                "set",
                created(row_values(after))
                if before is None
                else changed(row_values(before), row_values(after)),
            )
            return after

    def _by_key_for_update(self, key: str) -> Config | None:
        """The live row of ``key``, locked, to be replaced; one whose stored value type
        names no :class:`ConfigValueType` (written outside the store) comes back with
        its columns as stored: it is about to be overwritten, and setting a value is
        how an operator halts trading whatever the switch's row holds."""
        query = self._select().where(Config.key == key)
        if self.db.for_update:
            query = query.for_update("FOR NO KEY UPDATE")  # type: ignore[arg-type]  # text is ok
        try:
            return self._first(query)
        except CorruptRowError:
            stored = query.select(
                *[
                    f.cast("TEXT").alias(f.name) if isinstance(f, EnumField) else f
                    for f in Config._meta.sorted_fields
                ]
            )
            with translate_errors(f"reading config {key!r}"):
                row = stored.dicts().first()
            # As stored: the audit log's before values are the row's own text.
            return None if row is None else Config(**row)

    def delete(self, row: Config | str | int, deleted_by: str | None = None) -> bool:
        """Soft-delete a setting, given by its key (the old module's form), the row or
        its id; False if there was none. It reads as unset from then on."""
        if isinstance(row, str):
            found = self.get_by_key(row)
            if found is None:
                return False
            row = found.id
        return super().delete(row, deleted_by)

    def check_delete(self, row: Config) -> None:
        """``trading_enabled`` cannot be deleted while it halts trading: unset reads as
        enabled, so deleting a halt would resume trading."""
        key = config_values.TRADING_ENABLED
        if row.key == key and not config_values.clearly_true(row.value):
            raise ValidationError(
                "key",
                f"{key} is {row.value!r} (halted); "
                "deleting it would resume trading, since unset means "
                "enabled; resume trading first (set_trading_enabled(True)) "
                "if that is what is meant",
            )

    def restore(self, row: Config | str | int) -> Config:
        """Bring back a deleted setting, given as the row, its id, or its key (then the
        most recently deleted row with that key); :class:`DuplicateError` if the key is
        set again since."""
        if isinstance(row, str):
            found = self._first(
                Config.select()
                .where((Config.key == row) & Config.deleted_at.is_null(False))
                .order_by(Config.deleted_at.desc(), Config.id.desc())
                .bind(self.db)
            )
            found = found or self.get_by_key(row)  # none deleted: the live one, as it is
            if found is None:
                raise NotFoundError(f"config {row!r} does not exist")
            row = found.id
        return super().restore(row)


# -- the rules of an order's status and fill figures --------------------------------------


def check_transition(order: Order, new: OrderStatusEnum) -> None:
    """Raise :class:`InvalidTransitionError` unless ``order`` may move to ``new`` (the
    rule is :func:`stocksbot_store.ledger.check_transition`)."""
    ledger.check_transition(order.id, order.status, new)


def check_fill_figures(
    order: Order, status: OrderStatusEnum, filled_quantity: Any, avg_fill_price: Any
) -> None:
    """Raise unless the caller's fill figures and ``status`` agree with the order's
    recorded fills."""
    if (
        filled_quantity is not None
        and to_decimal(filled_quantity, "filled_quantity") != order.filled_quantity
    ):
        raise ValidationError(
            "filled_quantity",
            f"order {order.id} has "
            f"{order.filled_quantity} filled by its recorded trades; "
            "record fills with record_trade",
        )
    if (
        avg_fill_price is not None
        and to_decimal(avg_fill_price, "avg_fill_price") != order.avg_fill_price
    ):
        raise ValidationError(
            "avg_fill_price",
            f"order {order.id}'s average fill price "
            f"is {order.avg_fill_price} by its recorded trades",
        )
    ledger.check_status_agrees(order.id, status, order.filled_quantity, order.quantity)


def refuse_fill_state(values: dict[str, Any]) -> None:
    """ValidationError if ``values`` sets an order's fill figures."""
    for name in ("filled_quantity", "avg_fill_price", "filled_at"):
        if values.get(name) not in (None, 0):
            raise ValidationError(
                name, "comes from the order's trades; record fills with record_trade"
            )


def refuse_below_filled(order: Order, quantity: Any) -> None:
    """ValidationError if ``quantity`` is less than what ``order`` has filled."""
    if to_decimal(quantity, "quantity") < order.filled_quantity:
        raise ValidationError(
            "quantity", f"order {order.id} has {order.filled_quantity} filled already"
        )


def _refresh(instance: Any, current: BaseModel) -> Any:
    """Copy ``current``'s stored values onto the caller's ``instance`` (the old module
    refreshed the object it was given) and return it."""
    if isinstance(instance, BaseModel) and instance is not current:
        instance.__data__ = dict(current.__data__)
        instance._dirty.clear()
        return instance
    return current


__all__ = [
    "ConfigRepository",
    "OrderRepository",
    "PositionRepository",
    "Repository",
    "StrategyRepository",
    "TradeRepository",
    "changed_fields",
    "check_fill_figures",
    "check_transition",
]
