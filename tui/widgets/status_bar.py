"""The status line: which database, live or stale, last refresh, trading state."""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual.widgets import Static

from ..format import visible


class StatusBar(Static):
    """One line at the top of the dashboard; the app tells it what to say.

    Built as :class:`~rich.text.Text`, never markup, and every text from outside
    (the URL, an error message quoting stored data) is passed through
    :func:`~stocksbot_tui.format.visible`.
    """

    def show(
        self,
        database: str,
        *,
        state: str,
        refreshed: dt.datetime | None,
        trading_enabled: bool | None,
        error: str | None = None,
        failed: dict[str, str] | None = None,
    ) -> None:
        """``state`` is "live", "stale", "down" (the database cannot be reached) or
        "failed" (it was reached but cannot be read); ``error`` says why. ``failed``
        names the views (or ``trading``) whose figures failed, and why."""
        line = Text()
        badge = {
            "live": ("● LIVE", "bold green"),
            "stale": ("● STALE", "bold yellow"),
            "down": ("✖ DATABASE UNAVAILABLE", "bold red"),
            "failed": ("✖ CANNOT READ THE STORE", "bold red"),
        }[state]
        line.append(badge[0], badge[1])
        line.append("  ")
        line.append(visible(database), "cyan")
        when = "never" if refreshed is None else refreshed.strftime("%Y-%m-%d %H:%M:%S UTC")
        line.append(f"  refreshed {when}  ", "dim")
        if trading_enabled is True:
            line.append(" TRADING ENABLED ", "bold black on green")
        elif trading_enabled is False:
            line.append(" TRADING HALTED ", "bold white on red")
        elif failed and "trading" in failed:
            line.append(" TRADING STATE UNKNOWN ", "bold white on red")
        if failed:
            line.append(f"  ✖ failed: {', '.join(sorted(failed))}", "bold red")
        if error:
            retry = " - retrying" if state == "down" else " - trying again at each refresh"
            line.append(f"\n{visible(error)}{retry}", "red")
        if failed and "trading" in failed:
            line.append(f"\ntrading switch: {visible(failed['trading'])}", "red")
        self.update(line)
