"""stocksbot-store: the persistence layer of a trading bot, on Peewee.

What a user imports lives here; the rest of the package is free to change::

    from stocksbot_store import connect, init_db, StorageService
    db = connect()                      # DATABASE_URL, else sqlite:///./stocksbot.db
    init_db(db)
    storage = StorageService(db)
"""

from .database import DEFAULT_URL, connect, get_db, init_db, mask_url
from .errors import (
    CommitUnknownError,
    ConfigurationError,
    ConflictError,
    DatabaseUnavailableError,
    DatabaseWriteError,
    DuplicateError,
    InvalidTransitionError,
    MigrationError,
    NotFoundError,
    OverfillError,
    ReadOnlyError,
    SchemaError,
    StorageError,
    ValidationError,
)
from .fills import Fill
from .metrics import StoreStats, format_json, format_prometheus, format_text, stats
from .models import (
    Config,
    ConfigValueType,
    Order,
    OrderSideEnum,
    OrderStatusEnum,
    OrderTypeEnum,
    Position,
    PositionSideEnum,
    Strategy,
    Trade,
    TradeTypeEnum,
)
from .replicas import ReplicaStatus, replica_status
from .service import StorageService, StrategyStats

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_URL",
    "Config",
    "ConfigValueType",
    "CommitUnknownError",
    "ConfigurationError",
    "ConflictError",
    "DatabaseUnavailableError",
    "DatabaseWriteError",
    "DuplicateError",
    "Fill",
    "InvalidTransitionError",
    "MigrationError",
    "NotFoundError",
    "Order",
    "OrderSideEnum",
    "OrderStatusEnum",
    "OrderTypeEnum",
    "OverfillError",
    "Position",
    "PositionSideEnum",
    "ReadOnlyError",
    "ReplicaStatus",
    "SchemaError",
    "StorageError",
    "StorageService",
    "StoreStats",
    "Strategy",
    "StrategyStats",
    "Trade",
    "TradeTypeEnum",
    "ValidationError",
    "connect",
    "format_json",
    "format_prometheus",
    "format_text",
    "get_db",
    "init_db",
    "mask_url",
    "replica_status",
    "stats",
]
