"""Pilot tests of the dashboard: views, navigation, filters, detail, confirmations,
error state and live update. Each runs on a SQLite file and once on PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import shutil
import subprocess
import sys
import time

import pytest
from conftest import pip_install_copy
from textual.widgets import Input, Select

from stocksbot_store import StorageService, connect, init_db
from stocksbot_store.seed import seed_history
from stocksbot_tui.__main__ import main
from stocksbot_tui.app import DashboardApp
from stocksbot_tui.data import PAGE_SIZE, DashboardSource
from stocksbot_tui.screens.confirm import ConfirmScreen
from stocksbot_tui.screens.filter import FilterScreen
from stocksbot_tui.screens.help import HelpScreen
from stocksbot_tui.screens.order_detail import OrderDetailScreen
from stocksbot_tui.widgets.keyed_table import KeyedTable
from stocksbot_tui.widgets.status_bar import StatusBar

SIZE = (160, 48)


def drive(test):
    """Run an ``async`` Pilot test to completion (no async plugin needed)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return run


def seed(url: str, orders: int = 120) -> None:
    db = connect(url)
    init_db(db)
    seed_history(StorageService(db), orders=orders)
    db.close()


@pytest.fixture
def seeded_url(store_url) -> str:
    seed(store_url)
    return store_url


@pytest.fixture
def store(seeded_url):
    """A second connection to the dashboard's database, as the bot would have."""
    db = connect(seeded_url)
    yield StorageService(db)
    db.close()


def dashboard(url: str) -> DashboardApp:
    return DashboardApp(DashboardSource(url, poll_seconds=3600), refresh_seconds=0.2)


