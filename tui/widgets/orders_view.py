"""Orders: one page of the order history at a time, newest first, filterable."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from .. import format as f
from ..data import OrderPage, OrderRow
from ..messages import OrderChosen, PageRequested
from .keyed_table import KeyedTable

COLUMNS = [("id", "Order"), ("time", "Created (UTC)"), ("symbol", "Symbol"), ("side", "Side"),
           ("type", "Type"), ("status", "Status"), ("quantity", "Qty"), ("filled", "Filled"),
           ("price", "Limit"), ("avg_fill", "Avg fill"), ("strategy", "Strategy")]

STATUS_STYLE = {"filled": "green", "partially_filled": "yellow", "open": "cyan",
                "pending": "cyan", "cancelled": "dim", "rejected": "red"}


def order_cells(o: OrderRow) -> list[f.Cell]:
    """The cells of one order (shared with the order detail screen)."""
    return [f.Cell(str(o.id), sort_value=o.id, justify="right"), f.timestamp(o.created_at),
            f.text(o.symbol, "bold"), f.side(o.side), f.text(o.type),
            f.text(o.status, STATUS_STYLE.get(o.status, "")), f.quantity(o.quantity),
            f.quantity(o.filled_quantity), f.number(o.price), f.number(o.avg_fill_price, 4),
            f.text(o.strategy)]


class OrdersView(Vertical):
    """The orders table, a page at a time; ``n``/``p`` page, and so does moving past
    the last or first row. Enter shows the order's fills."""

    BINDINGS = [
        Binding("n", "page(1)", "Next page"),
        Binding("p", "page(-1)", "Prev page"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.page: OrderPage | None = None
        self.page_number = 1
        self._land_on_last = False

    def compose(self) -> ComposeResult:
        yield Static("", id="orders-caption")
        yield KeyedTable(COLUMNS, id="orders-table")

    def show(self, page: OrderPage, page_number: int) -> None:
        """Draw ``page`` (never more rows than one page)."""
        turned = self.page is not None and page.query != self.page.query
        self.page, self.page_number = page, page_number
        more = ", more: n" if page.has_more else ""
        back = ", back: p" if page_number > 1 else ""
        self.query_one("#orders-caption", Static).update(
            f"[b]{page.query.describe()}[/b]  page {page_number} "
            f"({len(page.rows)} orders{more}{back})  filter: /")
        orders = self.query_one(KeyedTable)
        orders.sync([(str(o.id), order_cells(o)) for o in page.rows])
        if turned:  # a new page: start at its top, or its bottom when paging back
            orders.move_cursor(row=orders.row_count - 1 if self._land_on_last else 0,
                               animate=False)
            self._land_on_last = False

    def action_page(self, step: int) -> None:
        self._land_on_last = step < 0
        self.post_message(PageRequested(step))

    def on_keyed_table_past_edge(self, event: KeyedTable.PastEdge) -> None:
        event.stop()
        if self.page is None:
            return
        if (event.step > 0 and self.page.has_more) or (event.step < 0 and self.page_number > 1):
            self.action_page(event.step)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(OrderChosen(int(event.row_key.value)))
