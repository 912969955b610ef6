"""DashboardApp: the Textual app that shows the store live.

The app owns no database code: a :class:`~stocksbot_tui.data.DashboardSource` does every
read and write, always on a worker thread (``@work(thread=True)``), and the
workers post :mod:`stocksbot_tui.messages` back; handlers on the UI thread update the views.
A timer asks for a refresh every ``refresh_seconds``; a refresh that finds no
change (the common case) touches no widget. When the database cannot be reached,
the status line says so and the timer keeps retrying; when only one view's figures
fail, that view says why and the others stay live.

The views are listed once, in :data:`VIEWS`: a new view is a
:class:`~stocksbot_tui.widgets.table_view.TableView` subclass with ``show(snapshot)`` and a
line there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import replace

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from .data import DashboardSource, OrderQuery, Snapshot, Sort, is_unavailable, one_line
from .format import visible
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
from .widgets.audit_view import AuditView
from .widgets.health_line import HealthLine
from .widgets.keyed_table import KeyedTable
from .widgets.orders_view import OrdersView
from .widgets.performance_view import PerformanceView
from .widgets.positions_view import PositionsView
from .widgets.status_bar import StatusBar
from .widgets.strategies_view import StrategiesView
from .widgets.table_view import TableView
from .widgets.trades_view import TradesView

#: The views, in tab order: (name, tab title, widget). Key ``1`` shows the first.
VIEWS: list[tuple[str, str, type[TableView]]] = [
    ("positions", "Positions", PositionsView),
    ("orders", "Orders", OrdersView),
    ("strategies", "Strategies", StrategiesView),
    ("trades", "Trades", TradesView),
    ("performance", "Performance", PerformanceView),
    ("audit", "Audit", AuditView),
]


def utc_now() -> dt.datetime:
    """The wall clock, aware UTC (tests pass a fixed clock instead)."""
    return dt.datetime.now(dt.timezone.utc)


class DashboardApp(App):
    """Positions, orders, strategies, trades, performance and audit log of one store,
    kept live."""

    TITLE = "stocksbot dashboard"
    CSS_PATH = "app.tcss"
    # The tabs show the view keys; the footer keeps to what fits 80 columns, so that
    # help and quit are always on screen.
    BINDINGS = [
        *[
            Binding(str(number), f"view('{name}')", title, show=False)
            for number, (name, title, _) in enumerate(VIEWS, 1)
        ],
        Binding("tab", "next_view", "Next view", priority=True, show=False),
        Binding("slash", "filter", "Filter"),
        Binding("r", "refresh_now", "Refresh"),
        Binding("t", "toggle_trading", "Halt/resume"),
        Binding("a", "toggle_strategy", "(De)activate", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        source: DashboardSource,
        *,
        refresh_seconds: float = 1.0,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        super().__init__()
        self.source = source
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self.snapshot: Snapshot | None = None
        #: The orders view's pages: the first page's query, then each page turned to.
        self.order_pages: list[OrderQuery] = [OrderQuery()]
        self.trades_sort: Sort | None = None
        self.last_ok: dt.datetime | None = None
        #: Why the last refresh failed as a whole (None: it did not).
        self.error: str | None = None
        #: Whether that failure was the database being unreachable.
        self.unavailable = False
        #: Views (and ``trading``) whose figures failed, and why.
        self.failed: dict[str, str] = {}
        self.refreshes = 0
        self._force_next = False

    # -- layout ----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield HealthLine(id="health")
        with TabbedContent(id="views", initial=VIEWS[0][0]):
            for number, (name, title, view) in enumerate(VIEWS, 1):
                with TabPane(f"{number} {title}", id=name):
                    yield view(id=f"{name}-view")
        # The palette (ctrl+p) is in the help screen: the footer's room goes to keys.
        yield Footer(compact=True, show_command_palette=False)

    def view(self, name: str) -> TableView:
        """The view called ``name``."""
        return self.query_one(f"#{name}-view", TableView)

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
        """The name of the view on screen (see :data:`VIEWS`)."""
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

    @property
    def order_query(self) -> OrderQuery:
        """The orders filter and sort (from the first page)."""
        return self.order_pages[0]

    def current_query(self) -> OrderQuery:
        """The query of the orders page on screen."""
        return self.order_pages[-1]

    @work(thread=True, group="refresh")
    def refresh_worker(self, query: OrderQuery, force: bool) -> None:
        try:
            snapshot = self.source.refresh(
                query, force=force or self.error is not None, trades=self.trades_sort
            )
        except Exception as e:  # shown in the status line; the timer retries
            self.post_message(RefreshFailed(one_line(e), unavailable=is_unavailable(e)))
        else:
            self.post_message(Refreshed(snapshot))

    def _views_gone(self) -> bool:
        """True once the views are gone (a worker's message can arrive during exit)."""
        return not self.query(StatusBar)

    def on_refreshed(self, message: Refreshed) -> None:
        if self._views_gone():
            return
        self.error = None
        self.unavailable = False
        self.last_ok = self.clock()
        self.refreshes += 1
        if message.snapshot is not None:
            self.show(message.snapshot)
            self.query_one(HealthLine).show(
                message.snapshot.health, message.snapshot.failed.get("health")
            )
        self.draw_status()

    def on_refresh_failed(self, message: RefreshFailed) -> None:
        if self._views_gone():
            return
        if message.view is not None and not message.unavailable:
            self.fail_view(message.view, message.error)
        else:
            self.error, self.unavailable = message.error, message.unavailable
        self.draw_status()

    def show(self, snapshot: Snapshot) -> None:
        """Draw ``snapshot`` in every view; a view whose figures failed (in reading or
        in drawing) says why, and the others are drawn as usual."""
        self.snapshot = snapshot
        self.failed = {k: v for k, v in snapshot.failed.items() if k == "trading"}
        self.view("orders").page_number = len(self.order_pages)
        for name, _, _ in VIEWS:
            view = self.view(name)
            failure = snapshot.failed.get(name)
            if failure is None:
                try:
                    view.show(snapshot)
                except Exception as e:  # a figure the view cannot draw
                    failure = one_line(e)
            self.fail_view(name, failure)

    def fail_view(self, name: str, failure: str | None) -> None:
        """Mark view ``name`` failed because of ``failure`` (None: it is fine)."""
        view = self.view(name)
        view.fail(failure)
        if view.failure is None:  # a view may keep a failure of its own
            self.failed.pop(name, None)
        else:
            self.failed[name] = view.failure

    def draw_status(self) -> None:
        """Redraw the status line from what the app knows now."""
        if self._views_gone():
            return
        if self.error is not None:
            state = "down" if self.unavailable else "failed"
        elif self.last_ok is None or (self.clock() - self.last_ok).total_seconds() > max(
            3 * self.refresh_seconds, 5
        ):
            state = "stale"
        else:
            state = "live"
        self.query_one(StatusBar).show(
            self.source.description,
            state=state,
            refreshed=self.last_ok,
            trading_enabled=None if self.snapshot is None else self.snapshot.trading_enabled,
            error=self.error,
            failed=self.failed,
        )

    # -- orders: paging, filter, detail -----------------------------------------------

    def on_page_requested(self, message: PageRequested) -> None:
        page = self.query_one(OrdersView).page
        if message.step > 0:
            if page is None or not page.has_more or not page.rows:
                self.bell()
                return
            self.order_pages.append(self.current_query().next_page(page))
        elif len(self.order_pages) > 1:
            self.order_pages.pop()
        else:
            self.bell()
            return
        self.orders_worker(self.current_query())

    @work(thread=True, group="orders", exclusive=True)
    def orders_worker(self, query: OrderQuery) -> None:
        try:
            self.post_message(OrdersLoaded(self.source.orders(query)))
        except Exception as e:
            self.post_message(
                RefreshFailed(one_line(e), unavailable=is_unavailable(e), view="orders")
            )

    def on_orders_loaded(self, message: OrdersLoaded) -> None:
        if not self._views_gone() and message.page.query == self.current_query():
            view = self.query_one(OrdersView)
            try:
                view.show_page(message.page, len(self.order_pages))
            except Exception as e:
                self.fail_view("orders", one_line(e))
            else:
                self.fail_view("orders", None)
            self.draw_status()

    def on_keyed_table_sort_changed(self, message: KeyedTable.SortChanged) -> None:
        """A sort done in SQL: re-read the view's rows in the new order."""
        sort = None if message.column is None else Sort(message.column, message.reverse)
        if message.table.id == "orders-table":
            self.show_orders(replace(self.order_query, sort=sort))
        else:
            self.trades_sort = sort
            self.schedule_refresh(force=True)

    def action_filter(self) -> None:
        """Ask for the order filter, then show its first page."""
        names = [] if self.snapshot is None else [s.name for s in self.snapshot.strategies]

        def apply(query: OrderQuery | None) -> None:
            if query is not None:
                self.show_orders(query)

        self.query_one(TabbedContent).active = "orders"
        self.push_screen(FilterScreen(self.order_query, names), apply)

    def on_symbol_chosen(self, message: SymbolChosen) -> None:
        self.show_orders(OrderQuery(symbol=message.symbol, sort=self.order_query.sort))
        self.query_one(TabbedContent).active = "orders"

    def show_orders(self, query: OrderQuery) -> None:
        """Filter (and sort) the orders view by ``query`` and load its first page."""
        self.order_pages = [query.first_page()]
        self.orders_worker(self.current_query())

    def on_order_chosen(self, message: OrderChosen) -> None:
        self.fills_worker(message.order_id)

    @work(thread=True, group="detail", exclusive=True)
    def fills_worker(self, order_id: int) -> None:
        try:
            self.post_message(FillsLoaded(self.source.order_detail(order_id)))
        except Exception as e:
            self.post_message(
                ActionFinished(f"could not read order {order_id}: {one_line(e)}", ok=False)
            )

    def on_fills_loaded(self, message: FillsLoaded) -> None:
        if message.detail.order is not None and not self._views_gone():
            self.push_screen(OrderDetailScreen(message.detail))

    # -- operator actions --------------------------------------------------------------

    def action_toggle_trading(self) -> None:
        """Halt or resume trading, after a yes (halt when the switch could not be read)."""
        if self.snapshot is None:
            return
        # A switch that could not be read is offered the halt: halting is always safe.
        enable = self.snapshot.trading_enabled is False
        question = (
            "Resume trading? The bot will place orders again."
            if enable
            else "Halt trading? The bot stops placing orders."
        )

        def answer(yes: bool | None) -> None:
            if yes:
                self.write_worker(
                    "trading resumed" if enable else "trading halted",
                    self.source.set_trading_enabled,
                    enable,
                )

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
                self.write_worker(
                    f"{visible(stats.name)} {verb.lower()}d",
                    self.source.set_strategy_active,
                    stats.id,
                    active,
                )

        self.push_screen(ConfirmScreen(f"{verb} strategy {visible(stats.name)}?"), answer)

    @work(thread=True, group="actions")
    def write_worker(self, done: str, write: Callable[..., object], *args: object) -> None:
        try:
            write(*args)
        except Exception as e:
            self.post_message(ActionFinished(f"not done: {one_line(e)}", ok=False))
        else:
            self.post_message(ActionFinished(done, ok=True))

    def on_action_finished(self, message: ActionFinished) -> None:
        # Plain text: names in it come from the store and are never markup.
        self.notify(
            visible(message.text), severity="information" if message.ok else "error", markup=False
        )
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
        names = [name for name, _, _ in VIEWS]
        index = names.index(self.current_view)
        self.action_view(names[(index + 1) % len(names)])

    def action_refresh_now(self) -> None:
        """Read the database now, and show the newest rows of the view on screen."""
        self.view(self.current_view).table.action_top()
        self.schedule_refresh(force=True)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for number, (view, _, _) in enumerate(VIEWS, 1):
            yield SystemCommand(
                f"Show {view}",
                f"Switch to the {view} view (key {number})",
                lambda v=view: self.action_view(v),
            )
        yield SystemCommand(
            "Filter orders", "Filter by symbol, status, side, strategy (/)", self.action_filter
        )
        yield SystemCommand("Refresh", "Read the database now (r)", self.action_refresh_now)
        yield SystemCommand("Halt or resume trading", "Asks first (t)", self.action_toggle_trading)
        yield SystemCommand(
            "Activate or deactivate strategy", "Asks first (a)", self.action_toggle_strategy
        )

    def on_unmount(self) -> None:
        self.source.close()
