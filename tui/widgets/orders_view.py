"""Orders: one page of the order history at a time, newest first, filterable and
sortable in SQL across every page."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from .. import format as f
from ..data import ORDER_SORTS, OrderPage, OrderRow, Snapshot
from ..messages import OrderChosen, PageRequested
from .keyed_table import KeyedTable
from .table_view import TableView, page_caption

COLUMNS = [
    ("id", "Order"),
    ("time", "Created (UTC)"),
    ("symbol", "Symbol"),
    ("side", "Side"),
    ("type", "Type"),
    ("status", "Status"),
    ("quantity", "Qty"),
    ("filled", "Filled"),
    ("price", "Limit"),
    ("avg_fill", "Avg fill"),
    ("strategy", "Strategy"),
]
#: Hidden first when the terminal is too narrow.
DROP_ORDER = ["strategy", "type", "time", "avg_fill", "filled", "price"]

STATUS_STYLE = {
    "filled": "green",
    "partially_filled": "yellow",
    "open": "cyan",
    "pending": "cyan",
    "cancelled": "dim",
    "rejected": "red",
}


def order_cells(o: OrderRow) -> list[f.Cell]:
    """The cells of one order (shared with the order detail screen)."""
    return [
        f.Cell(str(o.id), sort_value=o.id, justify="right"),
        f.timestamp(o.created_at),
        f.text(o.symbol, "bold"),
        f.side(o.side),
        f.text(o.type),
        f.text(o.status, STATUS_STYLE.get(o.status, "")),
        f.quantity(o.quantity),
        f.quantity(o.filled_quantity),
        f.number(o.price),
        f.number(o.avg_fill_price, 4),
        f.text(o.strategy),
    ]


class OrdersView(TableView):
    """The orders table, a page at a time; ``n``/``p`` page, and so does moving past
    the last or first row. Enter shows the order's fills."""

    BINDINGS = [
        Binding("n", "page(1)", "Next page", show=False),
        Binding("p", "page(-1)", "Prev page", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.page: OrderPage | None = None
        self.page_number = 1
        self._land_on_last = False

    def compose(self) -> ComposeResult:
        yield Static("", id="orders-caption", classes="note")
        yield KeyedTable(COLUMNS, drop_order=DROP_ORDER, sql_sort=ORDER_SORTS, id="orders-table")

    def show(self, snapshot: Snapshot) -> None:
        """Draw the page of orders a refresh read (if it read one)."""
        if snapshot.orders is not None:
            self.show_page(snapshot.orders, self.page_number)

    def show_page(self, page: OrderPage, page_number: int) -> None:
        """Draw ``page`` (never more rows than one page)."""
        turned = self.page is not None and page.query != self.page.query
        self.page, self.page_number = page, page_number
        self.sync_page([(str(o.id), order_cells(o)) for o in page.rows], turned, self._land_on_last)
        self._land_on_last = False
        self.draw_note()

    def caption(self) -> Text:
        """The filter, the page and the keys that page."""
        if self.page is None:
            return Text()
        return page_caption(
            self.page.query.describe(),
            self.page_number,
            len(self.page.rows),
            "orders",
            self.page.has_more,
        )

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
