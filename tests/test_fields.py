"""Money is exact and time is UTC, on every backend."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from stocksbot_store import ValidationError
from stocksbot_store.fields import UTC, to_decimal, to_utc
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
    storage.record_trade(
        order.id, "X", "buy", 1, 5, executed_at=dt.datetime(2026, 1, 1, 14, 0, tzinfo=PLUS_ONE)
    )
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
    assert to_utc(dt.datetime(2026, 1, 1, 12)) == dt.datetime(
        2026, 1, 1, 12, tzinfo=dt.timezone.utc
    )


def test_enums_accept_plain_strings_and_reject_others(storage, db):
    order = storage.create_order("X", "BUY", "Limit", 1, 2)
    assert order.side == "buy" and order.type == "limit"
    with pytest.raises(ValidationError) as info:
        storage.create_order("X", "hold", "market", 1)
    assert info.value.field == "side"
    assert Order.select().bind(db).count() == 1


TOO_LARGE_OR_TOO_PRECISE = {
    "10**5000": 10**5000,
    "-10**5000": -(10**5000),
    "a million nines": "9" * 1_000_000,
    "a million places": "0." + "1" * 1_000_000,
    "Decimal 1e999999": Decimal("1e999999"),
    "1e999999": "1e999999",
    "1e99999999999": "1e99999999999",
    "1e-999999": "1e-999999",
    "Decimal 1e-999999": Decimal("1e-999999"),
    "1e-(huge)": "1e-99999999999999999999",
    "a million-digit Decimal": Decimal("9" * 1_000_000),
}


@pytest.mark.parametrize(
    "bad", TOO_LARGE_OR_TOO_PRECISE.values(), ids=TOO_LARGE_OR_TOO_PRECISE.keys()
)
def test_numbers_too_large_or_too_precise_are_refused_with_a_short_message(bad):
    with pytest.raises(ValidationError) as info:
        to_decimal(bad, "price")
    assert info.value.field == "price" and len(str(info.value)) < 200


@pytest.mark.parametrize(
    "good, stored",
    [
        ("999999999999999.9999999999", Decimal("999999999999999.9999999999")),
        ("-999999999999999.99999999994", Decimal("-999999999999999.9999999999")),
        ("1e-100", Decimal(0)),
        ("0E+999999", Decimal(0)),
        (" 7 ", Decimal(7)),
    ],
)
def test_numbers_up_to_the_limits_are_kept(good, stored):
    assert to_decimal(good, "price") == stored


PLUS_FIVE, MINUS_FIVE = (dt.timezone(dt.timedelta(hours=h)) for h in (5, -5))


@pytest.mark.parametrize(
    "bad",
    [
        dt.datetime(1, 1, 1, tzinfo=PLUS_FIVE),
        dt.datetime.max.replace(tzinfo=MINUS_FIVE),
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59.999999-00:01",
        "",
        0,
        False,
        [],
        {},
        "2026-02-30",
        "2026-01-01T25:00",
    ],
)
def test_times_outside_utc_years_or_not_times_are_refused(bad):
    with pytest.raises(ValidationError) as info:
        to_utc(bad, "executed_at")
    assert info.value.field == "executed_at"


def test_the_earliest_and_latest_utc_times_are_kept():
    assert to_utc(dt.datetime(1, 1, 1, 5, tzinfo=PLUS_FIVE)) == dt.datetime(1, 1, 1, tzinfo=UTC)
    assert to_utc(dt.datetime.max).tzinfo is UTC


def test_a_remembered_conversion_names_each_caller_field_and_keeps_its_limit():
    """Short text and ints are converted once and remembered; the next caller of the
    same value still gets its own field in an error, its own digit limit, and the
    same value whatever its decimal context."""
    import decimal

    for field in ("quantity", "price"):
        with pytest.raises(ValidationError, match=field):
            to_decimal("1e15", field)
        with pytest.raises(ValidationError, match=field):
            to_decimal("abc", field)
    assert to_decimal("1e15", "figure", 30) == Decimal(10) ** 15
    with decimal.localcontext(decimal.Context(prec=3)):
        assert str(to_decimal("123.4567", "price")) == "123.4567"
    assert str(to_decimal("123.4567", "price")) == "123.4567"
    assert to_decimal(1, "q") == to_decimal("1", "q") == 1
    with pytest.raises(ValidationError, match="flag"):
        to_decimal(True, "flag")


def test_scaled_text_is_decimal_text_for_amounts_at_scale_in_any_context():
    import decimal
    import random

    from stocksbot_store.fields import decimal_text, scaled_text

    rng = random.Random(3)
    values = [Decimal("-0"), Decimal(0), Decimal("1E+5"), Decimal("999999999999999.9999999999")]
    values += [
        Decimal(rng.randint(-(10**30), 10**30)).scaleb(-rng.randint(0, 10)) for _ in range(500)
    ]
    with decimal.localcontext(decimal.Context(prec=3, rounding=decimal.ROUND_DOWN)):
        assert [scaled_text(v) for v in values] == [decimal_text(v) for v in values]
