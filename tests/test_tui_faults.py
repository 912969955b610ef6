"""The dashboard and the trading switch under the faults a live bot meets: a session the
server dropped, the write lock held by the bot, a busy timeout, the switch stored in odd
ways, stored text made to break the screen, and the demo's bot losing its database.
Real parts throughout: SQLite files, PostgreSQL on 127.0.0.1, sessions ended with
``pg_terminate_backend`` from another connection."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
import test_tui
from test_reconnect import terminate
from test_tui import drive, status_text, table, wait_for
from test_tui_truth import no_controls, quiet_dashboard, refreshed, screen_lines, sql

from stocksbot_store import StorageError, StorageService, connect
from stocksbot_store.models import AuditLog
from stocksbot_store.seed import SimulatedBot
from stocksbot_tui.data import AuditQuery, DashboardSource, OrderQuery
from stocksbot_tui.demo import Demo
from stocksbot_tui.screens.confirm import ConfirmScreen
from stocksbot_tui.screens.order_detail import OrderDetailScreen

seeded_url = test_tui.seeded_url
store = test_tui.store


def with_timeout(url: str, seconds: float) -> str:
    return f"{url}{'&' if '?' in url else '?'}timeout={seconds}"


def switch_row(store: StorageService, value: object, value_type: object) -> None:
    """Store ``trading_enabled`` as an operator's SQL or the old module might have."""
    sql(store, 'DELETE FROM "config" WHERE "key" = ?', "trading_enabled")
    sql(
        store,
        'INSERT INTO "config" ("key", "value", "value_type", "created_at", "updated_at") '
        "VALUES (?, ?, ?, ?, ?)",
        "trading_enabled",
        value,
        value_type,
        "2026-01-05 14:30:00",
        "2026-01-05 14:30:00",
    )


def switch(store: StorageService) -> object:
    return store.db.execute_sql(
        'SELECT "value" FROM "config" WHERE "key" = ? AND "deleted_at" IS NULL'.replace(
            "?", store.db.param
        ),
        ["trading_enabled"],
    ).fetchall()


# -- the trading switch, stored every way (brief item 2) ---------------------------------------

HALTS = [
    ("false", "bool"),
    ("0", "bool"),
    ("no", "bool"),
    (" False ", "bool"),
    ("off", "bool"),
    ("", "bool"),
    (None, "bool"),
    ("null", "json"),
    ("nan", "float"),
    ("false", "json"),
    ("0.0", "float"),
    ("2", "int"),
    ("1.0", "string"),
    ('"true"', "json"),
    ("truee", "string"),
    ("true\x00", "string"),
    ("t", "string"),
    # A value type nobody wrote through the store: the row cannot be read as the store
    # writes it, so it is not a clear "go", whatever its value says.
    ("true", "truthy"),
    ("true", ""),
    ("1", "yes"),
]
GOES = [("true", "bool"), (" TRUE ", "bool"), ("1", "int"), ("on", "string"), ("yes", "BOOL")]


@pytest.mark.parametrize(("value", "value_type"), HALTS + GOES, ids=repr)
def test_the_switch_is_go_only_when_it_clearly_says_so(seeded_url, store, value, value_type):
    if "\x00" in str(value) and seeded_url.startswith("postgresql"):
        pytest.skip("PostgreSQL text cannot hold NUL")
    switch_row(store, value, value_type)
    go = (value, value_type) in GOES
    assert store.is_trading_enabled() is go
    source = DashboardSource(seeded_url, poll_seconds=3600)
    try:
        snapshot = source.refresh(force=True)
    finally:
        source.close()
    assert snapshot.trading_enabled is go
    assert "trading" not in snapshot.failed


