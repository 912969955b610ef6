"""TableView: what every view of a store table has in common.

A view is a :class:`~tui.widgets.keyed_table.KeyedTable` under one note line that
tells what the table alone cannot: that the view failed (and why), how many newer
rows arrived above while the reader was scrolled down, and which columns (or other
parts) are hidden for want of width (or height). A view that failed shows no rows,
only why: the rest of the dashboard stays live.
"""

from __future__ import annotations

from rich.text import Text
from textual.containers import Vertical
from textual.widgets import Static

from ..data import Snapshot
from ..format import visible
from .keyed_table import KeyedTable


class TableView(Vertical):
    """Base of the views; subclasses compose a ``Static`` of class ``note`` and a
    :class:`KeyedTable`, and draw a :class:`~tui.data.Snapshot` with :meth:`show`."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.failure: str | None = None

    def on_mount(self) -> None:
        self.draw_note()  # an empty note takes no line

    @property
    def table(self) -> KeyedTable:
        """The view's table."""
        return self.query_one(KeyedTable)

    def show(self, snapshot: Snapshot) -> None:
        """Draw ``snapshot``; raises if a figure cannot be drawn (see :meth:`fail`)."""
        raise NotImplementedError

    def fail(self, failure: str | None) -> None:
        """Show the view as failed because of ``failure`` (None: it did not fail)."""
        if failure is not None:
            self.table.sync([])
        if failure != self.failure:
            self.failure = failure
            self.draw_note()

    def caption(self) -> Text:
        """What the view always says above its table (nothing by default)."""
        return Text()

    def hidden_for_height(self) -> list[str]:
        """Parts of the view hidden for want of height (none by default)."""
        return []

    def draw_note(self) -> None:
        """Redraw the note line from the caption, the failure and the table's state."""
        line = self.caption()
        parts: list[tuple[str, str]] = []
        if self.failure is not None:
            parts.append((f"✖ cannot show this view: {visible(self.failure)}", "bold red"))
        table = self.table
        if table.newer:
            parts.append((f"↑ {table.newer} newer - Home to show", "bold yellow"))
        hidden = table.hidden
        if hidden:
            parts.append((f"hidden for width: {', '.join(hidden)}", "dim"))
        if self.hidden_for_height():
            parts.append((f"hidden for height: {', '.join(self.hidden_for_height())}", "dim"))
        for text, style in parts:
            if line.plain:
                line.append("  ")
            line.append(text, style)
        note = self.query_one(".note", Static)
        note.update(line)
        note.display = bool(line.plain)

    def on_keyed_table_note_changed(self, event: KeyedTable.NoteChanged) -> None:
        event.stop()
        self.draw_note()
