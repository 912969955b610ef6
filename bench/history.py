"""Large histories for the read and refresh workloads, built with the bulk path.

Orders go in with one ``executemany`` (the store has no batch API for orders:
a bot creates them one at a time); their fills go through
:meth:`StorageService.record_trades` in batches, so the history has the book a
bot would have written. A SQLite history is kept in a cache folder, named by its
size and a fingerprint of the schema, so a second run starts at once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from typing import Any

from peewee import Database

from stocksbot_store import Fill, StorageService, connect, init_db
from stocksbot_store.fields import datetime_text, decimal_text, utcnow

from .scenario import STRATEGIES, PlannedOrder, batches, iter_plan

#: Bump when the plan of a history changes, so old cached files are not reused.
HISTORY_VERSION = 1

CACHE_DIR = os.environ.get("STOCKSBOT_BENCH_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.join(tempfile.gettempdir(), "cache"),
    "stocksbot-bench",
)


def schema_fingerprint() -> str:
    """A short hash of the store's SQLite schema: changes whenever a table or index does."""
    db = connect("sqlite:///:memory:")
    init_db(db)
    ddl = sorted(
        row[0]
        for row in db.execute_sql("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    )
    db.close()
    text = f"{HISTORY_VERSION}\n" + "\n".join(ddl)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def create_strategies(storage: StorageService) -> dict[str, Any]:
    """The plan's strategies, by name."""
    return {name: storage.create_strategy(name) for name in STRATEGIES}


def insert_orders(
    db: Database, orders: list[PlannedOrder], first_id: int, strategy_ids: dict[str, int]
) -> list[int]:
    """Insert pending orders with ids from ``first_id`` in one transaction; their ids."""
    now = datetime_text(utcnow())
    rows = [
        (
            first_id + i,
            o.symbol,
            o.side,
            "market",
            "pending",
            decimal_text(o.quantity),
            "0",
            strategy_ids.get(o.strategy) if o.strategy else None,
            now,
            now,
        )
        for i, o in enumerate(orders)
    ]
    mark = "%s" if db.param == "%s" else "?"
    sql = (
        'INSERT INTO "order" (id, symbol, side, type, status, quantity, filled_quantity, '
        f"strategy_id, created_at, updated_at) VALUES ({', '.join([mark] * 10)})"
    )
    with db.atomic():
        db.cursor().executemany(sql, rows)
        if mark == "%s":  # explicit ids do not move the sequence
            db.execute_sql("""SELECT setval('"order_id_seq"', (SELECT max(id) FROM "order"))""")
    return [row[0] for row in rows]


def fills_of(orders: Iterable[PlannedOrder], ids: Iterable[int]) -> list[Fill]:
    """The planned fills of ``orders`` (stored under ``ids``) as :class:`Fill` objects."""
    return [
        Fill(
            order_id,
            o.symbol,
            o.side,
            f.quantity,
            f.price,
            f.commission,
            0,
            f"H{order_id}-{part}",
            f.executed_at,
        )
        for o, order_id in zip(orders, ids, strict=True)
        for part, f in enumerate(o.fills)
    ]


def build_history(url: str, orders: int, batch: int = 20_000) -> None:
    """Fill the empty database at ``url`` with ``orders`` orders and two fills each."""
    db = connect(url)
    init_db(db)
    storage = StorageService(db)
    strategy_ids = {name: s.id for name, s in create_strategies(storage).items()}
    next_id = 1
    for chunk in batches(iter_plan(orders, seed=3), batch):
        ids = insert_orders(db, chunk, next_id, strategy_ids)
        storage.record_trades(fills_of(chunk, ids))
        next_id += len(chunk)
    db.close()


def cached_sqlite_history(orders: int, folder: str, log: Any = print) -> str:
    """The URL of a private copy of the cached SQLite history of ``orders`` orders,
    building the cached file first if there is none."""
    os.makedirs(CACHE_DIR, exist_ok=True)
    cached = os.path.join(CACHE_DIR, f"history-{orders}-{schema_fingerprint()}.db")
    if not os.path.exists(cached):
        log(f"building a history of {orders:,} orders in {cached} (cached for next runs)")
        partial = f"{cached}.{os.getpid()}.part"
        build_history(f"sqlite:///{partial}", orders)
        os.replace(partial, cached)
    copy = os.path.join(folder, os.path.basename(cached))
    shutil.copyfile(cached, copy)
    return f"sqlite:///{copy}"