@drive
async def test_a_switch_of_an_unknown_type_shows_halted_and_the_bot_stops(seeded_url, store):
    switch_row(store, "true", "truthy")
    bot = SimulatedBot(connect(seeded_url), seed=3)
    assert bot.step() is None  # halted: no order placed, and no raw ValueError
    app = quiet_dashboard(seeded_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        await pilot.pause()
        assert "TRADING HALTED" in status_text(app)
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Resume" in str(app.screen.query_one("#confirm-question").render())
        await pilot.press("n")
    bot.storage.db.close()


# -- a dropped session, the write lock, a busy timeout (brief item 1) --------------------------


@pytest.mark.parametrize("pooled", [False, True], ids=["plain", "pool"])
def test_a_refresh_after_the_server_dropped_the_sessions_reads_again(store_url, pooled):
    if not store_url.startswith("postgresql"):
        pytest.skip("PostgreSQL drops sessions")
    test_tui.seed(store_url, orders=20)
    url = store_url.replace("postgresql://", "postgresql+pool://") if pooled else store_url
    source = DashboardSource(url, poll_seconds=3600)
    try:
        assert source.refresh(force=True).failed == {}
        for _ in range(3):
            assert terminate(store_url) > 0  # the reads' session and the change watcher's
            snapshot = source.refresh(force=True)
            assert snapshot is not None and snapshot.failed == {}
            source.refresh()  # the watcher may see its session gone only now
            assert source.refresh() is None  # watching again: nothing changed since
        assert terminate(store_url) > 0
        assert source.orders(OrderQuery()).rows
        assert terminate(store_url) > 0
        assert source.audit(AuditQuery()).rows
    finally:
        source.close()


def test_an_action_on_a_dropped_session_is_done_once_or_refused(store_url):
    """The source given a Database writes on the connection it reads with; the server
    ends it between a refresh and the halt."""
    if not store_url.startswith("postgresql"):
        pytest.skip("PostgreSQL drops sessions")
    test_tui.seed(store_url, orders=20)
    db = connect(store_url)
    source = DashboardSource(db, poll_seconds=3600)
    try:
        assert source.refresh(force=True).trading_enabled is True
        terminate(store_url)
        try:
            source.set_trading_enabled(False)
        except StorageError:
            pass  # said clearly; the next refresh tells what is stored
        snapshot = source.refresh(force=True)
        assert snapshot is not None and snapshot.failed == {}
        checker = connect(store_url)
        try:
            assert StorageService(checker).is_trading_enabled() is snapshot.trading_enabled
        finally:
            checker.close()
        source.set_trading_enabled(False)
        assert source.refresh(force=True).trading_enabled is False
    finally:
        source.close()


def test_an_action_waiting_on_the_bots_row_lock_gives_up_at_the_lock_timeout(store_url):
    """On PostgreSQL the wait is bounded by ``lock_timeout`` in the URL's ``options``."""
    if not store_url.startswith("postgresql"):
        pytest.skip("PostgreSQL row locks")
    import psycopg

    test_tui.seed(store_url, orders=20)
    store = StorageService(connect(store_url))
    store.set_trading_enabled(True)
    strategy = store.get_strategy_by_name("momentum")
    url = f"{store_url}?options=-c%20lock_timeout%3D300"
    source = DashboardSource(url, poll_seconds=3600)
    bot = psycopg.connect(store_url)
    try:
        bot.execute('UPDATE "config" SET "updated_at" = "updated_at"')
        bot.execute('UPDATE "strategy" SET "updated_at" = "updated_at"')
        assert source.refresh(force=True).trading_enabled is True  # reads do not wait
        for action in (
            lambda: source.set_trading_enabled(False),
            lambda: source.set_strategy_active(strategy.id, False),
        ):
            with pytest.raises(StorageError, match="busy .*nothing was written; retry later"):
                action()
    finally:
        bot.rollback()
        bot.close()
    assert source.refresh(force=True).trading_enabled is True
    assert store.get_strategy_by_name("momentum").is_active is True
    source.set_trading_enabled(False)
    assert source.refresh(force=True).trading_enabled is False
    source.close()
    store.db.close()


@pytest.fixture
def sqlite_url(store_url) -> str:
    if not store_url.startswith("sqlite"):
        pytest.skip("the SQLite write lock")
    test_tui.seed(store_url, orders=40)
    return store_url


def hold_write_lock(url: str) -> sqlite3.Connection:
    """The bot in the middle of a write transaction: it holds the write lock."""
    path = url.removeprefix("sqlite:///")
    bot = sqlite3.connect(path, timeout=0, isolation_level=None)
    bot.execute("BEGIN IMMEDIATE")
    bot.execute('UPDATE "config" SET "updated_at" = "updated_at"')
    return bot


@drive
async def test_the_bot_holding_the_write_lock_never_stops_the_dashboard(sqlite_url):
    store = StorageService(connect(sqlite_url))
    store.set_trading_enabled(True)
    strategy = store.get_strategy_by_name("momentum")
    app = quiet_dashboard(with_timeout(sqlite_url, 0.2))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        bot = hold_write_lock(sqlite_url)
        try:
            await refreshed(app, pilot)  # reads go on: the bot only holds the write lock
            assert app.error is None and "TRADING ENABLED" in status_text(app)
            for key, view in (("t", "positions"), ("a", "strategies")):
                if view == "strategies":
                    await pilot.press("3")
                    table(app, "strategies").select_key(str(strategy.id))
                    await pilot.pause()
                notes = len(app._notifications)
                await pilot.press(key)
                await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
                await pilot.press("y")
                await wait_for(pilot, lambda n=notes: len(app._notifications) > n)
                told = list(app._notifications)[-1]
                assert told.severity == "error" and told.message.startswith("not done: ")
                assert "lock" in told.message and "Error:" not in told.message
        finally:
            bot.rollback()
            bot.close()
        await refreshed(app, pilot)
        assert app.error is None and "TRADING ENABLED" in status_text(app)
        assert all(no_controls(line) for line in screen_lines(app))
    assert store.is_trading_enabled() is True  # nothing half-written
    assert store.get_strategy_by_name("momentum").is_active is True
    store.db.close()


def test_an_unreachable_server_is_said_once_per_refresh_and_never_shows_the_password():
    source = DashboardSource(
        "postgresql://postgres:s3cret-pw@127.0.0.1:1/faults3_nowhere?connect_timeout=2",
        poll_seconds=3600,
    )
    try:
        for call in (
            lambda: source.refresh(force=True),
            lambda: source.set_trading_enabled(False),
            lambda: source.set_strategy_active(1, False),
            lambda: source.audit(AuditQuery()),
        ):
            with pytest.raises(StorageError) as raised:
                call()
            assert "s3cret-pw" not in str(raised.value)
        assert "s3cret-pw" not in source.description
    finally:
        source.close()


# -- stored text that could break the screen (brief item 3) ------------------------------------

RTL = "\u202eLPAA\u202c"  # a right-to-left override: would print the symbol backwards
LONG = "Z" * 40  # with the rest, near the 64 characters a symbol may have
EMOJI = "🚀📈"
ODD = f"[b]{RTL}{EMOJI}\x1b[31m\x9b{LONG}"


@drive
async def test_hostile_text_in_the_audit_view_and_an_orders_history_is_shown_as_text(
    seeded_url, store
):
    order = store.get_recent_orders(1)[0]
    sql(store, 'UPDATE "order" SET "symbol" = ? WHERE "id" = ?', ODD, order.id)
    sql(store, 'UPDATE "strategy" SET "name" = ? WHERE "name" = ?', f"{EMOJI}{LONG * 4}", "pairs")
    AuditLog.insert(
        actor=f"[red]{RTL}\x07ops{EMOJI}",
        table_name="orders",
        row_id=order.id,
        action="[blink]update\x1b[2J",
        changes=json.dumps({f"[i]{RTL}sym\r": [ODD, f"{LONG * 9}\u2028x"], "n": [None, 1]}),
    ).execute(store.db)
    app = quiet_dashboard(seeded_url)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        for key in ("1", "2", "3", "4", "5"):
            await pilot.press(key)
            await pilot.pause()
            assert all(no_controls(line) for line in screen_lines(app))
        await pilot.press("tab")
        assert app.current_view == "audit"
        audit = table(app, "audit")
        await wait_for(pilot, lambda: audit.row_count > 0)
        await pilot.pause()
        lines = screen_lines(app)
        assert all(no_controls(line) for line in lines)
        assert any("[i]\\u202eLPAA\\u202csym␍ [b]\\u202eLPAA" in line for line in lines)
        assert app.error is None

        # The order's history, on its detail screen.
        await pilot.press("2")
        await wait_for(pilot, lambda: table(app, "orders").row_count > 0)
        table(app, "orders").select_key(str(order.id))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, OrderDetailScreen))
        await pilot.pause()
        assert app.screen.detail.history_failed is None
        history = app.screen.query_one("#detail-history")
        assert history.row_count == len(app.screen.detail.history) > 0
        lines = screen_lines(app)
        assert all(no_controls(line) for line in lines)
        assert any("[blink]update␛[2J" in line for line in lines)
        await pilot.press("escape")
        await refreshed(app, pilot)
        assert app.error is None


