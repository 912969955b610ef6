"""Strategies: per-strategy figures and a chart of the selected one's realized P&L."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Sparkline, Static

from .. import format as f
from ..data import Snapshot
from .keyed_table import KeyedTable
from .table_view import TableView

COLUMNS = [
    ("name", "Strategy"),
    ("active", "Active"),
    ("enabled", "Enabled"),
    ("trades", "Trades"),
    ("win_rate", "Win rate"),
    ("gross", "Gross P&L"),
    ("net", "Net P&L"),
    ("pf", "Profit factor"),
    ("max_dd", "Max drawdown"),
    ("last", "Last trade (UTC)"),
]
#: Hidden first when the terminal is too narrow.
DROP_ORDER = ["enabled", "last", "max_dd", "pf", "win_rate", "trades"]


class StrategiesView(TableView):
    """The strategies table and, under it, the selected strategy's P&L over time."""

    BINDINGS = [Binding("a", "app.toggle_strategy", "(De)activate")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.snapshot: Snapshot | None = None

    def compose(self) -> ComposeResult:
        yield Static(classes="note")
        yield KeyedTable(COLUMNS, drop_order=DROP_ORDER, id="strategies-table")
        yield Static("", id="pnl-caption")
        yield Sparkline([], id="pnl-chart")

    @property
    def selected_id(self) -> int | None:
        """The id of the strategy under the cursor."""
        key = self.table.selected_key
        return None if key is None else int(key)

    def show(self, snapshot: Snapshot) -> None:
        """Draw the strategies of ``snapshot`` and the chart of the selected one."""
        self.snapshot = snapshot
        rows = [
            (
                str(s.id),
                [
                    f.text(s.name, "bold"),
                    f.flag(s.is_active),
                    f.flag(s.is_enabled),
                    f.Cell(str(s.trades), sort_value=s.trades, justify="right"),
                    f.percent(s.win_rate),
                    f.pnl(s.gross_pnl),
                    f.pnl(s.net_pnl),
                    f.number(s.profit_factor)
                    if s.profit_factor is not None
                    else f.Cell("∞", "green"),
                    f.number(s.max_drawdown, style="red" if s.max_drawdown else ""),
                    f.timestamp(s.last_trade_at),
                ],
            )
            for s in snapshot.strategies
        ]
        self.table.sync(rows)
        self.draw_chart()

    def fail(self, failure: str | None) -> None:
        super().fail(failure)
        if failure is not None:
            self.snapshot = None
            self.query_one(Sparkline).data = []
            self.query_one("#pnl-caption", Static).update("")

    def draw_chart(self) -> None:
        """Chart the realized P&L of the selected strategy."""
        if self.snapshot is None:
            return
        chosen = self.selected_id
        stats = {s.id: s for s in self.snapshot.strategies}
        series = self.snapshot.pnl_series.get(chosen, ()) if chosen is not None else ()
        chart = self.query_one(Sparkline)
        chart.data = [float(v) for v in series]
        caption = Text()
        if chosen in stats:
            s = stats[chosen]
            low, high = (min(series), max(series)) if series else (0, 0)
            caption.append(f.visible(s.name), "bold")
            caption.append(
                f" realized P&L over its last {len(series)} closing fills: "
                f"low {low:,.2f}, high {high:,.2f}, now {s.gross_pnl:,.2f}"
            )
        else:
            caption.append("no strategy selected")
        self.query_one("#pnl-caption", Static).update(caption)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.draw_chart()
