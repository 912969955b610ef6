"""Concurrency soak: several writers and readers at once, and the books stay right.

* SQLite file: one writer process with :data:`WRITER_THREADS` threads and two
  reader processes (dashboard reads plus the ledger check every two seconds).
* PostgreSQL: four writer processes on the same symbols and strategies, and one
  reader process.

Each runs for :data:`SECONDS` (30 s; 8 s under ``CI=true``; ``STOCKSBOT_SOAK_SECONDS``
overrides); marked slow, so it runs under ``CI=true`` or with ``--run-slow``. The seed of
the workers' random choices is printed; ``STOCKSBOT_SEED=<seed>`` replays it.
Afterwards: zero errors, zero "database is locked", and the ledger check passes, so
every open position equals the replay of its symbol's trades and every order and
strategy figure equals its trades'.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import store_on

from stocksbot_store import connect
from stocksbot_store.check import check_ledger

WORKER = Path(__file__).parent / "procs" / "soak_worker.py"
SECONDS = float(
    os.environ.get("STOCKSBOT_SOAK_SECONDS")
    or (8 if os.environ.get("CI", "").lower() == "true" else 30)
)
WRITER_THREADS = 4


def run_workers(url: str, plan: list[tuple[str, int]], seed: int) -> list[dict]:
    """Start one process per (role, threads) in ``plan`` at once; their JSON reports."""
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                role,
                url,
                str(SECONDS),
                str(threads),
                f"p{i}",
                str(seed + i),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, (role, threads) in enumerate(plan)
    ]
    reports = []
    for process in processes:
        out, err = process.communicate(timeout=SECONDS + 120)
        assert process.returncode == 0, f"worker failed:\n{err[-3000:]}"
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def soak(url: str, plan: list[tuple[str, int]], rng) -> None:
    db = connect(url)
    reports = run_workers(url, plan, rng.randrange(1 << 30))
    for report in reports:
        assert report["errors"] == 0, report
        assert report["locked"] == 0, report
        assert report["ops"] > 0, report
    writes = sum(r["ops"] for r in reports if r["role"] == "writer")
    reads = sum(r["ops"] for r in reports if r["role"] == "reader")
    checks = sum(r["checks"] for r in reports)
    assert checks >= 1, "the readers never ran the check while the writers wrote"
    final = check_ledger(db)
    assert final.ok, final.format()
    assert final.trades > 0 and final.orders > 0
    db.close()
    print(
        f"\n{url.split(':')[0]} soak {SECONDS:.0f}s: {writes} write ops, {reads} read ops, "
        f"{checks} checks during the run; final: {final.summary()}"
    )


@pytest.mark.slow
def test_sqlite_one_writer_process_with_threads_two_readers(request, tmp_path, rng):
    with store_on("sqlite_file", request, tmp_path) as url:
        soak(url, [("writer", WRITER_THREADS), ("reader", 1), ("reader", 1)], rng)


@pytest.mark.slow
def test_postgres_four_writer_processes_on_shared_symbols(request, tmp_path, rng):
    with store_on("postgres", request, tmp_path) as url:
        soak(url, [("writer", 1)] * 4 + [("reader", 1)], rng)


# -- the locking that the PostgreSQL soak depends on, made deterministic ----------------


@pytest.fixture
def pg_store(request, tmp_path):
    with store_on("postgres", request, tmp_path) as url:
        import psycopg

        from stocksbot_store import StorageService

        db = connect(url)
        storage = StorageService(db)
        strategy = storage.create_strategy("locked")
        other = psycopg.connect(url.replace("postgresql+pool://", "postgresql://"))
        yield storage, strategy, other
        other.close()
        db.close()


def test_a_fill_does_not_wait_for_a_concurrent_reference_to_its_strategy(pg_store):
    """A concurrent insert that references the strategy (a new order or trade: its
    foreign-key check holds KEY SHARE on the row) must not block a fill. Locking the
    strategy ``FOR UPDATE`` did, and two fills of one strategy on two symbols then
    deadlocked: found by the PostgreSQL soak."""
    storage, strategy, other = pg_store
    order = storage.create_order("AAA", "buy", "market", 1, strategy=strategy.id)
    other.execute("SELECT id FROM strategy WHERE id = %s FOR KEY SHARE", (strategy.id,))
    storage.db.execute_sql("SET lock_timeout = '10s'")
    trade = storage.record_trade(order.id, "AAA", "buy", 1, 10)  # waited 10 s, then failed
    other.rollback()
    assert storage.strategies.get(strategy.id).total_trades == 1
    assert trade.id is not None


def test_a_fill_locks_its_strategy_before_its_trade_takes_an_id(pg_store):
    """Figures such as drawdown depend on the order in which a strategy's trades are
    applied; the check replays them in id order, so a fill must hold the strategy's
    lock before its trade takes an id. Found by the PostgreSQL soak (max_drawdown
    could differ from the replay when two fills of one strategy raced)."""
    import threading

    storage, strategy, other = pg_store
    order = storage.create_order("AAA", "buy", "market", 1, strategy=strategy.id)
    sequence = "SELECT last_value, is_called FROM trade_id_seq"
    before = other.execute(sequence).fetchone()
    other.commit()
    other.execute("SELECT id FROM strategy WHERE id = %s FOR UPDATE", (strategy.id,))
    done: list[object] = []
    fill = threading.Thread(
        target=lambda: done.append(storage.record_trade(order.id, "AAA", "buy", 1, 10))
    )
    fill.start()
    waiting = 0
    for _ in range(400):  # until the fill waits on a lock (at most ~20 s)
        other.execute("SELECT pg_stat_clear_snapshot()")  # else it is read once per transaction
        waiting = other.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        ).fetchone()[0]
        if waiting:
            break
        threading.Event().wait(0.05)
    assert waiting, "the fill never waited for the strategy's lock"
    during = other.execute(sequence).fetchone()
    other.commit()
    fill.join(timeout=30)
    assert done, "the fill did not finish"
    assert during == before, "the trade took its id before the strategy was locked"
