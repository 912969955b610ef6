"""Child process for the concurrency soak: writes or reads for a while, then reports.

Usage: ``python tests/procs/soak_worker.py writer|reader URL SECONDS THREADS TAG SEED``
(thread ``i`` draws from ``random.Random(SEED * 1000 + i)``).
Each thread loops until the time is up; at the end the process prints one JSON
line: ``{"ops": ..., "errors": ..., "locked": ..., "checks": ..., "samples": [...]}``
where ``errors`` counts every exception (``locked`` those that say "database is
locked") and ``samples`` holds the first few messages.

A writer thread creates orders on symbols other threads and processes use too,
fills them in one to three parts, re-sends some fills (which must be idempotent),
cancels some remainders and records some fills as a batch. A reader thread runs
the dashboard's reads and, now and then, the ledger check, which must pass even
while the writers write (it reads one snapshot).
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from decimal import Decimal

from shared import ensure_strategies

from stocksbot_store import StorageService, connect
from stocksbot_store.check import check_ledger

SYMBOLS = ("AAA", "BBB", "CCC", "DDD")
STRATEGIES = ("soak-a", "soak-b", "soak-c")


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ops = self.errors = self.locked = self.checks = 0
        self.samples: list[str] = []

    def done(self, ops: int = 1) -> None:
        with self.lock:
            self.ops += ops

    def failed(self, error: BaseException) -> None:
        text = f"{type(error).__name__}: {error}"
        cause = error.__cause__
        if cause is not None:
            text += f" (from {type(cause).__name__}: {cause})"
        with self.lock:
            self.errors += 1
            self.locked += "database is locked" in text.lower()
            if len(self.samples) < 5:
                self.samples.append(text[:500])


def amount(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low * 100, high * 100)) / 100


def write(storage: StorageService, tally: Tally, deadline: float, tag: str, seed: int) -> None:
    rng = random.Random(seed)
    n = 0
    while time.monotonic() < deadline:
        n += 1
        try:
            symbol, side = rng.choice(SYMBOLS), rng.choice(("buy", "sell"))
            order = storage.create_order(
                symbol, side, "market", amount(rng, 1, 20), strategy=rng.choice(STRATEGIES)
            )
            tally.done()
            if rng.random() < 0.2:
                fills = [
                    {
                        "order_id": order.id,
                        "symbol": symbol,
                        "side": side,
                        "quantity": order.quantity / 2,
                        "price": amount(rng, 90, 110),
                        "external_id": f"{tag}-{n}-{i}",
                    }
                    for i in range(2)
                ]
                storage.record_trades(fills)
                tally.done()
                continue
            left = order.quantity
            for part in range(rng.randint(1, 3)):
                quantity = min(left, amount(rng, 1, 10))
                args = (order.id, symbol, side, quantity, amount(rng, 90, 110))
                trade = storage.record_trade(
                    *args, commission="0.01", external_id=f"{tag}-{n}-{part}"
                )
                tally.done()
                if rng.random() < 0.1:  # the broker re-sends the same fill
                    again = storage.record_trade(
                        *args, commission="0.01", external_id=f"{tag}-{n}-{part}"
                    )
                    assert again.id == trade.id, "a re-sent fill was recorded twice"
                    tally.done()
                left -= quantity
                if left <= 0:
                    break
            if left > 0 and rng.random() < 0.5:
                storage.cancel_order(order.id)
                tally.done()
        except Exception as e:
            tally.failed(e)


def read(storage: StorageService, tally: Tally, deadline: float, seed: int) -> None:
    rng = random.Random(seed)
    next_check = time.monotonic() + 1
    while time.monotonic() < deadline:
        try:
            storage.get_open_positions()
            storage.get_recent_orders(50)
            storage.get_recent_trades(50)
            storage.get_strategy_stats()
            storage.orders.page(symbol=rng.choice(SYMBOLS), limit=20)
            tally.done(5)
            if time.monotonic() >= next_check:
                report = check_ledger(storage.db)
                with tally.lock:
                    tally.checks += 1
                if not report.ok:
                    raise AssertionError("check failed mid-run:\n" + report.format()[:2000])
                next_check = time.monotonic() + 2
        except Exception as e:
            tally.failed(e)


def main(role: str, url: str, seconds: float, threads: int, tag: str, seed: int) -> None:
    db = connect(url)
    storage = StorageService(db)
    ensure_strategies(storage, STRATEGIES)
    tally = Tally()
    deadline = time.monotonic() + seconds
    workers = []
    for i in range(threads):
        own = seed * 1000 + i
        target, args = (
            (write, (storage, tally, deadline, f"{tag}t{i}", own))
            if role == "writer"
            else (read, (storage, tally, deadline, own))
        )
        workers.append(threading.Thread(target=_closing(db, target), args=args))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(
        json.dumps(
            {
                "role": role,
                "ops": tally.ops,
                "errors": tally.errors,
                "locked": tally.locked,
                "checks": tally.checks,
                "samples": tally.samples,
            }
        ),
        flush=True,
    )


def _closing(db, target):
    """Run ``target`` and close the thread's connection after it."""

    def run(*args):
        try:
            target(*args)
        finally:
            db.close()

    return run


if __name__ == "__main__":
    main(
        sys.argv[1],
        sys.argv[2],
        float(sys.argv[3]),
        int(sys.argv[4]),
        sys.argv[5],
        int(sys.argv[6]),
    )
