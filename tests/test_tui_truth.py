"""The dashboard tells the truth: a failed figure is not a lost database, stored text
cannot drive the terminal, new rows are never hidden above the view, numbers are
never cut, and a sort covers the whole history. Each runs on a SQLite file and on
PostgreSQL, with rows written for real (SQL, or a simulated bot)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
import test_tui
from rich.text import Text
from test_tui import drive, status_text, table, wait_for
from textual.widgets.data_table import ColumnKey

from stocksbot_store import StorageService, connect
from stocksbot_store.seed import SimulatedBot
from stocksbot_tui.app import VIEWS, DashboardApp
from stocksbot_tui.data import PAGE_SIZE, DashboardSource
from stocksbot_tui.screens.confirm import ConfirmScreen
from stocksbot_tui.screens.filter import FilterScreen
from stocksbot_tui.screens.order_detail import OrderDetailScreen
from stocksbot_tui.widgets.health_line import HealthLine, fitted, health_text
from stocksbot_tui.widgets.keyed_table import ASCENDING, DESCENDING, KeyedTable

# The same fixtures as the other dashboard tests: a seeded store (a SQLite file or
# PostgreSQL) and a second connection to it, as the bot would have.
seeded_url = test_tui.seeded_url
store = test_tui.store

HOSTILE = "X\x1b]2;pwned\x07\x1b[2J\r\x9b[bold]B[/][link=http://e.x]L[/link]"
SHOWN = "X␛]2;pwned␇␛[2J␍\\x9b[bold]B[/][link=http://e.x]L[/link]"
HOSTILE_NAME = "[red]\x1b[2Jmomentum[/red]"
SHOWN_NAME = "[red]␛[2Jmomentum[/red]"


def quiet_dashboard(url: str) -> DashboardApp:
    """A dashboard that refreshes only when told (the test drives every refresh)."""
    return DashboardApp(DashboardSource(url, poll_seconds=3600), refresh_seconds=3600)


async def refreshed(app: DashboardApp, pilot) -> None:
    """Run one forced refresh to the end and let its rows be drawn."""
    await wait_for(
        pilot, lambda: not any(w.group == "refresh" and not w.is_finished for w in app.workers)
    )
    done = app.refreshes
    app.schedule_refresh(force=True)
    await wait_for(pilot, lambda: app.refreshes > done)
    await pilot.pause()


def screen_lines(app: DashboardApp) -> list[str]:
    """What the terminal shows, line by line, as text."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def note(app: DashboardApp, view: str) -> str:
    return str(app.view(view).query_one(".note").render())


def sql(store: StorageService, statement: str, *args) -> None:
    """Write with SQL directly, as data already stored would be (the store may refuse
    it at write time)."""
    store.db.execute_sql(statement.replace("?", store.db.param), list(args))


# -- a failed figure is not a lost database (issue item 2) -----------------------------------


