"""Typed config values: how a setting's text is checked, written and read back."""

from __future__ import annotations

import json
import math
from typing import Any

from .errors import ValidationError
from .fields import coerce_enum
from .models import ConfigValueType

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def to_text(value: Any, value_type: Any, key: str) -> tuple[str, ConfigValueType]:
    """Check ``value`` against ``value_type`` and return the text to store.

    Native values are accepted too (``True`` for a bool, a dict for json). A value
    that does not read as its type (a "bool" of "maybe") is a ValidationError.
    """
    kind = coerce_enum(ConfigValueType, value_type, "value_type")
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


def from_text(text: str | None, value_type: Any, key: str = "value") -> Any:
    """Read stored text as its type: bool, int, float, a json value or str."""
    kind = coerce_enum(ConfigValueType, value_type, "value_type")
    if text is None:
        return None
    if kind is ConfigValueType.STRING:
        return text
    if kind is ConfigValueType.BOOL:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValidationError(key, f"{text[:40]!r} is not a bool (use true or false)")
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
