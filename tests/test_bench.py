"""The bench: its quick mode runs every workload on each backend, and the project
and the hand-written floor end with the same book; the bulk path keeps the same
book as fill-by-fill on every backend.

No timings are asserted: numbers are for people (``python -m bench``), these tests
check that the bench runs and that what it compares is compared.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from conftest import fresh_database_url, require_postgres

from stocksbot_store import Fill, StorageService, connect, init_db

ROOT = Path(__file__).resolve().parent.parent
# bench/ is a folder of the repository, not part of the installed package: run from
# the checkout (as ``python -m bench`` is).
sys.path.insert(0, str(ROOT))
from bench.book import differences, read_book  # noqa: E402
from bench.scenario import plan  # noqa: E402

WORKLOADS = {
    "1 fill ingest",
    "2 bulk import",
    "3 dashboard reads",
    "4 dashboard refresh",
    "5 adopt",
    "6 data movement",
    "7 reports",
}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_quick_mode_runs_every_workload_and_the_books_agree(backend, tmp_path):
    if backend == "postgres":
        require_postgres()
    out = tmp_path / "bench.json"
    env = dict(os.environ, STOCKSBOT_BENCH_CACHE=str(tmp_path / "cache"))
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--backend", backend, "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    results = report["results"]
    assert {r["workload"] for r in results} == WORKLOADS
    assert all(r["backend"] == backend and r["project"] > 0 for r in results)
    for r in results:  # every row is in the printed table
        assert r["metric"] in done.stdout
    # the floor ran beside the project where there is one
    beside_floor = [
        r for r in results if r["workload"][0] in "13" or r["metric"].startswith("record_trades")
    ]
    assert len(beside_floor) == 12 and all(r["floor"] > 0 for r in beside_floor)
    # the bench compared the books (it exits 1 when they differ) and they hold fills
    books = report["meta"]["books"]
    assert set(books) == {f"ingest/{backend}", f"bulk/{backend}"}
    assert all(b["positions"] > 0 for b in books.values())
    assert report["meta"]["mode"] == "quick" and report["meta"]["nproc"]


def test_the_book_comparison_sees_a_changed_position(tmp_path):
    """The check the bench relies on is not vacuous: one altered figure is reported."""
    db = init_db(connect(f"sqlite:///{tmp_path / 'book.db'}"))
    storage = StorageService(db)
    for o in plan(30):
        order = storage.create_order(o.symbol, o.side, "market", o.quantity)
        storage.record_trades(
            [Fill(order.id, o.symbol, o.side, f.quantity, f.price, f.commission) for f in o.fills]
        )
    query = lambda sql: db.execute_sql(sql).fetchall()  # noqa: E731
    before = read_book(query)
    assert differences(before, read_book(query)) == []
    db.execute_sql(
        "UPDATE position SET realized_pnl = '0.0000000001' WHERE id = "
        "(SELECT max(id) FROM position)"
    )
    assert differences(before, read_book(query))
    db.close()


def _play(storage: StorageService, bulk: bool) -> list[tuple]:
    """Forty orders over three symbols (opens, adds, reductions, closes, flips), with a
    re-sent fill inside the batch and one re-sent across batches; the trades returned."""
    strategies = {name: storage.create_strategy(name) for name in ("a", "b")}
    fills = []
    for k, o in enumerate(plan(40, seed=5, symbols=3)):
        order = storage.create_order(
            o.symbol,
            o.side,
            "market",
            o.quantity,
            strategy=strategies["ab"[k % 2]] if k % 5 else None,
        )
        fills += [
            Fill(
                order.id,
                o.symbol,
                o.side,
                f.quantity,
                f.price,
                f.commission,
                f.commission / 2,
                f"X{k}-{part}",
                f.executed_at,
            )
            for part, f in enumerate(o.fills)
        ]
    fills.insert(7, fills[3])  # re-sent within the first batch
    fills.insert(50, fills[20])  # re-sent in the second batch, stored by the first
    if bulk:
        trades = storage.record_trades(fills[:31]) + storage.record_trades(fills[31:])
    else:
        trades = [
            storage.record_trade(
                f.order_id,
                f.symbol,
                f.side,
                f.quantity,
                f.price,
                f.commission,
                f.fees,
                f.external_id,
                f.executed_at,
            )
            for f in fills
        ]
    return [
        (
            t.id,
            t.order_id,
            t.strategy_id,
            t.type,
            t.quantity,
            t.price,
            t.realized_pnl,
            t.executed_at,
        )
        for t in trades
    ]


@pytest.mark.parametrize("backend", ["sqlite_file", "postgres"])
def test_the_bulk_path_keeps_the_book_of_fill_by_fill(backend, tmp_path):
    books, returned, stored = [], [], []
    for bulk in (False, True):
        with fresh_database_url(backend, tmp_path) as url:
            db = init_db(connect(url))
            returned.append(_play(StorageService(db), bulk))
            books.append(read_book(lambda sql, db=db: db.execute_sql(sql).fetchall()))
            stored.append(
                db.execute_sql(
                    "SELECT id, order_id, strategy_id, external_id, type, quantity, price, "
                    "commission, fees, realized_pnl, executed_at FROM trade ORDER BY id"
                ).fetchall()
            )
            db.close()
    assert differences(books[0], books[1]) == []
    assert books[0]["positions"] and any(p[7] for p in books[0]["positions"])
    assert returned[0] == returned[1]
    assert stored[0] == stored[1]
    assert len(returned[0]) == 82 and len(stored[0]) == 80  # two re-sent fills


def test_the_statement_floor_replays_what_the_store_wrote(tmp_path):
    from bench.pages import minimal_fills, page_size, replay, store_fills, wal_pages

    path, db, statements, _, _ = store_fills(str(tmp_path), 3)
    try:
        pages = wal_pages(path, page_size(path))
        assert len(statements) == 6 and all(statements)
        assert pages["trade"] >= 1 and pages["audit_log"] >= 1
        copy = str(tmp_path / "replay.db")
        Path(copy).write_bytes(Path(f"{path}.before").read_bytes())
        replay(copy, statements)
        tables = ["trade", "order", "position", "strategy", "audit_log", "pnl_bucket"]
        for table in tables:  # the bare driver's replay ends with the store's rows
            query = f'SELECT * FROM "{table}" ORDER BY 1'
            with closing(sqlite3.connect(copy)) as replayed:
                assert replayed.execute(query).fetchall() == db.execute_sql(query).fetchall()
    finally:
        db.close()
    minimal, conn, _, _ = minimal_fills(str(tmp_path), 3)
    try:
        assert set(wal_pages(minimal, page_size(minimal))) >= {"min_trade", "min_position"}
    finally:
        conn.close()


def test_a_fill_that_moves_no_status_writes_no_page_of_the_status_indexes(tmp_path):
    """SQLite rewrites the index entries of every column an UPDATE names, changed or
    not: a fill that leaves its order's status and its position open must not name
    those columns, or each such index costs its commit one more page."""
    from bench.pages import page_size, wal_pages

    path = str(tmp_path / "store.db")
    db = init_db(connect(f"sqlite:///{path}"))
    try:
        storage = StorageService(db)
        order = storage.create_order("AAPL", "buy", "limit", 10, 100)
        storage.record_trade(order.id, "AAPL", "buy", 2, 100)  # pending -> partially filled
        db.pragma("wal_autocheckpoint", 0)
        db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        storage.record_trade(order.id, "AAPL", "buy", 3, 101)  # still partially filled, open
        pages = wal_pages(path, page_size(path))
        assert pages["order"] and pages["position"] and pages["trade"]
        untouched = ["order_status_id", "order_symbol_status_id", "position_is_open_symbol"]
        assert [name for name in untouched if pages[name]] == []
        assert storage.get_order(order.id).filled_quantity == 5
        assert storage.get_position_by_symbol("AAPL").quantity == 5
    finally:
        db.close()
