"""``python -m bench.pages [--orders N]``: what one SQLite fill costs SQLite itself.

Two figures that the fill ingest's ratios cannot show, for SQLite, where the store
runs in the process:

- **pages per commit**: each fill is its own transaction, and its commit appends every
  page it changed to the WAL (and a checkpoint later copies them into the database
  file). The pages are counted by b-tree (table or index), from the WAL's frame
  headers and SQLite's ``dbstat`` table, for the store and for the minimal floor
  (:class:`bench.floor.MinimalFloor`).
- **the statement floor**: the very statements the store ran for those fills, with
  their parameters, replayed on the bare ``sqlite3`` driver in the same transactions
  on a copy of the database they started from: what the store's schema and
  statements cost without any of the store's Python. The store's rate over that rate
  is the share the Python could still win, and the statements' rate over the minimal
  floor's is the most any Python could reach against that floor.

The store runs with automatic checkpoints off while it is measured, so that the WAL
holds every page the fills wrote.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import shutil
import sqlite3
import tempfile
import time
from decimal import Decimal
from typing import Any

from stocksbot_store import StorageService, connect, init_db

from .floor import MinimalFloor, connect_sqlite

#: A WAL file's header, and each frame's header before its page.
WAL_HEADER, FRAME_HEADER = 32, 24
START = dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.timezone.utc)


def wal_pages(path: str, page_size: int) -> collections.Counter:
    """How many frames the WAL beside ``path`` holds, by the b-tree each page belongs
    to (``dbstat``'s name; ``?`` for a page no b-tree holds now)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        owner = {page: name for name, page in conn.execute("SELECT name, pageno FROM dbstat")}
    counts: collections.Counter = collections.Counter()
    with open(f"{path}-wal", "rb") as wal:
        wal.seek(WAL_HEADER)
        while header := wal.read(FRAME_HEADER):
            if len(header) < FRAME_HEADER:
                break
            counts[owner.get(int.from_bytes(header[:4], "big"), "?")] += 1
            wal.seek(page_size, os.SEEK_CUR)
    return counts


def _orders(storage: StorageService, count: int) -> list[Any]:
    strategy = storage.create_strategy("pages")
    return [
        storage.create_order(
            "AAPL" if k % 2 else "MSFT", "buy", "market", Decimal(10), strategy=strategy
        )
        for k in range(count)
    ]


def _fill_args(k: int, part: int) -> tuple:
    return (Decimal(5), Decimal("100.25"), Decimal("0.1"), 0, f"F{k}-{part}")


def store_fills(folder: str, orders: int) -> tuple[str, Any, list[list[tuple]], float, float]:
    """Record two fills per order through the store; the database's path, the open
    database (closing the last connection would checkpoint the WAL away), the
    statements of each fill (for the replay), and the wall and CPU seconds taken. A
    copy of the database as it was before the fills is left at ``PATH.before``."""
    path = os.path.join(folder, "store.db")
    db = init_db(connect(f"sqlite:///{path}"))
    storage = StorageService(db, actor="bench")
    placed = _orders(storage, orders)
    db.pragma("wal_autocheckpoint", 0)
    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(path, f"{path}.before")
    fills: list[list[tuple]] = []
    statements: list[tuple] = []
    db.query_hooks.append(lambda event: statements.append((event.sql, event.params)))
    wall, cpu = time.perf_counter(), time.process_time()
    for k, order in enumerate(placed):
        for part in range(2):
            statements = []
            db.query_hooks[-1] = lambda event, into=statements: into.append(
                (event.sql, event.params)
            )
            quantity, price, commission, fees, external_id = _fill_args(k, part)
            storage.record_trade(
                order.id,
                order.symbol,
                order.side,
                quantity,
                price,
                commission,
                fees,
                external_id,
                START + dt.timedelta(seconds=k),
            )
            fills.append(statements)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return path, db, fills, wall, cpu


def replay(path: str, fills: list[list[tuple]]) -> tuple[float, float]:
    """Run each fill's statements in its own ``BEGIN IMMEDIATE`` transaction on the bare
    driver; the wall and CPU seconds taken."""
    conn = connect_sqlite(path)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    cursor = conn.cursor()
    wall, cpu = time.perf_counter(), time.process_time()
    for statements in fills:
        cursor.execute("BEGIN IMMEDIATE")
        for sql, params in statements:
            cursor.execute(sql, params or ()).fetchall()
        cursor.execute("COMMIT")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    conn.close()
    return wall, cpu


def minimal_fills(folder: str, orders: int) -> tuple[str, sqlite3.Connection, float, float]:
    """The same fills through the minimal floor; its database's path, open connection,
    and the wall and CPU seconds its fills took."""
    path = os.path.join(folder, "minimal.db")
    conn = connect_sqlite(path)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    floor = MinimalFloor(conn, "sqlite")
    ids = [
        floor.create_order("AAPL" if k % 2 else "MSFT", "buy", Decimal(10)) for k in range(orders)
    ]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wall, cpu = time.perf_counter(), time.process_time()
    for k, order_id in enumerate(ids):
        for part in range(2):
            quantity, price, _, _, external_id = _fill_args(k, part)
            floor.record_fill(
                order_id,
                "AAPL" if k % 2 else "MSFT",
                "buy",
                quantity,
                price,
                external_id,
                START + dt.timedelta(seconds=k),
            )
    return path, conn, time.perf_counter() - wall, time.process_time() - cpu


def page_size(path: str) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return int(conn.execute("PRAGMA page_size").fetchone()[0])


def report(counts: collections.Counter, fills: int, title: str) -> None:
    total = sum(counts.values())
    print(f"{title}: {total / fills:.1f} pages per fill commit")
    for name, frames in counts.most_common():
        print(f"  {frames / fills:6.2f}  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pages", description=__doc__.split("\n\n")[0].split(": ", 1)[1]
    )
    parser.add_argument("--orders", type=int, default=300, help="orders, two fills each")
    args = parser.parse_args(argv)
    fills = 2 * args.orders
    with tempfile.TemporaryDirectory() as folder:
        path, db, statements, wall, cpu = store_fills(folder, args.orders)
        report(wal_pages(path, page_size(path)), fills, "store")
        db.close()
        minimal, conn, minimal_wall, minimal_cpu = minimal_fills(folder, args.orders)
        report(wal_pages(minimal, page_size(minimal)), fills, "minimal floor")
        conn.close()
        copy = os.path.join(folder, "replay.db")
        shutil.copyfile(f"{path}.before", copy)
        replay_wall, replay_cpu = replay(copy, statements)
    per_fill = sum(len(s) for s in statements) / fills
    print(f"statements per fill: {per_fill:.1f}, plus BEGIN and COMMIT")
    print(
        f"store: {fills / wall:,.0f} fills/s ({fills / cpu:,.0f} per CPU second); "
        f"its statements on the bare driver: {fills / replay_wall:,.0f} fills/s "
        f"({fills / replay_cpu:,.0f} per CPU second); ratio {replay_wall / wall:.2f} "
        f"(CPU {replay_cpu / cpu:.2f})"
    )
    print(
        f"minimal floor: {fills / minimal_wall:,.0f} fills/s ({fills / minimal_cpu:,.0f} per "
        f"CPU second); the store's statements alone reach {minimal_wall / replay_wall:.2f} "
        f"of it (CPU {minimal_cpu / replay_cpu:.2f}), the store {minimal_wall / wall:.2f} "
        f"(CPU {minimal_cpu / cpu:.2f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