@drive
async def test_a_strategy_figure_that_cannot_be_computed_fails_only_its_view(seeded_url, store):
    sql(store, 'UPDATE "strategy" SET "total_pnl" = ? WHERE "name" = ?', "NaN", "momentum")
    app = quiet_dashboard(seeded_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        await pilot.pause()
        assert app.error is None
        status = status_text(app)
        assert "LIVE" in status and "UNAVAILABLE" not in status
        assert "failed: strategies" in status
        assert "cannot show this view: InvalidOperation" in note(app, "strategies")
        assert table(app, "strategies").row_count == 0
        # The rest is live.
        assert table(app, "positions").keys() == [p.symbol for p in store.get_open_positions()] + [
            "__total__"
        ]
        assert table(app, "trades").keys()[0] == str(store.get_recent_trades(1)[0].id)
        assert "TRADING ENABLED" in status
        # Once the figure is fixed, the view comes back.
        sql(store, 'UPDATE "strategy" SET "total_pnl" = ? WHERE "name" = ?', "12.5", "momentum")
        await refreshed(app, pilot)
        assert table(app, "strategies").row_count == 4
        assert "failed" not in status_text(app)
        assert not app.view("strategies").query_one(".note").display


@drive
async def test_a_row_that_cannot_be_read_fails_only_the_orders_view(seeded_url, store):
    newest = store.get_recent_orders(1)[0].id
    sql(store, 'UPDATE "order" SET "status" = ? WHERE "id" = ?', "bogus", newest)
    app = quiet_dashboard(seeded_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        await pilot.pause()
        assert app.error is None and "orders" in app.failed
        status = status_text(app)
        assert "LIVE" in status and "UNAVAILABLE" not in status and "retrying" not in status
        assert "cannot show this view: order.status holds 'bogus', which is none of" in note(
            app, "orders"
        )
        assert table(app, "positions").row_count == len(store.get_open_positions()) + 1
        assert table(app, "strategies").row_count == 4
        assert table(app, "trades").row_count == 50


@drive
async def test_a_performance_figure_that_cannot_be_read_fails_only_its_view(seeded_url, store):
    store.reconcile({})  # a reconcile run, whose stored differences cannot be read
    sql(store, 'UPDATE "reconcile_run" SET "differences" = ?', '[{"kind": "\\u001b[2J"}]')
    app = quiet_dashboard(seeded_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: "performance" in app.failed)
        await pilot.press("5")
        await pilot.pause()
        assert app.error is None
        status = status_text(app)
        assert "LIVE" in status and "failed: performance" in status
        assert "cannot show this view: KeyError: 'subject'" in note(app, "performance")
        assert table(app, "performance").row_count == 0
        assert table(app, "strategies").row_count == 4
        assert all(no_controls(line) for line in screen_lines(app))
        # A refresh does not hide the failure; a readable run brings the view back.
        await refreshed(app, pilot)
        assert "failed: performance" in status_text(app)
        sql(store, 'UPDATE "reconcile_run" SET "differences" = ?', "[]")
        await refreshed(app, pilot)
        await wait_for(pilot, lambda: "performance" not in app.failed)
        assert table(app, "performance").row_count > 0
        assert "failed" not in status_text(app)


# -- stored text cannot drive the terminal (issue item 11) ------------------------------------


def no_controls(text: str) -> bool:
    return all(c.isprintable() for c in text)


@drive
async def test_stored_control_characters_and_markup_are_shown_as_text(seeded_url, store):
    symbol = store.get_open_positions()[0].symbol
    for name in ("position", "order", "trade"):
        sql(store, f'UPDATE "{name}" SET "symbol" = ? WHERE "symbol" = ?', HOSTILE, symbol)
    sql(store, 'UPDATE "strategy" SET "name" = ? WHERE "name" = ?', HOSTILE_NAME, "momentum")
    app = quiet_dashboard(seeded_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        await pilot.pause()
        positions = table(app, "positions")
        assert positions.get_cell(HOSTILE, "symbol").plain == SHOWN
        lines = screen_lines(app)
        assert all(no_controls(line) for line in lines)
        assert any(SHOWN in line for line in lines)

        # Enter on it: the orders view's caption names the symbol, as text.
        positions.select_key(HOSTILE)
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: app.current_view == "orders" and table(app, "orders").row_count > 0
        )
        await pilot.pause()
        caption = str(app.screen.query_one("#orders-caption").render())
        assert f"symbol={SHOWN}" in caption
        lines = screen_lines(app)
        assert all(no_controls(line) for line in lines) and any(SHOWN in x for x in lines)

        # The order detail screen.
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, OrderDetailScreen))
        await pilot.pause()
        title = str(app.screen.query_one("#detail-title").render())
        assert SHOWN in title and no_controls(title)
        assert all(no_controls(line) for line in screen_lines(app))
        await pilot.press("escape")

        # The filter: the symbol field and the strategy choices.
        await pilot.press("slash")
        await wait_for(pilot, lambda: isinstance(app.screen, FilterScreen))
        await pilot.pause()
        assert all(no_controls(line) for line in screen_lines(app))
        await pilot.press("enter")  # untouched, it keeps filtering by the stored symbol
        await wait_for(pilot, lambda: not isinstance(app.screen, FilterScreen))
        assert app.order_query.symbol == HOSTILE

        # The strategies view, its chart caption, the confirmation and the notification.
        await pilot.press("3")
        strategies = table(app, "strategies")
        key = str(store.get_strategy_by_name(HOSTILE_NAME).id)
        strategies.select_key(key)
        await pilot.pause()
        assert strategies.get_cell(key, "name").plain == SHOWN_NAME
        assert str(app.screen.query_one("#pnl-caption").render()).startswith(SHOWN_NAME)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert SHOWN_NAME in str(app.screen.query_one("#confirm-question").render())
        await pilot.press("y")
        await wait_for(pilot, lambda: not store.get_strategy_by_name(HOSTILE_NAME).is_active)
        await wait_for(pilot, lambda: len(app._notifications) > 0)
        told = list(app._notifications)[-1]
        assert told.message == f"{SHOWN_NAME} deactivated" and told.markup is False
        assert all(no_controls(line) for line in screen_lines(app))

        # The Performance view: its tables, and its caption filtered by the strategy.
        await pilot.press("5")
        view = app.view("performance")
        await wait_for(pilot, lambda: view.performance is not None)
        assert table(app, "marks").get_cell(HOSTILE, "symbol").plain == SHOWN
        while view.query_state.strategy != HOSTILE_NAME:
            before = view.performance
            await pilot.press("g")
            await wait_for(
                pilot,
                lambda before=before: (
                    view.performance is not before and view.performance.query == view.query_state
                ),
            )
        await pilot.pause()
        assert SHOWN_NAME in note(app, "performance")
        assert all(no_controls(line) for line in screen_lines(app))


