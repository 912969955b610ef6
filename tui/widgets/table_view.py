"""TableView: what every view of a store table has in common.

A view is a :class:`~stocksbot_tui.widgets.keyed_table.KeyedTable` under one note line that
tells what the table alone cannot: that the view failed (and why), how many newer
rows arrived above while the reader was scrolled down, and which columns (or other
parts) are hidden for want of width (or height). A view that failed shows no rows,
only why: the rest of the dashboard stays live.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from ..data import Snapshot, one_line
from ..format import visible
from .keyed_table import KeyedTable


def page_caption(filters: str, number: int, rows: int, noun: str, has_more: bool) -> Text:
    """``symbol=AAPL  page 2 (50 orders, more: n, back: p)  filter: /``: what a paged
    view says above its table (``filters`` is stored text, made visible here)."""
    line = Text()
    line.append(visible(filters), "bold")
    more = ", more: n" if has_more else ""
    back = ", back: p" if number > 1 else ""
    line.append(f"  page {number} ({rows} {noun}{more}{back})  filter: /")
    return line


class TableView(Vertical):
    """Base of the views; subclasses compose a ``Static`` of class ``note`` and a
    :class:`KeyedTable`, and draw a :class:`~stocksbot_tui.data.Snapshot` with :meth:`show`."""

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

    def sync_page(self, rows: list, turned: bool, land_on_last: bool) -> None:
        """Show a page's ``rows`` (``(key, cells)``); ``turned``: it is another page than
        the one on screen, started at its bottom row when paging back (``land_on_last``)."""
        table = self.table
        table.sync(rows, fresh=turned)
        if turned and land_on_last:
            table.move_cursor(row=table.row_count - 1, animate=False)

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


class LoadingView(TableView):
    """A view that reads its own figures, for filters of its own, on a worker: after
    each refresh of the dashboard that saw a change (:meth:`show`) and whenever its
    filters change (:meth:`reload`). A load that finished for filters changed since is
    dropped; a load that fails fails this view alone (in its note and the status
    line) until a load succeeds.

    Subclasses set :attr:`view_name` and ``query_state`` (the filters, comparable) and
    define :meth:`load` (on the worker thread, through the dashboard's source) and
    :meth:`draw` (on the UI thread).
    """

    #: The view's name in the app's ``VIEWS``, for the status line.
    view_name = ""
    #: What the view shows now (its filters, its page): what a load is for.
    query_state: Any = None

    class Loaded(Message):
        """A load for ``query`` finished (``result`` None: it failed with ``error``)."""

        def __init__(self, query: Any, result: Any, error: str = "") -> None:
            super().__init__()
            self.query = query
            self.result = result
            self.error = error

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        #: Why the last load failed (None: it did not); kept across refreshes.
        self.load_failure: str | None = None

    def load(self, query: Any) -> Any:
        """Read the figures for ``query`` (called on a worker thread)."""
        raise NotImplementedError

    def draw(self, result: Any) -> None:
        """Draw what :meth:`load` read; raises if a figure cannot be drawn."""
        raise NotImplementedError

    def show(self, snapshot: object) -> None:
        """The dashboard refreshed: read the figures again, on a worker."""
        self.reload()

    def reload(self) -> None:
        """Read the figures again (the store changed, or the filters did)."""
        self.load_worker(self.query_state)

    @work(thread=True, exclusive=True, group="view-load")
    def load_worker(self, query: Any) -> None:
        try:
            result = self.load(query)
        except Exception as e:  # this view says why; the next refresh retries
            self.post_message(self.Loaded(query, None, one_line(e)))
        else:
            self.post_message(self.Loaded(query, result))

    def on_loading_view_loaded(self, message: Loaded) -> None:
        message.stop()
        if message.query != self.query_state:
            return  # a load for filters changed since: the load for the new ones follows
        failure = message.error if message.result is None else None
        if failure is None:
            try:
                self.draw(message.result)
            except Exception as e:  # a figure this view cannot draw
                failure = one_line(e)
        self.load_failure = failure
        fail_view = getattr(self.app, "fail_view", None)
        if fail_view is not None:  # tell the status line too
            fail_view(self.view_name, failure)
            self.app.draw_status()
        else:
            self.fail(failure)

    def fail(self, failure: str | None) -> None:
        """Failed when told so, or when the last load failed."""
        super().fail(failure if failure is not None else self.load_failure)
