"""Field types that keep money exact and time in UTC on every backend.

* :class:`ExactDecimalField` stores a :class:`~decimal.Decimal` as ``NUMERIC`` on
  PostgreSQL and as ``TEXT`` on SQLite (where ``DECIMAL`` would be a float), always
  rounded half-even to :data:`SCALE` places and written in plain fixed-point form.
* :class:`UTCDateTimeField` stores ``TIMESTAMPTZ`` on PostgreSQL and fixed-width
  ISO text with a ``+00:00`` offset on SQLite, so text comparison is time
  comparison. Values come back timezone-aware in UTC.
* :class:`EnumField` stores a ``str`` enum by its value and returns the member.
* :class:`SwitchField` is a boolean that lets the bot trade: it reads as on only when
  it holds the database's own true, so a value written by hand reads as off.

The DDL type of the first two depends on the backend: :data:`FIELD_TYPES` maps the
custom type names to each backend's column type, and
:func:`stocksbot_store.database.prepare_database` installs that mapping.

How large, how small, how exact
-------------------------------
* A **quantity, price, commission, fee or any other amount** given to the store is
  below ``10**15`` in magnitude (:data:`MAX_MAGNITUDE`), and so is a position's
  quantity (a fill that would take it there is refused) and every average price (a
  weighted average of prices). Digits past the 10th place are rounded half-even.
* A **derived figure** -- a cost basis (quantity x price), a fill's realized P&L
  (quantity x price difference) -- is below ``10**30`` (:data:`MAX_DERIVED`, the
  largest product of two accepted amounts). Sums of realized P&L (a position's
  realized P&L, a strategy's gross profit and gross loss) are held below it too: a
  fill that would take one to it is refused with a :class:`ValidationError` naming
  it. So a strategy's total P&L stays within ``10**30`` either way and its max
  drawdown below ``2 x 10**30``. (Commission and fee totals grow by less than
  ``10**15`` a fill and cannot get near it.)
* Within those limits every sum, difference and product is **exact**: the store
  computes in :data:`MONEY_CONTEXT` (60 significant digits; the exact product of
  two amounts needs at most 50, a derived figure with its 10 places at most 41),
  whatever the caller's own :mod:`decimal` context is, and leaves the caller's
  context as it found it. A quotient (an average price, a win rate, a profit
  factor) is rounded half-even to 10 places.
* Input that is no amount at all is refused quickly, before any arithmetic: text of
  more than :data:`MAX_NUMBER_TEXT` characters, and a non-zero number closer to zero
  than ``1e-100`` (no broker sends one; it is a malformed or hostile value).
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import json
import math
from collections.abc import Callable
from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    Underflow,
    localcontext,
)
from typing import Any, TypeVar

from peewee import BooleanField, CharField, Field

from .errors import CorruptRowError, ValidationError

#: Decimal places kept for every quantity, price and amount.
SCALE = 10
#: Digits before the point of the largest accepted quantity, price or amount.
MAGNITUDE_DIGITS = 15
#: Every quantity, price or amount is below this in magnitude.
MAX_MAGNITUDE = Decimal(10) ** MAGNITUDE_DIGITS
#: Digits before the point of the largest derived figure (a cost basis, a P&L sum).
DERIVED_DIGITS = 2 * MAGNITUDE_DIGITS
#: Every derived figure is below this in magnitude.
MAX_DERIVED = Decimal(10) ** DERIVED_DIGITS
#: Longest text accepted as a number.
MAX_NUMBER_TEXT = 100

#: The decimal context every computation of the store runs in: exact for +, - and x
#: within the limits above, half-even, and trapping only what is a bug in the store
#: (an invalid operation, a division by zero, an overflow), never Inexact or Rounded.
MONEY_CONTEXT = Context(
    prec=60,
    rounding=ROUND_HALF_EVEN,
    Emax=999_999,
    Emin=-999_999,
    capitals=1,
    clamp=0,
    flags=[],
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
# Reads number text exactly: more digits than any accepted text has, any exponent
# (a huge or tiny one is refused by size afterwards, with a message that says so).
_PARSE_CONTEXT = Context(
    prec=MAX_NUMBER_TEXT,
    rounding=ROUND_HALF_EVEN,
    Emax=MAX_EMAX,
    Emin=MIN_EMIN,
    flags=[],
    traps=[InvalidOperation, Underflow],
)
_QUANTUM = Decimal(1).scaleb(-SCALE)
_ONE = Decimal(1)
_quantize = MONEY_CONTEXT.quantize
_integral = MONEY_CONTEXT.to_integral_value
_normalize = MONEY_CONTEXT.normalize
_TINIEST_EXPONENT = -100

UTC = dt.timezone.utc

#: Custom column type names and what each backend stores them as.
FIELD_TYPES: dict[str, dict[str, str]] = {
    "sqlite": {"EXACT_DECIMAL": "TEXT", "UTC_DATETIME": "TEXT"},
    "postgres": {"EXACT_DECIMAL": "NUMERIC", "UTC_DATETIME": "TIMESTAMPTZ"},
}

F = TypeVar("F", bound=Callable[..., Any])
E = TypeVar("E", bound=enum.Enum)


def money_context() -> Any:
    """A context manager running its block in :data:`MONEY_CONTEXT` (a fresh copy, so
    nothing it does touches the caller's context, which is current again after it)."""
    return localcontext(MONEY_CONTEXT)


def in_money_context(function: F) -> F:
    """Decorate a public call so all its decimal arithmetic runs in
    :data:`MONEY_CONTEXT`, whatever the caller's thread context is."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        with localcontext(MONEY_CONTEXT):
            return function(*args, **kwargs)

    return run  # type: ignore[return-value]


def quantize(value: Decimal) -> Decimal:
    """Round ``value`` half-even to :data:`SCALE` places (never truncate)."""
    # The context's method, not ``value.quantize(..., context=...)``: the same
    # operation, without parsing keyword arguments (a third of its cost, and the fill
    # path rounds several times per fill). So in the other conversions below.
    return _quantize(value, _QUANTUM)


def shown(value: Any) -> str:
    """A short rendering of a rejected input for an error message: never the whole of
    a huge value, and never an exception of its own (``str(10**5000)`` raises)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, str):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    try:
        text = repr(value)
    except Exception:
        return f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def to_decimal(value: Any, field: str = "value", limit_digits: int = MAGNITUDE_DIGITS) -> Decimal:
    """Turn user input into an exact, rounded :class:`Decimal`.

    Floats are taken by their ``repr`` (``150.1`` means ``Decimal("150.1")``), not by
    their binary value. ``bool``, NaN, infinities, non-numbers, text longer than
    :data:`MAX_NUMBER_TEXT`, non-zero magnitudes below ``1e-100`` and magnitudes of
    ``10**limit_digits`` or more (:data:`MAX_MAGNITUDE` by default) raise
    :class:`ValidationError` naming ``field``. The caller's decimal context is
    neither used nor changed.
    """
    kind = type(value)
    if (kind is str and len(value) <= MAX_NUMBER_TEXT) or (
        kind is int and -_CACHED_INT < value < _CACHED_INT
    ):
        try:
            return _known_amount(value, limit_digits)
        except ValidationError:
            pass  # converted again below, for the message naming ``field``
    elif kind is Decimal and value.is_finite():
        # The common case of a Decimal, without :func:`_convert`'s type tests: one well
        # inside the limits (below a tenth of it, so rounding cannot reach it; zero,
        # or not closer to zero than the tiniest amount), rounded and tidied.
        exponent = value.adjusted()
        if exponent < limit_digits - 1 and (exponent >= _TINIEST_EXPONENT or not value):
            return tidy(_quantize(value, _QUANTUM))
    return _convert(value, field, limit_digits)


