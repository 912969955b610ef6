"""DashboardApp: the Textual app that shows the store live.

The app owns no database code: a :class:`~tui.data.DashboardSource` does every
read and write, always on a worker thread (``@work(thread=True)``), and the
workers post :mod:`tui.messages` back; handlers on the UI thread update the views.
A timer asks for a refresh every ``refresh_seconds``; a refresh that finds no
change (the common case) touches no widget. When the database cannot be read,
the status line says so and the timer keeps retrying.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from .data import DashboardSource, OrderQuery, Snapshot
from .messages import (
    ActionFinished,
    FillsLoaded,
    OrderChosen,
    OrdersLoaded,
    PageRequested,
    Refreshed,
    RefreshFailed,
    SymbolChosen,
)
from .screens.confirm import ConfirmScreen
from .screens.filter import FilterScreen
from .screens.help import HelpScreen
from .screens.order_detail import OrderDetailScreen
from .widgets.keyed_table import KeyedTable
from .widgets.orders_view import OrdersView
from .widgets.positions_view import PositionsView
from .widgets.status_bar import StatusBar
from .widgets.strategies_view import StrategiesView
from .widgets.trades_view import TradesView

VIEWS = ["positions", "orders", "strategies", "trades"]


def utc_now() -> dt.datetime:
    """The wall clock, aware UTC (tests pass a fixed clock instead)."""
    return dt.datetime.now(dt.timezone.utc)


class DashboardApp(App):
    """Positions, orders, strategies and trades of one store, kept live."""

    TITLE = "stocksbot dashboard"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("1", "view('positions')", "Positions"),
        Binding("2", "view('orders')", "Orders"),
        Binding("3", "view('strategies')", "Strategies"),
        Binding("4", "view('trades')", "Trades"),
        Binding("tab", "next_view", "Next view", priority=True),
        Binding("slash", "filter", "Filter"),
        Binding("r", "refresh_now", "Refresh"),
        Binding("t", "toggle_trading", "Halt/resume"),
        Binding("a", "toggle_strategy", "(De)activate"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, source: DashboardSource, *, refresh_seconds: float = 1.0,
                 clock: Callable[[], dt.datetime] = utc_now) -> None:
        super().__init__()
        self.source = source
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self.snapshot: Snapshot | None = None
        self.order_query = OrderQuery()
        self.page_anchors: list[int | None] = [None]
        self.last_ok: dt.datetime | None = None
        self.error: str | None = None
        self.refreshes = 0
        self._force_next = False

    # -- layout ----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with TabbedContent(id="views", initial="positions"):
            with TabPane("1 Positions", id="positions"):
                yield PositionsView()
            with TabPane("2 Orders", id="orders"):
                yield OrdersView()
            with TabPane("3 Strategies", id="strategies"):
                yield StrategiesView()
            with TabPane("4 Trades", id="trades"):
                yield TradesView()
        yield Footer()

    def on_mount(self) -> None:
        self.draw_status()
        self.set_interval(self.refresh_seconds, self.schedule_refresh)
        self.schedule_refresh(force=True)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.focus_table()

    def focus_table(self) -> None:
        """Give the keyboard to the table of the visible view."""
        pane = self.query_one(TabbedContent).active_pane
        if pane is not None:
            pane.query(KeyedTable).first().focus()

    @property
    def current_view(self) -> str:
        """positions, orders, strategies or trades."""
        return self.query_one(TabbedContent).active

    # -- refreshing ------------------------------------------------------------------

    def schedule_refresh(self, force: bool = False) -> None:
        """Start a refresh unless one is running (a forced one then waits for the next
        tick); also ages the live/stale badge."""
        self.draw_status()
        self._force_next = self._force_next or force
        if not any(w.group == "refresh" and not w.is_finished for w in self.workers):
            self.refresh_worker(self.current_query(), self._force_next)
            self._force_next = False

    def current_query(self) -> OrderQuery:
        """The order filter with the current page's anchor."""
        q = self.order_query
        return OrderQuery(q.symbol, q.status, q.side, q.strategy, self.page_anchors[-1])

    @work(thread=True, group="refresh")
    def refresh_worker(self, query: OrderQuery, force: bool) -> None:
        try:
            snapshot = self.source.refresh(query, force=force or self.error is not None)
        except Exception as e:  # shown in the status line; the timer retries
            self.post_message(RefreshFailed(_one_line(e)))
        else:
            self.post_message(Refreshed(snapshot))

    def _views_gone(self) -> bool:
        """True once the views are gone (a worker's message can arrive during exit)."""
        return not self.query(StatusBar)

    def on_refreshed(self, message: Refreshed) -> None:
        if self._views_gone():
            return
        self.error = None
        self.last_ok = self.clock()
        self.refreshes += 1
        if message.snapshot is not None:
            self.show(message.snapshot)
        self.draw_status()

    def on_refresh_failed(self, message: RefreshFailed) -> None:
        if self._views_gone():
            return
        self.error = message.error
        self.draw_status()

    def show(self, snapshot: Snapshot) -> None:
        """Draw ``snapshot`` in every view."""
        self.snapshot = snapshot
        self.query_one(PositionsView).show(snapshot)
        self.query_one(StrategiesView).show(snapshot)
        self.query_one(TradesView).show(snapshot)
        if snapshot.orders is not None:
            self.query_one(OrdersView).show(snapshot.orders, len(self.page_anchors))

    def draw_status(self) -> None:
        """Redraw the status line from what the app knows now."""
        if self._views_gone():
            return
        if self.error is not None:
            state = "down"
        elif self.last_ok is None or (self.clock() - self.last_ok).total_seconds() > max(
                3 * self.refresh_seconds, 5):
            state = "stale"
        else:
            state = "live"
        self.query_one(StatusBar).show(
            self.source.description, state=state, refreshed=self.last_ok,
            trading_enabled=None if self.snapshot is None else self.snapshot.trading_enabled,
            error=self.error)

    # -- orders: paging, filter, detail -----------------------------------------------

    def on_page_requested(self, message: PageRequested) -> None:
        page = self.query_one(OrdersView).page
        if message.step > 0:
            if page is None or not page.has_more or not page.rows:
                self.bell()
                return
            self.page_anchors.append(page.rows[-1].id)
        elif len(self.page_anchors) > 1:
            self.page_anchors.pop()
        else:
            self.bell()
            return
        self.orders_worker(self.current_query())

    @work(thread=True, group="orders", exclusive=True)
    def orders_worker(self, query: OrderQuery) -> None:
        try:
            self.post_message(OrdersLoaded(self.source.orders(query)))
        except Exception as e:
            self.post_message(RefreshFailed(_one_line(e)))

    def on_orders_loaded(self, message: OrdersLoaded) -> None:
        if not self._views_gone() and message.page.query == self.current_query():
            self.query_one(OrdersView).show(message.page, len(self.page_anchors))

    def action_filter(self) -> None:
        """Ask for the order filter, then show its first page."""
        names = [] if self.snapshot is None else [s.name for s in self.snapshot.strategies]

        def apply(query: OrderQuery | None) -> None:
            if query is not None:
                self.show_orders(query)

        self.query_one(TabbedContent).active = "orders"
        self.push_screen(FilterScreen(self.order_query, names), apply)

    def on_symbol_chosen(self, message: SymbolChosen) -> None:
        self.show_orders(OrderQuery(symbol=message.symbol))
        self.query_one(TabbedContent).active = "orders"

    def show_orders(self, query: OrderQuery) -> None:
        """Filter the orders view by ``query`` and load its first page."""
        self.order_query = query
        self.page_anchors = [None]
        self.orders_worker(self.current_query())

    def on_order_chosen(self, message: OrderChosen) -> None:
        self.fills_worker(message.order_id)

    @work(thread=True, group="detail", exclusive=True)
    def fills_worker(self, order_id: int) -> None:
        try:
            order, fills = self.source.order_fills(order_id)
            self.post_message(FillsLoaded(order, fills))
        except Exception as e:
            self.post_message(ActionFinished(f"could not read order {order_id}: "
                                             f"{_one_line(e)}", ok=False))

    def on_fills_loaded(self, message: FillsLoaded) -> None:
        if message.order is not None and not self._views_gone():
            self.push_screen(OrderDetailScreen(message.order, message.fills))

    # -- operator actions --------------------------------------------------------------

    def action_toggle_trading(self) -> None:
        """Halt or resume trading, after a yes."""
        if self.snapshot is None:
            return
        enable = not self.snapshot.trading_enabled
        question = ("Resume trading? The bot will place orders again." if enable else
                    "Halt trading? The bot stops placing orders.")

        def answer(yes: bool | None) -> None:
            if yes:
                self.write_worker("trading resumed" if enable else "trading halted",
                                   self.source.set_trading_enabled, enable)

        self.push_screen(ConfirmScreen(question), answer)

    def action_toggle_strategy(self) -> None:
        """Activate or deactivate the selected strategy, after a yes."""
        if self.snapshot is None:
            return
        if self.current_view != "strategies":
            self.query_one(TabbedContent).active = "strategies"
            self.notify("select a strategy, then press a")
            return
        chosen = self.query_one(StrategiesView).selected_id
        stats = {s.id: s for s in self.snapshot.strategies}.get(chosen)
        if stats is None:
            return
        active = not stats.is_active
        verb = "Activate" if active else "Deactivate"

        def answer(yes: bool | None) -> None:
            if yes:
                self.write_worker(f"{stats.name} {verb.lower()}d",
                                   self.source.set_strategy_active, stats.id, active)

        self.push_screen(ConfirmScreen(f"{verb} strategy {stats.name}?"), answer)

    @work(thread=True, group="actions")
    def write_worker(self, done: str, write: Callable[..., object], *args: object) -> None:
        try:
            write(*args)
        except Exception as e:
            self.post_message(ActionFinished(f"not done: {_one_line(e)}", ok=False))
        else:
            self.post_message(ActionFinished(done, ok=True))

    def on_action_finished(self, message: ActionFinished) -> None:
        self.notify(message.text, severity="information" if message.ok else "error")
        if message.ok:
            self.schedule_refresh(force=True)

    # -- navigation --------------------------------------------------------------------

    def action_view(self, view: str) -> None:
        self.query_one(TabbedContent).active = view

    def action_next_view(self) -> None:
        """Next view; in a dialog, the next field as usual."""
        if self.screen is not self.screen_stack[0]:
            self.screen.focus_next()
            return
        index = VIEWS.index(self.current_view)
        self.action_view(VIEWS[(index + 1) % len(VIEWS)])

    def action_refresh_now(self) -> None:
        self.schedule_refresh(force=True)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for number, view in enumerate(VIEWS, 1):
            yield SystemCommand(f"Show {view}", f"Switch to the {view} view (key {number})",
                                lambda v=view: self.action_view(v))
        yield SystemCommand("Filter orders", "Filter by symbol, status, side, strategy (/)",
                            self.action_filter)
        yield SystemCommand("Refresh", "Read the database now (r)", self.action_refresh_now)
        yield SystemCommand("Halt or resume trading", "Asks first (t)",
                            self.action_toggle_trading)
        yield SystemCommand("Activate or deactivate strategy", "Asks first (a)",
                            self.action_toggle_strategy)

    def on_unmount(self) -> None:
        self.source.close()


def _one_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
