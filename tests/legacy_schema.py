"""Databases as the old SQLAlchemy storage module wrote them, for the adopt tests and bench.

The schema follows what is known of the old module: tables ``positions``, ``orders``,
``trades``, ``strategies`` and ``config``; SQLAlchemy ``Enum`` columns, which store the
member **name** (``LONG``, ``PARTIALLY_FILLED``; native enum types on PostgreSQL);
``Float`` money; naive ``DateTime`` (server defaults ``now()``: UTC on SQLite); no
foreign keys; non-unique external ids; ``alembic_version`` at ``bff7b7883242``.

:class:`OldBot` writes the way the old module's service did, habits included:
``record_trade`` stamps ``executed_at`` with the local time and never touches the
order or the position; positions are kept by hand with float math.
"""

from __future__ import annotations

import datetime as dt
import enum
import sqlite3
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    func,
    insert,
    text,
)
from sqlalchemy import Enum as SQLEnum
from sqlalchemy.orm import DeclarativeBase

OLD_REVISION = "bff7b7883242"


class PositionSideEnum(str, enum.Enum):
    LONG = "long"
    SHORT = "short"


class OrderSideEnum(str, enum.Enum):
    BUY = "buy"
    SELL = "sell"


class OrderTypeEnum(str, enum.Enum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class OrderStatusEnum(str, enum.Enum):
    PENDING = "pending"
    OPEN = "open"
    FILLED = "filled"
    PARTIALLY_FILLED = "partially_filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class TradeTypeEnum(str, enum.Enum):
    OPEN = "open"
    CLOSE = "close"
    ADJUSTMENT = "adjustment"


class Base(DeclarativeBase):
    metadata = MetaData()


class Position(Base):
    __tablename__ = "positions"
    id = Column(Integer, primary_key=True, index=True)
    symbol = Column(String(10), nullable=False, index=True)
    side = Column(SQLEnum(PositionSideEnum), nullable=False)
    quantity = Column(Float, nullable=False)
    avg_entry_price = Column(Float, nullable=False)
    cost_basis = Column(Float, nullable=False)
    realized_pnl = Column(Float, default=0.0)
    is_open = Column(Boolean, default=True, index=True)
    created_at = Column(DateTime, server_default=func.now())
    updated_at = Column(DateTime, server_default=func.now(), onupdate=func.now())
    opened_at = Column(DateTime, server_default=func.now())
    closed_at = Column(DateTime, nullable=True)


class Order(Base):
    __tablename__ = "orders"
    id = Column(Integer, primary_key=True, index=True)
    external_id = Column(String(100), index=True)
    symbol = Column(String(10), nullable=False, index=True)
    side = Column(SQLEnum(OrderSideEnum), nullable=False)
    type = Column(SQLEnum(OrderTypeEnum), nullable=False)
    status = Column(SQLEnum(OrderStatusEnum), nullable=False, default=OrderStatusEnum.PENDING)
    quantity = Column(Float, nullable=False)
    price = Column(Float, nullable=True)
    filled_quantity = Column(Float, default=0.0)
    avg_fill_price = Column(Float, nullable=True)
    strategy_id = Column(Integer, nullable=True)
    created_at = Column(DateTime, server_default=func.now())
    updated_at = Column(DateTime, server_default=func.now(), onupdate=func.now())
    filled_at = Column(DateTime, nullable=True)


class Trade(Base):
    __tablename__ = "trades"
    id = Column(Integer, primary_key=True, index=True)
    order_id = Column(Integer, nullable=True, index=True)
    external_id = Column(String(100), index=True)
    symbol = Column(String(10), nullable=False, index=True)
    side = Column(SQLEnum(OrderSideEnum), nullable=False)
    type = Column(SQLEnum(TradeTypeEnum), nullable=False)
    quantity = Column(Float, nullable=False)
    price = Column(Float, nullable=False)
    commission = Column(Float, default=0.0)
    fees = Column(Float, default=0.0)
    realized_pnl = Column(Float, nullable=True)
    executed_at = Column(DateTime, server_default=func.now())
    created_at = Column(DateTime, server_default=func.now())


class Strategy(Base):
    __tablename__ = "strategies"
    id = Column(Integer, primary_key=True, index=True)
    name = Column(String(100), unique=True, nullable=False)
    description = Column(Text, nullable=True)
    strategy_type = Column(String(50), nullable=False)
    config = Column(JSON, nullable=True)
    is_active = Column(Boolean, default=False)
    is_enabled = Column(Boolean, default=True)
    total_trades = Column(Integer, default=0)
    win_rate = Column(Float, default=0.0)
    total_pnl = Column(Float, default=0.0)
    created_at = Column(DateTime, server_default=func.now())
    updated_at = Column(DateTime, server_default=func.now(), onupdate=func.now())
    last_run_at = Column(DateTime, nullable=True)


class Config(Base):
    __tablename__ = "config"
    id = Column(Integer, primary_key=True, index=True)
    key = Column(String(100), unique=True, nullable=False, index=True)
    value = Column(Text, nullable=False)
    value_type = Column(String(20), default="string")
    description = Column(Text, nullable=True)
    created_at = Column(DateTime, server_default=func.now())
    updated_at = Column(DateTime, server_default=func.now(), onupdate=func.now())


alembic_version = Table(
    "alembic_version", Base.metadata, Column("version_num", String(32), primary_key=True)
)


def old_engine(url_or_db: Any):
    """An SQLAlchemy engine on ``url_or_db``: a store URL, or a peewee database (so an
    in-memory SQLite database, shared through its memdb name, can be reached too)."""
    if isinstance(url_or_db, str):
        url = url_or_db.replace("postgresql://", "postgresql+psycopg://", 1)
        return create_engine(url)
    name = url_or_db.database
    return create_engine("sqlite://", creator=lambda: sqlite3.connect(name, uri=True))


def create_old_schema(engine) -> None:
    """The old module's tables at alembic revision :data:`OLD_REVISION`."""
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(alembic_version), {"version_num": OLD_REVISION})


