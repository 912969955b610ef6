"""How the dashboard writes numbers, times and P&L: one place, so every view agrees."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from rich.text import Text

CENT = Decimal("0.01")
GAIN = "green"
LOSS = "red"


class Cell(Text):
    """A table cell that remembers the value it sorts by (not its formatted text)."""

    def __init__(self, text: str, style: str = "", sort_value: Any = None,
                 justify: str | None = None) -> None:
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
    return Cell(value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                sort_value=value)


def flag(value: bool, yes: str = "yes", no: str = "no") -> Cell:
    """A yes/no cell, yes green."""
    return Cell(yes if value else no, GAIN if value else "dim", sort_value=value)


def percent(value: Decimal) -> Cell:
    """A 0..1 ratio as a percentage."""
    return Cell(f"{value * 100:.1f}%", sort_value=value, justify="right")