async def wait_for(pilot, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("the dashboard did not get there in time")
        await pilot.pause(0.05)


def table(app: DashboardApp, name: str) -> KeyedTable:
    return app.screen.query_one(f"#{name}-table", KeyedTable)


def status_text(app: DashboardApp) -> str:
    return str(app.query_one(StatusBar).render())


@drive
async def test_each_view_shows_the_store(seeded_url, store):
    app = dashboard(seeded_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        positions = table(app, "positions")
        assert positions.keys() == [p.symbol for p in store.get_open_positions()] + ["__total__"]
        assert "LIVE" in status_text(app) and "TRADING ENABLED" in status_text(app)
        for key, view in (
            ("2", "orders"),
            ("3", "strategies"),
            ("4", "trades"),
            ("5", "performance"),
            ("tab", "audit"),
            ("tab", "positions"),
            ("tab", "orders"),
        ):
            await pilot.press(key)
            assert app.current_view == view
        orders = table(app, "orders")
        assert orders.row_count == PAGE_SIZE
        assert orders.keys()[0] == str(store.get_recent_orders(1)[0].id)
        assert table(app, "strategies").row_count == 4
        assert table(app, "trades").keys()[0] == str(store.get_recent_trades(1)[0].id)
        app.clock = lambda: app.last_ok + dt.timedelta(minutes=5)  # no refresh since
        app.draw_status()
        assert "STALE" in status_text(app)


@drive
async def test_enter_on_a_position_lists_its_orders(seeded_url, store):
    app = dashboard(seeded_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        positions = table(app, "positions")
        symbol = positions.keys()[1]
        positions.select_key(symbol)
        await pilot.press("enter")
        orders = table(app, "orders")
        want = [str(o.id) for o in store.orders.page(symbol=symbol, limit=PAGE_SIZE)]
        await wait_for(pilot, lambda: app.current_view == "orders" and orders.keys() == want)


@drive
async def test_orders_page_filter_and_detail(seeded_url, store):
    app = dashboard(seeded_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        await pilot.press("2")
        orders = table(app, "orders")
        first_page = orders.keys()
        await pilot.press("n")
        await wait_for(pilot, lambda: orders.keys() != first_page)
        assert int(orders.keys()[0]) < int(first_page[-1])
        assert orders.row_count <= PAGE_SIZE
        await pilot.press("p")
        await wait_for(pilot, lambda: orders.keys() == first_page)

        orders.move_cursor(row=orders.row_count - 1)  # moving past the last row pages on
        await pilot.press("down")
        await wait_for(pilot, lambda: orders.keys() != first_page)
        assert orders.cursor_row == 0
        await pilot.press("up")  # and past the first row pages back
        await wait_for(pilot, lambda: orders.keys() == first_page)
        assert orders.selected_key == first_page[-1]

        await pilot.press("slash")
        assert isinstance(app.screen, FilterScreen)
        app.screen.query_one("#side", Select).value = "sell"
        app.screen.query_one("#symbol", Input).focus()
        await pilot.press("a", "a", "p", "l", "enter")
        want = [str(o.id) for o in store.orders.page(symbol="AAPL", side="sell", limit=50)]
        await wait_for(pilot, lambda: orders.keys() == want)
        assert "symbol=AAPL side=sell" in str(app.screen.query_one("#orders-caption").render())

        order_id = int(orders.keys()[0])
        orders.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, OrderDetailScreen))
        fills = app.screen.query_one("#detail-fills", KeyedTable)
        assert fills.keys() == [str(t.id) for t in store.trades.get_by_order_id(order_id)]
        await pilot.press("escape")
        assert not isinstance(app.screen, OrderDetailScreen)


@drive
async def test_halt_asks_first_and_writes_through_the_service(seeded_url, store):
    app = dashboard(seeded_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        await pilot.press("t")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause(0.3)
        assert store.is_trading_enabled()
        await pilot.press("t", "y")
        await wait_for(pilot, lambda: "TRADING HALTED" in status_text(app))
        assert not store.is_trading_enabled()
        await pilot.press("t", "y")
        await wait_for(pilot, lambda: "TRADING ENABLED" in status_text(app))
        assert store.is_trading_enabled()


@drive
async def test_deactivating_a_strategy_asks_first(seeded_url, store):
    app = dashboard(seeded_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        await pilot.press("3")
        strategies = table(app, "strategies")
        name = "momentum"
        strategies.select_key(str(store.get_strategy_by_name(name).id))
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        assert name in str(app.screen.query_one("#confirm-question").render())
        await pilot.press("y")
        await wait_for(pilot, lambda: not store.get_strategy_by_name(name).is_active)
        await wait_for(
            pilot, lambda: not {s.name: s for s in app.snapshot.strategies}[name].is_active
        )


@drive
async def test_a_write_by_another_connection_shows_up(seeded_url, store):
    app = dashboard(seeded_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        await pilot.press("4")
        trades = table(app, "trades")
        trades.move_cursor(row=3)
        selected = trades.selected_key
        order = store.create_order("NFLX", "buy", "market", 7)
        trade = store.record_trade(order.id, "NFLX", "buy", 7, "612.50")
        await wait_for(pilot, lambda: trades.keys()[:1] == [str(trade.id)])
        assert trades.selected_key == selected  # the cursor stayed on its row
        assert trades.row_count == len(app.snapshot.trades) <= 50  # bounded, whatever the history
        assert "NFLX" in table(app, "positions").keys()


@drive
async def test_sorting_keeps_the_selected_row_and_totals_last(seeded_url):
    app = dashboard(seeded_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        positions = table(app, "positions")
        positions.move_cursor(row=2)
        selected = positions.selected_key
        for _ in range(3):
            await pilot.press("s")
            assert positions.selected_key == selected
            assert positions.keys()[-1] == "__total__"
        assert positions.sort_column == "side" and positions.sort_reverse
        app.query_one(KeyedTable).sort_by("unrealized", reverse=True)
        values = [
            p.unrealized_pnl
            for p in sorted(app.snapshot.positions, key=lambda p: p.unrealized_pnl, reverse=True)
        ]
        shown = {p.symbol: p.unrealized_pnl for p in app.snapshot.positions}
        assert [shown[k] for k in positions.keys()[:-1]] == values


@drive
async def test_help_and_command_palette(seeded_url):
    app = dashboard(seeded_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        for key in "show trades":
            await pilot.press(key if key != " " else "space")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_view == "trades")


@drive
async def test_unreachable_database_is_shown_and_retried(seeded_url, tmp_path):
    if seeded_url.startswith("sqlite"):
        path = seeded_url.removeprefix("sqlite:///")
        broken = tmp_path / "broken.db"
        broken.write_bytes(b"this is not a database" * 200)
        url = f"sqlite:///{broken}"

        def repair() -> None:
            shutil.copyfile(path, broken)
    else:
        url = seeded_url.rsplit("/", 1)[0] + "/stocksbot_missing_" + str(time.time_ns())

        def repair() -> None:
            import psycopg

            with psycopg.connect(
                seeded_url.rsplit("/", 1)[0] + "/postgres", autocommit=True
            ) as admin:
                admin.execute(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"')
            seed(url, orders=5)

    app = dashboard(url)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.error is not None)
            if url.startswith("sqlite"):  # reached, but not a store: not "unavailable"
                assert "CANNOT READ THE STORE" in status_text(app)
                assert "file is not a database" in status_text(app)
                assert "DATABASE UNAVAILABLE" not in status_text(app)
            else:
                assert "DATABASE UNAVAILABLE" in status_text(app)
                assert "retrying" in status_text(app)
            repair()
            await wait_for(pilot, lambda: app.snapshot is not None)
            assert app.error is None and "LIVE" in status_text(app)
    finally:
        if not url.startswith("sqlite"):
            import psycopg

            with psycopg.connect(
                seeded_url.rsplit("/", 1)[0] + "/postgres", autocommit=True
            ) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def test_command_line_help_and_errors(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for option in ("--url", "--refresh", "--create", "--demo", "--screenshot", "DATABASE_URL"):
        assert option in out
    assert main(["--url", "mysql://root@127.0.0.1/x"]) == 2
    err = capsys.readouterr().err
    assert "unsupported database URL scheme" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as done:
        main(["--refresh", "0"])
    assert done.value.code == 2


def test_a_sqlite_path_that_does_not_exist_is_refused(tmp_path, capsys, monkeypatch):
    typo = tmp_path / "typo.db"
    assert main(["--url", f"sqlite:///{typo}"]) == 2
    err = capsys.readouterr().err
    assert str(typo) in err and "--create" in err and "Traceback" not in err
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{typo}")  # the same from the environment
    assert main([]) == 2
    assert str(typo) in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing created
    shot = tmp_path / "shot.svg"
    assert main(["--create", "--screenshot", str(shot)]) == 0
    assert typo.exists() and shot.exists()
    assert main(["--screenshot", str(shot)]) == 0  # it exists now: no --create needed


def test_a_file_uri_naming_a_missing_file_is_refused(tmp_path, capsys):
    """``sqlite:///file:/path?mode=rw`` is the file at that path, missing as a plain path
    would be: refused without --create, and nothing is created."""
    typo = tmp_path / "typo.db"
    shot = tmp_path / "shot.svg"
    assert main(["--url", f"sqlite:///file:{typo}?mode=rw", "--screenshot", str(shot)]) == 2
    err = capsys.readouterr().err
    assert str(typo) in err and "--create" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@drive
async def test_keyed_table_redraws_only_what_changed():
    from textual.app import App

    from stocksbot_tui.format import Cell

    class One(App):
        def compose(self):
            yield KeyedTable([("name", "Name"), ("value", "Value")], pinned="total")

    def rows(values: dict[str, int]) -> list[tuple[str, list[Cell]]]:
        return [(k, [Cell(k), Cell(str(v), sort_value=v)]) for k, v in values.items()]

    app = One()
    async with app.run_test() as pilot:
        t = app.query_one(KeyedTable)
        t.sync(rows({"a": 1, "b": 2, "c": 3, "total": 6}))
        await pilot.pause()
        t.select_key("c")
        kept = t.get_cell("a", "value")
        t.sync(rows({"a": 1, "c": 30, "d": 4, "total": 35}))  # b gone, c changed, d new
        assert t.keys() == ["a", "c", "d", "total"]
        assert t.get_cell("a", "value") is kept  # unchanged: not redrawn
        assert t.get_cell("c", "value").plain == "30"
        assert t.selected_key == "c"  # the cursor followed its row, not its position
        t.sort_by("value", reverse=True)
        assert t.keys() == ["c", "d", "a", "total"] and t.selected_key == "c"
        t.sort_by("value")
        assert t.keys() == ["a", "d", "c", "total"] and t.selected_key == "c"


@drive
async def test_keyed_table_columns_grow_with_their_values():
    from textual.app import App

    from stocksbot_tui.format import Cell

    class One(App):
        def compose(self):
            yield KeyedTable([("side", "Side"), ("last", "Last")])

    app = One()
    async with app.run_test(size=(40, 6)) as pilot:
        table = app.query_one(KeyedTable)
        table.sync([("a", [Cell("short"), Cell("9.00")])])
        await pilot.pause()
        assert table.columns["side"].get_render_width(table) == len(" short ")
        assert drawn(app)[1].split() == ["short", "9.00"]
        table.sync([("a", [Cell("short"), Cell("1,234.00")])])  # a value got wider
        await pilot.pause()
        assert table.columns["last"].get_render_width(table) == len(" 1,234.00 ")
        assert drawn(app)[1].split() == ["short", "1,234.00"]
        table.sync([("a", [Cell("long"), Cell("1.00")])])  # and narrower
        await pilot.pause()
        assert drawn(app)[:2] == [" Side  Last ".ljust(40), " long  1.00 ".ljust(40)]


@drive
async def test_keyed_table_rows_drawn_before_the_table_is_idle_are_whole():
    """On a busy machine the screen can be painted between the rows' arrival and the
    table's next idle moment (when DataTable measures its own columns): that frame, and
    every frame after it, shows whole values."""
    from textual.app import App

    from stocksbot_tui.format import Cell, side

    class One(App):
        def compose(self):
            yield KeyedTable([("side", "Side"), ("last", "Last")])

    app = One()
    async with app.run_test(size=(40, 6)) as pilot:
        await pilot.pause()
        table = app.query_one(KeyedTable)
        table.sync([("a", [side("short"), Cell("199.50", justify="right")])])
        assert table.render_line(1).text.split() == ["short", "199.50"]  # painted at once
        await pilot.pause()
        assert drawn(app)[1].split() == ["short", "199.50"]


@drive
async def test_keyed_table_a_wider_value_keeps_the_newer_count_and_the_cursor():
    """A column widened while the reader is scrolled down keeps them where they were."""
    from textual.app import App

    from stocksbot_tui.format import Cell

    class One(App):
        def compose(self):
            yield KeyedTable([("id", "Id"), ("price", "Price")])

    def rows(ids: range, wide: int | None = None) -> list[tuple[str, list[Cell]]]:
        return [(str(i), [Cell(str(i)), Cell("1,000.00" if i == wide else "1.00")]) for i in ids]

    app = One()
    async with app.run_test(size=(40, 10)) as pilot:
        table = app.query_one(KeyedTable)
        table.sync(rows(range(30, 0, -1)))
        await pilot.pause()
        for _ in range(12):
            await pilot.press("down")
        await pilot.pause()
        selected = table.selected_key
        table.sync(rows(range(31, 0, -1), wide=31))  # a newer row, with a wider price
        await pilot.pause()
        assert table.columns["price"].get_render_width(table) == len(" 1,000.00 ")
        assert table.selected_key == selected and table.newer == 1


def drawn(app) -> list[str]:
    """The screen's lines, as text."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def test_installed_it_is_the_package_stocksbot_tui(tmp_path):
    """``pip install`` (not editable) of a copy of the source: the dashboard is the package
    ``stocksbot_tui`` (its folder is ``tui/``), with its stylesheets; there is no
    top-level ``tui``; ``python -m stocksbot_tui`` and ``stocksbot-dashboard`` start it."""
    target = pip_install_copy(tmp_path)
    assert not (target / "tui").exists()
    assert (target / "stocksbot_tui" / "app.tcss").exists()
    assert (target / "stocksbot_tui" / "widgets" / "keyed_table.py").exists()
    script = (target / "bin" / "stocksbot-dashboard").read_text()
    assert "from stocksbot_tui.__main__ import run" in script
    env = dict(os.environ, PYTHONPATH=str(target))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import stocksbot_tui.app, importlib.util; "
            "print(stocksbot_tui.app.__file__); print(importlib.util.find_spec('tui'))",
        ],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == [str(target / "stocksbot_tui" / "app.py"), "None"]
    shown = subprocess.run(
        [sys.executable, "-m", "stocksbot_tui", "--help"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=60,
    )
    assert shown.returncode == 0 and "stocksbot-dashboard" in shown.stdout, shown.stderr