# -- the demo's bot loses its database (brief item 4) ------------------------------------------


def wait_until_bot(condition, failure: str, seconds: float = 10) -> None:
    """Poll a simulated bot's state (never a fixed sleep)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.01)


def test_the_simulated_bot_rides_out_a_held_lock_and_a_bad_switch(sqlite_url, capfd):
    bot = SimulatedBot(connect(with_timeout(sqlite_url, 0.05)), seed=5, interval=0.01)
    store = StorageService(connect(sqlite_url))
    holder = hold_write_lock(sqlite_url)
    bot.start()
    try:
        try:
            wait_until_bot(lambda: bot.errors >= 2, "the bot never met the lock")
        finally:
            holder.rollback()
            holder.close()
        steps = bot.steps
        wait_until_bot(lambda: bot.steps > steps + 2, "the bot did not carry on")
        switch_row(store, "true", "truthy")  # halts it, with no raw error
        errors = bot.errors
        wait_until_bot(lambda: bot.halted > 0, "the bot never saw the halt")
        steps, halted = bot.steps, bot.halted
        wait_until_bot(lambda: bot.halted >= halted + 5, "the bot stopped looking at the switch")
        assert bot.steps == steps and bot.errors == errors
        assert bot._thread is not None and bot._thread.is_alive()
    finally:
        bot.stop()
        store.db.close()
    assert "Traceback" not in capfd.readouterr().err


def test_the_simulated_bot_stops_on_an_unexpected_error_with_one_line_saying_why(sqlite_url, capfd):
    """A stored row the store cannot read (a position's quantity made text by SQL) makes
    recording a fill fail with CorruptRowError, which retrying cannot mend: the bot
    stops, says why in one line, and prints no traceback over the dashboard."""
    store = StorageService(connect(sqlite_url))
    sql(store, 'UPDATE "position" SET "quantity" = ?', "abc")
    sql(store, 'DELETE FROM "position" WHERE "symbol" <> ?', "AAPL")
    bot = SimulatedBot(connect(sqlite_url), seed=5, interval=0.01, symbols=["AAPL"])
    bot.start()
    try:
        bot._thread.join(10)
        assert not bot._thread.is_alive()
    finally:
        bot.stop()  # never left writing into the tests that follow
    assert bot.failure is not None and "\n" not in bot.failure
    assert bot.failure.startswith("CorruptRowError")
    assert "Traceback" not in capfd.readouterr().err
    store.db.close()


def test_the_demo_says_once_why_its_bot_stopped(capfd):
    demo = Demo(orders=20, interval=0.01)
    with demo:
        store = StorageService(connect(demo.url))
        sql(store, 'UPDATE "position" SET "quantity" = ?', "abc")
        store.db.close()
        demo.bot._thread.join(10)
        assert demo.bot.failure is not None
    err = capfd.readouterr().err
    assert err.count("the demo's bot stopped: ") == 1 and "Traceback" not in err


@drive
async def test_a_switch_that_cannot_be_read_still_lets_the_operator_halt(seeded_url, store):
    app = quiet_dashboard(seeded_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        sql(store, 'ALTER TABLE "config" RENAME TO "config_away"')
        try:
            await refreshed(app, pilot)
            assert app.snapshot.trading_enabled is None
            assert "TRADING STATE UNKNOWN" in status_text(app)
            await pilot.press("t")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert "Halt trading?" in str(app.screen.query_one("#confirm-question").render())
            await pilot.press("n")
        finally:
            sql(store, 'ALTER TABLE "config_away" RENAME TO "config"')
        await refreshed(app, pilot)
        assert app.snapshot.trading_enabled is True and app.snapshot.failed == {}
