"""Child process for the crash test: records fills forever, reporting each commit.

Usage: ``python tests/procs/fill_loop.py URL TAG SEED``. Prints ``ready`` once
connected, then, after each transaction commits, ``T <trade id>`` for a single
fill or ``B <trade id> <trade id> ...`` for a batch, flushed at once, so that
every id the parent reads is known to be committed. Batch trades carry the
external id ``<TAG>-b<n>-<i>of<size>`` so the parent can tell a whole batch from
a part of one. Runs until killed.
"""

from __future__ import annotations

import random
import sys
from decimal import Decimal

from shared import ensure_strategies

from stocksbot_store import StorageService, connect, init_db

SYMBOLS = ("AAA", "BBB", "CCC")
STRATEGIES = ("crash-a", "crash-b")


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def amount(rng: random.Random, low: int, high: int) -> Decimal:
    """A quantity or price with up to 3 decimals, so averages need rounding."""
    return Decimal(rng.randint(low * 1000, high * 1000)) / 1000


def main(url: str, tag: str, seed: int) -> None:
    rng = random.Random(seed)
    db = connect(url)
    init_db(db)
    storage = StorageService(db)
    ensure_strategies(storage, STRATEGIES)
    say("ready")
    batch = 0
    while True:
        symbol = rng.choice(SYMBOLS)
        side = rng.choice(("buy", "sell"))
        strategy = rng.choice((*STRATEGIES, None))
        action = rng.random()
        if action < 0.55:
            order = storage.create_order(
                symbol, side, "market", amount(rng, 1, 20), strategy=strategy
            )
            left = order.quantity
            for _ in range(rng.randint(1, 3)):
                part = min(left, amount(rng, 1, 10))
                trade = storage.record_trade(
                    order.id, symbol, side, part, amount(rng, 50, 150), commission=amount(rng, 0, 1)
                )
                say(f"T {trade.id}")
                left -= part
                if left <= 0:
                    break
            if left > 0 and rng.random() < 0.5:
                storage.cancel_order(order.id)
        elif action < 0.85:
            batch += 1
            size = rng.randint(2, 5)
            order = storage.create_order(symbol, side, "market", 1000, strategy=strategy)
            fills = [
                {
                    "order_id": order.id,
                    "symbol": symbol,
                    "side": side,
                    "quantity": amount(rng, 1, 10),
                    "price": amount(rng, 50, 150),
                    "fees": "0.01",
                    "external_id": f"{tag}-b{batch}-{i}of{size}",
                }
                for i in range(size)
            ]
            trades = storage.record_trades(fills)
            say("B " + " ".join(str(t.id) for t in trades))
        else:
            position = storage.get_position_by_symbol(symbol)
            if position is None:
                storage.create_position(
                    symbol, rng.choice(("long", "short")), amount(rng, 1, 10), amount(rng, 50, 150)
                )
            else:
                storage.update_position_quantity(position.id, amount(rng, 1, 10))
            say(f"T {storage.get_recent_trades(1)[0].id}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
