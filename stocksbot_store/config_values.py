"""Typed config values: how a setting's text is checked, written and read back, and
how a yes/no input is read (:func:`to_bool`), for settings and switches alike."""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import ValidationError
from .fields import coerce_enum
from .models import ConfigValueType
from .types import ConfigValue, ValueType

#: The switch that halts trading while it holds a false value (unset means enabled).
TRADING_ENABLED = "trading_enabled"

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_SPELLINGS = "true/false, 1/0, yes/no or on/off"


def to_bool(value: Any, field: str) -> bool:
    """Read a yes/no input: a bool, the int 0 or 1, or text spelling
    true/false, 1/0, yes/no, on/off (any case, surrounding spaces ignored).

    Anything else ("maybe", 2, 0.5, None, a list) is a :class:`ValidationError`:
    guessing would turn a halt given as ``"false"`` into "on" (a non-empty string is
    truthy).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValidationError(field, f"must be {_SPELLINGS}; got {str(value)[:40]!r}")


def clearly_true(text: str | None) -> bool:
    """Whether stored text says "yes" in one of the accepted spellings; everything
    else (None, "", "false", "garbage", "1.0") is not. For switches that must fail
    safe: a value nobody can read as "enabled" means disabled."""
    return text is not None and text.strip().lower() in _TRUE


def to_text(value: ConfigValue, value_type: ValueType, key: str) -> tuple[str, ConfigValueType]:
    """Check ``value`` against ``value_type`` and return the text to store.

    Native values are accepted too (``True`` for a bool, a dict for json). A value
    that does not read as its type (a "bool" of "maybe") is a ValidationError.
    """
    kind = coerce_enum(ConfigValueType, value_type, "value_type")
    if kind is ConfigValueType.BOOL:
        return ("true" if to_bool(value, key) else "false"), kind
    if kind is ConfigValueType.JSON and not isinstance(value, str):
        try:
            value = json.dumps(value)
        except (TypeError, ValueError) as e:
            raise ValidationError(key, f"cannot be stored as json: {e}") from None
    elif isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, (int, float)):
        value = repr(value)
    if not isinstance(value, str):
        raise ValidationError(key, f"must be text or a {kind.value}, got {type(value).__name__}")
    from_text(value, kind, key)
    return value, kind


def from_text(text: str | None, value_type: ValueType, key: str = "value") -> Any:
    """Read stored text as its type: bool, int, float, a json value or str."""
    kind = coerce_enum(ConfigValueType, value_type, "value_type")
    if text is None:
        return None
    if kind is ConfigValueType.STRING:
        return text
    if kind is ConfigValueType.BOOL:
        return to_bool(text, key)
    if kind is ConfigValueType.INT:
        try:
            return int(text.strip())
        except ValueError:
            raise ValidationError(key, f"{text[:40]!r} is not an int") from None
    if kind is ConfigValueType.FLOAT:
        try:
            number = float(text.strip())
        except ValueError:
            raise ValidationError(key, f"{text[:40]!r} is not a float") from None
        if not math.isfinite(number):
            raise ValidationError(key, f"{text[:40]!r} is not a finite float")
        return number
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValidationError(key, f"is not valid json: {e}") from None
