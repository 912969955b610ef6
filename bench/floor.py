"""The floor: the store's fill path written by hand on the bare drivers.

Every workload runs twice in the same process, once through the project and once
through this module, on two fresh databases with the same schema. The floor runs
the same statements in the same transactions (lock, read the order, the open
position and the strategy; insert the trade; update order, position and strategy)
with nothing between the caller and ``sqlite3`` / ``psycopg``: no query builder,
no models, no validation layer. Its accounting is written out here again, on
purpose independently of :mod:`stocksbot_store.ledger`, so that "the project and
the floor end with the same book" checks the project's book-keeping too.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

_Q = Decimal("1e-10")
ZERO = Decimal(0)

_FIGURES = (
    "total_trades, closing_trades, winning_trades, losing_trades, total_pnl, "
    "gross_profit, gross_loss, commission, fees, pnl_peak, max_drawdown, last_trade_at"
)


def _q(value: Decimal) -> Decimal:
    return value.quantize(_Q, rounding=ROUND_HALF_EVEN)


def _txt(value: Decimal | None) -> str | None:
    return None if value is None else format(_q(value), "f")


def _ts(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")


def _now() -> str:
    return _ts(dt.datetime.now(dt.timezone.utc))


def connect_sqlite(path: str) -> sqlite3.Connection:
    """A bare connection with the store's SQLite settings; transactions are explicit."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in (
        "journal_mode = wal",
        "foreign_keys = 1",
        "busy_timeout = 30000",
        "synchronous = normal",
        "cache_size = -16000",
    ):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def connect_postgres(url: str) -> Any:
    """A bare psycopg connection to the database at ``url``."""
    import psycopg

    return psycopg.connect(url.replace("postgresql+pool://", "postgresql://"))