#: Ints below this in magnitude go through the cache (any larger one is refused or rare).
_CACHED_INT = 2**63


@functools.lru_cache(maxsize=4096, typed=True)
def _known_amount(value: str | int, limit_digits: int) -> Decimal:
    """:func:`to_decimal` of short text or an int, remembered: a broker's fills repeat
    the same few quantities, prices and commissions, and converting one (parse, range
    checks, rounding, tidying) costs a microsecond, a tenth of what a whole fill may
    cost in a bulk import. Safe to share: a Decimal is immutable, and the conversion
    depends on no context. Keyed by type too (``typed``): "1" and 1 are kept apart."""
    return _convert(value, "value", limit_digits)


def _convert(value: Any, field: str, limit_digits: int) -> Decimal:
    if isinstance(value, str):
        if len(value) > MAX_NUMBER_TEXT:
            raise ValidationError(
                field,
                f"must be a number of at most {MAX_NUMBER_TEXT} "
                f"characters, got {len(value)}: {shown(value)}",
            )
        try:
            number = _PARSE_CONTEXT.create_decimal(value.strip())
        except ArithmeticError:
            raise ValidationError(field, f"must be a number, got {shown(value)}") from None
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, bool) or value is None:
        raise ValidationError(field, f"must be a number, got {value!r}")
    elif isinstance(value, int):
        if value.bit_length() > 4 * limit_digits:  # far too large to convert first
            raise ValidationError(field, _too_large(value, limit_digits))
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(field, f"must be a finite number, got {value!r}")
        number = Decimal(repr(value))
    else:
        raise ValidationError(field, f"must be a number, got {type(value).__name__}")
    if not number.is_finite():
        raise ValidationError(field, f"must be a finite number, got {shown(value)}")
    # The exponent of the first digit: 14 for 999..., so at the limit from 15 on.
    # Checked before rounding, which would raise for a value beyond the precision.
    exponent = number.adjusted()
    if exponent >= limit_digits and number:
        raise ValidationError(field, _too_large(value, limit_digits))
    if exponent < _TINIEST_EXPONENT and number:
        raise ValidationError(
            field,
            f"{shown(value)} is closer to zero than 1e-100: not an "
            f"amount (amounts are kept to {SCALE} places)",
        )
    rounded = _quantize(number, _QUANTUM)
    if rounded.adjusted() >= limit_digits:  # 999...9.99999999999 rounded up to the limit
        raise ValidationError(field, _too_large(value, limit_digits))
    return tidy(rounded)


