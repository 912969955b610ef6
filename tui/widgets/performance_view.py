"""Performance: equity curve and drawdown, daily net P&L, P&L by period and by symbol,
open positions at their marks, and the last reconcile with the broker.

Keys (while the view has the keyboard): ``p`` switches day / week / month, ``g`` steps
through the strategies and ``y`` through the symbols the by-period table is filtered
by. The figures are read on a worker thread (:meth:`stocksbot_tui.data.DashboardSource.performance`)
after each refresh of the dashboard that saw a change, and when a key changes the
filters.

It follows the rules of every view (:class:`~stocksbot_tui.widgets.table_view.TableView`): its
caption and state are on the note line, which wraps rather than cut a number; columns
give way for width, and the charts give way for height, before any number is cut, and
the note says which; stored text is shown through :func:`~stocksbot_tui.format.visible`; and a
figure that cannot be read or drawn fails this view alone.
"""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from .. import format as f
from ..format import visible
from ..performance_data import Performance, PerformanceQuery, cycle
from .keyed_table import KeyedTable
from .table_view import LoadingView

#: Days of daily net P&L bars.
BAR_DAYS = 30
#: Lines the charts need to be readable, and the tables under them (with their
#: header) to show a few rows; below both (plus the note and reconcile lines) the
#: charts are hidden, as the least important part of the view.
CHART_LINES = 8
TABLE_LINES = 8

PERIOD_COLUMNS = [
    ("period", "Period"),
    ("trades", "Trades"),
    ("wl", "W/L"),
    ("gross", "Gross P&L"),
    ("fees", "Fees"),
    ("net", "Net P&L"),
]
SYMBOL_COLUMNS = [("symbol", "Symbol"), ("trades", "Trades"), ("net", "Net P&L"), ("fees", "Fees")]
MARK_COLUMNS = [
    ("symbol", "Symbol"),
    ("price", "Price"),
    ("source", "From"),
    ("age", "Age"),
    ("unrealized", "Unrealized"),
]


def age_text(age: dt.timedelta) -> str:
    """``42s``, ``5m``, ``3h`` or ``2d``: how old a price is, at a glance."""
    seconds = max(0, int(age.total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class PerformanceView(LoadingView):
    """Charts and tables of realized and unrealized performance."""

    DEFAULT_CSS = """
    PerformanceView { height: 1fr; }
    PerformanceView #reconcile-line { height: auto; padding: 0 1; }
    PerformanceView #perf-charts { height: 1fr; min-height: 8; }
    PerformanceView #perf-tables { height: 1fr; min-height: 4; }
    PerformanceView #performance-table { width: 1fr; height: 1fr; }
    PerformanceView #perf-side { width: 40; height: 1fr; }
    PerformanceView #symbol-table, PerformanceView #marks-table { height: 1fr; }
    """

    BINDINGS = [
        Binding("p", "next_period", "Day/week/month", show=False),
        Binding("g", "next_strategy", "Strategy", show=False),
        Binding("y", "next_symbol", "Symbol", show=False),
    ]

    view_name = "performance"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        #: The by-period table's period and filters.
        self.query_state = PerformanceQuery()
        self.performance: Performance | None = None

    def compose(self) -> ComposeResult:
        yield Static(classes="note")
        with Horizontal(id="perf-charts"):
            yield PlotextPlot(id="equity-chart")
            yield PlotextPlot(id="daily-chart")
        with Horizontal(id="perf-tables"):
            yield KeyedTable(
                PERIOD_COLUMNS, drop_order=("wl", "fees", "trades", "gross"), id="performance-table"
            )
            with Vertical(id="perf-side"):
                yield KeyedTable(SYMBOL_COLUMNS, drop_order=("fees", "trades"), id="symbol-table")
                yield KeyedTable(MARK_COLUMNS, drop_order=("age", "price"), id="marks-table")
        yield Static("", id="reconcile-line")

    # -- loading -----------------------------------------------------------------------

    @property
    def table(self) -> KeyedTable:
        """The by-period table (the view's main one)."""
        return self.query_one("#performance-table", KeyedTable)

    def load(self, query: PerformanceQuery) -> Performance:
        return self.app.source.performance(query)

    def fail(self, failure: str | None) -> None:
        """Failed when told so, or when the last load failed; a failed view shows no
        rows and no charts, only why."""
        failure = failure if failure is not None else self.load_failure
        if failure is not None:
            for table in self.query(KeyedTable):
                table.sync([])
            self.performance = None
            self.draw_charts(None)
            self.query_one("#reconcile-line", Static).update("")
        super().fail(failure)

    # -- layout ------------------------------------------------------------------------

    def on_resize(self) -> None:
        """Hide the charts when the tables would not keep a few rows under them."""
        room = self.size.height - 4  # the note and reconcile lines, which may wrap
        show = room >= CHART_LINES + TABLE_LINES
        charts = self.query_one("#perf-charts")
        if charts.display != show:
            charts.display = show
            self.draw_note()

    def hidden_for_height(self) -> list[str]:
        return [] if self.query_one("#perf-charts").display else ["charts"]

    def caption(self) -> Text:
        """What is shown and the equity now, from text made visible."""
        performance = self.performance
        if performance is None:
            return Text("")
        line = Text(visible(performance.query.describe()), "bold")
        line.append(" (keys p g y)", "dim")
        last = performance.curve[-1] if performance.curve else None
        line.append(
            f"  equity {last.equity:,.2f}  drawdown {last.drawdown:,.2f}"
            if last
            else "  no trades yet"
        )
        return line

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
        self.draw_charts(performance)
        self.query_one("#performance-table", KeyedTable).sync(
            [
                (
                    r.key,
                    [
                        f.text(r.key, "bold"),
                        f.Cell(str(r.trades), sort_value=r.trades, justify="right"),
                        f.text(f"{r.wins}/{r.losses}"),
                        f.pnl(r.gross_pnl),
                        f.number(r.fees),
                        f.pnl(r.net_pnl),
                    ],
                )
                for r in reversed(performance.by_period)
            ]
        )
        self.query_one("#symbol-table", KeyedTable).sync(
            [
                (
                    r.key,
                    [
                        f.text(r.key, "bold"),
                        f.Cell(str(r.trades), sort_value=r.trades, justify="right"),
                        f.pnl(r.net_pnl),
                        f.number(r.fees),
                    ],
                )
                for r in performance.by_symbol
            ]
        )
        self.query_one("#marks-table", KeyedTable).sync(
            [
                (
                    v.position.symbol,
                    [
                        f.text(v.position.symbol, "bold"),
                        f.number(v.price),
                        f.text(v.source, "green" if v.source == "mark" else "yellow"),
                        f.text(age_text(v.age(now))),
                        f.pnl(v.unrealized_pnl),
                    ],
                )
                for v in performance.positions
            ]
        )
        run = performance.reconcile
        if run is None:
            line = "reconcile: never run (the bot reconciles with the broker on start)"
        else:
            found = (
                f"{len(run.differences)} difference(s)"
                if run.differences
                else "store and broker agreed"
            )
            state = "applied" if run.applied else "not applied"
            first = f": {run.differences[0]}" if run.differences else ""
            line = (
                f"last reconcile {run.ran_at:%Y-%m-%d %H:%M} UTC: {found}"
                f"{', ' + state if run.differences else ''}{first}"
            )
        self.query_one("#reconcile-line", Static).update(Text(visible(line)))
        self.draw_note()

    def draw_charts(self, performance: Performance | None) -> None:
        """The equity curve with its drawdown, and the daily net P&L bars (None:
        empty charts)."""
        curve = performance.curve if performance is not None else ()
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
