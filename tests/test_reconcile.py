"""Reconcile with the broker: what differs, the fix, and the README's restart recipe run
against a simulated broker around a kill -9 of a real bot process."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import signal
from decimal import Decimal
from pathlib import Path

import pytest
from children import Child
from conftest import dump_tables

from stocksbot_store import StorageService, ValidationError, connect
from stocksbot_store.check import check_ledger

README = Path(__file__).resolve().parent.parent / "README.md"
CHILD = Path(__file__).parent / "procs" / "broker_bot.py"
D = Decimal


def signed_positions(storage: StorageService) -> dict[str, Decimal]:
    return {
        p.symbol: p.quantity if p.side.value == "long" else -p.quantity
        for p in storage.get_open_positions()
    }


def test_agreeing_books_report_nothing_and_the_run_is_kept(storage):
    storage.create_position("AAPL", "long", 10, 100)
    report = storage.reconcile({"AAPL": 10}, [])
    assert report.ok and report.differences == [] and report.format().endswith("nothing to do")
    run = storage.last_reconcile()
    assert (run.applied, run.difference_count, run.differences) == (False, 0, [])


def test_position_differences_are_reported_then_applied(storage):
    storage.create_position("AAPL", "long", 10, 100)
    storage.create_position("TSLA", "long", 2, 200)
    broker = [
        {"symbol": "AAPL", "side": "long", "quantity": 15, "avg_price": 102},
        {"symbol": "MSFT", "side": "short", "quantity": 3, "avg_price": 50},
    ]
    before = dump_tables(storage.db)
    report = storage.reconcile(broker)
    assert [
        (d.kind, d.subject, d.store, d.broker, d.quantity, d.action) for d in report.differences
    ] == [
        (
            "position",
            "AAPL",
            "long 10 @ 100",
            "long 15 @ 102",
            D(5),
            "record an adjustment: buy 5 @ 102",
        ),
        ("position", "MSFT", "flat", "short 3 @ 50", D(-3), "record an adjustment: sell 3 @ 50"),
        ("position", "TSLA", "long 2 @ 200", "flat", D(-2), "record an adjustment: sell 2 @ 200"),
    ]
    after = dump_tables(storage.db)
    assert len(after.pop("reconcile_run")) == 1 and before.pop("reconcile_run") == []
    assert after == before  # a dry run writes nothing but its report

    applied = storage.reconcile(broker, apply=True)
    assert [t.type.value for t in applied.trades] == ["adjustment"] * 3
    assert signed_positions(storage) == {"AAPL": D(15), "MSFT": D(-3)}
    run = storage.last_reconcile()
    assert run.applied and run.difference_count == 3
    assert run.differences[0]["subject"] == "AAPL" and run.differences[0]["quantity"] == "5"
    assert storage.reconcile(broker).ok
    assert check_ledger(storage.db).ok


def test_a_flip_is_one_adjustment_at_the_brokers_price(storage):
    storage.create_position("AAPL", "long", 4, 100)
    report = storage.reconcile({"AAPL": {"quantity": -6, "avg_price": 110}}, apply=True)
    [trade] = report.trades
    assert (trade.side.value, trade.quantity, trade.price, trade.realized_pnl) == (
        "sell",
        D(10),
        D(110),
        D(40),
    )
    assert signed_positions(storage) == {"AAPL": D(-6)}
    assert storage.reconcile({"AAPL": -6}).ok


def test_orders_the_broker_no_longer_has_are_closed(storage):
    gone = storage.create_order("AAPL", "buy", "market", 10, external_id="gone")
    storage.record_trade(gone.id, "AAPL", "buy", 4, 100)
    working = storage.create_order("AAPL", "buy", "market", 10, external_id="working")
    unsent = storage.create_order("AAPL", "buy", "market", 10)
    report = storage.reconcile({"AAPL": 4}, ["working", "stranger"], apply=True)
    assert [(d.kind, d.subject, d.store, d.broker, d.action) for d in report.differences] == [
        ("order", "gone", "partially_filled, 4 of 10 filled", "not open", "mark it cancelled"),
        (
            "order",
            "stranger",
            "no such order",
            "open",
            "none: look at it (create_order / attach_external_id if the bot sent it)",
        ),
    ]
    assert [o.status.value for o in report.orders] == ["cancelled"]
    statuses = {o.id: o.status.value for o in storage.get_recent_orders()}
    assert statuses == {gone.id: "cancelled", working.id: "pending", unsent.id: "pending"}
    again = storage.reconcile({"AAPL": 4}, ["working"])
    assert again.ok
    assert check_ledger(storage.db).ok


def test_a_symbol_never_traded_needs_the_brokers_price(storage):
    before = dump_tables(storage.db)
    with pytest.raises(ValidationError, match="give its average price"):
        storage.reconcile({"NVDA": 5}, apply=True)
    assert dump_tables(storage.db) == before
    storage.record_marks({"NVDA": 120})
    [trade] = storage.reconcile({"NVDA": 5}, apply=True).trades
    assert trade.price == D(120)


def test_bad_broker_views_are_refused(storage):
    with pytest.raises(ValidationError, match="quantity"):
        storage.reconcile({"AAPL": "lots"})
    with pytest.raises(ValidationError, match="listed twice"):
        storage.reconcile([{"symbol": "AAPL", "quantity": 1}, {"symbol": "AAPL", "quantity": 2}])


# -- the restart recipe ----------------------------------------------------------------


def readme_recipe():
    """The README's ``resume_after_restart``, as written there."""
    [block] = [
        b
        for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
        if "def resume_after_restart" in b
    ]
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    return namespace["resume_after_restart"]


