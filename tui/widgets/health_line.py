"""The health line: the store's figures (``stocksbot_store.stats``) in one line.

Size (and the SQLite WAL, or the PostgreSQL connections against the server's limit),
the replicas and their state, and this process's statements by kind with their mean
time. :func:`read_health` gathers the figures and runs on a worker thread, like every
database call of the dashboard; :meth:`HealthLine.show` draws them on the UI thread.
"""

from __future__ import annotations

from peewee import Database
from rich.text import Text
from textual.widgets import Static

from stocksbot_store import StoreStats, stats
from stocksbot_store.metrics import format_bytes
from stocksbot_store.monitor import KINDS


def read_health(db: Database) -> StoreStats:
    """The figures for the health line (a worker calls this: it reads the database)."""
    return stats(db)


def health_text(figures: StoreStats) -> Text:
    """The health line for ``figures``: problems in colour, the rest dim."""
    line = Text()
    line.append("HEALTH ", "bold")
    line.append(f"size {format_bytes(figures.database_bytes)}", "dim")
    if figures.wal_bytes is not None:
        line.append(f"  wal {format_bytes(figures.wal_bytes)}", "dim")
    if figures.connections is not None:
        used, limit = figures.server_connections or 0, figures.max_connections or 0
        style = "bold red" if limit and used >= 0.9 * limit else "dim"
        line.append(f"  connections {figures.connections} ({used}/{limit} on server)", style)
    for replica in figures.replicas:
        ok = replica.state == "ok"
        lag = "" if replica.lag_seconds is None else f" {replica.lag_seconds:.1f}s"
        line.append(f"  replica {replica.state}{lag}", "green" if ok else "bold yellow")
    for kind in KINDS:
        f = figures.statements.get(kind)
        if f is None or not f.count:
            continue
        mean = f.seconds / f.count * 1000
        line.append(f"  {kind}s {f.count:,} ({mean:.2f} ms)", "dim")
        if f.slow:
            line.append(f" {f.slow:,} slow", "yellow")
        if f.errors:
            line.append(f" {f.errors:,} failed", "red")
    return line


class HealthLine(Static):
    """One line under the status line; the app tells it what to show."""

    def show(self, figures: StoreStats | None, error: str | None = None) -> None:
        """Draw ``figures``, or ``error`` when they could not be read."""
        if figures is None:
            self.update(Text(f"HEALTH unavailable: {error or 'not read yet'}", "red"))
        else:
            self.update(health_text(figures))

