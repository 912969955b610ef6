"""Strategies: per-strategy figures and a chart of the selected one's realized P&L."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Sparkline, Static

from .. import format as f
from ..data import Snapshot
from .keyed_table import KeyedTable

COLUMNS = [("name", "Strategy"), ("active", "Active"), ("enabled", "Enabled"),
           ("trades", "Trades"), ("win_rate", "Win rate"), ("gross", "Gross P&L"),
           ("net", "Net P&L"), ("pf", "Profit factor"), ("max_dd", "Max drawdown"),
           ("last", "Last trade (UTC)")]


class StrategiesView(Vertical):
    """The strategies table and, under it, the selected strategy's P&L over time."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.snapshot: Snapshot | None = None

    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, id="strategies-table")
        yield Static("", id="pnl-caption")
        yield Sparkline([], id="pnl-chart")

    @property
    def selected_id(self) -> int | None:
        """The id of the strategy under the cursor."""
        key = self.query_one(KeyedTable).selected_key
        return None if key is None else int(key)

    def show(self, snapshot: Snapshot) -> None:
        """Draw the strategies of ``snapshot`` and the chart of the selected one."""
        self.snapshot = snapshot
        rows = [(str(s.id), [
            f.text(s.name, "bold"), f.flag(s.is_active), f.flag(s.is_enabled),
            f.Cell(str(s.trades), sort_value=s.trades, justify="right"), f.percent(s.win_rate),
            f.pnl(s.gross_pnl), f.pnl(s.net_pnl),
            f.number(s.profit_factor) if s.profit_factor is not None else f.Cell("∞", "green"),
            f.number(s.max_drawdown, style="red" if s.max_drawdown else ""),
            f.timestamp(s.last_trade_at)]) for s in snapshot.strategies]
        self.query_one(KeyedTable).sync(rows)
        self.draw_chart()

    def draw_chart(self) -> None:
        """Chart the realized P&L of the selected strategy."""
        if self.snapshot is None:
            return
        chosen = self.selected_id
        stats = {s.id: s for s in self.snapshot.strategies}
        series = self.snapshot.pnl_series.get(chosen, ()) if chosen is not None else ()
        chart = self.query_one(Sparkline)
        chart.data = [float(v) for v in series]
        caption = self.query_one("#pnl-caption", Static)
        if chosen in stats:
            s = stats[chosen]
            low, high = (min(series), max(series)) if series else (0, 0)
            caption.update(f"[b]{s.name}[/b] realized P&L over its last {len(series)} closing "
                           f"fills: low {low:,.2f}, high {high:,.2f}, now {s.gross_pnl:,.2f}")
        else:
            caption.update("no strategy selected")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.draw_chart()
