"""stocksbot-store: the persistence layer of a trading bot, on Peewee.

What a user imports lives here; the rest of the package is free to change::

    from stocksbot_store import connect, init_db, StorageService
    db = connect()                      # DATABASE_URL, else sqlite:///./stocksbot.db
    init_db(db)
    storage = StorageService(db)

``connect`` here is :func:`stocksbot_store.store.open_store` (also exported under that
name): it opens the database and checks its schema, creating it in a brand-new one.
:func:`stocksbot_store.database.connect` only opens; read-only tools use that.
"""

from .archive import export_archive, import_archive, verify_archive
from .audit import AuditEntry, default_actor, get_audit_log
from .backends import describe
from .backups import backup, restore
from .check import LedgerReport, check_ledger
from .conversion import convert
from .errors import (
    CommitUnknownError,
    ConfigurationError,
    ConflictError,
    CorruptRowError,
    DatabaseUnavailableError,
    DatabaseWriteError,
    DeletedError,
    DuplicateError,
    ImportStoppedError,
    InvalidTransitionError,
    MigrationError,
    NotFoundError,
    OverfillError,
    PathError,
    ReadOnlyError,
    SchemaError,
    StorageError,
    ValidationError,
)
from .fills import Fill
from .metrics import StoreStats, format_json, format_prometheus, format_text, stats
from .models import (
    MODELS,
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
from .realized import realized_report
from .replicas import ReplicaStatus, replica_status
from .repositories import (
    ConfigRepository,
    OrderRepository,
    PositionRepository,
    StrategyRepository,
    TradeRepository,
)
from .service import (
    FILL_KEYS,
    TRADING_ENABLED,
    ImportSummary,
    StorageService,
    StrategyStats,
)
from .store import close_default_databases, default_database, get_db, init_db, open_store
from .urls import DEFAULT_URL, mask_url

#: The entry point a bot calls: open the store (see :func:`open_store`).
connect = open_store

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_URL",
    "FILL_KEYS",
    "MODELS",
    "AuditEntry",
    "TRADING_ENABLED",
    "Config",
    "ConfigRepository",
    "ConfigValueType",
    "CommitUnknownError",
    "ConfigurationError",
    "ConflictError",
    "CorruptRowError",
    "DatabaseUnavailableError",
    "DatabaseWriteError",
    "DeletedError",
    "DuplicateError",
    "Fill",
    "ImportStoppedError",
    "ImportSummary",
    "InvalidTransitionError",
    "LedgerReport",
    "MigrationError",
    "NotFoundError",
    "Order",
    "OrderRepository",
    "OrderSideEnum",
    "OrderStatusEnum",
    "OrderTypeEnum",
    "OverfillError",
    "PathError",
    "Position",
    "PositionRepository",
    "PositionSideEnum",
    "ReadOnlyError",
    "ReplicaStatus",
    "SchemaError",
    "StorageError",
    "StorageService",
    "StoreStats",
    "Strategy",
    "StrategyRepository",
    "StrategyStats",
    "Trade",
    "TradeRepository",
    "TradeTypeEnum",
    "ValidationError",
    "backup",
    "check_ledger",
    "close_default_databases",
    "connect",
    "default_database",
    "describe",
    "format_json",
    "format_prometheus",
    "format_text",
    "convert",
    "default_actor",
    "export_archive",
    "get_audit_log",
    "get_db",
    "import_archive",
    "init_db",
    "mask_url",
    "open_store",
    "replica_status",
    "stats",
    "realized_report",
    "restore",
    "verify_archive",
]
