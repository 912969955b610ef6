"""Trades: the most recent fills, newest first, or the first fills of a sort done in SQL."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from .. import format as f
from ..data import TRADE_SORTS, Snapshot, TradeRow
from ..messages import OrderChosen
from .keyed_table import KeyedTable
from .table_view import TableView

COLUMNS = [
    ("id", "Trade"),
    ("time", "Executed (UTC)"),
    ("symbol", "Symbol"),
    ("side", "Side"),
    ("type", "Type"),
    ("quantity", "Qty"),
    ("price", "Price"),
    ("costs", "Costs"),
    ("realized", "Realized P&L"),
    ("order", "Order"),
    ("strategy", "Strategy"),
]
#: Hidden first when the terminal is too narrow.
DROP_ORDER = ["strategy", "type", "order", "costs", "time"]


def trade_cells(t: TradeRow) -> list[f.Cell]:
    """The cells of one fill (shared with the order detail screen)."""
    return [
        f.Cell(str(t.id), sort_value=t.id, justify="right"),
        f.timestamp(t.executed_at),
        f.text(t.symbol, "bold"),
        f.side(t.side),
        f.text(t.type),
        f.quantity(t.quantity),
        f.number(t.price),
        f.number(t.costs),
        f.pnl(t.realized_pnl),
        f.Cell(str(t.order_id or "-"), sort_value=t.order_id, justify="right"),
        f.text(t.strategy),
    ]


class TradesView(TableView):
    """The recent fills table; enter opens the fill's order. Sorting asks the
    database for the first fills of that order (the app re-reads)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._orders: dict[str, int | None] = {}

    def compose(self) -> ComposeResult:
        yield Static(classes="note")
        yield KeyedTable(COLUMNS, drop_order=DROP_ORDER, sql_sort=TRADE_SORTS, id="trades-table")

    def show(self, snapshot: Snapshot) -> None:
        """Draw the fills of ``snapshot``."""
        self._orders = {str(t.id): t.order_id for t in snapshot.trades}
        self.table.sync([(str(t.id), trade_cells(t)) for t in snapshot.trades])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        order_id = self._orders.get(event.row_key.value)
        if order_id is not None:
            self.post_message(OrderChosen(order_id))
