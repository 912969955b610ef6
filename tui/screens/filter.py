"""The orders filter: symbol, status, side and strategy."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from ..data import ORDER_SIDES, ORDER_STATUSES, OrderQuery
from ..format import visible


class FilterScreen(ModalScreen[OrderQuery | None]):
    """Dismisses with the new :class:`OrderQuery` (first page), or None if cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, current: OrderQuery, strategies: list[str]) -> None:
        super().__init__()
        self.current = current
        self.strategies = strategies

    def compose(self) -> ComposeResult:
        q = self.current
        with Vertical(id="filter-box", classes="dialog"):
            yield Label("Filter orders (empty = any); enter applies, escape cancels")
            # Stored text is shown with its control characters made visible; an
            # untouched field keeps the symbol it stands for (see query_result).
            yield Input(visible(q.symbol or ""), placeholder="symbol, e.g. AAPL", id="symbol")
            yield Select(
                [(s, s) for s in ORDER_STATUSES],
                value=q.status or Select.NULL,
                prompt="any status",
                id="status",
            )
            yield Select(
                [(s, s) for s in ORDER_SIDES],
                value=q.side or Select.NULL,
                prompt="any side",
                id="side",
            )
            yield Select(
                [(Text(visible(s)), s) for s in self.strategies],
                value=q.strategy if q.strategy in self.strategies else Select.NULL,
                prompt="any strategy",
                id="strategy",
            )
            with Horizontal(classes="buttons"):
                yield Button("Apply", variant="primary", id="apply")
                yield Button("Clear", id="clear")
                yield Button("Cancel", id="cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(self.query_result())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "apply":
            self.dismiss(self.query_result())
        elif event.button.id == "clear":
            self.dismiss(OrderQuery(sort=self.current.sort))
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def query_result(self) -> OrderQuery:
        """The filter as entered."""

        def chosen(widget_id: str) -> str | None:
            value = self.query_one(f"#{widget_id}", Select).value
            return None if value is Select.NULL else str(value)

        typed = self.query_one("#symbol", Input).value
        if self.current.symbol and typed == visible(self.current.symbol):
            symbol: str | None = self.current.symbol
        else:
            symbol = typed.strip().upper() or None
        return OrderQuery(
            symbol=symbol,
            status=chosen("status"),
            side=chosen("side"),
            strategy=chosen("strategy"),
            sort=self.current.sort,
        )
