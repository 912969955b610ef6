"""StorageService beyond fills: orders' statuses, positions by hand, strategies, config."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from conftest import dump_tables

from stocksbot_store import (
    DuplicateError,
    InvalidTransitionError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from stocksbot_store.models import Trade


@pytest.mark.parametrize(
    "path",
    [
        ["open", "partially_filled", "filled"],
        ["filled"],  # a market order: PENDING -> FILLED
        ["open", "cancelled"],
        ["rejected"],
    ],
)
def test_statuses_move_forward(storage, path):
    order = storage.create_order("X", "buy", "market", 2)
    for status in path:
        if status == "partially_filled":
            storage.record_trade(order.id, "X", "buy", 1, 10)
        elif status == "filled":
            left = storage.orders.get(order.id).remaining_quantity
            storage.record_trade(order.id, "X", "buy", left, 10)
        assert storage.update_order_status(order.id, status).status == status


@pytest.mark.parametrize(
    "start, target",
    [
        ("open", "pending"),
        ("cancelled", "open"),
        ("rejected", "cancelled"),
        ("filled", "cancelled"),
    ],
)
def test_backward_or_final_status_changes_are_refused(storage, db, start, target):
    order = storage.create_order("X", "buy", "market", 1)
    if start == "filled":
        storage.record_trade(order.id, "X", "buy", 1, 10)
    else:
        storage.update_order_status(order.id, start)
    before = dump_tables(db)
    with pytest.raises(InvalidTransitionError, match=start):
        storage.update_order_status(order.id, target)
    assert dump_tables(db) == before


def test_fill_figures_come_from_fills_not_from_the_caller(storage):
    order = storage.create_order("X", "buy", "market", 10)
    with pytest.raises(ValidationError, match="record_trade"):
        storage.update_order_status(order.id, "filled", filled_quantity=10, avg_fill_price=5)
    storage.record_trade(order.id, "X", "buy", 10, 5)
    assert storage.update_order_status(order.id, "filled", 10, 5).status == "filled"


def test_a_bot_attaches_the_broker_id_after_sending(storage):
    order = storage.create_order("X", "buy", "market", 1)
    storage.attach_external_id(order.id, "BRK-1")
    assert storage.orders.get_by_external_id("BRK-1").id == order.id
    storage.attach_external_id(order.id, "BRK-1")  # said twice: fine
    with pytest.raises(ValidationError, match="BRK-1"):
        storage.attach_external_id(order.id, "BRK-2")
    other = storage.create_order("X", "buy", "market", 1)
    with pytest.raises(DuplicateError):
        storage.attach_external_id(other.id, "BRK-1")


def test_limit_orders_need_a_price(storage):
    with pytest.raises(ValidationError) as info:
        storage.create_order("X", "buy", "limit", 1)
    assert info.value.field == "price"


def test_an_unknown_strategy_is_named(storage):
    with pytest.raises(NotFoundError, match="ghost"):
        storage.create_order("X", "buy", "market", 1, strategy="ghost")


def test_create_position_records_an_adjustment_and_refuses_a_second(storage, db):
    storage.create_position("AAPL", "short", 10, 150)
    (trade,) = list(Trade.select().bind(db))
    assert trade.type == "adjustment" and trade.order_id is None and trade.side == "sell"
    before = dump_tables(db)
    with pytest.raises(DuplicateError, match="AAPL"):
        storage.create_position("AAPL", "long", 1, 1)
    assert dump_tables(db) == before


def test_update_position_quantity_adjusts_at_the_average_price(storage):
    position = storage.create_position("AAPL", "long", 10, 150)
    position = storage.update_position_quantity(position.id, 25)
    assert position.quantity == 25 and position.avg_entry_price == 150
    position = storage.update_position_quantity(position.id, 5)
    assert position.quantity == 5 and position.realized_pnl == 0


def test_strategies(storage):
    b = storage.create_strategy("b", "mean_reversion", is_active=True)
    a = storage.create_strategy("a", "momentum", {"k": [1, 2]})
    assert (b.is_active, a.is_active, a.is_enabled) == (True, False, True)  # the old default
    with pytest.raises(DuplicateError):
        storage.create_strategy("a")
    storage.set_strategy_active("b", False)
    storage.set_strategy_active(a.id, True)
    assert [s.name for s in storage.get_active_strategies()] == ["a"]
    assert storage.get_strategy_by_name("a").config == {"k": [1, 2]}
    assert storage.get_strategy_by_name("zzz") is None


def test_typed_config(storage):
    storage.set_config_value("trading_enabled", "true", "bool")
    storage.set_config_value("max_orders", 5, "int", "orders per minute")
    storage.set_config_value("risk", "0.02", "float")
    storage.set_config_value("symbols", ["AAPL", "MSFT"], "json")
    storage.set_config_value("name", "bot")
    assert storage.get_config_value("max_orders") == "5"
    assert storage.get_config("max_orders") == 5
    assert storage.get_config("risk") == 0.02
    assert storage.get_config("symbols") == ["AAPL", "MSFT"]
    assert storage.get_config("missing", "dflt") == "dflt"
    assert storage.get_all_config()["trading_enabled"] == "true"
    storage.set_trading_enabled(False)
    assert storage.is_trading_enabled() is False
    assert storage.config.get_by_key("max_orders").description == "orders per minute"


@pytest.mark.parametrize(
    "value, kind",
    [("maybe", "bool"), ("1.5", "int"), ("x", "float"), ("{oops", "json"), ("nan", "float")],
)
def test_config_values_must_read_as_their_type(storage, db, value, kind):
    before = dump_tables(db)
    with pytest.raises(ValidationError) as info:
        storage.set_config_value("k", value, kind)
    assert info.value.field == "k"
    assert dump_tables(db) == before


def test_unknown_config_type_is_refused(storage):
    with pytest.raises(ValidationError) as info:
        storage.set_config_value("k", "v", "yaml")
    assert info.value.field == "value_type"


def test_every_rejection_is_a_storage_error(storage):
    for call in (
        lambda: storage.record_trade(None, "X", "buy", 1, 1),
        lambda: storage.cancel_order(12345),
        lambda: storage.update_order_status("one", "open"),
        lambda: storage.create_order("", "buy", "market", 1),
        lambda: storage.create_order("X" * 65, "buy", "market", 1),
    ):
        with pytest.raises(StorageError):
            call()


def test_strategy_stats_when_nothing_happened(storage):
    storage.create_strategy("idle")
    (stats,) = storage.get_strategy_stats()
    assert (stats.trades, stats.win_rate, stats.net_pnl, stats.profit_factor) == (0, 0, 0, None)
    assert stats.last_trade_at is None
    assert isinstance(stats.gross_pnl, D)


@pytest.mark.parametrize(
    "fill, field",
    [
        ({"order_id": 1, "symbol": "X", "side": "buy", "qty": 1, "price": 10}, "qty"),
        (
            {"order_id": 1, "symbol": "X", "side": "buy", "quantity": 1, "price": 10, "fee": 1},
            "fee",
        ),
        ({"order_id": 1, "symbol": "X", "side": "buy", "price": 10}, "quantity"),
    ],
)
def test_a_typo_in_a_record_trades_dict_names_the_key(storage, db, fill, field):
    order = storage.create_order("X", "buy", "market", 5)
    good = {"order_id": order.id, "symbol": "X", "side": "buy", "quantity": 1, "price": 10}
    before = dump_tables(db)
    with pytest.raises(ValidationError) as info:
        storage.record_trades([good, {**fill, "order_id": order.id}])
    assert info.value.field == field
    assert (
        "accepted: order_id, symbol, side, quantity, price, commission, fees, "
        "external_id, executed_at" in str(info.value)
    )
    assert dump_tables(db) == before
