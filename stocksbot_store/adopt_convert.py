"""The conversion of the old module's rows and the rebuild of the books (``adopt``).

:class:`Adoption` does the work of :func:`stocksbot_store.adopt.adopt` inside its
transaction: it reads the old tables in keyset-paged batches, converts each row
(exact decimals, this store's enum values, UTC times), replays the trades in id
order through :mod:`stocksbot_store.ledger` and writes this store's rows, filling
the :class:`~stocksbot_store.adopt_report.AdoptionReport` as it goes. With a dry-run
report it computes the same and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import zoneinfo
from collections.abc import Callable, Iterator
from decimal import Decimal
from operator import itemgetter
from typing import Any

from peewee import Database, Model

from . import config_values, ledger
from .adopt_report import (
    REPORT_MODELS,
    AdoptionChange,
    AdoptionError,
    AdoptionReport,
    AdoptionReportRow,
)
from .audit import AuditWriter
from .buckets import rebuild
from .database import backend_of, describe
from .errors import ValidationError
from .fields import UTC, datetime_text, decimal_text, tidy, to_decimal, utcnow
from .fills.rows import CheckedFill, figures_row, new_position_row, order_update_row, trade_row
from .fills.statements import statements_for
from .ledger import OrderState
from .legacy import ALEMBIC_TABLE, OLD_REVISION, OLD_TABLES
from .migration.runner import HISTORY_TABLE, Runner
from .models import (
    MODELS,
    ZERO,
    Config,
    ConfigValueType,
    Order,
    OrderSideEnum,
    OrderStatusEnum,
    OrderTypeEnum,
    PositionSideEnum,
    Strategy,
    TradeTypeEnum,
)
from .validation import check_text

#: Where the old tables go on PostgreSQL (the backup).
LEGACY_SCHEMA = "stocksbot_legacy"
#: The old module's PostgreSQL enum types, moved with the tables.
OLD_ENUM_TYPES = (
    "positionsideenum",
    "ordersideenum",
    "ordertypeenum",
    "orderstatusenum",
    "tradetypeenum",
)
#: Times the old module's code stamped with the bot machine's clock (``datetime.now()``):
#: read in the assumed zone. Every other time was a database default.
LOCAL_TIME_COLUMNS = frozenset(
    {
        ("trades", "executed_at"),
        ("orders", "filled_at"),
        ("positions", "closed_at"),
        ("strategies", "last_run_at"),
    }
)
#: Rows read per query.
BATCH = 5_000

ProgressCallback = Callable[[str, int, int], None]


class _OldOrder(OrderState):
    """An order being adopted: its fill state as the trades build it, and the old one."""

    __slots__ = ("old", "old_filled_at", "last_fill")
    old: tuple[Decimal | str | None, Decimal | str | None]  # filled quantity, average price
    old_filled_at: dt.datetime | None  # the old time, aware UTC; filled_at is stored text
    last_fill: dt.datetime | None


_SIDES = {**{m.name: m.value for m in OrderSideEnum}, **{m.value: m.value for m in OrderSideEnum}}
_POSITION_SIDES = {
    **{m.name: m.value for m in PositionSideEnum},
    **{m.value: m.value for m in PositionSideEnum},
}
_TYPES = {**{m.name: m.value for m in OrderTypeEnum}, **{m.value: m.value for m in OrderTypeEnum}}
_STATUSES = {
    **{m.name: m.value for m in OrderStatusEnum},
    **{m.value: m.value for m in OrderStatusEnum},
}
_TRADE_TYPES = {
    **{m.name: m.value for m in TradeTypeEnum},
    **{m.value: m.value for m in TradeTypeEnum},
}
_CONFIG_TYPES = {m.value for m in ConfigValueType}
_FILLED, _PARTIAL, _OPEN = "filled", "partially_filled", "open"
#: The old module deleted for good: every row it left is live here.
_NOT_DELETED = {"deleted_at": None, "deleted_by": None}
_CLOSED_STATUSES = ("cancelled", "rejected")


#: What a stored time needs after SQLite text of this length (seconds / microseconds).
_PADDING = {19: ".000000+00:00", 26: "+00:00"}


def _insert_sql(model: type[Model], with_id: bool = True) -> tuple[str, list[str]]:
    """``INSERT`` of every column of ``model`` (built from its fields) and the columns."""
    columns = [f.column_name for f in model._meta.sorted_fields if with_id or f.column_name != "id"]
    sql = (
        f'INSERT INTO "{model._meta.table_name}" ({", ".join(columns)}) '
        f"VALUES ({', '.join('?' * len(columns))})"
    )
    return sql, columns


class Adoption:
    """One adoption: reads the old tables, writes this store's, fills the report."""

    def __init__(
        self,
        db: Database,
        report: AdoptionReport,
        zone: dt.tzinfo,
        progress: ProgressCallback | None,
        echo: Callable[[str], None],
        actor: str | None = None,
    ) -> None:
        self.db = db
        self.actor = actor
        self.report = report
        self.zone = zone
        self.progress = progress
        self.echo = echo
        self.backend = backend_of(db)
        self.write = not report.dry_run
        self.source = ""  # schema prefix of the old tables
        self.db_zone: dt.tzinfo = UTC
        self._money: dict[Any, Decimal] = {}
        self._texts: dict[Decimal, str] = {}
        self._symbols: set[str] = set()
        self.indexes: list[str] = []
        self._offsets: dict[str, dt.timedelta] = {}
        self.now = utcnow()
        self.stamp = datetime_text(self.now)

    # -- helpers ------------------------------------------------------------------------

    def sql(self, text: str) -> str:
        return text if self.backend == "sqlite" else text.replace("?", "%s")

    def rows(self, text: str, params: tuple = ()) -> list[tuple]:
        return self.db.execute_sql(self.sql(text), params).fetchall()

    def many(self, text: str, rows: list) -> None:
        if self.write and rows:
            self.db.cursor().executemany(self.sql(text), rows)

    def old(self, table: str) -> str:
        return f'{self.source}"{table}"'

    def batches(self, table: str, columns: str) -> Iterator[list[tuple]]:
        """The old table's rows by id, in keyset-paged batches."""
        total = self.rows(f"SELECT MAX(id) FROM {self.old(table)}")[0][0] or 0
        last = None
        while True:
            where = "" if last is None else "WHERE id > ? "
            rows = self.rows(
                f"SELECT {columns} FROM {self.old(table)} {where}ORDER BY id LIMIT {BATCH}",
                () if last is None else (last,),
            )
            if not rows:
                return
            last = rows[-1][0]
            yield rows
            if self.progress is not None:
                self.progress(table, last, total)

    def fail(self, table: str, row_id: Any, column: str, problem: str) -> AdoptionError:
        return AdoptionError(
            f"{table} row {row_id}: {column} {problem}; it cannot be converted, so nothing "
            "was changed. Correct or delete that row in the old database (its tables are "
            "untouched), then run adopt again"
        )

    def money(
        self, value: Any, table: str, row_id: Any, column: str, positive: bool = False
    ) -> Decimal:
        """An old float as an exact decimal, by its repr (cached: prices repeat)."""
        number = self._money.get(value) if isinstance(value, float) else None
        if number is None:
            try:
                number = to_decimal(0 if value is None and not positive else value, column)
            except ValidationError as e:
                raise self.fail(table, row_id, column, f"is {value!r}: {e}") from None
            if isinstance(value, float):
                if len(self._money) > 200_000:
                    self._money.clear()
                self._money[value] = number
        if positive and number <= 0:
            raise self.fail(table, row_id, column, f"is {value!r}; it must be positive")
        if number < 0 and column in ("commission", "fees"):
            raise self.fail(table, row_id, column, f"is {value!r}; it must not be negative")
        return number

    def text_of(self, number: Decimal) -> str:
        """:func:`decimal_text`, cached: the same prices and quantities recur."""
        text = self._texts.get(number)
        if text is None:
            if len(self._texts) > 200_000:
                self._texts.clear()
            text = self._texts[number] = decimal_text(number)
        return text

    def symbol(self, value: Any, table: str, row_id: Any) -> str:
        if value in self._symbols:
            return value
        symbol = self.text(value, table, row_id, "symbol", 64)
        self._symbols.add(symbol)
        return symbol

    def figure(self, value: Any) -> Decimal | str | None:
        """An old figure to report, exact when it can be."""
        if isinstance(value, float) and value in self._money:
            return self._money[value]
        try:
            return None if value is None else to_decimal(value)
        except ValidationError:
            return repr(value)

    def when(self, value: Any, table: str, column: str, row_id: Any) -> dt.datetime | None:
        """An old naive time as aware UTC (see :data:`LOCAL_TIME_COLUMNS`)."""
        if value is None:
            return None
        try:
            if isinstance(value, str):
                value = dt.datetime.fromisoformat(value.strip())
            if not isinstance(value, dt.datetime):
                raise ValueError(f"not a time: {value!r}")
        except ValueError as e:
            raise self.fail(table, row_id, column, f"is {str(value)[:40]!r}: {e}") from None
        if value.tzinfo is not None:
            return value.astimezone(UTC)
        zone = self.zone if (table, column) in LOCAL_TIME_COLUMNS else self.db_zone
        return value.replace(tzinfo=zone).astimezone(UTC)

    def local(
        self, value: Any, table: str, column: str, row_id: Any
    ) -> tuple[dt.datetime | None, str | None]:
        """A time the bot stamped, read in the assumed zone: aware UTC and its stored text.
        The zone's offset is kept per minute of the text (no zone changes its offset
        within a minute), so most values cost a parse and a subtraction."""
        key = value[:16] if isinstance(value, str) else None
        offset = self._offsets.get(key) if key else None
        if offset is not None:
            try:
                naive = dt.datetime.fromisoformat(value) - offset
            except ValueError:
                pass
            else:
                return naive.replace(tzinfo=UTC), naive.isoformat(" ", "microseconds") + "+00:00"
        when = self.when(value, table, column, row_id)
        if when is None:
            return None, None
        if key and len(value) >= 19:
            self._offsets[key] = dt.datetime.fromisoformat(value) - when.replace(tzinfo=None)
        return when, datetime_text(when)

    def enum(self, names: dict[str, str], value: Any, table: str, row_id: Any, column: str) -> str:
        found = names.get(value) if isinstance(value, str) else None
        if found is None:
            allowed = ", ".join(sorted(k for k in names if k.isupper()))
            raise self.fail(table, row_id, column, f"is {value!r}, not one of {allowed}")
        return found

    def text(self, value: Any, table: str, row_id: Any, column: str, limit: int) -> str:
        try:
            return check_text(value, column, limit)
        except ValidationError as e:
            raise self.fail(table, row_id, column, str(e)) from None

    def optional_text(
        self, value: Any, table: str, row_id: Any, column: str, limit: int
    ) -> str | None:
        return None if value is None else self.text(value, table, row_id, column, limit)

    def switch(self, value: Any, table: str, row_id: Any, column: str) -> bool:
        """An old strategy switch: NULL is off; a bool, 0/1 or a usual spelling of one
        (``'false'``) reads as it says. Anything else is refused, not guessed: Python's
        ``bool()`` read ``'false'`` as on."""
        if value is None:
            return False
        try:
            return config_values.to_bool(value, column)
        except ValidationError as e:
            raise self.fail(table, row_id, column, f"is {value!r}: {e}") from None

    # -- steps ---------------------------------------------------------------------------

    def preflight(self) -> None:
        """Refuse, before any backup or write, what adopt does not know how to convert."""
        tables = set(self.db.get_tables())
        missing = [t for t in OLD_TABLES if t not in tables]
        if missing:
            raise AdoptionError(
                f"{describe(self.db)} lacks the old module's table(s) "
                f"{', '.join(missing)}; it is not a complete database of "
                "the old storage module"
            )
        if ALEMBIC_TABLE in tables:
            revisions = [r[0] for r in self.rows(f'SELECT version_num FROM "{ALEMBIC_TABLE}"')]
            if revisions and revisions != [OLD_REVISION]:
                raise AdoptionError(
                    f"{describe(self.db)} is at alembic revision {', '.join(revisions)}; "
                    f"adopt converts the old module's schema at revision {OLD_REVISION}"
                )
        self.leftovers = [
            m._meta.table_name
            for m in reversed(MODELS)
            if m._meta.table_name in tables and m is not Config
        ]
        for table in self.leftovers:
            if self.rows(f'SELECT 1 FROM "{table}" LIMIT 1'):
                raise AdoptionError(
                    f"{describe(self.db)} holds both the old module's tables and this "
                    f"store's, and {table} has rows; adopt would not know which to keep. "
                    "Move this store's tables away (or restore a backup) and run it again"
                )
        if self.backend == "postgres":
            zone = self.rows("SELECT current_setting('TimeZone')")[0][0]
            try:
                self.db_zone = zoneinfo.ZoneInfo(zone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                self.db_zone = UTC
            if self.write and self.rows(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s LIMIT 1",
                (LEGACY_SCHEMA,),
            ):
                raise AdoptionError(
                    f"schema {LEGACY_SCHEMA} already holds tables; adopt "
                    "keeps the old tables there, so it must be empty"
                )

    def run(self) -> None:
        report = self.report
        started = time.monotonic()
        config = self.rows(
            "SELECT id, key, value, value_type, description, created_at, "
            f"updated_at FROM {self.old('config')} ORDER BY id"
        )
        old_positions = self.rows(
            "SELECT id, symbol, side, quantity, avg_entry_price, cost_basis, realized_pnl, "
            f"is_open FROM {self.old('positions')} ORDER BY id"
        )
        if self.write:
            self.make_room()
        strategies = self.strategies()
        self.config(config)
        orders = self.orders(strategies)
        books, figures, trade_count, last_trade_id = self.trades(orders)
        adjustments = 0
        if report.positions == "as-stored":
            if old_positions:
                adjustments = self.adjust(books, old_positions, last_trade_id)
            else:
                report.notes.append(
                    "the old positions table is empty: the bot kept no "
                    "positions, so the trades alone decide them"
                )
        position_count = self.positions(books, old_positions)
        self.finish_orders(orders)
        self.finish_strategies(strategies, figures)
        report.counts = {
            "strategies -> strategy": (len(strategies), len(strategies)),
            "config -> config": (len(config), len(config)),
            "orders -> order": (len(orders), len(orders)),
            "trades -> trade": (trade_count, trade_count + adjustments),
            "positions -> position": (len(old_positions), position_count),
        }
        if self.write:
            rebuild(self.db)  # the figures the reports keep, from the adopted trades
            self.finish()
        self.echo(f"adoption computed in {time.monotonic() - started:.1f} s")

    def make_room(self) -> None:
        """Back up (PostgreSQL), clear the way for this store's tables and create them."""
        db = self.db
        for table in self.leftovers:  # an empty store schema made beside the old tables
            db.execute_sql(f'DROP TABLE "{table}"')
            self.report.notes.append(
                f"the empty {table} table that `upgrade` had created "
                "beside the old tables was replaced"
            )
        if self.leftovers:
            db.execute_sql(f'DROP TABLE IF EXISTS "{HISTORY_TABLE}"')
        if self.backend == "postgres":
            db.execute_sql(f'CREATE SCHEMA IF NOT EXISTS "{LEGACY_SCHEMA}"')
            for table in (*OLD_TABLES, ALEMBIC_TABLE):
                if table in db.get_tables():
                    db.execute_sql(f'ALTER TABLE "{table}" SET SCHEMA "{LEGACY_SCHEMA}"')
            types = {
                r[0]
                for r in self.rows(
                    "SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                    "WHERE n.nspname = current_schema() AND typtype = 'e'"
                )
            }
            for name in OLD_ENUM_TYPES:
                if name in types:
                    db.execute_sql(f'ALTER TYPE "{name}" SET SCHEMA "{LEGACY_SCHEMA}"')
            self.source = f'"{LEGACY_SCHEMA}".'
            self.report.backup = (
                f"the old tables, unchanged, in the schema {LEGACY_SCHEMA} "
                f"of the same database ({LEGACY_SCHEMA}.trades ...)"
            )
        else:
            # The old config table has this store's table name: its rows are read already.
            db.execute_sql('ALTER TABLE "config" RENAME TO "stocksbot_legacy_config"')
            # SQLite's index names are per database and follow a renamed table: those of
            # a store schema made beside the old tables would block the new config's.
            for index in db.get_indexes("stocksbot_legacy_config"):
                if not index.name.startswith("sqlite_autoindex"):
                    db.execute_sql(f'DROP INDEX "{index.name}"')
        runner = Runner(db)
        runner.History.create_table(safe=True)
        for migration in runner.migrations():
            module = migration.load()
            module.upgrade(runner.migrator, db)
            runner.History.create(name=migration.name)
        with db.bind_ctx(REPORT_MODELS):
            db.create_tables(REPORT_MODELS, safe=True)
        if self.backend == "sqlite":
            # Rows go in faster without the secondary indexes; the very statements that
            # made them make them again at the end (unique ones re-checking every row).
            for table in ("trade", "order", "position"):
                for index in db.get_indexes(table):
                    if index.sql:
                        self.indexes.append(index.sql)
                        db.execute_sql(f'DROP INDEX "{index.name}"')

    def strategies(self) -> dict[int, dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        sql, columns = _insert_sql(Strategy)
        rows = []
        for (
            sid,
            name,
            description,
            kind,
            config,
            active,
            enabled,
            total_trades,
            win_rate,
            total_pnl,
            created,
            updated,
            last_run,
        ) in self.rows(
            "SELECT id, name, description, strategy_type, config, is_active, is_enabled, "
            "total_trades, win_rate, total_pnl, created_at, updated_at, last_run_at "
            f"FROM {self.old('strategies')} ORDER BY id"
        ):
            if isinstance(config, str):
                try:
                    config = json.loads(config)
                except ValueError:
                    raise self.fail("strategies", sid, "config", "is not JSON") from None
            values: dict[str, object] = {
                c: 0
                if c in ("total_trades", "closing_trades", "winning_trades", "losing_trades")
                else decimal_text(ZERO)
                for c in columns
            }
            values.update(
                id=sid,
                name=self.text(name, "strategies", sid, "name", 200),
                description=description,
                strategy_type=self.optional_text(kind, "strategies", sid, "strategy_type", 100),
                config=None if config is None else json.dumps(config, sort_keys=True),
                is_active=self.switch(active, "strategies", sid, "is_active"),
                is_enabled=self.switch(enabled, "strategies", sid, "is_enabled"),
                last_trade_at=None,
                created_at=self._time_text(created, "strategies", "created_at", sid),
                updated_at=self._time_text(updated, "strategies", "updated_at", sid),
                last_run_at=self._optional_time_text(last_run, "strategies", "last_run_at", sid),
                **_NOT_DELETED,
            )
            found[sid] = {
                "name": name,
                "total_trades": total_trades,
                "win_rate": self.figure(win_rate),
                "total_pnl": self.figure(total_pnl),
                "updated_at": values["updated_at"],
            }
            rows.append(tuple(values[c] for c in columns))
        self.many(sql, rows)
        return found

    def _time_text(self, value: Any, table: str, column: str, row_id: Any) -> str:
        """A time's stored text; a missing one is the adoption's own time."""
        text = self._optional_time_text(value, table, column, row_id)
        return self.stamp if text is None else text

    def _optional_time_text(self, value: Any, table: str, column: str, row_id: Any) -> str | None:
        if (
            isinstance(value, str)
            and len(value) in _PADDING
            and self.db_zone is UTC
            and value[10] == " "
            and (table, column) not in LOCAL_TIME_COLUMNS
        ):
            # A UTC stamp in SQLAlchemy's (or SQLite's CURRENT_TIMESTAMP) text form:
            # checked, then kept as it is, in the stored form.
            try:
                dt.datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                return value + _PADDING[len(value)]
        when = self.when(value, table, column, row_id)
        return None if when is None else datetime_text(when)

    def config(self, rows: list[tuple]) -> None:
        sql, columns = _insert_sql(Config)
        out = []
        for cid, key, value, value_type, description, created, updated in rows:
            kind = (value_type or "string").strip().lower()
            if kind not in _CONFIG_TYPES:
                self.report.change(
                    "config",
                    "config",
                    cid,
                    "value_type",
                    value_type,
                    "string",
                    f"this store knows {', '.join(sorted(_CONFIG_TYPES))}",
                )
                kind = "string"
            values = {
                "id": cid,
                "key": self.text(key, "config", cid, "key", 200),
                "value": value,
                "value_type": kind,
                "description": description,
                "created_at": self._time_text(created, "config", "created_at", cid),
                "updated_at": self._time_text(updated, "config", "updated_at", cid),
                **_NOT_DELETED,
            }
            out.append(tuple(values[c] for c in columns))
        self.many(sql, out)

    def orders(self, strategies: dict[int, dict[str, Any]]) -> dict[int, _OldOrder]:
        """Copy the orders with an empty fill state (the trades fill it in); return them."""
        sql, columns = _insert_sql(Order)
        row_of = itemgetter(*columns)
        orders: dict[int, _OldOrder] = {}
        seen: set[str] = set()
        report = self.report
        for batch in self.batches(
            "orders",
            "id, external_id, symbol, side, type, status, quantity, price, "
            "filled_quantity, avg_fill_price, strategy_id, created_at, updated_at, "
            "filled_at",
        ):
            out = []
            for (
                oid,
                external_id,
                symbol,
                side,
                kind,
                status,
                quantity,
                price,
                filled,
                avg,
                strategy_id,
                created,
                updated,
                filled_at,
            ) in batch:
                t = "orders"
                external_id = self.optional_text(
                    None if external_id is None else str(external_id),
                    t,
                    oid,
                    "external_id",
                    200,
                )
                external_id = _first_keeps(seen, external_id, report, "order", oid)
                if strategy_id is not None and strategy_id not in strategies:
                    report.change(
                        "strategy",
                        "order",
                        oid,
                        "strategy_id",
                        strategy_id,
                        None,
                        f"strategy {strategy_id} does not exist",
                    )
                    strategy_id = None
                order = _OldOrder(
                    oid,
                    self.symbol(symbol, t, oid),
                    self.enum(_SIDES, side, t, oid, "side"),
                    self.enum(_STATUSES, status, t, oid, "status"),
                    self.money(quantity, t, oid, "quantity"),
                    ZERO,
                    None,
                    strategy_id,
                )
                order.updated_at = self._time_text(updated, t, "updated_at", oid)
                order.old_filled_at = self.when(filled_at, t, "filled_at", oid)
                order.old, order.last_fill = (self.figure(filled), self.figure(avg)), None
                orders[oid] = order
                values = {
                    "id": oid,
                    "external_id": external_id,
                    "symbol": order.symbol,
                    "side": order.side,
                    "type": self.enum(_TYPES, kind, t, oid, "type"),
                    "status": order.status,
                    "quantity": self.text_of(order.quantity),
                    "price": None
                    if price is None
                    else self.text_of(self.money(price, t, oid, "price")),
                    "filled_quantity": self.text_of(ZERO),
                    "avg_fill_price": None,
                    "strategy_id": strategy_id,
                    "created_at": self._time_text(created, t, "created_at", oid),
                    "updated_at": order.updated_at,
                    "filled_at": None,
                    **_NOT_DELETED,
                }
                out.append(row_of(values))
            self.many(sql, out)
        return orders

    def trades(
        self, orders: dict[int, _OldOrder]
    ) -> tuple[dict[str, list[ledger.PositionState]], dict[int, ledger.StrategyFigures], int, int]:
        """Copy the trades in id order, replaying each with the ledger's rules."""
        insert = statements_for(self.db).sql["insert_trade_with_id"]
        books: dict[str, list[ledger.PositionState]] = {}
        figures: dict[int, ledger.StrategyFigures] = {}
        seen: set[str] = set()
        report = self.report
        count = last_id = 0
        t = "trades"
        # Bound methods as locals: this loop runs once per trade.
        enum, money, text_of, local = self.enum, self.money, self.text_of, self.local
        time_text, figure = self._time_text, self.figure
        for batch in self.batches(
            t,
            "id, order_id, external_id, symbol, side, type, quantity, price, "
            "commission, fees, realized_pnl, executed_at, created_at",
        ):
            out = []
            for (
                tid,
                order_id,
                external_id,
                symbol,
                side,
                old_type,
                quantity,
                price,
                commission,
                fees,
                realized,
                executed,
                created,
            ) in batch:
                symbol = self.symbol(symbol, t, tid)
                side = enum(_SIDES, side, t, tid, "side")
                old_type = enum(_TRADE_TYPES, old_type, t, tid, "type")
                quantity = money(quantity, t, tid, "quantity", True)
                price = money(price, t, tid, "price", True)
                commission = money(commission, t, tid, "commission")
                fees = money(fees, t, tid, "fees")
                created_text = time_text(created, t, "created_at", tid)
                executed_at, executed_text = local(executed, t, "executed_at", tid)
                if executed_at is None:
                    executed_at, executed_text = (
                        dt.datetime.fromisoformat(created_text),
                        created_text,
                    )
                external_id = self.optional_text(
                    None if external_id is None else str(external_id),
                    t,
                    tid,
                    "external_id",
                    200,
                )
                order = None if order_id is None else orders.get(order_id)
                if order_id is not None and order is None:
                    report.change(
                        "orphan",
                        "trade",
                        tid,
                        "order_id",
                        order_id,
                        None,
                        f"order {order_id} does not exist",
                    )
                    order_id = None
                elif order is not None and (order.symbol, order.side) != (symbol, side):
                    report.change(
                        "mismatch",
                        "trade",
                        tid,
                        "order_id",
                        order_id,
                        None,
                        f"order {order_id} is {order.side} {order.symbol}; the "
                        f"trade is {side} {symbol}",
                    )
                    order, order_id = None, None
                external_id = _first_keeps(seen, external_id, report, "trade", tid)
                outcome = _replay(
                    books, symbol, side, quantity, price, commission, fees, executed_at
                )
                trade_type = outcome.trade_type if order is not None else ledger.ADJUSTMENT
                if trade_type != old_type:
                    report.change(
                        "figure",
                        "trade",
                        tid,
                        "type",
                        old_type,
                        trade_type,
                        "no order" if order is None else f"the replay of {symbol}",
                    )
                old_realized = figure(realized)
                if old_realized is None and outcome.realized_pnl is not None:
                    report.fill_in("trade", "realized_pnl", tid)
                elif old_realized != outcome.realized_pnl:
                    report.change(
                        "figure",
                        "trade",
                        tid,
                        "realized_pnl",
                        old_realized,
                        outcome.realized_pnl,
                        f"the replay of {symbol}",
                    )
                strategy_id = None
                if order is not None:
                    order.filled, order.avg = ledger.order_after_fill(
                        order.filled, order.avg, quantity, price
                    )
                    order.last_fill = executed_at
                    strategy_id = order.strategy_id
                if strategy_id is not None:
                    figures.setdefault(strategy_id, ledger.StrategyFigures()).add_trade(
                        outcome.realized_pnl, commission, fees, executed_at
                    )
                realized = outcome.realized_pnl
                # trade_row's columns, with the decimals' text cached
                out.append(
                    (
                        tid,
                        order_id,
                        external_id,
                        strategy_id,
                        symbol,
                        side,
                        trade_type,
                        text_of(quantity),
                        text_of(price),
                        text_of(commission),
                        text_of(fees),
                        None if realized is None else decimal_text(realized),
                        executed_text,
                        created_text,
                    )
                )
            self.many(insert, out)
            count += len(batch)
            last_id = batch[-1][0]
        return books, figures, count, last_id

    def adjust(
        self,
        books: dict[str, list[ledger.PositionState]],
        old_positions: list[tuple],
        last_trade_id: int,
    ) -> int:
        """ADJUSTMENT trades that bring each symbol's book to what the old bot held."""
        held: dict[str, list[tuple[str, Decimal, Decimal]]] = {}
        for pid, symbol, side, quantity, avg, _cost, _realized, is_open in old_positions:
            if not is_open:
                continue
            side = self.enum(_POSITION_SIDES, side, "positions", pid, "side")
            quantity = self.money(quantity, "positions", pid, "quantity")
            avg = self.money(avg, "positions", pid, "avg_entry_price")
            if quantity > 0:
                held.setdefault(symbol, []).append((side, quantity, avg))
        trades = []
        for symbol in sorted(set(held) | set(books)):
            target = _net(held.get(symbol, []))
            rows = books.get(symbol, [])
            current = rows[-1] if rows and rows[-1].is_open else None
            fills = _adjustment_fills(current, target)
            before, after = _describe(current), _describe(target)
            if fills is None:
                self.report.change(
                    "adjustment",
                    "position",
                    None,
                    f"{symbol} position",
                    before,
                    before,
                    f"the old bot held {after}, but its average "
                    "price is not positive: no trade reaches it; the trades "
                    "decide",
                )
                continue
            for side, quantity, price in fills:
                last_trade_id += 1
                outcome = _replay(books, symbol, side, quantity, price, ZERO, ZERO, self.now)
                fill = CheckedFill(None, symbol, side, quantity, price, ZERO, ZERO, None, self.now)
                trades.append(
                    (
                        last_trade_id,
                        *trade_row(fill, None, ledger.ADJUSTMENT, outcome.realized_pnl, self.stamp),
                    )
                )
                self.report.change(
                    "adjustment",
                    "trade",
                    last_trade_id,
                    f"{symbol} position",
                    before,
                    after,
                    f"{side} {quantity} @ {price}: the old bot "
                    f"held {after}, the trades give {before}",
                )
        self.many(statements_for(self.db).sql["insert_trade_with_id"], trades)
        return len(trades)

    def positions(
        self, books: dict[str, list[ledger.PositionState]], old_positions: list[tuple]
    ) -> int:
        """Write the replayed positions; report how they differ from the old rows."""
        old_open: dict[str, tuple] = {}
        next_id = max((row[0] for row in old_positions), default=0)
        for row in old_positions:
            if row[7]:
                old_open[row[1]] = row  # the latest open row of the symbol
        rows = []
        for symbol in sorted(books):
            for state in books[symbol]:
                old = old_open.get(symbol) if state.is_open else None
                if old is not None:
                    state.id = old[0]
                else:
                    next_id += 1
                    state.id = next_id
                rows.append((state.id, *new_position_row(state, self.stamp)))
        for symbol, old in sorted(old_open.items()):
            states = books.get(symbol, [])
            now_open = states[-1] if states and states[-1].is_open else None
            pid = old[0]
            for name, value, new in (
                ("side", old[2], None if now_open is None else now_open.side),
                ("quantity", old[3], now_open and now_open.quantity),
                ("avg_entry_price", old[4], now_open and now_open.avg_entry_price),
                ("cost_basis", old[5], now_open and now_open.cost_basis),
                ("realized_pnl", old[6], now_open and now_open.realized_pnl),
            ):
                before = _POSITION_SIDES.get(value, value) if name == "side" else self.figure(value)
                if before != new:
                    self.report.change(
                        "position",
                        "position",
                        pid,
                        name,
                        before,
                        new,
                        f"the replay of {symbol}'s trades"
                        if now_open
                        else f"its trades leave nothing of {symbol} open",
                    )
        self.many(statements_for(self.db).sql["insert_position_with_id"], rows)
        return len(rows)

    def finish_orders(self, orders: dict[int, _OldOrder]) -> None:
        """Give each order the fill state its trades say."""
        report = self.report
        updates, quantities = [], []
        for order in orders.values():
            filled, status = order.filled, order.status
            if filled > order.quantity:
                report.change(
                    "overfill",
                    "order",
                    order.id,
                    "quantity",
                    order.quantity,
                    filled,
                    f"its trades fill {filled}",
                )
                order.quantity = filled
                quantities.append((decimal_text(filled), order.id))
            if filled == 0:
                new_status = _OPEN if status in (_FILLED, _PARTIAL) else status
            elif filled < order.quantity:
                new_status = status if status in (*_CLOSED_STATUSES, _PARTIAL) else _PARTIAL
            else:
                new_status = _FILLED
            old_filled, old_avg = order.old
            if status == "pending" and not old_filled and old_avg is None and filled:
                report.fill_in("order", "fill state", order.id)
                old_filled, old_avg, status = filled, order.avg, new_status  # not listed again
            if new_status != status:
                report.change(
                    "unfilled" if status in (_FILLED, _PARTIAL) else "figure",
                    "order",
                    order.id,
                    "status",
                    status,
                    new_status,
                    f"its trades fill {tidy(filled)} of {tidy(order.quantity)}",
                )
            if old_filled != filled:
                report.change(
                    "figure",
                    "order",
                    order.id,
                    "filled_quantity",
                    old_filled,
                    filled,
                    "the sum of its trades",
                )
            if old_avg != order.avg and filled:
                report.change(
                    "figure",
                    "order",
                    order.id,
                    "avg_fill_price",
                    old_avg,
                    order.avg,
                    "the average of its trades",
                )
            order.status = new_status
            if new_status == _FILLED:
                when = order.old_filled_at or order.last_fill or self.now
                order.filled_at = datetime_text(when)
            else:
                order.filled_at = None
            if filled or new_status != "pending":
                updates.append(order_update_row(order))
        self.many(statements_for(self.db).sql["update_order"], updates)
        self.many('UPDATE "order" SET quantity = ? WHERE id = ?', quantities)

    def finish_strategies(
        self, strategies: dict[int, dict[str, Any]], figures: dict[int, ledger.StrategyFigures]
    ) -> None:
        updates = []
        for sid, old in strategies.items():
            new = figures.get(sid, ledger.StrategyFigures())
            for name in ("total_trades", "win_rate", "total_pnl"):
                before, after = old[name], getattr(new, name)
                if (before or 0) != after:
                    self.report.change(
                        "figure",
                        "strategy",
                        sid,
                        name,
                        before,
                        after,
                        f"the trades of strategy {old['name']!r}",
                    )
            updates.append(figures_row(new, old["updated_at"]) + [sid])
        self.many(statements_for(self.db).sql["update_strategy"], updates)

    def finish(self) -> None:
        """Sequences (PostgreSQL), the old tables (SQLite: in the backup) and the report."""
        db = self.db
        if self.backend == "postgres":
            for model in MODELS:
                table = model._meta.table_name
                db.execute_sql(
                    f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                    f'COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM "{table}"'
                )
        else:
            for table in (*OLD_TABLES[:4], "stocksbot_legacy_config", ALEMBIC_TABLE):
                db.execute_sql(f'DROP TABLE IF EXISTS "{table}"')
            for sql in self.indexes:
                db.execute_sql(sql)
        report = self.report
        adoption = (
            AdoptionReportRow.insert(
                adopted_at=report.adopted_at,
                source=report.database,
                backup=report.backup,
                time_zone=report.time_zone,
                positions=report.positions,
                counts=json.dumps({k: list(v) for k, v in report.counts.items()}),
                summary=report.format(),
            )
            .bind(db)
            .execute()
        )
        sql, _ = _insert_sql(AdoptionChange, with_id=False)
        self.many(
            sql, [(adoption, *change) for change in report.changes + report.filled_in_changes()]
        )
        # One audit row per table for the whole adoption (see stocksbot_store.audit).
        AuditWriter(db, self.actor).summaries("adopt", source=report.database)


def _first_keeps(
    seen: set[str], external_id: str | None, report: AdoptionReport, kind: str, row_id: Any
) -> str | None:
    """The documented rule for a broker id the old module stored twice: the first row
    (lowest id) keeps it, a later one loses it and the report lists that row."""
    if external_id is None:
        return None
    if external_id in seen:
        report.change(
            "duplicate",
            kind,
            row_id,
            "external_id",
            external_id,
            None,
            f"an earlier {kind} has the same external id",
        )
        return None
    seen.add(external_id)
    return external_id


def _replay(
    books: dict[str, list[ledger.PositionState]],
    symbol: str,
    side: str,
    quantity: Decimal,
    price: Decimal,
    commission: Decimal,
    fees: Decimal,
    at: dt.datetime,
) -> ledger.FillOutcome:
    """Apply one fill to the symbol's book: its positions in the order they opened."""
    rows = books.setdefault(symbol, [])
    current = rows[-1] if rows and rows[-1].is_open else None
    outcome = ledger.apply_fill(current, symbol, side, quantity, price, commission, fees, at)
    if outcome.existing is not None:
        rows[-1] = outcome.existing
    if outcome.opened is not None:
        rows.append(outcome.opened)
    return outcome


def _net(rows: list[tuple[str, Decimal, Decimal]]) -> tuple[str, Decimal, Decimal] | None:
    """One position from the old open rows of a symbol: the side with more quantity, net
    of the other, at that side's quantity-weighted average price."""
    if not rows:
        return None
    sides: dict[str, list[Decimal]] = {}
    for side, quantity, avg in rows:
        totals = sides.setdefault(side, [ZERO, ZERO])
        totals[0] += quantity
        totals[1] += quantity * avg
    side = max(sides, key=lambda s: sides[s][0])
    quantity, amount = sides[side]
    other = sum((v[0] for s, v in sides.items() if s != side), ZERO)
    net = quantity - other
    if net <= 0:
        return None
    return side, tidy(net), tidy(to_decimal(amount / quantity))


def _adjustment_fills(
    current: ledger.PositionState | None, target: tuple[str, Decimal, Decimal] | None
) -> list[tuple[str, Decimal, Decimal]] | None:
    """The fills (side, quantity, price) that turn ``current`` into ``target``; None if
    no fill can (a target average that is not positive)."""
    if target is None:
        if current is None:
            return []
        return [(_closing(current.side), current.quantity, current.avg_entry_price)]
    side, quantity, avg = target
    if current is not None and (current.side, current.quantity, current.avg_entry_price) == (
        side,
        quantity,
        avg,
    ):
        return []
    if avg <= 0:
        return None
    fills = []
    if current is not None:
        if current.side == side and current.avg_entry_price == avg:
            change = quantity - current.quantity
            opening = ledger.BUY if side == ledger.LONG else ledger.SELL
            return [(opening if change > 0 else _closing(side), abs(change), avg)]
        fills.append((_closing(current.side), current.quantity, current.avg_entry_price))
    fills.append((ledger.BUY if side == ledger.LONG else ledger.SELL, quantity, avg))
    return fills


def _closing(side: str) -> str:
    return ledger.SELL if side == ledger.LONG else ledger.BUY


def _describe(state: Any) -> str:
    if state is None:
        return "nothing open"
    if isinstance(state, ledger.PositionState):
        return f"{state.side} {tidy(state.quantity)} @ {tidy(state.avg_entry_price)}"
    side, quantity, avg = state
    return f"{side} {quantity} @ {avg}"
