"""How the dashboard writes numbers, times and P&L: one place, so every view agrees."""

from __future__ import annotations

import datetime as dt
import unicodedata
from decimal import Decimal
from typing import Any

from rich.text import Text

CENT = Decimal("0.01")
GAIN = "green"
LOSS = "red"


#: Invisible characters that reorder or break a line: bidi overrides and isolates, line
#: and paragraph separators. Shown as ``\u202e`` and the like.
_LAYOUT = frozenset(
    "\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def visible(value: str) -> str:
    """``value`` with every control character made visible, so stored text can neither
    drive the terminal nor hide itself: C0 controls become their Unicode pictures
    (ESC is ``␛``, CR ``␍``, BEL ``␇``), DEL ``␡``, and C1 controls and bidi or line
    separators their ``\x9b`` / ``\u202e`` escapes. Everything else is kept as is.

    This is for display only; markup is never parsed from stored text either (cells
    are :class:`rich.text.Text`, and the views build their lines as ``Text``).
    """
    if value.isprintable():
        return value
    out = []
    for char in value:
        code = ord(char)
        if code < 0x20:
            out.append(chr(0x2400 + code))
        elif code == 0x7F:
            out.append("\u2421")
        elif 0x80 <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif char in _LAYOUT or unicodedata.category(char) in ("Cc", "Cs"):
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


class Cell(Text):
    """A table cell that remembers the value it sorts by (not its formatted text).

    Its text is passed through :func:`visible`: no cell can hold a control character.
    """

    def __init__(
        self, text: str, style: str = "", sort_value: Any = None, justify: str | None = None
    ) -> None:
        text = visible(text)
        super().__init__(text, style=style, justify=justify)  # type: ignore[arg-type]
        self.sort_value = text if sort_value is None else sort_value
        self.row_key: str | None = None

    @property
    def signature(self) -> tuple[str, str, Any]:
        """What must differ for the cell to be redrawn."""
        return self.plain, str(self.style), self.sort_value


def text(value: str | None, style: str = "") -> Cell:
    """A left-aligned text cell."""
    return Cell(value or "", style)


def number(value: Decimal | None, places: int = 2, style: str = "") -> Cell:
    """A right-aligned number with ``places`` decimals and thousands separators."""
    if value is None:
        return Cell("-", style, sort_value=None, justify="right")
    return Cell(f"{value:,.{places}f}", style, sort_value=value, justify="right")


def quantity(value: Decimal) -> Cell:
    """A quantity: whole numbers without decimals."""
    places = 0 if value == value.to_integral_value() else 4
    return number(value, places)


def pnl(value: Decimal | None) -> Cell:
    """Money that is a gain (green, with a +) or a loss (red)."""
    if value is None:
        return number(None)
    shown = value.quantize(CENT) + 0  # + 0 turns -0.00 into 0.00
    style = GAIN if shown > 0 else LOSS if shown < 0 else ""
    sign = "+" if shown > 0 else ""
    return Cell(f"{sign}{shown:,.2f}", style, sort_value=value, justify="right")


def side(value: str) -> Cell:
    """buy/long green, sell/short red."""
    return Cell(value, GAIN if value in ("buy", "long") else LOSS)


def timestamp(value: dt.datetime | None) -> Cell:
    """A UTC time as ``2026-01-05 14:30:00``."""
    if value is None:
        return Cell("-", sort_value=None)
    return Cell(value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), sort_value=value)


def flag(value: bool, yes: str = "yes", no: str = "no") -> Cell:
    """A yes/no cell, yes green."""
    return Cell(yes if value else no, GAIN if value else "dim", sort_value=value)


def percent(value: Decimal) -> Cell:
    """A 0..1 ratio as a percentage."""
    return Cell(f"{value * 100:.1f}%", sort_value=value, justify="right")
