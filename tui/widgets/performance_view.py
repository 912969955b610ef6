"""Performance: equity curve and drawdown, daily net P&L, P&L by period and by symbol,
open positions at their marks, and the last reconcile with the broker.

Keys (while the view has the keyboard): ``p`` switches day / week / month, ``g`` steps
through the strategies and ``y`` through the symbols the by-period table is filtered
by. The figures are read on a worker thread (:func:`tui.performance_data.load_performance`)
after each refresh of the dashboard that saw a change, and when a key changes the
filters.
"""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Static
from textual_plotext import PlotextPlot

from .. import format as f
from ..performance_data import Performance, PerformanceQuery, cycle, load_performance
from .keyed_table import KeyedTable
from .table_view import TableView

#: Days of daily net P&L bars.
BAR_DAYS = 30

PERIOD_COLUMNS = [("period", "Period"), ("trades", "Trades"), ("wl", "W/L"),
                  ("gross", "Gross P&L"), ("fees", "Fees"), ("net", "Net P&L")]
SYMBOL_COLUMNS = [("symbol", "Symbol"), ("trades", "Trades"), ("net", "Net P&L"),
                  ("fees", "Fees")]
MARK_COLUMNS = [("symbol", "Symbol"), ("price", "Price"), ("source", "From"),
                ("age", "Age"), ("unrealized", "Unrealized")]


