"""Checks on text input: symbols, names, ids and keys, and free text.

Text is stored exactly as given (quotes, semicolons and any printable unicode are
fine: every statement is parameterised) as long as it fits its column and holds
no character a terminal or a driver would act on. Two rules, one per kind of text:

* **Identifiers** (symbols, strategy names and types, config keys, broker ids:
  :func:`check_text`) hold no control character at all: no C0 (``\\x00``-``\\x1f``,
  tab, newline and carriage return included), no DEL (``\\x7f``), no C1
  (``\\x80``-``\\x9f``), no bidirectional override or isolate (``U+202A``-``U+202E``,
  ``U+2066``-``U+2069``), and no lone surrogate. They are shown in one cell of a
  table and matched exactly, where a hidden character only misleads.
* **Free text** (descriptions, config values, the strings and keys of a strategy's
  config: :func:`check_free_text`) may keep tab, newline and carriage return, and
  refuses every other control character (C0, DEL, C1) and lone surrogates.

Anything else is a :class:`~stocksbot_store.errors.ValidationError` naming the
field, and nothing is written. Text stored before these rules is escaped by
whatever displays it.
"""

from __future__ import annotations

import re
from typing import Any, Literal, overload

from .errors import ValidationError
from .fields import shown

SYMBOL_MAX = 64
NAME_MAX = 200

_SURROGATE = "\ud800-\udfff"
#: Characters no identifier may hold.
_NOT_IN_IDENTIFIERS = re.compile(f"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069{_SURROGATE}]")
#: Characters no free text may hold (tab, newline and carriage return are allowed).
_NOT_IN_FREE_TEXT = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_SURROGATE}]")


def _refuse(value: str, field: str, pattern: re.Pattern[str]) -> None:
    found = pattern.search(value)
    if found is None:
        return
    char = found.group()
    if "\ud800" <= char <= "\udfff":
        raise ValidationError(
            field,
            f"holds a lone surrogate ({ascii(char)}) at position "
            f"{found.start()}, which is not text: fix its encoding",
        )
    if char == "\x00":
        raise ValidationError(field, "must not contain NUL characters")
    raise ValidationError(
        field, f"holds the control character {ascii(char)} at position {found.start()}; remove it"
    )


@overload
def check_text(
    value: Any, field: str, max_length: int, *, optional: Literal[False] = False
) -> str: ...


@overload
def check_text(value: Any, field: str, max_length: int, *, optional: bool) -> str | None: ...


def check_text(value: Any, field: str, max_length: int, *, optional: bool = False) -> str | None:
    """A non-blank identifier of at most ``max_length`` characters with no control
    character (or None if optional); see the module docstring."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValidationError(field, f"must be text, got {type(value).__name__}")
    if not value.strip():
        raise ValidationError(field, "must not be empty")
    if len(value) > max_length:
        raise ValidationError(field, f"is {len(value)} characters long; the limit is {max_length}")
    # Every character refused here is one str.isprintable() refuses too (control,
    # format and surrogate code points), and it is checked in C a few times faster than
    # the pattern: only text it refuses (a no-break space, say) needs the pattern.
    if not value.isprintable():
        _refuse(value, field, _NOT_IN_IDENTIFIERS)
    return value


def check_free_text(value: Any, field: str) -> Any:
    """``value`` unchanged if it may be stored as free text (tab, newline and carriage
    return allowed; see the module docstring). Lists and dicts (a strategy's config)
    are checked through, keys included; other values pass as they are."""
    # A walk with a stack, not recursion: a deeply nested or self-containing config is
    # refused by the JSON field with its own message, not by a RecursionError here.
    todo, seen = [value], set()
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            _refuse(item, field, _NOT_IN_FREE_TEXT)
        elif isinstance(item, (dict, list, tuple)) and id(item) not in seen:
            seen.add(id(item))
            todo.extend(item.items() if isinstance(item, dict) else item)
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
