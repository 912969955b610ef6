"""The tables of the store: Position, Order, Trade, Strategy and Config, the
figures kept for reports (P&L buckets, daily position closes, marks, reconcile runs)
and the audit log of changes to the first five.

The models are not bound to a database: every repository and the service run their
queries on the database they were given (``query.bind(db)`` / ``execute(db)``), so
one process can hold several databases without global state. To use the models
directly, bind them for a block: ``with db.bind_ctx(MODELS): Order.select()...``.

Money and quantities are :class:`~decimal.Decimal` (exact on every backend) and
times are aware UTC datetimes; see :mod:`stocksbot_store.fields`.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from peewee import (
    SQL,
    AutoField,
    BigAutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from .fields import (
    EnumField,
    ExactDecimalField,
    JSONTextField,
    SwitchField,
    UTCDateTimeField,
    in_money_context,
    utcnow,
)

ZERO = Decimal(0)


class PositionSideEnum(str, enum.Enum):
    """Which way a position faces."""

    LONG = "long"
    SHORT = "short"


class OrderSideEnum(str, enum.Enum):
    """Buy or sell."""

    BUY = "buy"
    SELL = "sell"


class OrderTypeEnum(str, enum.Enum):
    """How an order is priced."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class OrderStatusEnum(str, enum.Enum):
    """Where an order is in its life; statuses only move forward."""

    PENDING = "pending"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class TradeTypeEnum(str, enum.Enum):
    """Whether an execution opened/added to a position or closed/reduced one."""

    OPEN = "open"
    CLOSE = "close"
    ADJUSTMENT = "adjustment"


class ConfigValueType(str, enum.Enum):
    """How a config value's text is to be read."""

    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    JSON = "json"


for _enum in (
    PositionSideEnum,
    OrderSideEnum,
    OrderTypeEnum,
    OrderStatusEnum,
    TradeTypeEnum,
    ConfigValueType,
):
    # str() of a member is its value, so f-strings and logs read "filled", not
    # "OrderStatusEnum.FILLED".
    _enum.__str__ = lambda self: self.value  # type: ignore[method-assign,attr-defined]


class BaseModel(Model):
    """Common base: no database of its own (see the module docstring).

    A row is also what a JSON API returns: :meth:`to_dict` gives its fields as JSON
    values, and iterating a row yields the same ``(name, value)`` pairs, so
    ``dict(row)`` and FastAPI's default encoder (which tries ``dict(obj)`` on an
    object it does not know) give that mapping rather than Peewee's internals.
    """

    class Meta:
        legacy_table_names = False

    if TYPE_CHECKING:  # every table has an ``id``; ``_dirty`` is peewee's, not in its stubs
        id: AutoField[int]
        _dirty: set[str]

    def to_dict(self) -> dict[str, Any]:
        """The row's fields as JSON values: exact decimals as fixed-point text (never
        a float), times as ISO-8601 text in UTC, enums as their values; a foreign key
        by its column name (``order_id``, ``strategy_id``)."""
        data = self.__data__
        return {
            field.column_name: json_value(data.get(field.name))
            for field in self._meta.sorted_fields
        }

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """``(name, value)`` pairs of :meth:`to_dict`, so ``dict(row)`` is that mapping."""
        return iter(self.to_dict().items())