def _too_large(value: Any, limit_digits: int) -> str:
    return f"{shown(value)} is too large: amounts must be below 1e{limit_digits} in magnitude"


def check_derived(value: Decimal, field: str, limit_digits: int = DERIVED_DIGITS) -> Decimal:
    """``value``, or :class:`ValidationError` naming ``field`` if it is at or beyond
    ``10**limit_digits`` in magnitude (:data:`MAX_DERIVED` by default)."""
    if value.adjusted() >= limit_digits and value:
        raise ValidationError(
            field,
            f"would become {value}, beyond the store's limit of "
            f"1e{limit_digits} in magnitude; nothing was written",
        )
    return value


def to_positive_decimal(value: Any, field: str) -> Decimal:
    """Like :func:`to_decimal`, but the rounded value must be greater than zero."""
    number = to_decimal(value, field)
    if number <= 0:
        raise ValidationError(field, f"must be a positive number, got {shown(value)}")
    return number


def to_non_negative_decimal(value: Any, field: str) -> Decimal:
    """Like :func:`to_decimal`, but the rounded value must not be negative."""
    number = to_decimal(value, field)
    if number < 0:
        raise ValidationError(field, f"must not be negative, got {shown(value)}")
    return number


def tidy(value: Decimal) -> Decimal:
    """The same number without trailing zeros and never in exponent form
    (``Decimal("150.1000000000")`` -> ``Decimal("150.1")``, ``0E-10`` -> ``0``)."""
    if value == _integral(value):
        return _quantize(value, _ONE)
    return _normalize(value)


def decimal_text(value: Decimal) -> str:
    """The fixed-point text a decimal is stored as (``'150.1000000000'``)."""
    return format(quantize(value), "f")


def scaled_text(value: Decimal) -> str:
    """:func:`decimal_text` of a value with at most :data:`SCALE` places, as every
    amount of the fill path is (checked input, quantized results), for a third of
    its cost: there is nothing to round, so formatting to ten places is exact whatever
    the context. (A value with more places would be rounded by the current context's
    rounding: half-even, as :func:`decimal_text` rounds, in :data:`MONEY_CONTEXT`.)
    Zero, the usual fee, is known text: a tenth of the cost."""
    if not value and not value.is_signed():
        return _SCALED_ZERO
    return format(value, _SCALED)


_SCALED = f".{SCALE}f"
_SCALED_ZERO = format(Decimal(0), _SCALED)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(UTC)


def to_utc(value: Any, field: str = "time") -> dt.datetime:
    """Normalise a datetime (or ISO string) to an aware UTC datetime.

    A naive datetime is taken to be UTC already, which is what every value this
    store writes is. Anything else, and a time that is outside years 1-9999 once in
    UTC (``datetime(1, 1, 1, tzinfo=+05:00)``), raises :class:`ValidationError`.
    """
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(
                field,
                f"{value[:40]!r} is not an ISO-8601 time; give one such as 2026-11-25 or "
                "2026-11-25T14:30:00+00:00 (no zone means UTC)",
            ) from None
    if not isinstance(value, dt.datetime):
        raise ValidationError(field, f"must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValidationError(
            field, f"{value.isoformat()} is outside years 1-9999 in UTC"
        ) from None
    except (ArithmeticError, TypeError, ValueError) as e:  # a tzinfo that fails
        raise ValidationError(field, f"cannot be converted to UTC: {e}") from None


