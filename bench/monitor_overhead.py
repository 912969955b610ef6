"""``python -m bench.monitor_overhead [--url URL] [--fills N] [--rounds R]``.

What counting and timing every statement (:mod:`stocksbot_store.monitor`) costs the
fill path: ``record_trade`` fills per second with the monitor in the database's query
hooks and without it (Peewee then skips its timing too), in alternating rounds
(ABBA) on the same database so that both see the same machine load. Prints the median of each
and their ratio; the default database is a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from stocksbot_store import StorageService, connect, init_db
from stocksbot_store.monitor import monitor_of


def fills_per_second(storage: StorageService, order_id: int, fills: int) -> float:
    """Record ``fills`` buy fills of one order; the rate."""
    start = time.perf_counter()
    for _ in range(fills):
        storage.record_trade(order_id, "AAPL", "buy", "1", "100.25", commission="0.01")
    return fills / (time.perf_counter() - start)


def measure(url: str, fills: int, rounds: int) -> tuple[float, float]:
    """Median fills/s with and without the monitor."""
    db = connect(url)
    init_db(db)
    storage = StorageService(db)
    monitor = monitor_of(db)
    order = storage.create_order("AAPL", "buy", "market", fills * rounds * 2 + fills)
    fills_per_second(storage, order.id, fills)  # warm up caches and the file
    with_monitor, without = [], []
    for i in range(rounds):
        # ABBA order: neither side always runs first, on a warmer cache or a fuller file.
        for monitored in (True, False) if i % 2 == 0 else (False, True):
            db.query_hooks[:] = [monitor] if monitored else []
            rate = fills_per_second(storage, order.id, fills)
            (with_monitor if monitored else without).append(rate)
    db.query_hooks[:] = [monitor]
    db.close()
    return statistics.median(with_monitor), statistics.median(without)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.monitor_overhead", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("--url", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--fills", type=int, default=500, help="fills per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of each")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite:///{Path(folder) / 'overhead.db'}"
        with_monitor, without = measure(url, args.fills, args.rounds)
    print(
        f"record_trade: {with_monitor:,.0f} fills/s monitored, {without:,.0f} fills/s "
        f"without; ratio {with_monitor / without:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
