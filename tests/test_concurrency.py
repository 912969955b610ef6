"""A bot writing while a dashboard reads, and two writers on one symbol, as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from decimal import Decimal

from stocksbot_store import StorageService, connect, init_db
from stocksbot_store.ledger import apply_fill
from stocksbot_store.models import Trade

WRITER = textwrap.dedent("""
    import json, sys, threading, time
    from stocksbot_store import StorageService, connect, StorageError
    url, seconds, threads, symbols, tag = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), \\
        sys.argv[4].split(","), sys.argv[5]
    db = connect(url)
    counts = {"fills": 0, "errors": []}
    lock = threading.Lock()
    def work(n):
        storage = StorageService(db)
        deadline, i = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            i += 1
            symbol = symbols[i % len(symbols)]
            side = "buy" if (i + n) % 3 else "sell"
            try:
                order = storage.create_order(symbol, side, "market", 3, strategy="s")
                storage.record_trade(order.id, symbol, side, 1, 100 + i % 7,
                                     external_id=f"{tag}-{n}-{i}-a")
                storage.record_trade(order.id, symbol, side, 2, 101 + i % 5,
                                     external_id=f"{tag}-{n}-{i}-b")
                with lock:
                    counts["fills"] += 2
            except Exception as e:
                with lock:
                    counts["errors"].append(f"{type(e).__name__}: {e}")
        db.close()
    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    [t.start() for t in pool]
    [t.join() for t in pool]
    print(json.dumps(counts))
""")

READER = textwrap.dedent("""
    import json, sys, time
    from stocksbot_store import StorageService, connect
    url, seconds = sys.argv[1], float(sys.argv[2])
    storage = StorageService(connect(url))
    counts = {"reads": 0, "errors": []}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            storage.get_open_positions()
            storage.get_recent_orders(limit=50)
            storage.get_strategy_stats()
            counts["reads"] += 1
        except Exception as e:
            counts["errors"].append(f"{type(e).__name__}: {e}")
    print(json.dumps(counts))
""")


def _start(code: str, *args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return json.loads(out)


def _assert_positions_replay_trades(db) -> None:
    """Every symbol's open position equals the replay of its trades by average cost."""
    book: dict = {}
    for t in Trade.select().order_by(Trade.id).bind(db).iterator():
        outcome = apply_fill(book.get(t.symbol), t.symbol, t.side.value, t.quantity, t.price)
        book[t.symbol] = outcome.open_position
    stored = {p.symbol: p for p in StorageService(db).get_open_positions()}
    expected = {s: p for s, p in book.items() if p is not None}
    assert sorted(stored) == sorted(expected)
    for symbol, p in expected.items():
        got = stored[symbol]
        assert (got.side, got.quantity, got.avg_entry_price) == (
            p.side,
            p.quantity,
            p.avg_entry_price,
        ), symbol


def _prepare(url: str):
    db = connect(url)
    init_db(db)
    StorageService(db).create_strategy("s")
    return db


def test_a_bot_writes_while_a_dashboard_reads_on_a_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    db = _prepare(url)
    writer = _start(WRITER, url, 4, 4, "AAA,BBB,CCC", "w")
    readers = [_start(READER, url, 4) for _ in range(2)]
    written = _result(writer)
    reads = [_result(r) for r in readers]
    assert written["errors"] == [] and written["fills"] > 100
    assert all(r["errors"] == [] and r["reads"] > 10 for r in reads)
    assert Trade.select().bind(db).count() == written["fills"]
    _assert_positions_replay_trades(db)
    db.close()


def test_two_writers_on_one_symbol_leave_the_position_right(store_url):
    db = _prepare(store_url)
    writers = [_start(WRITER, store_url, 4, 2, "SAME", f"p{n}") for n in range(2)]
    results = [_result(w) for w in writers]
    assert all(r["errors"] == [] and r["fills"] > 20 for r in results)
    assert Trade.select().bind(db).count() == sum(r["fills"] for r in results)
    _assert_positions_replay_trades(db)
    stats = StorageService(db).get_strategy_stats()[0]
    assert stats.trades == sum(r["fills"] for r in results)
    realized = sum((t.realized_pnl or Decimal(0)) for t in Trade.select().bind(db))
    assert stats.gross_pnl == realized
    db.close()