class FloorStore:
    """Create strategies and orders, record fills: hand-written SQL, one connection."""

    def __init__(self, conn: Any, backend: str) -> None:
        self.conn = conn
        self.backend = backend
        self.pg = backend == "postgres"
        lock = " FOR UPDATE" if self.pg else ""
        sql = {
            "strategy": (
                "INSERT INTO strategy (name, is_active, is_enabled, total_trades, win_rate, "
                "total_pnl, closing_trades, winning_trades, losing_trades, gross_profit, "
                "gross_loss, commission, fees, pnl_peak, max_drawdown, created_at, updated_at) "
                "VALUES (?, ?, ?, 0, ?, ?, 0, 0, 0, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
            ),
            "order": (
                'INSERT INTO "order" (symbol, side, type, status, quantity, filled_quantity, '
                "strategy_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "RETURNING id"
            ),
            "trade_by_external_id": "SELECT id FROM trade WHERE external_id = ?",
            "lock": "SELECT pg_advisory_xact_lock(hashtext(?))",
            "read_order": (
                "SELECT symbol, side, status, quantity, filled_quantity, "
                f'avg_fill_price, strategy_id FROM "order" WHERE id = ?{lock}'
            ),
            "read_position": (
                "SELECT id, side, quantity, avg_entry_price, realized_pnl, "
                "commission, fees FROM position WHERE symbol = ? AND is_open = ?" + lock
            ),
            "insert_trade": (
                "INSERT INTO trade (order_id, external_id, strategy_id, symbol, side, type, "
                "quantity, price, commission, fees, realized_pnl, executed_at, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
            ),
            "update_order": (
                'UPDATE "order" SET filled_quantity = ?, avg_fill_price = ?, status = ?, '
                "filled_at = ?, updated_at = ? WHERE id = ?"
            ),
            "insert_position": (
                "INSERT INTO position (symbol, side, quantity, avg_entry_price, cost_basis, "
                "realized_pnl, commission, fees, is_open, created_at, updated_at, opened_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
            ),
            "update_position": (
                "UPDATE position SET quantity = ?, avg_entry_price = ?, cost_basis = ?, "
                "realized_pnl = ?, commission = ?, fees = ?, is_open = ?, closed_at = ?, "
                "updated_at = ? WHERE id = ?"
            ),
            "read_strategy": f"SELECT {_FIGURES} FROM strategy WHERE id = ?{lock}",
            "update_strategy": (
                "UPDATE strategy SET total_trades = ?, closing_trades = ?, winning_trades = ?, "
                "losing_trades = ?, total_pnl = ?, gross_profit = ?, gross_loss = ?, "
                "commission = ?, fees = ?, pnl_peak = ?, max_drawdown = ?, last_trade_at = ?, "
                "win_rate = ?, updated_at = ? WHERE id = ?"
            ),
        }
        self.sql = {k: v.replace("?", "%s") for k, v in sql.items()} if self.pg else sql
        self.cur = conn.cursor()

    def _one(self, name: str, params: tuple) -> Any:
        self.cur.execute(self.sql[name], params)
        return self.cur.fetchone()

    def _begin(self) -> None:
        if not self.pg:
            self.cur.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self.conn.commit() if self.pg else self.cur.execute("COMMIT")

    def create_strategy(self, name: str) -> int:
        """Insert a strategy with zeroed figures; its id."""
        now = _now()
        self._begin()
        row = self._one("strategy", (name, True, True) + ("0.0000000000",) * 8 + (now, now))
        self._commit()
        return row[0]

    def create_order(
        self, symbol: str, side: str, quantity: Decimal, strategy_id: int | None
    ) -> int:
        """Insert a pending market order; its id."""
        now = _now()
        self._begin()
        row = self._one(
            "order",
            (symbol, side, "market", "pending", _txt(quantity), _txt(ZERO), strategy_id, now, now),
        )
        self._commit()
        return row[0]

    def record_fill(
        self,
        order_id: int,
        symbol: str,
        side: str,
        quantity: Decimal,
        price: Decimal,
        commission: Decimal,
        fees: Decimal,
        external_id: str | None,
        executed_at: dt.datetime,
    ) -> int:
        """One fill in its own transaction; the trade's id."""
        self._begin()
        try:
            trade_id = self._fill(
                order_id, symbol, side, quantity, price, commission, fees, external_id, executed_at
            )
        except BaseException:
            self.conn.rollback() if self.pg else self.cur.execute("ROLLBACK")
            raise
        self._commit()
        return trade_id

    def record_many(self, fills: list[tuple]) -> list[int]:
        """Many fills (tuples of :meth:`record_fill`'s arguments) in one transaction."""
        self._begin()
        ids = [self._fill(*f) for f in fills]
        self._commit()
        return ids

    def _fill(
        self,
        order_id: int,
        symbol: str,
        side: str,
        quantity: Decimal,
        price: Decimal,
        commission: Decimal,
        fees: Decimal,
        external_id: str | None,
        executed_at: dt.datetime,
    ) -> int:
        commission, fees = Decimal(commission), Decimal(fees)
        if external_id is not None:
            stored = self._one("trade_by_external_id", (external_id,))
            if stored is not None:
                return stored[0]
        if self.pg:
            self._one("lock", (symbol,))
        o_symbol, o_side, status, o_qty, filled, avg, strategy_id = self._one(
            "read_order", (order_id,)
        )
        o_qty, filled = Decimal(o_qty), Decimal(filled)
        if (
            o_symbol != symbol
            or o_side != side
            or status in ("cancelled", "rejected")
            or quantity > o_qty - filled
        ):
            raise ValueError(f"fill does not fit order {order_id}")
        now = _now()
        at = _ts(executed_at)
        trade_type, pnl = self._position(symbol, side, quantity, price, commission, fees, at, now)
        trade_id = self._one(
            "insert_trade",
            (
                order_id,
                external_id,
                strategy_id,
                symbol,
                side,
                trade_type,
                _txt(quantity),
                _txt(price),
                _txt(commission),
                _txt(fees),
                _txt(pnl),
                at,
                now,
            ),
        )[0]
        if filled and avg is not None:
            avg = _q((filled * Decimal(avg) + quantity * price) / (filled + quantity))
        else:
            avg = price
        filled += quantity
        done = filled == o_qty
        self.cur.execute(
            self.sql["update_order"],
            (
                _txt(filled),
                _txt(avg),
                "filled" if done else "partially_filled",
                now if done else None,
                now,
                order_id,
            ),
        )
        if strategy_id is not None:
            self._strategy(strategy_id, pnl, commission, fees, executed_at, now)
        return trade_id

    def _position(
        self,
        symbol: str,
        side: str,
        quantity: Decimal,
        price: Decimal,
        commission: Decimal,
        fees: Decimal,
        at: str,
        now: str,
    ) -> tuple[str, Decimal | None]:
        facing = "long" if side == "buy" else "short"
        row = self._one("read_position", (symbol, True))
        if row is None:
            self._open(symbol, facing, quantity, price, commission, fees, at, now)
            return "open", None
        pid, p_side, p_qty, p_avg, realized, p_comm, p_fees = row
        p_qty, p_avg = Decimal(p_qty), Decimal(p_avg)
        p_comm, p_fees = Decimal(p_comm) + commission, Decimal(p_fees) + fees
        realized = Decimal(realized)
        pnl = None
        opened = None
        if p_side == facing:
            p_avg = _q((p_qty * p_avg + quantity * price) / (p_qty + quantity))
            p_qty += quantity
        else:
            closed = min(quantity, p_qty)
            move = price - p_avg
            pnl = _q(closed * (move if p_side == "long" else -move))
            realized += pnl
            p_qty -= closed
            if quantity > closed:
                opened = quantity - closed
        is_open = p_qty != 0
        self.cur.execute(
            self.sql["update_position"],
            (
                _txt(p_qty),
                _txt(p_avg),
                _txt(_q(p_qty * p_avg)),
                _txt(realized),
                _txt(p_comm),
                _txt(p_fees),
                is_open,
                None if is_open else at,
                now,
                pid,
            ),
        )
        if opened is not None:
            self._open(symbol, facing, opened, price, ZERO, ZERO, at, now)
        return ("open" if pnl is None else "close"), pnl

    def _open(
        self,
        symbol: str,
        side: str,
        quantity: Decimal,
        price: Decimal,
        commission: Decimal,
        fees: Decimal,
        at: str,
        now: str,
    ) -> None:
        self._one(
            "insert_position",
            (
                symbol,
                side,
                _txt(quantity),
                _txt(price),
                _txt(_q(quantity * price)),
                _txt(ZERO),
                _txt(commission),
                _txt(fees),
                True,
                now,
                now,
                at,
            ),
        )

    def _strategy(
        self,
        strategy_id: int,
        pnl: Decimal | None,
        commission: Decimal,
        fees: Decimal,
        executed_at: dt.datetime,
        now: str,
    ) -> None:
        row = self._one("read_strategy", (strategy_id,))
        trades, closing, wins, losses = row[:4]
        total, profit, loss, comm, fee, peak, drawdown = (Decimal(v) for v in row[4:11])
        last = row[11]
        if isinstance(last, str):
            last = dt.datetime.fromisoformat(last)
        trades += 1
        comm += commission
        fee += fees
        if last is None or executed_at > last:
            last = executed_at
        if pnl is not None:
            closing += 1
            total += pnl
            if pnl > 0:
                wins += 1
                profit += pnl
            elif pnl < 0:
                losses += 1
                loss -= pnl
            peak = max(peak, total)
            drawdown = max(drawdown, peak - total)
        win_rate = _q(Decimal(wins) / Decimal(closing)) if closing else ZERO
        self.cur.execute(
            self.sql["update_strategy"],
            (
                trades,
                closing,
                wins,
                losses,
                _txt(total),
                _txt(profit),
                _txt(loss),
                _txt(comm),
                _txt(fee),
                _txt(peak),
                _txt(drawdown),
                _ts(last),
                _txt(win_rate),
                now,
                strategy_id,
            ),
        )


