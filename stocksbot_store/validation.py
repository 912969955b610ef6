"""Checks on text input: symbols, names, ids and keys.

Text is stored exactly as given (quotes, semicolons and any unicode are fine:
every statement is parameterised) as long as it fits its column; anything else is
a :class:`~stocksbot_store.errors.ValidationError` naming the field.
"""

from __future__ import annotations

from typing import Any

from .errors import ValidationError
from .fields import shown

SYMBOL_MAX = 64
NAME_MAX = 200


def check_text(value: Any, field: str, max_length: int, *, optional: bool = False) -> str | None:
    """A non-blank string of at most ``max_length`` characters (or None if optional)."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValidationError(field, f"must be text, got {type(value).__name__}")
    if not value.strip():
        raise ValidationError(field, "must not be empty")
    if len(value) > max_length:
        raise ValidationError(field, f"is {len(value)} characters long; the limit is {max_length}")
    if "\x00" in value:
        raise ValidationError(field, "must not contain NUL characters")
    return value


def check_symbol(value: Any) -> str:
    """A ticker symbol: non-empty text of at most :data:`SYMBOL_MAX` characters."""
    return check_text(value, "symbol", SYMBOL_MAX)


def check_external_id(value: Any, field: str = "external_id") -> str | None:
    """A broker id (optional); numbers are accepted and stored as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        # A number too long to be an id is refused before str() (which raises past
        # 4,300 digits).
        value = str(value) if value.bit_length() <= 4 * NAME_MAX else "x" * (NAME_MAX + 1)
    return check_text(value, field, NAME_MAX, optional=True)


def check_id(value: Any, field: str) -> int:
    """A row id: a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise ValidationError(field, f"must be a positive 64-bit integer id, got {shown(value)}")
    return value
