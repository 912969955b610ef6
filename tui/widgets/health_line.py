"""The health line: the store's figures (``stocksbot_store.stats``) in one line.

Size (and the SQLite WAL, or the PostgreSQL connections against the server's limit),
the replicas and their state, and this process's statements by kind with their mean
time. The dashboard reads the figures with each refresh, on the refresh worker,
through :class:`~stocksbot_tui.data.DashboardSource` (:func:`stocksbot_tui.data.read_health`
is the same reading, for callers outside the dashboard); :meth:`HealthLine.show` draws them
on the UI thread. The line never wraps and never cuts a figure: the parts that do not fit
the width are left out whole, last first, and ``…`` says that some are.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ..data import STATEMENT_KINDS, StoreStats, format_bytes
from ..format import visible


def health_parts(figures: StoreStats) -> list[Text]:
    """The pieces of the health line, most important first: problems in colour, the
    rest dim."""
    parts = [
        Text.assemble(("HEALTH ", "bold"), (f"size {format_bytes(figures.database_bytes)}", "dim"))
    ]
    if figures.wal_bytes is not None:
        parts.append(Text(f"wal {format_bytes(figures.wal_bytes)}", "dim"))
    if figures.connections is not None:
        used, limit = figures.server_connections or 0, figures.max_connections or 0
        style = "bold red" if limit and used >= 0.9 * limit else "dim"
        parts.append(Text(f"connections {figures.connections} ({used}/{limit} on server)", style))
    for replica in figures.replicas:
        ok = replica.state == "ok"
        lag = "" if replica.lag_seconds is None else f" {replica.lag_seconds:.1f}s"
        parts.append(Text(f"replica {replica.state}{lag}", "green" if ok else "bold yellow"))
    for kind in STATEMENT_KINDS:
        f = figures.statements.get(kind)
        if f is None or not f.count:
            continue
        mean = f.seconds / f.count * 1000
        part = Text(f"{kind}s {f.count:,} ({mean:.2f} ms)", "dim")
        if f.slow:
            part.append(f" {f.slow:,} slow", "yellow")
        if f.errors:
            part.append(f" {f.errors:,} failed", "red")
        parts.append(part)
    return parts


def health_text(figures: StoreStats) -> Text:
    """The whole health line for ``figures``."""
    return Text("  ").join(health_parts(figures))


def fitted(parts: list[Text], width: int) -> Text:
    """``parts`` joined, as many as fit ``width`` cells (the first always), ``…`` when
    some were left out."""
    line = Text()
    for number, part in enumerate(parts):
        rest = number < len(parts) - 1
        needed = line.cell_len + (2 if line.plain else 0) + part.cell_len + (3 if rest else 0)
        if line.plain and needed > width:
            line.append("  …", "dim")
            break
        if line.plain:
            line.append("  ")
        line.append_text(part)
    return line


class HealthLine(Static):
    """One line under the status line; the app tells it what to show."""

    DEFAULT_CSS = "HealthLine { height: 1; }"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._parts: list[Text] = [Text("HEALTH not read yet", "dim")]

    def show(self, figures: StoreStats | None, error: str | None = None) -> None:
        """Draw ``figures``, or ``error`` when they could not be read."""
        if figures is None:
            self._parts = [Text(f"HEALTH unavailable: {visible(error or 'not read yet')}", "red")]
        else:
            self._parts = health_parts(figures)
        self.refresh()

    def render(self) -> Text:
        width = self.content_region.width or self.app.size.width
        return fitted(self._parts, width)

    def on_resize(self) -> None:
        self.refresh()
