"""Child process for the reconcile recipe test: a bot that records what its broker
reports, until it is killed.

Usage: ``python tests/procs/broker_bot.py URL SCRIPT``. ``SCRIPT`` is a JSON file of
steps in time order: ``{"order": {...}}`` (the bot sends an order and stores it with
the broker's id) or ``{"fill": {...}}`` (the broker reports an execution; the bot
records it). A fill marked ``"lost"`` never reaches the bot. Prints ``ready`` once
connected and ``step <n>`` after each step commits; then waits to be killed.
"""

from __future__ import annotations

import json
import sys
import time

from stocksbot_store import StorageService, connect, init_db


def main(url: str, script: str) -> None:
    with open(script) as f:
        steps = json.load(f)
    db = connect(url)
    init_db(db)
    storage = StorageService(db)
    print("ready", flush=True)
    orders: dict[str, int] = {}
    for number, step in enumerate(steps):
        if "order" in step:
            o = step["order"]
            orders[o["id"]] = storage.create_order(
                o["symbol"], o["side"], "market", o["quantity"], external_id=o["id"]
            ).id
        elif not step["fill"].get("lost"):
            f = step["fill"]
            storage.record_trade(
                orders[f["order"]],
                f["symbol"],
                f["side"],
                f["quantity"],
                f["price"],
                f["commission"],
                external_id=f["id"],
                executed_at=f["at"],
            )
        print(f"step {number}", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
