"""Field types that keep money exact and time in UTC on every backend.

* :class:`ExactDecimalField` stores a :class:`~decimal.Decimal` as ``NUMERIC`` on
  PostgreSQL and as ``TEXT`` on SQLite (where ``DECIMAL`` would be a float), always
  rounded half-even to :data:`SCALE` places and written in plain fixed-point form.
* :class:`UTCDateTimeField` stores ``TIMESTAMPTZ`` on PostgreSQL and fixed-width
  ISO text with a ``+00:00`` offset on SQLite, so text comparison is time
  comparison. Values come back timezone-aware in UTC.
* :class:`EnumField` stores a ``str`` enum by its value and returns the member.

The DDL type of the first two depends on the backend: :data:`FIELD_TYPES` maps the
custom type names to each backend's column type, and
:func:`stocksbot_store.database.prepare_database` installs that mapping.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any

from peewee import CharField, Field

from .errors import ValidationError

#: Decimal places kept for every quantity, price and amount.
SCALE = 10
#: Largest magnitude accepted for a quantity, price or amount.
MAX_MAGNITUDE = Decimal(10) ** 15

_QUANTUM = Decimal(1).scaleb(-SCALE)
_ONE = Decimal(1)
_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)

UTC = dt.timezone.utc

#: Custom column type names and what each backend stores them as.
FIELD_TYPES: dict[str, dict[str, str]] = {
    "sqlite": {"EXACT_DECIMAL": "TEXT", "UTC_DATETIME": "TEXT"},
    "postgres": {"EXACT_DECIMAL": "NUMERIC", "UTC_DATETIME": "TIMESTAMPTZ"},
}


def quantize(value: Decimal) -> Decimal:
    """Round ``value`` half-even to :data:`SCALE` places (never truncate)."""
    return value.quantize(_QUANTUM, context=_CONTEXT)


def to_decimal(value: Any, field: str = "value") -> Decimal:
    """Turn user input into an exact, rounded :class:`Decimal`.

    Floats are taken by their ``repr`` (``150.1`` means ``Decimal("150.1")``), not by
    their binary value. ``bool``, NaN, infinities, non-numbers and magnitudes above
    :data:`MAX_MAGNITUDE` raise :class:`ValidationError` naming ``field``.
    """
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, bool) or value is None:
        raise ValidationError(field, f"must be a number, got {value!r}")
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(field, f"must be a finite number, got {value!r}")
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValidationError(field, f"must be a number, got {value[:40]!r}") from None
    else:
        raise ValidationError(field, f"must be a number, got {type(value).__name__}")
    if not number.is_finite():
        raise ValidationError(field, f"must be a finite number, got {value!r}")
    if abs(number) >= MAX_MAGNITUDE:
        raise ValidationError(field, f"{value!r} is too large (limit {MAX_MAGNITUDE:.0e})")
    return tidy(quantize(number))


def to_positive_decimal(value: Any, field: str) -> Decimal:
    """Like :func:`to_decimal`, but the rounded value must be greater than zero."""
    number = to_decimal(value, field)
    if number <= 0:
        raise ValidationError(field, f"must be a positive number, got {value!r}")
    return number


def to_non_negative_decimal(value: Any, field: str) -> Decimal:
    """Like :func:`to_decimal`, but the rounded value must not be negative."""
    number = to_decimal(value, field)
    if number < 0:
        raise ValidationError(field, f"must not be negative, got {value!r}")
    return number


def tidy(value: Decimal) -> Decimal:
    """The same number without trailing zeros and never in exponent form
    (``Decimal("150.1000000000")`` -> ``Decimal("150.1")``, ``0E-10`` -> ``0``)."""
    if value == value.to_integral_value():
        return value.quantize(_ONE)
    return value.normalize()


def decimal_text(value: Decimal) -> str:
    """The fixed-point text a decimal is stored as (``'150.1000000000'``)."""
    return format(quantize(value), "f")


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(UTC)


def to_utc(value: Any, field: str = "time") -> dt.datetime:
    """Normalise a datetime (or ISO string) to an aware UTC datetime.

    A naive datetime is taken to be UTC already, which is what every value this
    store writes is.
    """
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(field, f"is not an ISO datetime: {value[:40]!r}") from None
    if not isinstance(value, dt.datetime):
        raise ValidationError(field, f"must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def datetime_text(value: dt.datetime) -> str:
    """Fixed-width ISO text of a datetime in UTC (``2026-01-05 14:30:00.000000+00:00``),
    as stored on SQLite. A value already in UTC, as every time on the fill path is,
    is formatted without conversion: ``isoformat`` costs a third of ``strftime``."""
    if value.tzinfo is not UTC:
        value = to_utc(value)
    return value.isoformat(" ", "microseconds")


class ExactDecimalField(Field):
    """A decimal that stays exact: ``NUMERIC`` on PostgreSQL, ``TEXT`` on SQLite."""

    field_type = "EXACT_DECIMAL"

    def db_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return decimal_text(to_decimal(value, self.name or "value"))

    def python_value(self, value: Any) -> Decimal | None:
        if value is None:
            return None
        return tidy(value if isinstance(value, Decimal) else Decimal(str(value)))


class UTCDateTimeField(Field):
    """A point in time, read back as an aware ``datetime`` in UTC."""

    field_type = "UTC_DATETIME"

    def db_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return datetime_text(to_utc(value, self.name or "time"))

    def python_value(self, value: Any) -> dt.datetime | None:
        if value is None:
            return None
        return to_utc(value)


class EnumField(CharField):
    """A ``str`` enum stored by value. Plain strings are accepted on input."""

    def __init__(self, enum_class: type[enum.Enum], **kwargs: Any) -> None:
        self.enum_class = enum_class
        kwargs.setdefault("max_length", max(len(m.value) for m in enum_class))
        super().__init__(**kwargs)

    def db_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return coerce_enum(self.enum_class, value, self.name or "value").value

    def python_value(self, value: Any) -> enum.Enum | None:
        if value is None:
            return None
        return self.enum_class(value)


def coerce_enum(enum_class: type[enum.Enum], value: Any, field: str) -> Any:
    """Return the member of ``enum_class`` that ``value`` names (case-insensitive)."""
    if isinstance(value, enum_class):
        return value
    if isinstance(value, str):
        try:
            return enum_class(value.strip().lower())
        except ValueError:
            pass
    allowed = ", ".join(m.value for m in enum_class)
    raise ValidationError(field, f"must be one of {allowed}; got {str(value)[:40]!r}")


class JSONTextField(Field):
    """A JSON value stored as text on every backend (the same bytes everywhere)."""

    field_type = "TEXT"

    def db_value(self, value: Any) -> str | None:
        if value is None:
            return None
        try:
            # allow_nan=False: NaN/Infinity are not JSON, and other readers reject them.
            return json.dumps(value, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValidationError(self.name or "config", f"is not JSON-serialisable: {e}") from None

    def python_value(self, value: Any) -> Any:
        if value is None or not isinstance(value, str):
            return value
        return json.loads(value)
