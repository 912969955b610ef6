"""Workload 5: adopting a database of the old storage module (``migrate adopt``).

An old database is built as the old SQLAlchemy module left it (its schema from
``tests/legacy_schema.py``, rows written straight through the driver for speed):
orders of two fills each over 40 symbols and 4 strategies, without fill state;
trades stamped with local time and no realized P&L; open positions kept by hand
with float math; some orphan trades and duplicate external ids. Then the
database is adopted in place and the time of :func:`stocksbot_store.adopt.adopt`
is measured. The target: a million old trades in under a minute on SQLite.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from stocksbot_store import connect
from stocksbot_store.adopt import adopt
from stocksbot_store.check import check_ledger

from .databases import fresh_database
from .results import Result

SYMBOLS = [f"S{n:02d}" for n in range(40)]
STRATEGIES = 4
#: Every this many trades, one names an order that is gone.
ORPHAN_EVERY = 5_000
#: Every this many trades, one repeats the previous trade's external id.
DUPLICATE_EVERY = 7_000
TARGET_SECONDS = 60.0


def build_old_database(url: str, trades: int) -> None:
    """An old module's database at ``url`` with ``trades`` trades (two per order)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from legacy_schema import create_old_schema, old_engine

    engine = old_engine(url)
    try:
        create_old_schema(engine)
        raw = engine.raw_connection()
        try:
            if url.startswith("postgres"):
                _fill(raw, "%s", trades, lambda at: at)
            else:  # the text SQLAlchemy stores a DateTime as on SQLite
                _fill(raw, "?", trades, lambda at: at.strftime("%Y-%m-%d %H:%M:%S.%f"))
            raw.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()


def _insert(cursor: Any, mark: str, table: str, columns: str, rows: list[tuple]) -> None:
    marks = ", ".join([mark] * len(rows[0]))
    cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)


def _fill(raw: Any, mark: str, trades: int, stored: Any) -> None:
    cursor = raw.cursor()
    start = dt.datetime(2025, 1, 2, 9, 30)
    _insert(
        cursor,
        mark,
        "strategies",
        "id, name, strategy_type, config, is_active, is_enabled, total_trades, win_rate, total_pnl",
        [
            (n + 1, f"strategy-{n + 1}", "momentum", "{}", True, True, 0, 0.0, 0.0)
            for n in range(STRATEGIES)
        ],
    )
    orders, fills = [], []
    held: dict[str, float] = {}
    for n in range(trades // 2):
        oid = n + 1
        symbol = SYMBOLS[n % len(SYMBOLS)]
        buying = (n // len(SYMBOLS)) % 2 == 0
        side = "BUY" if buying else "SELL"
        price = 100.0 + (n % 97) * 0.37
        at = start + dt.timedelta(seconds=30 * n)
        stamp = stored(at)
        orders.append(
            (
                oid,
                f"O-{oid}",
                symbol,
                side,
                "LIMIT",
                "PENDING",
                10.0,
                price,
                0.0,
                None,
                n % STRATEGIES + 1,
                stamp,
                stamp,
            )
        )
        for part in range(2):
            tid = 2 * n + part + 1
            order_id = oid + 10 * trades if tid % ORPHAN_EVERY == 0 else oid
            external = f"T-{tid - 1 if tid % DUPLICATE_EVERY == 0 else tid}"
            fills.append(
                (
                    tid,
                    order_id,
                    external,
                    symbol,
                    side,
                    "OPEN" if buying else "CLOSE",
                    5.0,
                    price + part * 0.01,
                    0.1,
                    0.0,
                    None,
                    stored(at + dt.timedelta(seconds=part)),
                    stamp,
                )
            )
        held[symbol] = held.get(symbol, 0.0) + (10.0 if buying else -10.0)
        if len(fills) >= 50_000:
            _flush(cursor, mark, orders, fills)
    _flush(cursor, mark, orders, fills)
    positions = [
        (n + 1, symbol, "LONG", quantity + 0.1 + 0.2, 100.0, quantity * 100.0, True)
        for n, (symbol, quantity) in enumerate(sorted(held.items()))
        if quantity > 0
    ]
    if positions:
        _insert(
            cursor,
            mark,
            "positions",
            "id, symbol, side, quantity, avg_entry_price, cost_basis, is_open",
            positions,
        )
    _insert(
        cursor,
        mark,
        "config",
        "id, key, value, value_type",
        [(1, "trading_enabled", "true", "bool")],
    )


def _flush(cursor: Any, mark: str, orders: list[tuple], fills: list[tuple]) -> None:
    if orders:
        _insert(
            cursor,
            mark,
            "orders",
            "id, external_id, symbol, side, type, status, "
            "quantity, price, filled_quantity, avg_fill_price, strategy_id, created_at, "
            "updated_at",
            orders,
        )
    if fills:
        _insert(
            cursor,
            mark,
            "trades",
            "id, order_id, external_id, symbol, side, type, "
            "quantity, price, commission, fees, realized_pnl, executed_at, created_at",
            fills,
        )
    orders.clear()
    fills.clear()


def adopt_workload(
    backend: str, folder: str, trades: int, log: Any, verify: bool = True
) -> list[Result]:
    """Build an old database of ``trades`` trades, adopt it, and time the adoption."""
    with fresh_database(backend, folder) as url:
        log(f"{backend}: building an old module's database of {trades:,} trades")
        started = time.perf_counter()
        build_old_database(url, trades)
        log(f"{backend}: built in {time.perf_counter() - started:.1f} s; adopting")
        db = connect(url, migrate=False)
        try:
            started = time.perf_counter()
            report = adopt(db, zone="America/New_York")
            elapsed = time.perf_counter() - started
            log(f"{backend}: adopted in {elapsed:.1f} s, {len(report.changes):,} changes")
            if verify:
                ledger = check_ledger(db)
                if not ledger.ok:
                    raise AssertionError(f"adopted books fail the ledger check: {ledger.summary()}")
        finally:
            db.close()
    result = Result(
        "5 adopt",
        backend,
        f"adopt {trades:,} old trades",
        "s",
        elapsed,
        higher_is_better=False,
        note=f"{trades / elapsed:,.0f} trades/s, {len(report.changes):,} changes reported",
        extra={"trades": trades, "changes": len(report.changes)},
    )
    if backend == "sqlite" and trades >= 1_000_000:
        # The target is for a million trades; a quick run's fixed costs (schema, backup)
        # would make a scaled target meaningless, so it is not judged.
        result.check_value(TARGET_SECONDS)
    return [result]
