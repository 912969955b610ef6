"""The detail of one order: its figures and every fill recorded against it."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from ..data import OrderRow, TradeRow
from ..format import visible
from ..widgets.keyed_table import KeyedTable
from ..widgets.orders_view import COLUMNS as ORDER_COLUMNS
from ..widgets.orders_view import order_cells
from ..widgets.trades_view import COLUMNS as TRADE_COLUMNS
from ..widgets.trades_view import trade_cells


class OrderDetailScreen(ModalScreen[None]):
    """Shows an order and its fills; escape or q closes it."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Close")]

    def __init__(self, order: OrderRow, fills: tuple[TradeRow, ...]) -> None:
        super().__init__()
        self.order = order
        self.fills = fills

    def compose(self) -> ComposeResult:
        o = self.order
        with Vertical(id="detail-box", classes="dialog"):
            title = Text()
            title.append(f"Order {o.id}", "bold")
            title.append(visible(f"  {o.side} {o.quantity} {o.symbol} ({o.type}, {o.status}) "
                                 f"- {len(self.fills)} fill(s)   "))
            title.append("escape closes", "dim")
            yield Static(title, id="detail-title")
            yield KeyedTable(ORDER_COLUMNS, id="detail-order")
            yield KeyedTable(TRADE_COLUMNS, id="detail-fills")

    def on_mount(self) -> None:
        self.query_one("#detail-order", KeyedTable).sync(
            [(str(self.order.id), order_cells(self.order))])
        fills = self.query_one("#detail-fills", KeyedTable)
        fills.sync([(str(t.id), trade_cells(t)) for t in self.fills])
        fills.focus()
