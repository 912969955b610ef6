"""Positions: open positions at their latest mark (else their last fill), with a totals
row; the Performance view says which price each one uses and how old it is."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from .. import format as f
from ..data import Snapshot
from ..messages import SymbolChosen
from .keyed_table import KeyedTable
from .table_view import TableView

TOTAL = "__total__"
COLUMNS = [
    ("symbol", "Symbol"),
    ("side", "Side"),
    ("quantity", "Qty"),
    ("avg_entry", "Avg entry"),
    ("cost_basis", "Cost basis"),
    ("last", "Last"),
    ("unrealized", "Unrealized P&L"),
    ("realized", "Realized P&L"),
]
#: Hidden first when the terminal is too narrow: P&L matters most.
DROP_ORDER = ["cost_basis", "avg_entry", "last", "side"]


class PositionsView(TableView):
    """The open positions table; enter lists the orders of the selected symbol."""

    def compose(self) -> ComposeResult:
        yield Static(classes="note")
        yield KeyedTable(COLUMNS, pinned=TOTAL, drop_order=DROP_ORDER, id="positions-table")

    def show(self, snapshot: Snapshot) -> None:
        """Draw the positions of ``snapshot`` (only what changed is redrawn)."""
        rows = [
            (
                p.symbol,
                [
                    f.text(p.symbol, "bold"),
                    f.side(p.side),
                    f.quantity(p.quantity),
                    f.number(p.avg_entry_price, 4),
                    f.number(p.cost_basis),
                    f.number(p.last_price),
                    f.pnl(p.unrealized_pnl),
                    f.pnl(p.realized_pnl),
                ],
            )
            for p in snapshot.positions
        ]
        cost, unrealized, realized = snapshot.totals
        rows.append(
            (
                TOTAL,
                [
                    f.text("TOTAL", "bold"),
                    f.text(f"{len(snapshot.positions)} open"),
                    f.text(""),
                    f.text(""),
                    f.number(cost, style="bold"),
                    f.text(""),
                    f.pnl(unrealized),
                    f.pnl(realized),
                ],
            )
        )
        self.table.sync(rows)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value != TOTAL:
            self.post_message(SymbolChosen(event.row_key.value))