def json_value(value: Any) -> Any:
    """A field value as JSON: Decimal -> fixed-point text, datetime -> ISO-8601 text,
    enum -> its value; anything else (str, int, bool, None, a JSON config) as is."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


class Strategy(BaseModel):
    """A trading strategy, its settings and the figures its fills keep up to date.

    ``total_trades``, ``win_rate``, ``total_pnl`` and the columns after them are
    maintained by :meth:`StorageService.record_trade`; they are what the dashboard
    reads every second, so they are stored rather than recomputed from trades.
    """

    id = AutoField()
    name = CharField(max_length=200)
    description = TextField(null=True)
    strategy_type = CharField(max_length=100, null=True)
    config = JSONTextField(null=True)
    is_active = SwitchField(default=True)
    is_enabled = SwitchField(default=True)
    total_trades = IntegerField(default=0)
    win_rate = ExactDecimalField(default=ZERO)
    total_pnl = ExactDecimalField(default=ZERO)
    closing_trades = IntegerField(default=0)
    winning_trades = IntegerField(default=0)
    losing_trades = IntegerField(default=0)
    gross_profit = ExactDecimalField(default=ZERO)
    gross_loss = ExactDecimalField(default=ZERO)
    commission = ExactDecimalField(default=ZERO)
    fees = ExactDecimalField(default=ZERO)
    pnl_peak = ExactDecimalField(default=ZERO)
    max_drawdown = ExactDecimalField(default=ZERO)
    last_trade_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)
    last_run_at = UTCDateTimeField(null=True)
    deleted_at = UTCDateTimeField(null=True)
    deleted_by = TextField(null=True)

    @property
    @in_money_context
    def net_pnl(self) -> Decimal:
        """Realized P&L less commission and fees."""
        return self.total_pnl - self.commission - self.fees

    def __repr__(self) -> str:
        return f"<Strategy {self.id} {self.name!r}>"


class Position(BaseModel):
    """A holding in one symbol; at most one open position per symbol."""

    id = AutoField()
    symbol = CharField(max_length=64)
    side = EnumField(PositionSideEnum)
    quantity = ExactDecimalField()
    avg_entry_price = ExactDecimalField()
    cost_basis = ExactDecimalField()
    realized_pnl = ExactDecimalField(default=ZERO)
    commission = ExactDecimalField(default=ZERO)
    fees = ExactDecimalField(default=ZERO)
    is_open = BooleanField(default=True)
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)
    opened_at = UTCDateTimeField(default=utcnow)
    closed_at = UTCDateTimeField(null=True)
    deleted_at = UTCDateTimeField(null=True)
    deleted_by = TextField(null=True)

    @property
    @in_money_context
    def net_pnl(self) -> Decimal:
        """Realized P&L less commission and fees."""
        return self.realized_pnl - self.commission - self.fees

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<Position {self.id} {self.symbol} {self.side} {self.quantity} {state}>"


class Order(BaseModel):
    """An order sent (or about to be sent) to the broker."""

    id = AutoField()
    external_id = CharField(max_length=200, null=True)
    symbol = CharField(max_length=64)
    side = EnumField(OrderSideEnum)
    type = EnumField(OrderTypeEnum)
    status = EnumField(OrderStatusEnum, default=OrderStatusEnum.PENDING)
    quantity = ExactDecimalField()
    price = ExactDecimalField(null=True)
    filled_quantity = ExactDecimalField(default=ZERO)
    avg_fill_price = ExactDecimalField(null=True)
    strategy = ForeignKeyField(
        Strategy, null=True, backref="orders", on_delete="SET NULL", lazy_load=False, index=False
    )
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)
    filled_at = UTCDateTimeField(null=True)
    deleted_at = UTCDateTimeField(null=True)
    deleted_by = TextField(null=True)

    @property
    @in_money_context
    def remaining_quantity(self) -> Decimal:
        """What is left to fill."""
        return self.quantity - self.filled_quantity

    def __repr__(self) -> str:
        return f"<Order {self.id} {self.side} {self.quantity} {self.symbol} {self.status}>"


class Trade(BaseModel):
    """One execution (fill) of an order; an order can have many."""

    id = AutoField()
    order = ForeignKeyField(
        Order, null=True, backref="trades", on_delete="RESTRICT", lazy_load=False
    )
    external_id = CharField(max_length=200, null=True, unique=True)
    strategy = ForeignKeyField(
        Strategy, null=True, backref="trades", on_delete="SET NULL", lazy_load=False, index=False
    )
    symbol = CharField(max_length=64)
    side = EnumField(OrderSideEnum)
    type = EnumField(TradeTypeEnum)
    quantity = ExactDecimalField()
    price = ExactDecimalField()
    commission = ExactDecimalField(default=ZERO)
    fees = ExactDecimalField(default=ZERO)
    realized_pnl = ExactDecimalField(null=True)
    executed_at = UTCDateTimeField(default=utcnow)
    created_at = UTCDateTimeField(default=utcnow)

    @property
    @in_money_context
    def net_pnl(self) -> Decimal:
        """Realized P&L (zero for an opening fill) less commission and fees."""
        return (self.realized_pnl or ZERO) - self.commission - self.fees

    def __repr__(self) -> str:
        return f"<Trade {self.id} {self.side} {self.quantity} {self.symbol} @ {self.price}>"


class Config(BaseModel):
    """A typed key/value setting (``trading_enabled`` and the like)."""

    id = AutoField()
    key = CharField(max_length=200)
    value = TextField(null=True)
    value_type = EnumField(ConfigValueType, default=ConfigValueType.STRING)
    description = TextField(null=True)
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)
    deleted_at = UTCDateTimeField(null=True)
    deleted_by = TextField(null=True)


class PnlBucket(BaseModel):
    """Realized P&L, fees, trade counts and traded value of one time bucket, kept on
    every fill (see :mod:`stocksbot_store.reports`) so reports never read trades.

    ``span`` is the bucket's length in seconds: 900 (a quarter hour, exact for every
    UTC offset in use, :30 and :45 ones included) or 86400 (a UTC day);
    ``bucket_start`` its start in seconds since the epoch (UTC). ``strategy_key`` is
    the trades' strategy id, 0 for trades without one; ``symbol`` is ``""`` on the
    rows that add up every symbol of a strategy. Each amount (up to the 10**30 of a
    derived figure) is stored as four integers, ``v = e18 * 10**18 + e9 * 10**9 + e0 +
    frac * 10**-10`` (``e9``, ``e0`` below 10**9, ``frac`` below 10**10, the whole
    rounded down), so SQL sums them exactly on every backend without overflow.
    """

    id = AutoField()
    span = IntegerField()
    bucket_start = BigIntegerField()
    strategy_key = IntegerField()
    symbol = CharField(max_length=64)
    trades = IntegerField(default=0)
    closing_trades = IntegerField(default=0)
    wins = IntegerField(default=0)
    losses = IntegerField(default=0)
    gross_pnl_e18 = BigIntegerField(default=0)
    gross_pnl_e9 = BigIntegerField(default=0)
    gross_pnl_e0 = BigIntegerField(default=0)
    gross_pnl_frac = BigIntegerField(default=0)
    commission_e18 = BigIntegerField(default=0)
    commission_e9 = BigIntegerField(default=0)
    commission_e0 = BigIntegerField(default=0)
    commission_frac = BigIntegerField(default=0)
    fees_e18 = BigIntegerField(default=0)
    fees_e9 = BigIntegerField(default=0)
    fees_e0 = BigIntegerField(default=0)
    fees_frac = BigIntegerField(default=0)
    volume_e18 = BigIntegerField(default=0)
    volume_e9 = BigIntegerField(default=0)
    volume_e0 = BigIntegerField(default=0)
    volume_frac = BigIntegerField(default=0)


class PositionDay(BaseModel):
    """A symbol's position at the end of a UTC day (after its last fill that day) and
    that fill's price: what the equity curve values at the day's closing mark."""

    id = AutoField()
    symbol = CharField(max_length=64)
    day = UTCDateTimeField()
    #: None when the symbol was flat at the end of the day.
    side = EnumField(PositionSideEnum, null=True)
    quantity = ExactDecimalField(default=ZERO)
    avg_entry_price = ExactDecimalField(default=ZERO)
    last_price = ExactDecimalField()


class Mark(BaseModel):
    """The latest market price recorded for a symbol."""

    id = AutoField()
    symbol = CharField(max_length=64, unique=True)
    price = ExactDecimalField()
    marked_at = UTCDateTimeField()


class MarkClose(BaseModel):
    """The last market price recorded for a symbol on a UTC day (its closing mark)."""

    id = AutoField()
    symbol = CharField(max_length=64)
    day = UTCDateTimeField()
    price = ExactDecimalField()
    marked_at = UTCDateTimeField()


class ReconcileRun(BaseModel):
    """One reconcile with the broker: when, what differed, and whether it was applied."""

    id = AutoField()
    ran_at = UTCDateTimeField(default=utcnow)
    applied = BooleanField(default=False)
    difference_count = IntegerField(default=0)
    differences = JSONTextField(null=True)


class AuditLog(BaseModel):
    """One change to an order, trade, position, strategy or setting, written in the
    transaction of the change (see :mod:`stocksbot_store.audit`); append-only.

    ``table_name`` is the store's name of the table (``orders``, ``trades``,
    ``positions``, ``strategies``, ``config``); ``row_id`` the changed row's id (None
    on a summary row that stands for many rows, as an adoption or an import writes);
    ``changes`` JSON text ``{field: [before, after]}`` with exact decimals as text,
    times as ISO-8601 UTC text and enums as their values.
    """

    id = BigAutoField()
    at = UTCDateTimeField(default=utcnow)
    actor = TextField()
    table_name = TextField()
    row_id = BigIntegerField(null=True)
    action = TextField()
    changes = TextField()


# Soft delete (see stocksbot_store.softdelete): a unique key binds the rows that are not
# deleted, so a deleted strategy's name, config key or order's broker id is free again.
#: The condition of a row that is not soft-deleted, as the partial indexes spell it.
LIVE = SQL('"deleted_at" IS NULL')
Strategy.add_index(Strategy.name, unique=True, where=LIVE, name="strategy_name_live")
Order.add_index(Order.external_id, unique=True, where=LIVE, name="order_external_id_live")
Config.add_index(Config.key, unique=True, where=LIVE, name="config_key_live")
#: The models that can be soft-deleted (``deleted_at``, ``deleted_by``); trades never are.
SOFT_DELETE_MODELS: tuple[type[BaseModel], ...] = (Order, Position, Strategy, Config)

# Indexes that serve the store's and the dashboard's queries at any history size.
# At most one open position per symbol, enforced by the database.
Position.add_index(
    Position.symbol, unique=True, where=SQL('"is_open"'), name="position_one_open_per_symbol"
)
Position.add_index(Position.is_open, Position.symbol, name="position_is_open_symbol")
Order.add_index(Order.created_at, Order.id, name="order_created_at_id")
Order.add_index(Order.symbol, Order.status, Order.id, name="order_symbol_status_id")
Order.add_index(Order.status, Order.id, name="order_status_id")
Order.add_index(Order.strategy, Order.id, name="order_strategy_id")
Trade.add_index(Trade.executed_at, Trade.id, name="trade_executed_at_id")
Trade.add_index(Trade.symbol, Trade.id, name="trade_symbol_id")
Trade.add_index(Trade.strategy, Trade.executed_at, name="trade_strategy_executed_at")
PnlBucket.add_index(
    PnlBucket.span,
    PnlBucket.symbol,
    PnlBucket.strategy_key,
    PnlBucket.bucket_start,
    unique=True,
    name="pnl_bucket_key",
)
PnlBucket.add_index(PnlBucket.span, PnlBucket.bucket_start, name="pnl_bucket_span_start")
PositionDay.add_index(
    PositionDay.symbol, PositionDay.day, unique=True, name="position_day_symbol_day"
)
MarkClose.add_index(MarkClose.symbol, MarkClose.day, unique=True, name="mark_close_symbol_day")
# A row's history newest first; the log newest first is the primary key's order.
AuditLog.add_index(AuditLog.table_name, AuditLog.row_id, AuditLog.id, name="audit_log_table_row")
AuditLog.add_index(AuditLog.at, name="audit_log_at")

#: Every model, in dependency order (create in this order, drop in reverse).
MODELS: list[type[BaseModel]] = [
    Strategy,
    Position,
    Order,
    Trade,
    Config,
    PnlBucket,
    PositionDay,
    Mark,
    MarkClose,
    ReconcileRun,
    AuditLog,
]

__all__ = [
    "MODELS",
    "AuditLog",
    "Config",
    "ConfigValueType",
    "Mark",
    "MarkClose",
    "Order",
    "OrderSideEnum",
    "OrderStatusEnum",
    "OrderTypeEnum",
    "PnlBucket",
    "Position",
    "PositionDay",
    "PositionSideEnum",
    "ReconcileRun",
    "SOFT_DELETE_MODELS",
    "Strategy",
    "Trade",
    "TradeTypeEnum",
]