class Broker:
    """Every order and execution of a script happened at the broker; the bot may have
    missed some. Re-sends from a minute before what it is asked for."""

    def __init__(self, steps: list[dict], cancelled: set[str]) -> None:
        self.orders = {s["order"]["id"]: s["order"] for s in steps if "order" in s}
        self.fills = [s["fill"] for s in steps if "fill" in s]
        self.cancelled = cancelled

    def fills_since(self, when):
        start = None if when is None else (when - dt.timedelta(minutes=1)).isoformat()
        return [
            f
            for f in self.fills
            if start is None or dt.datetime.fromisoformat(f["at"]).isoformat() >= start
        ]

    def order(self, order_id):
        return self.orders[order_id]

    def positions(self):
        held: dict[str, Decimal] = {}
        for f in self.fills:
            sign = 1 if f["side"] == "buy" else -1
            held[f["symbol"]] = held.get(f["symbol"], D(0)) + sign * D(f["quantity"])
        return {symbol: quantity for symbol, quantity in held.items() if quantity}

    def open_orders(self):
        filled: dict[str, Decimal] = {}
        for f in self.fills:
            filled[f["order"]] = filled.get(f["order"], D(0)) + D(f["quantity"])
        return [
            oid
            for oid, o in self.orders.items()
            if oid not in self.cancelled and filled.get(oid, D(0)) < D(o["quantity"])
        ]


def script(rng: random.Random, orders: int = 80) -> tuple[list[dict], set[str]]:
    """Orders and their fills in time order; some orders are cancelled at the broker after
    a partial fill, the last ones are still working, and one fill is lost."""
    steps, cancelled = [], set()
    clock = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.timezone.utc)
    for n in range(orders):
        oid = f"O{n}"
        quantity = rng.randint(2, 10)
        order = {
            "id": oid,
            "symbol": rng.choice(("AAA", "BBB")),
            "side": rng.choice(("buy", "sell")),
            "quantity": quantity,
        }
        steps.append({"order": order})
        parts = [quantity // 2, quantity - quantity // 2]
        if n % 9 == 4 or n >= orders - 3:
            parts = parts[:1]  # partly filled: cancelled by the broker, or still working
            if n < orders - 3:
                cancelled.add(oid)
        for k, part in enumerate(parts):
            clock += dt.timedelta(seconds=rng.randint(5, 90))
            steps.append(
                {
                    "fill": {
                        "id": f"X{n}-{k}",
                        "order": oid,
                        "order_id": oid,
                        "symbol": order["symbol"],
                        "side": order["side"],
                        "quantity": part,
                        "price": str(D(rng.randint(9000, 11000)) / 100),
                        "commission": "0.25",
                        "at": clock.isoformat(),
                        "lost": n == 6 and k == 1,
                    }
                }
            )
    return steps, cancelled


def test_the_restart_recipe_after_a_kill_makes_the_store_equal_the_broker(store_url, tmp_path, rng):
    steps, cancelled = script(rng)
    path = tmp_path / "script.json"
    path.write_text(json.dumps(steps))
    bot = Child([CHILD, store_url, path])
    # Killed after a random number of committed steps (a state, not a time: the same
    # on a fast machine and a slow one), often with the next one under way.
    wanted = rng.randrange(1, len(steps))
    bot.wait_for(lambda: sum(line.startswith("step ") for line in bot.text()) >= wanted)
    bot.stop()
    assert bot.process.returncode == -signal.SIGKILL, bot.error[-2000:]
    done = sum(line.startswith("step ") for line in bot.text())

    db = connect(store_url)
    storage = StorageService(db)
    broker = Broker(steps, cancelled)
    report = readme_recipe()(storage, broker)

    assert signed_positions(storage) == broker.positions(), (done, report.format())
    live = {
        o.external_id
        for o in storage.get_recent_orders(1000)
        if o.status.value in ("pending", "open", "partially_filled")
    }
    assert live == set(broker.open_orders())
    stored = {t.external_id for t in storage.trades.get_all(limit=None) if t.external_id}
    lost = {f["id"] for f in broker.fills if f["lost"]}
    assert stored | lost == {f["id"] for f in broker.fills}
    assert storage.reconcile(broker.positions(), broker.open_orders()).ok
    assert check_ledger(db).ok, check_ledger(db).format()
    print(
        f"killed after {done} of {len(steps)} steps; reconcile applied "
        f"{len(report.differences)} difference(s)"
    )
    db.close()
