"""The names in stocksbot_store.types say what the store's checks really accept."""

import datetime as dt
from decimal import Decimal
from typing import get_args

import pytest

from stocksbot_store import (
    ConfigValueType,
    OrderSideEnum,
    OrderStatusEnum,
    OrderTypeEnum,
    PositionSideEnum,
    ValidationError,
)
from stocksbot_store.config_values import to_bool
from stocksbot_store.fields import coerce_enum, to_decimal, to_utc
from stocksbot_store.reports import bound, zone_of
from stocksbot_store.types import (
    Amount,
    Flag,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    RangeBound,
    ValueType,
    When,
    Zone,
)

UTC = dt.timezone.utc


def test_an_amount_is_each_type_to_decimal_takes_and_nothing_else():
    samples = {Decimal: Decimal("150.1"), int: 150, float: 150.1, str: "150.1"}
    assert set(get_args(Amount)) == set(samples)
    for value in samples.values():
        assert to_decimal(value, "price") in (Decimal("150.1"), Decimal(150))
    for value in (None, True, b"150", [150], 150j):
        with pytest.raises(ValidationError, match="price"):
            to_decimal(value, "price")


def test_a_when_is_a_datetime_or_iso_text_and_a_date_is_not():
    assert set(get_args(When)) == {dt.datetime, str}
    at = dt.datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
    assert to_utc(at) == to_utc("2026-01-05T14:30:00+00:00") == at
    with pytest.raises(ValidationError, match="must be a datetime"):
        to_utc(dt.date(2026, 1, 5))


def test_a_range_bound_also_takes_a_date_and_a_zone_a_name():
    assert set(get_args(RangeBound)) == {dt.date, dt.datetime, str}
    day = dt.datetime(2026, 1, 5, tzinfo=UTC).timestamp()
    assert bound(dt.date(2026, 1, 5), UTC, "since") == day
    assert bound("2026-01-05T00:00:00+00:00", UTC, "since") == day
    assert set(get_args(Zone)) == {dt.tzinfo, str}
    assert zone_of("Europe/Paris").utcoffset(dt.datetime(2026, 1, 5)) == dt.timedelta(hours=1)
    assert zone_of(UTC) is UTC


@pytest.mark.parametrize(
    ("alias", "enum_class"),
    [
        (PositionSide, PositionSideEnum),
        (OrderSide, OrderSideEnum),
        (OrderType, OrderTypeEnum),
        (OrderStatus, OrderStatusEnum),
        (ValueType, ConfigValueType),
    ],
)
def test_an_enum_input_is_its_member_or_its_value_in_any_case(alias, enum_class):
    assert set(get_args(alias)) == {enum_class, str}
    for member in enum_class:
        assert coerce_enum(enum_class, member, "field") is member
        assert coerce_enum(enum_class, f" {member.value.upper()} ", "field") is member
    with pytest.raises(ValidationError, match="must be one of"):
        coerce_enum(enum_class, "sideways", "field")


def test_a_flag_is_a_bool_an_int_or_text():
    assert set(get_args(Flag)) == {bool, int, str}
    read = [to_bool(v, "switch") for v in (True, 1, "yes", False, 0, " OFF ")]
    assert read == [True, True, True, False, False, False]
    for value in (2, 0.5, None, "maybe"):
        with pytest.raises(ValidationError, match="switch"):
            to_bool(value, "switch")
