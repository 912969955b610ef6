"""``python -m bench.audit_overhead [--url URL] [--fills N] [--batch B] [--rounds R]``.

What the audit log costs fill ingest: ``record_trade`` fills per second (each fill its
own transaction, with its order, position and strategy moving) and ``record_trades``
batches, with the audit writer on and switched off (a switch that exists for this
measurement only), in alternating rounds (ABBA) on the same database so that both
see the same machine load. Prints the median rate of each and their ratio (target:
>= 0.85); the default database is a fresh SQLite file. ``--clock cpu`` counts this
process's CPU time instead of the wall clock: steadier on a loaded machine, and the
whole cost on SQLite (which runs in the process), but blind to PostgreSQL's server.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from stocksbot_store import StorageService, connect, init_db

#: The clock rates are measured with (``--clock``).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def single_fills(storage: StorageService, order_id: int, fills: int) -> float:
    """Record ``fills`` buy fills of one order, one transaction each; the rate."""
    start = clock()
    for _ in range(fills):
        storage.record_trade(order_id, "AAPL", "buy", "1", "100.25", commission="0.01")
    return fills / (clock() - start)


def batch_fills(storage: StorageService, order_ids: list[int], fills: int, batch: int) -> float:
    """Record ``fills`` fills in batches of ``batch``, spread over ``order_ids`` (ten
    symbols, so a batch touches several orders, positions and one strategy); the
    rate."""
    start = clock()
    done = 0
    while done < fills:
        size = min(batch, fills - done)
        storage.record_trades(
            [
                {
                    "order_id": order_ids[k % len(order_ids)],
                    "symbol": f"SYM{k % len(order_ids)}",
                    "side": "buy",
                    "quantity": "1",
                    "price": "100.25",
                    "commission": "0.01",
                }
                for k in range(done, done + size)
            ]
        )
        done += size
    return fills / (clock() - start)


def abba(run: Callable[[], float], storage: StorageService, rounds: int) -> tuple[float, float]:
    """Median rates of ``run`` with the audit writer on and off, in ABBA order."""
    writer = storage._fills.audit
    run()  # warm up caches and the file
    on, off = [], []
    for i in range(rounds):
        # ABBA order: neither side always runs first, on a warmer cache or a fuller file.
        for audited in (True, False) if i % 2 == 0 else (False, True):
            writer.enabled = audited
            (on if audited else off).append(run())
    writer.enabled = True
    return statistics.median(on), statistics.median(off)


def measure(url: str, fills: int, batch: int, rounds: int) -> dict[str, tuple[float, float]]:
    """``{"record_trade": (on, off), "record_trades": (on, off)}`` in fills per second."""
    db = connect(url)
    init_db(db)
    storage = StorageService(db, actor="bench")
    strategy = storage.create_strategy("bench")
    total = fills * (rounds * 2 + 1)
    single = storage.create_order("AAPL", "buy", "market", total, strategy=strategy)
    many = [
        storage.create_order(f"SYM{k}", "buy", "market", total, strategy=strategy).id
        for k in range(10)
    ]
    try:
        return {
            "record_trade": abba(lambda: single_fills(storage, single.id, fills), storage, rounds),
            "record_trades": abba(
                lambda: batch_fills(storage, many, fills * 10, batch), storage, rounds
            ),
        }
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.audit_overhead", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("--url", help="database URL (default: a fresh SQLite file)")
    parser.add_argument(
        "--fills",
        type=int,
        default=300,
        help="record_trade fills per round (record_trades: ten times as many)",
    )
    parser.add_argument("--batch", type=int, default=500, help="fills per record_trades call")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of each")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall (default) or this process's cpu time",
    )
    args = parser.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite:///{Path(folder) / 'audit_overhead.db'}"
        results = measure(url, args.fills, args.batch, args.rounds)
    for name, (on, off) in results.items():
        print(
            f"{name}: {on:,.0f} fills/s with the audit log, {off:,.0f} fills/s without "
            f"({args.clock} clock); ratio {on / off:.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