# -- new rows are never hidden above the view (issue item 12) ---------------------------------


def newest(store: StorageService, view: str) -> str:
    rows = store.get_recent_orders(1) if view == "orders" else store.get_recent_trades(1)
    return str(rows[0].id)


def write(bot: SimulatedBot, store: StorageService, view: str, count: int) -> None:
    """Let the bot write until ``count`` new rows of ``view`` exist."""
    start = int(newest(store, view))
    while int(newest(store, view)) - start < count:
        bot.step()


@pytest.mark.parametrize("view", ["orders", "trades"])
@drive
async def test_a_view_at_the_top_follows_new_rows_and_one_scrolled_down_counts_them(
    seeded_url, store, view
):
    bot = SimulatedBot(connect(seeded_url), seed=7)
    app = quiet_dashboard(seeded_url)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        await pilot.press({"orders": "2", "trades": "4"}[view])
        rows = table(app, view)
        for _ in range(3):  # at the top: the newest row is first and selected, every time
            write(bot, store, view, 2)
            await refreshed(app, pilot)
            assert rows.selected_key == rows.keys()[0] == newest(store, view)
            assert rows.scroll_y == 0 and rows.newer == 0

        for key in ("home", "r"):
            for _ in range(30):
                await pilot.press("down")
            await pilot.pause()
            selected, top = rows.selected_key, int(rows.scroll_y)
            first_shown = rows.keys()[top]
            assert top > 0
            write(bot, store, view, 4)
            await refreshed(app, pilot)
            # Scrolled down: the view stays put and says how many newer rows exist.
            assert rows.selected_key == selected
            assert rows.keys()[int(rows.scroll_y)] == first_shown
            assert rows.newer >= 4
            assert f"↑ {rows.newer} newer - Home to show" in note(app, view)
            assert newest(store, view) in rows.keys()
            await pilot.press(key)  # Home, or r, brings them
            if key == "r":
                await refreshed(app, pilot)
            await pilot.pause()
            assert rows.cursor_row == 0 and rows.scroll_y == 0 and rows.newer == 0
            assert rows.selected_key == newest(store, view)
            assert "newer" not in note(app, view)
    bot.storage.db.close()


# -- numbers are never cut; help and quit always shown; sorts cover the history (item 13) ---


def numeric_cells_cut(app: DashboardApp, view: str) -> list[str]:
    """Numbers of the rows on screen whose full text is not on screen."""
    rows = table(app, view)
    lines = screen_lines(app)
    screen = "\n".join(lines)
    # rows under the header, in the region scrollbars leave (a wide column adds a horizontal one)
    shown = rows.scrollable_content_region.height - 1
    on_screen = rows.keys()[int(rows.scroll_y) : int(rows.scroll_y) + shown]
    cut = []
    for key in on_screen:
        for (column, _), cell in zip(rows.column_spec, rows._cells[key], strict=True):
            if column in rows._shown and cell.justify == "right" and cell.plain != "-":
                pattern = rf"(?<![\d,.+]){re.escape(cell.plain)}(?![\d,.])"
                if not re.search(pattern, screen):
                    cut.append(f"{column}={cell.plain}")
    return cut