class MinimalFloor:
    """The least a fill must do, on the bare driver: insert the order; per fill, insert
    the trade, update the order and insert-or-update the symbol's position (one
    upsert), each fill its own transaction. Its own three tables with REAL columns,
    no strategy figures, no report figures, no reads: the physical limit the store's
    fill path is measured against (the accounting floor above is the same work as
    the store's, by hand)."""

    TABLES = {
        "min_order": (
            "id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, side TEXT NOT NULL, "
            "status TEXT NOT NULL, quantity REAL NOT NULL, filled REAL NOT NULL, "
            "avg_price REAL"
        ),
        "min_trade": (
            "id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES "
            "min_order (id), external_id TEXT UNIQUE, symbol TEXT NOT NULL, "
            "side TEXT NOT NULL, quantity REAL NOT NULL, price REAL NOT NULL, "
            "executed_at TEXT NOT NULL"
        ),
        "min_position": (
            "symbol TEXT PRIMARY KEY, quantity REAL NOT NULL, avg_price REAL NOT NULL"
        ),
    }

    def __init__(self, conn: Any, backend: str) -> None:
        self.conn = conn
        self.pg = backend == "postgres"
        self.cur = conn.cursor()
        serial = "SERIAL PRIMARY KEY" if self.pg else "INTEGER PRIMARY KEY"
        for table, columns in self.TABLES.items():
            columns = columns.replace("id INTEGER PRIMARY KEY", f"id {serial}", 1)
            if self.pg:
                columns = columns.replace(" REAL", " DOUBLE PRECISION")
            self.cur.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
        self.conn.commit()
        sql = {
            "order": (
                "INSERT INTO min_order (symbol, side, status, quantity, filled) "
                "VALUES (?, ?, 'pending', ?, 0) RETURNING id"
            ),
            "trade": (
                "INSERT INTO min_trade (order_id, external_id, symbol, side, quantity, "
                "price, executed_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            ),
            "update_order": (
                "UPDATE min_order SET filled = filled + ?, "
                "avg_price = coalesce((avg_price * filled + ? * ?) / (filled + ?), ?), "
                "status = CASE WHEN filled + ? >= quantity THEN 'filled' "
                "ELSE 'partially_filled' END WHERE id = ?"
            ),
            "position": (
                "INSERT INTO min_position (symbol, quantity, avg_price) VALUES (?, ?, ?) "
                "ON CONFLICT (symbol) DO UPDATE SET "
                "quantity = min_position.quantity + excluded.quantity, "
                "avg_price = CASE WHEN min_position.quantity + excluded.quantity = 0 THEN 0 "
                "ELSE (min_position.quantity * min_position.avg_price + excluded.quantity "
                "* excluded.avg_price) / (min_position.quantity + excluded.quantity) END"
            ),
        }
        self.sql = {k: v.replace("?", "%s") for k, v in sql.items()} if self.pg else sql

    def _begin(self) -> None:
        if not self.pg:
            self.cur.execute("BEGIN IMMEDIATE")

    def create_order(self, symbol: str, side: str, quantity: Decimal) -> int:
        """Insert a pending order; its id."""
        self._begin()
        self.cur.execute(self.sql["order"], (symbol, side, float(quantity)))
        order_id = self.cur.fetchone()[0]
        self.conn.commit()
        return order_id

    def record_fill(
        self,
        order_id: int,
        symbol: str,
        side: str,
        quantity: Decimal,
        price: Decimal,
        external_id: str | None,
        executed_at: dt.datetime,
    ) -> None:
        """One fill in its own transaction: three statements."""
        q, p = float(quantity), float(price)
        self._begin()
        self.cur.execute(
            self.sql["trade"], (order_id, external_id, symbol, side, q, p, _ts(executed_at))
        )
        self.cur.execute(self.sql["update_order"], (q, q, p, q, p, q, order_id))
        self.cur.execute(self.sql["position"], (symbol, q if side == "buy" else -q, p))
        self.conn.commit()
