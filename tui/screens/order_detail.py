"""The detail of one order: its figures, every fill recorded against it, and its history
in the audit log (who changed it, when, from what to what), newest first."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from ..data import OrderDetail
from ..format import visible
from ..widgets.audit_view import COLUMNS as AUDIT_COLUMNS
from ..widgets.audit_view import audit_cells
from ..widgets.keyed_table import KeyedTable
from ..widgets.orders_view import COLUMNS as ORDER_COLUMNS
from ..widgets.orders_view import order_cells
from ..widgets.trades_view import COLUMNS as TRADE_COLUMNS
from ..widgets.trades_view import trade_cells


class OrderDetailScreen(ModalScreen[None]):
    """Shows an order, its fills and its history; escape or q closes it."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Close")]

    def __init__(self, detail: OrderDetail) -> None:
        super().__init__()
        self.detail = detail
        self.order = detail.order
        self.fills = detail.fills

    def compose(self) -> ComposeResult:
        o = self.order
        with Vertical(id="detail-box", classes="dialog"):
            title = Text()
            title.append(f"Order {o.id}", "bold")
            title.append(
                visible(
                    f"  {o.side} {o.quantity} {o.symbol} ({o.type}, {o.status}) "
                    f"- {len(self.fills)} fill(s)   "
                )
            )
            title.append("escape closes", "dim")
            yield Static(title, id="detail-title")
            yield KeyedTable(ORDER_COLUMNS, id="detail-order")
            yield KeyedTable(TRADE_COLUMNS, id="detail-fills")
            history = Text("History", "bold")
            if self.detail.history_failed is not None:
                history.append(visible(f"  cannot be read: {self.detail.history_failed}"), "red")
            else:
                history.append(f"  {len(self.detail.history)} change(s), newest first", "dim")
            yield Static(history, id="detail-history-title")
            yield KeyedTable(AUDIT_COLUMNS, drop_order=("actor", "id"), id="detail-history")

    def on_mount(self) -> None:
        self.query_one("#detail-order", KeyedTable).sync(
            [(str(self.order.id), order_cells(self.order))]
        )
        fills = self.query_one("#detail-fills", KeyedTable)
        fills.sync([(str(t.id), trade_cells(t)) for t in self.fills])
        self.query_one("#detail-history", KeyedTable).sync(
            [(str(r.id), audit_cells(r)) for r in self.detail.history]
        )
        fills.focus()
