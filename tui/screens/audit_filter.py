"""The audit filter: table, row id and actor."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from ..data import AUDIT_TABLES, AuditQuery
from ..format import visible


class AuditFilterScreen(ModalScreen[AuditQuery | None]):
    """Dismisses with the new :class:`AuditQuery` (first page), or None if cancelled.

    A row id needs its table (ids repeat across tables): an id without one is refused
    on the spot, in the dialog.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: AuditQuery) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        q = self.current
        with Vertical(id="audit-filter-box", classes="dialog"):
            yield Label("Filter the audit log (empty = any); enter applies, escape cancels")
            yield Select(
                [(t, t) for t in AUDIT_TABLES],
                value=q.table or Select.NULL,
                prompt="any table",
                id="audit-table-choice",
            )
            yield Input(
                "" if q.row_id is None else str(q.row_id),
                placeholder="row id, e.g. 42 (needs a table)",
                id="audit-row",
                restrict=r"[0-9]*",
            )
            # Stored text is shown with its control characters made visible; an
            # untouched field keeps the actor it stands for (see query_result).
            yield Input(
                visible(q.actor or ""), placeholder="actor, e.g. bot-eu-1", id="audit-actor"
            )
            yield Label("", id="audit-filter-error")
            with Horizontal(classes="buttons"):
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Clear", id="clear")
                yield Button("Cancel", id="cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.apply()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "apply":
            self.apply()
        elif event.button.id == "clear":
            self.dismiss(AuditQuery())
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def apply(self) -> None:
        """Dismiss with the filter as entered, unless it names a row without its table."""
        query = self.query_result()
        if query.row_id is not None and query.table is None:
            self.query_one("#audit-filter-error", Label).update(
                "a row id needs its table: ids repeat across tables"
            )
            return
        self.dismiss(query)

    def query_result(self) -> AuditQuery:
        """The filter as entered."""
        table = self.query_one("#audit-table-choice", Select).value
        row = self.query_one("#audit-row", Input).value.strip()
        typed = self.query_one("#audit-actor", Input).value
        if self.current.actor and typed == visible(self.current.actor):
            actor: str | None = self.current.actor
        else:
            actor = typed.strip() or None
        return AuditQuery(
            table=None if table is Select.NULL else str(table),
            row_id=int(row) if row else None,
            actor=actor,
        )