def age_text(age: dt.timedelta) -> str:
    """``42s``, ``5m``, ``3h`` or ``2d``: how old a price is, at a glance."""
    seconds = max(0, int(age.total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class PerformanceView(TableView):
    """Charts and tables of realized and unrealized performance."""

    DEFAULT_CSS = """
    PerformanceView { height: 1fr; }
    PerformanceView #perf-caption, PerformanceView #reconcile-line { height: 1; padding: 0 1; }
    PerformanceView #perf-charts { height: 1fr; min-height: 8; }
    PerformanceView #perf-tables { height: 1fr; min-height: 8; }
    PerformanceView #performance-table { width: 1fr; height: 1fr; }
    PerformanceView #perf-side { width: 40; height: 1fr; }
    PerformanceView #symbol-table, PerformanceView #marks-table { height: 1fr; }
    """

    BINDINGS = [
        Binding("p", "next_period", "Day/week/month", show=False),
        Binding("g", "next_strategy", "Strategy", show=False),
        Binding("y", "next_symbol", "Symbol", show=False),
    ]

    class Loaded(Message):
        """A load finished (``performance`` None: it failed with ``error``)."""

        def __init__(self, performance: Performance | None, error: str = "") -> None:
            super().__init__()
            self.performance = performance
            self.error = error

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.query_state = PerformanceQuery()
        self.performance: Performance | None = None

    def compose(self) -> ComposeResult:
        yield Static(classes="note")
        yield Static("", id="perf-caption")
        with Horizontal(id="perf-charts"):
            yield PlotextPlot(id="equity-chart")
            yield PlotextPlot(id="daily-chart")
        with Horizontal(id="perf-tables"):
            yield KeyedTable(PERIOD_COLUMNS, drop_order=("wl", "fees", "trades", "gross"),
                             id="performance-table")
            with Vertical(id="perf-side"):
                yield KeyedTable(SYMBOL_COLUMNS, drop_order=("fees", "trades"), id="symbol-table")
                yield KeyedTable(MARK_COLUMNS, drop_order=("age", "price"), id="marks-table")
        yield Static("", id="reconcile-line")

    # -- loading -----------------------------------------------------------------------

    @property
    def table(self) -> KeyedTable:
        """The by-period table (the view's main one)."""
        return self.query_one("#performance-table", KeyedTable)

    def show(self, snapshot: object) -> None:
        """The dashboard refreshed: read the figures again, on a worker."""
        self.reload()

    def reload(self) -> None:
        """Read the figures again (the store changed, or the filters did)."""
        self.load_worker(self.query_state)

    @work(thread=True, exclusive=True, group="performance")
    def load_worker(self, query: PerformanceQuery) -> None:
        source = self.app.source
        try:
            with source._connection():
                performance = load_performance(source.storage, query)
        except Exception as e:  # shown in the caption; the next refresh retries
            self.post_message(self.Loaded(None, str(e).strip().splitlines()[0][:200]))
        else:
            self.post_message(self.Loaded(performance))

    def on_performance_view_loaded(self, message: Loaded) -> None:
        if message.performance is None:
            self.query_one("#perf-caption", Static).update(
                Text(f"performance: {message.error}", style="red"))
            return
        self.draw(message.performance)

    # -- keys --------------------------------------------------------------------------

    def action_next_period(self) -> None:
        self.query_state = self.query_state.next_period()
        self.reload()

    def action_next_strategy(self) -> None:
        choices = self.performance.strategies if self.performance else ()
        q = self.query_state
        self.query_state = PerformanceQuery(q.period, cycle(q.strategy, choices), q.symbol)
        self.reload()

    def action_next_symbol(self) -> None:
        choices = self.performance.symbols if self.performance else ()
        q = self.query_state
        self.query_state = PerformanceQuery(q.period, q.strategy, cycle(q.symbol, choices))
        self.reload()

    # -- drawing -----------------------------------------------------------------------

    def draw(self, performance: Performance) -> None:
        """Draw ``performance``."""
        self.performance = performance
        now = getattr(self.app, "clock", lambda: dt.datetime.now(dt.timezone.utc))()
        last = performance.curve[-1] if performance.curve else None
        equity = f"equity {last.equity:,.2f} dd {last.drawdown:,.2f}" if last else \
            "no trades yet"
        self.query_one("#perf-caption", Static).update(
            f"[b]{performance.query.describe()}[/b] (keys p g y)  {equity}")
        self.draw_charts(performance)
        self.query_one("#performance-table", KeyedTable).sync([
            (r.key, [f.text(r.key, "bold"),
                     f.Cell(str(r.trades), sort_value=r.trades, justify="right"),
                     f.text(f"{r.wins}/{r.losses}"), f.pnl(r.gross_pnl), f.number(r.fees),
                     f.pnl(r.net_pnl)])
            for r in reversed(performance.by_period)])
        self.query_one("#symbol-table", KeyedTable).sync([
            (r.key, [f.text(r.key, "bold"),
                     f.Cell(str(r.trades), sort_value=r.trades, justify="right"),
                     f.pnl(r.net_pnl), f.number(r.fees)])
            for r in performance.by_symbol])
        self.query_one("#marks-table", KeyedTable).sync([
            (v.position.symbol, [f.text(v.position.symbol, "bold"), f.number(v.price),
                                 f.text(v.source, "green" if v.source == "mark" else "yellow"),
                                 f.text(age_text(v.age(now))), f.pnl(v.unrealized_pnl)])
            for v in performance.positions])
        run = performance.reconcile
        if run is None:
            line = "reconcile: never run (the bot reconciles with the broker on start)"
        else:
            found = (f"{len(run.differences)} difference(s)" if run.differences
                     else "store and broker agreed")
            state = "applied" if run.applied else "not applied"
            first = f": {run.differences[0]}" if run.differences else ""
            line = (f"last reconcile {run.ran_at:%Y-%m-%d %H:%M} UTC: {found}"
                    f"{', ' + state if run.differences else ''}{first}")
        self.query_one("#reconcile-line", Static).update(line)

    def draw_charts(self, performance: Performance) -> None:
        """The equity curve with its drawdown, and the daily net P&L bars."""
        curve = performance.curve
        days = [p.day.strftime("%m-%d") for p in curve]
        ticks = sorted({0, len(curve) // 2, len(curve) - 1}) if curve else []
        chart = self.query_one("#equity-chart", PlotextPlot)
        plt = chart.plt
        plt.clear_figure()
        plt.title("Equity and drawdown (UTC days)")
        if curve:
            x = list(range(len(curve)))
            plt.plot(x, [float(p.equity) for p in curve], label="equity", color="cyan")
            plt.plot(x, [-float(p.drawdown) for p in curve], label="drawdown", color="red")
            plt.xticks(ticks, [days[i] for i in ticks])
        chart.refresh()
        bars = self.query_one("#daily-chart", PlotextPlot)
        plt = bars.plt
        plt.clear_figure()
        plt.title(f"Daily net P&L (last {BAR_DAYS} days)")
        recent = curve[-BAR_DAYS:]
        if recent:
            x = list(range(len(recent)))
            values = [float(p.day_net_pnl) for p in recent]
            plt.bar(x, [max(v, 0) for v in values], color="green")
            plt.bar(x, [min(v, 0) for v in values], color="red")
            marks = sorted({0, len(recent) - 1})
            plt.xticks(marks, [recent[i].day.strftime("%m-%d") for i in marks])
        bars.refresh()
