"""The status line: which database, live or stale, last refresh, trading state."""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual.widgets import Static


class StatusBar(Static):
    """One line at the top of the dashboard; the app tells it what to say."""

    def show(self, database: str, *, state: str, refreshed: dt.datetime | None,
             trading_enabled: bool | None, error: str | None = None) -> None:
        """``state`` is "live", "stale" or "down" (``error`` says why it is down)."""
        line = Text()
        badge = {"live": ("● LIVE", "bold green"), "stale": ("● STALE", "bold yellow"),
                 "down": ("✖ DATABASE UNAVAILABLE", "bold red")}[state]
        line.append(badge[0], badge[1])
        line.append("  ")
        line.append(database, "cyan")
        when = "never" if refreshed is None else refreshed.strftime("%Y-%m-%d %H:%M:%S UTC")
        line.append(f"  refreshed {when}  ", "dim")
        if trading_enabled is True:
            line.append(" TRADING ENABLED ", "bold black on green")
        elif trading_enabled is False:
            line.append(" TRADING HALTED ", "bold white on red")
        if error:
            line.append(f"\n{error} - retrying", "red")
        self.update(line)