#: The times the store takes for an event it records (a fill's execution, a mark):
#: from 1900 to the end of 2199, in UTC. Reports work them out in any zone, day by day
#: between the first and the last: a fill dated year 1 or 9999 (a typo, a broker's
#: placeholder) made every zone's report overflow, or walk thousands of years.
EVENT_TIMES = (dt.datetime(1900, 1, 1, tzinfo=UTC), dt.datetime(2200, 1, 1, tzinfo=UTC))


def to_event_time(value: Any, field: str) -> dt.datetime:
    """:func:`to_utc`, refusing a time outside :data:`EVENT_TIMES` with a
    :class:`ValidationError`."""
    # A datetime in UTC already (every time the store hands out) is returned as it is.
    at = value if type(value) is dt.datetime and value.tzinfo is UTC else to_utc(value, field)
    if not EVENT_TIMES[0] <= at < EVENT_TIMES[1]:
        raise ValidationError(
            field,
            f"{at.isoformat()} is outside the years 1900-2199; give the time the event "
            "happened (UTC, or with its zone)",
        )
    return at


def datetime_text(value: dt.datetime) -> str:
    """Fixed-width ISO text of a datetime in UTC (``2026-01-05 14:30:00.000000+00:00``),
    as stored on SQLite. A value already in UTC, as every time on the fill path is,
    is formatted without conversion: ``isoformat`` costs a third of ``strftime``."""
    if value.tzinfo is not UTC:
        value = to_utc(value)
    return value.isoformat(" ", "microseconds")


class ExactDecimalField(Field):
    """A decimal that stays exact: ``NUMERIC`` on PostgreSQL, ``TEXT`` on SQLite.

    Any figure the store keeps may be written, up to :data:`MAX_DERIVED`; the
    narrower limit on what a caller gives (:data:`MAX_MAGNITUDE`) is applied where it
    is given (the service's arguments)."""

    field_type = "EXACT_DECIMAL"

    def db_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return decimal_text(to_decimal(value, self.name or "value", DERIVED_DIGITS))

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


class SwitchField(BooleanField):
    """A flag that lets the bot trade (a strategy's ``is_active`` and ``is_enabled``).

    It fails safe: it reads True only for the database's own true (PostgreSQL's
    ``true``, SQLite's ``1``), as the store's SQL filters (``WHERE is_active``) do.
    Anything else a SQLite file can hold, such as the text ``'false'`` an operator's
    ``UPDATE`` wrote (which plain ``bool()`` reads as True), reads as False.
    """

    def python_value(self, value: Any) -> bool | None:
        if value is None:
            return None
        return value is True or (type(value) is int and value == 1)


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
        """The member a stored value names (any case, spaces ignored, as on input); a
        value that names none was written outside the store: :class:`CorruptRowError`."""
        if value is None:
            return None
        try:
            return self.enum_class(value)  # as the store writes it: the common case
        except ValueError:
            pass
        try:
            return coerce_enum(self.enum_class, value, self.name or "value")
        except ValidationError:
            table = self.model._meta.table_name if hasattr(self, "model") else "a table"
            allowed = ", ".join(m.value for m in self.enum_class)
            raise CorruptRowError(
                f"{table}.{self.column_name} holds {shown(value)}, which is none of "
                f"{allowed}: the row was written outside the store; set it to one of them"
            ) from None


def coerce_enum(enum_class: type[E], value: Any, field: str) -> E:
    """Return the member of ``enum_class`` that ``value`` names (case-insensitive)."""
    if isinstance(value, enum_class):
        return value
    if isinstance(value, str):
        try:
            return enum_class(value.strip().lower())
        except ValueError:
            pass
    allowed = ", ".join(m.value for m in enum_class)
    raise ValidationError(field, f"must be one of {allowed}; got {shown(value)}")


class JSONTextField(Field):
    """A JSON value stored as text on every backend (the same bytes everywhere)."""

    field_type = "TEXT"

    def db_value(self, value: Any) -> str | None:
        if value is None:
            return None
        try:
            # allow_nan=False: NaN/Infinity are not JSON, and other readers reject them.
            return json.dumps(value, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as e:
            raise ValidationError(self.name or "config", f"is not JSON-serialisable: {e}") from None

    def python_value(self, value: Any) -> Any:
        if value is None or not isinstance(value, str):
            return value
        return json.loads(value)
