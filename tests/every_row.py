"""A small store with every kind of row, for the copy tests (backup, archive, convert).

Strategies with JSON config (one inactive), orders of every type that are filled,
partially filled then cancelled, pending, rejected; partial fills, a flip, a close,
fills with commission and fees, a batch; ADJUSTMENT trades (a position opened and
resized by hand); config of every type; text that needs escaping; a soft-deleted
row of each kind that can be deleted, one of them sharing its key with a live row.
"""

from __future__ import annotations

import datetime as dt

from stocksbot_store import StorageService

UTC = dt.timezone.utc


def fill_every_kind(storage: StorageService, *, soft_deleted: bool = True) -> None:
    """Write the rows; the books stay clean (the ledger check passes).

    ``soft_deleted=False`` leaves out the soft-deleted rows, for a store an older schema
    (before soft delete) can hold.
    """
    at = dt.datetime(2026, 3, 2, 14, 30, 0, 123456, tzinfo=UTC)
    momentum = storage.create_strategy(
        "momentum",
        "trend",
        config={
            "window": 20,
            "ratio": 0.25,
            "symbols": ["AAA", "BBB"],
            "nested": {"on": True, "none": None},
        },
        description='quotes " and , commas\nand a newline, ünïcode',
        is_active=True,
    )
    storage.create_strategy("idle", config=[1, 2, 3])
    storage.set_strategy_active("idle", False)
    # AAA: two partial fills, a partial close, then a flip to short
    buy = storage.create_order(
        "AAA", "buy", "limit", 10, price="101.5", strategy=momentum, external_id="ext-1"
    )
    storage.record_trade(buy.id, "AAA", "buy", 4, "100.25", "0.5", "0.01", "f-1", at)
    storage.record_trade(
        buy.id, "AAA", "buy", 6, "101.125", "0.5", "0", "f-2", at + dt.timedelta(minutes=1)
    )
    sell = storage.create_order("AAA", "sell", "market", 15, strategy=momentum)
    storage.record_trade(
        sell.id, "AAA", "sell", 3, "105", "0.25", "0.02", None, at + dt.timedelta(days=1)
    )
    storage.cancel_order(sell.id)
    flip = storage.create_order("AAA", "sell", "stop", 12, price="99", strategy="momentum")
    storage.record_trade(
        flip.id, "AAA", "sell", 12, "98.5", "1", "0.1", "f-4", at + dt.timedelta(days=2)
    )
    # BBB: a batch of fills that opens and closes (a win)
    bbb_buy = storage.create_order("BBB", "buy", "market", 5)
    bbb_sell = storage.create_order("BBB", "sell", "stop_limit", 5, price="12.5")
    storage.record_trades(
        [
            {
                "order_id": bbb_buy.id,
                "symbol": "BBB",
                "side": "buy",
                "quantity": "5",
                "price": "10.0000000001",
                "executed_at": at + dt.timedelta(days=3),
            },
            {
                "order_id": bbb_sell.id,
                "symbol": "BBB",
                "side": "sell",
                "quantity": "5",
                "price": "12.75",
                "fees": "0.05",
                "executed_at": at + dt.timedelta(days=4),
            },
        ]
    )
    # orders that never filled
    storage.create_order("CCC", "buy", "limit", "0.001", price="5000", external_id="ext-p")
    rejected = storage.create_order("CCC", "sell", "market", 1)
    storage.update_order_status(rejected.id, "rejected")
    # ADJUSTMENT trades: a position from before the bot, resized by hand
    held = storage.create_position("DDD", "long", "7.5", "42.42")
    storage.update_position_quantity(held.id, "2.5")
    # config of every type
    storage.set_config_value("name", "bot one", "string")
    storage.set_config_value("max_orders", 12, "int")
    storage.set_config_value("risk", 0.02, "float")
    storage.set_config_value("symbols", {"list": ["AAA"], "n": 1}, "json")
    storage.set_trading_enabled(False)
    if not soft_deleted:
        return
    # soft-deleted rows: a strategy whose name is taken again, an order without fills,
    # a closed position, a setting
    storage.delete_strategy(storage.create_strategy("retired").id)
    storage.create_strategy("retired", description="the second of the name")
    storage.delete_order(storage.create_order("CCC", "buy", "market", 2, external_id="ext-gone").id)
    storage.delete_position(storage.positions.get_by_symbol("BBB", is_open=False).id)
    storage.set_config_value("old_note", "gone")
    storage.delete_config("old_note")
