"""Money is exact and time is UTC, on every backend."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from stocksbot_store import ValidationError
from stocksbot_store.fields import to_decimal, to_utc
from stocksbot_store.models import Order, Trade

PLUS_ONE = dt.timezone(dt.timedelta(hours=1))


def test_decimals_come_back_exactly(storage):
    order = storage.create_order("X", "buy", "limit", "123456789.123456789", "0.0000000001")
    again = storage.orders.get(order.id)
    assert again.quantity == Decimal("123456789.123456789")
    assert again.price == Decimal("0.0000000001")
    assert isinstance(again.quantity, Decimal)


def test_floats_are_taken_by_their_repr(storage):
    order = storage.create_order("X", "buy", "limit", 0.1, 150.1)
    again = storage.orders.get(order.id)
    assert again.quantity == Decimal("0.1") and again.price == Decimal("150.1")


def test_values_round_half_even_to_ten_places_never_truncate():
    assert to_decimal("1.00000000005") == Decimal("1.0000000000")
    assert to_decimal("1.00000000015") == Decimal("1.0000000002")
    assert to_decimal("0.99999999999") == Decimal("1")


def test_sums_stay_exact_over_many_fills(storage):
    # 0.1 + 0.2 != 0.3 in floats; ten fills of 0.1 must fill an order of exactly 1.
    order = storage.create_order("X", "buy", "market", 1)
    for _ in range(10):
        storage.record_trade(order.id, "X", "buy", 0.1, 10.1)
    order = storage.orders.get(order.id)
    assert order.filled_quantity == Decimal(1) and order.status == "filled"
    assert storage.get_position_by_symbol("X").cost_basis == Decimal("10.1")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "abc", None, True, [1], 1e30])
def test_non_numbers_are_rejected_naming_the_field(bad):
    with pytest.raises(ValidationError) as info:
        to_decimal(bad, "price")
    assert info.value.field == "price" and isinstance(info.value, ValueError)


def test_times_are_aware_utc_when_read_back(storage):
    order = storage.create_order("X", "buy", "market", 1)
    at = dt.datetime(2026, 3, 1, 10, 30, tzinfo=ZoneInfo("America/New_York"))
    trade = storage.record_trade(order.id, "X", "buy", 1, 5, executed_at=at)
    stored = storage.trades.get(trade.id)
    assert stored.executed_at == at
    assert stored.executed_at.utcoffset() == dt.timedelta(0)
    assert stored.executed_at.hour == 15
    for value in (stored.created_at, storage.orders.get(order.id).filled_at):
        assert value.tzinfo is not None and value.utcoffset() == dt.timedelta(0)


def test_a_query_matches_the_same_instant_in_any_zone(storage, db):
    order = storage.create_order("X", "buy", "market", 2)
    utc_time = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)
    storage.record_trade(order.id, "X", "buy", 1, 5, executed_at=utc_time)
    storage.record_trade(order.id, "X", "buy", 1, 5,
                         executed_at=dt.datetime(2026, 1, 1, 14, 0, tzinfo=PLUS_ONE))
    same_instant = utc_time.astimezone(PLUS_ONE)  # 13:00+01:00
    hits = list(Trade.select().where(Trade.executed_at == same_instant).bind(db))
    assert len(hits) == 1
    later = list(Trade.select().where(Trade.executed_at > same_instant).bind(db))
    assert [t.executed_at.hour for t in later] == [13]  # 14:00+01:00 is 13:00 UTC


def test_updated_at_is_kept_by_the_store(storage):
    order = storage.create_order("X", "buy", "market", 1)
    before = storage.orders.get(order.id).updated_at
    storage.update_order_status(order.id, "open")
    assert storage.orders.get(order.id).updated_at > before


def test_naive_datetimes_are_taken_as_utc():
    assert to_utc(dt.datetime(2026, 1, 1, 12)) == dt.datetime(2026, 1, 1, 12,
                                                               tzinfo=dt.timezone.utc)


def test_enums_accept_plain_strings_and_reject_others(storage, db):
    order = storage.create_order("X", "BUY", "Limit", 1, 2)
    assert order.side == "buy" and order.type == "limit"
    with pytest.raises(ValidationError) as info:
        storage.create_order("X", "hold", "market", 1)
    assert info.value.field == "side"
    assert Order.select().bind(db).count() == 1
