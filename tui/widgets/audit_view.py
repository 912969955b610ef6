"""Audit: who changed which order, trade, position, strategy or setting, when, from what
to what; newest first, a page at a time, filtered by table, row id and actor.

Keys (while the view has the keyboard): ``/`` filters, ``n`` / ``p`` page (moving past
the last or first row does it too), ``enter`` on an entry shows only that row's
history. The view reads its page on a worker of its own
(:meth:`stocksbot_tui.data.DashboardSource.audit`, one snapshot), after each refresh of
the dashboard that saw a change and whenever its filter or page changes; a load that
fails fails this view alone.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from .. import format as f
from ..data import AuditPage, AuditQuery, AuditRow
from ..screens.audit_filter import AuditFilterScreen
from .keyed_table import KeyedTable
from .table_view import LoadingView, page_caption

COLUMNS = [
    ("id", "Entry"),
    ("time", "At (UTC)"),
    ("actor", "Actor"),
    ("table", "Table"),
    ("row", "Row"),
    ("action", "Action"),
    ("changes", "Changes"),
]
#: Hidden first when the terminal is too narrow.
DROP_ORDER = ["actor", "id", "time"]
#: Characters of the changes shown in the table (the entry's whole text is longer).
CHANGES_SHOWN = 90

ACTION_STYLE = {"create": "green", "delete": "red", "soft_delete": "red", "restore": "cyan"}


def changes_text(row: AuditRow) -> str:
    """``status open→filled, filled_quantity 0→5``; a created row's fields as
    ``symbol=AAPL``; a value that is not there as ``-``."""
    parts = []
    for name, before, after in row.changes:
        if before == "-" and row.action == "create":
            parts.append(f"{name}={after}")
        else:
            parts.append(f"{name} {before}→{after}")
    return ", ".join(parts)


def audit_cells(row: AuditRow) -> list[f.Cell]:
    """The cells of one audit entry (shared with the order detail screen)."""
    changes = changes_text(row)
    if len(changes) > CHANGES_SHOWN:
        changes = changes[: CHANGES_SHOWN - 1] + "…"
    return [
        f.Cell(str(row.id), sort_value=row.id, justify="right"),
        f.timestamp(row.at),
        f.text(row.actor, "dim"),
        f.text(row.table),
        f.Cell(
            "" if row.row_id is None else str(row.row_id),
            sort_value=row.row_id or 0,
            justify="right",
        ),
        f.text(row.action, ACTION_STYLE.get(row.action, "")),
        f.text(changes),
    ]


class AuditView(LoadingView):
    """The audit log, a page at a time; see the module docstring."""

    BINDINGS = [
        Binding("slash", "filter", "Filter", show=False),
        Binding("n", "page(1)", "Next page", show=False),
        Binding("p", "page(-1)", "Prev page", show=False),
    ]

    view_name = "audit"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        #: The first page's query, then each page turned to.
        self.pages: list[AuditQuery] = [AuditQuery()]
        self.page: AuditPage | None = None
        self._land_on_last = False

    def compose(self) -> ComposeResult:
        yield Static("", classes="note")
        yield KeyedTable(COLUMNS, drop_order=DROP_ORDER, id="audit-table")

    @property  # type: ignore[override]
    def query_state(self) -> AuditQuery:
        """The query of the page on screen."""
        return self.pages[-1]

    def load(self, query: AuditQuery) -> AuditPage:
        return self.app.source.audit(query)

    def draw(self, page: AuditPage) -> None:
        """Draw ``page`` (never more rows than one page)."""
        turned = self.page is not None and page.query != self.page.query
        self.page = page
        self.sync_page([(str(r.id), audit_cells(r)) for r in page.rows], turned, self._land_on_last)
        self._land_on_last = False
        self.draw_note()

    def caption(self) -> Text:
        """The filter, the page and the keys."""
        if self.page is None:
            return Text()
        return page_caption(
            self.query_state.describe(),
            len(self.pages),
            len(self.page.rows),
            "entries",
            self.page.has_more,
        )

    # -- filter and pages --------------------------------------------------------------

    def show_query(self, query: AuditQuery) -> None:
        """Filter by ``query`` and load its first page."""
        self.pages = [query.first_page()]
        self.reload()

    def action_filter(self) -> None:
        def apply(query: AuditQuery | None) -> None:
            if query is not None:
                self.show_query(query)

        self.app.push_screen(AuditFilterScreen(self.pages[0]), apply)

    def action_page(self, step: int) -> None:
        page = self.page
        if step > 0:
            if page is None or not page.has_more or not page.rows:
                self.app.bell()
                return
            self.pages.append(self.query_state.next_page(page))
        elif len(self.pages) > 1:
            self.pages.pop()
        else:
            self.app.bell()
            return
        self._land_on_last = step < 0
        self.reload()

    def on_keyed_table_past_edge(self, event: KeyedTable.PastEdge) -> None:
        event.stop()
        if self.page is None:
            return
        if (event.step > 0 and self.page.has_more) or (event.step < 0 and len(self.pages) > 1):
            self.action_page(event.step)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on an entry: that row's history alone."""
        event.stop()
        rows = {str(r.id): r for r in self.page.rows} if self.page else {}
        row = rows.get(str(event.row_key.value))
        if row is not None and row.row_id is not None:
            self.show_query(AuditQuery(table=row.table, row_id=row.row_id))