class OldBot:
    """Writes rows as the old module's service did (its habits, not its rules)."""

    def __init__(self, engine, local_zone: dt.tzinfo | None = None) -> None:
        self.engine = engine
        self.local_zone = local_zone

    def now_local(self) -> dt.datetime:
        """What ``datetime.now()`` gave on the bot's machine: naive local time."""
        return dt.datetime.now(self.local_zone).replace(tzinfo=None)

    def _insert(self, table, **values: Any) -> int:
        with self.engine.begin() as conn:
            return conn.execute(insert(table).values(**values)).inserted_primary_key[0]

    def strategy(self, name: str, **values: Any) -> int:
        values.setdefault("strategy_type", "momentum")
        return self._insert(Strategy.__table__, name=name, **values)

    def order(
        self,
        symbol: str,
        side: str,
        quantity: float,
        price: float | None = None,
        type: str = "LIMIT",
        **values: Any,
    ) -> int:
        return self._insert(
            Order.__table__,
            symbol=symbol,
            side=side,
            type=type,
            quantity=quantity,
            price=price,
            **values,
        )

    def record_trade(
        self,
        order_id: int | None,
        symbol: str,
        side: str,
        quantity: float,
        price: float,
        type: str = "OPEN",
        **values: Any,
    ) -> int:
        """The old ``record_trade``: a row, stamped with local time; nothing else moves."""
        values.setdefault("executed_at", self.now_local())
        return self._insert(
            Trade.__table__,
            order_id=order_id,
            symbol=symbol,
            side=side,
            type=type,
            quantity=quantity,
            price=price,
            **values,
        )

    def position(
        self, symbol: str, side: str, quantity: float, avg_entry_price: float, **values: Any
    ) -> int:
        values.setdefault("cost_basis", quantity * avg_entry_price)
        return self._insert(
            Position.__table__,
            symbol=symbol,
            side=side,
            quantity=quantity,
            avg_entry_price=avg_entry_price,
            **values,
        )

    def config(self, key: str, value: str, value_type: str = "string") -> int:
        return self._insert(Config.__table__, key=key, value=value, value_type=value_type)

    def execute(self, sql: str, **params: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql), params)