@pytest.mark.parametrize("size", [(80, 24), (100, 30)], ids=["80x24", "100x30"])
@drive
async def test_numbers_are_never_cut_and_help_and_quit_are_always_shown(seeded_url, size):
    app = quiet_dashboard(seeded_url)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        for number, (view, _, _) in enumerate(VIEWS, 1):
            await pilot.press(str(number))
            await pilot.pause()
            # The switched view is painted within a few frames; on a busy machine a
            # single pause is not always enough (a state, not a time).
            try:
                await wait_for(pilot, lambda view=view: numeric_cells_cut(app, view) == [], 5)
            except pytest.fail.Exception:
                pass
            assert numeric_cells_cut(app, view) == [], "\n".join(
                [f"failed: {app.snapshot.failed}", *screen_lines(app)]
            )
            rows = table(app, view)
            if rows.hidden:
                assert "hidden for width: " + ", ".join(rows.hidden) in note(app, view)
            footer = screen_lines(app)[-1]
            assert "? Help" in footer and "q Quit" in footer, footer


@pytest.mark.parametrize("size", [(80, 24), (100, 30)], ids=["80x24", "100x30"])
@drive
async def test_the_health_line_is_one_whole_line_refreshed_with_the_views(seeded_url, store, size):
    app = quiet_dashboard(seeded_url)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        await pilot.pause()
        health = app.query_one(HealthLine)
        first = health.render().plain
        assert first.startswith("HEALTH size ") and "reads " in first
        assert health.size.height == 1 and len(first) <= size[0] - 2
        assert sum(first.strip() in line for line in screen_lines(app)) == 1
        # Each part shown is whole: the line is the full one, or whole parts and "…".
        full = str(health_text(app.snapshot.health))
        assert first == full or (first.endswith("  …") and full.startswith(first[:-3]))
        store.set_trading_enabled(False)  # a change: the next refresh reads the figures again
        await refreshed(app, pilot)
        assert app.snapshot.health is not None
        assert health.render().plain != first  # more statements counted


def test_the_health_line_leaves_out_whole_parts_that_do_not_fit():
    parts = [Text("HEALTH size 1.0 MiB"), Text("wal 4.0 MiB"), Text("reads 1,234 (0.12 ms)")]
    assert fitted(parts, 80).plain == "HEALTH size 1.0 MiB  wal 4.0 MiB  reads 1,234 (0.12 ms)"
    assert fitted(parts, 54).plain == "HEALTH size 1.0 MiB  wal 4.0 MiB  …"
    assert fitted(parts, 35).plain == "HEALTH size 1.0 MiB  wal 4.0 MiB  …"
    assert fitted(parts, 34).plain == "HEALTH size 1.0 MiB  …"


@drive
async def test_sorting_is_marked_and_done_in_sql_across_pages(seeded_url, store):
    orders_by_quantity = sorted(
        store.orders.get_all(limit=None), key=lambda o: (o.quantity, o.id), reverse=True
    )
    trades_by_price = sorted(store.trades.get_all(limit=None), key=lambda t: (t.price, t.id))
    app = quiet_dashboard(seeded_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        await pilot.press("2")
        orders = table(app, "orders")
        orders.sort_by("quantity", reverse=True)
        want = [str(o.id) for o in orders_by_quantity]
        await wait_for(pilot, lambda: orders.keys() == want[:PAGE_SIZE])
        assert orders.columns[column_key(orders, "quantity")].label.plain == f"Qty {DESCENDING}"
        await pilot.press("n")  # the next page continues the same sort
        await wait_for(pilot, lambda: orders.keys() == want[PAGE_SIZE : 2 * PAGE_SIZE])

        await pilot.press("4")
        trades = table(app, "trades")
        trades.sort_by("price", reverse=False)
        want = [str(t.id) for t in trades_by_price[:50]]
        await wait_for(pilot, lambda: trades.keys() == want)
        assert trades.columns[column_key(trades, "price")].label.plain == f"Price {ASCENDING}"
        assert (
            min(Decimal(c.sort_value) for c in (trades._cells[k][6] for k in want))
            == trades_by_price[0].price
        )

        await pilot.press("1")  # positions are all loaded: sorted where they are, marked too
        positions = table(app, "positions")
        await pilot.press("s")
        assert (
            positions.columns[column_key(positions, "symbol")].label.plain == f"Symbol {DESCENDING}"
        )


def column_key(rows: KeyedTable, key: str) -> ColumnKey:
    """The key of ``rows``' column ``key`` (a column shown)."""
    assert key in rows.columns
    return ColumnKey(key)
