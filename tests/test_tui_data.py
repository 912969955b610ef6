"""The dashboard's data access (stocksbot_tui.data) and the store queries it uses, on
every backend."""

from __future__ import annotations

import time
from decimal import Decimal

import peewee
import pytest

from stocksbot_store import StorageService, ValidationError, connect, init_db
from stocksbot_store.backends import backend_of
from stocksbot_store.queries import (
    ChangeWatcher,
    last_prices,
    order_page,
    realized_pnl_series,
    trade_page,
)
from stocksbot_store.seed import seed_history
from stocksbot_tui.data import PAGE_SIZE, DashboardSource, OrderQuery, Sort


@pytest.fixture
def seeded(storage) -> StorageService:
    seed_history(storage, orders=120)
    return storage


def test_last_prices_are_the_latest_fill_per_symbol(seeded):
    latest = seeded.get_recent_trades(1)[0]
    prices = last_prices(seeded.db, [latest.symbol, "NEVER"])
    assert prices == {latest.symbol: latest.price}


def test_pnl_series_ends_at_the_strategy_total(seeded):
    stats = seeded.get_strategy_stats()[0]
    series = realized_pnl_series(seeded.db, stats.id, stats.gross_pnl, points=10)
    assert len(series) == 10
    assert series[-1][1] == stats.gross_pnl
    assert [t for t, _ in series] == sorted(t for t, _ in series)
    closing = [
        t
        for t in seeded.trades.get_all(limit=None)
        if t.strategy_id == stats.id and t.realized_pnl is not None
    ]
    assert series[-1][1] - series[-2][1] == max(closing, key=lambda t: t.executed_at).realized_pnl


def test_pnl_series_keeps_fills_at_the_same_instant_in_the_order_they_were_recorded(
    storage,
):
    """Fills executed at the same time (one broker report) count in id order: with
    ties left to the database, PostgreSQL returned them in any order and the series
    showed a running figure the strategy never had."""
    strategy = storage.create_strategy("ties")
    at = "2026-03-02T15:30:00+00:00"
    buy = storage.create_order("T", "buy", "market", "100", strategy=strategy.id)
    storage.record_trade(buy.id, "T", "buy", "100", "10", executed_at=at)
    sell = storage.create_order("T", "sell", "market", "100", strategy=strategy.id)
    prices = ["11", "9", "12.5", "8", "10.25", "13", "7.5", "10.75", "9.5", "11.5"]
    for price in prices:
        storage.record_trade(sell.id, "T", "sell", "10", price, executed_at=at)
    postgres = backend_of(storage.db) == "postgres"
    if postgres:
        # Whatever plan the database picks: here a sort of the whole table, as on a
        # table whose statistics say the index does not pay.
        storage.db.execute_sql("SET enable_indexscan = off")
        storage.db.execute_sql("SET enable_bitmapscan = off")
    total = storage.get_strategy_by_name("ties").total_pnl
    try:
        series = realized_pnl_series(storage.db, strategy.id, total)
    finally:
        if postgres:
            storage.db.execute_sql("RESET enable_indexscan")
            storage.db.execute_sql("RESET enable_bitmapscan")
    running, expected = Decimal(0), []
    for price in prices:
        running += (Decimal(price) - 10) * 10
        expected.append(running)
    assert [pnl for _, pnl in series] == expected


def test_the_watcher_sees_only_commits(store_url):
    db = connect(store_url)
    watcher = ChangeWatcher(db, poll_seconds=3600)
    assert watcher.changed() is True
    assert watcher.changed() is False
    other = connect(store_url)
    StorageService(other).set_trading_enabled(False)
    other.close()
    # A notification reaches the listener a moment after the commit returns (some
    # milliseconds on a busy machine): wait for it, but not forever.
    deadline = time.monotonic() + 10
    while not watcher.changed():
        if time.monotonic() > deadline:
            pytest.fail("a commit by another connection was not seen")
        time.sleep(0.005)
    assert watcher.changed() is False
    watcher.close()
    db.close()


def test_refresh_returns_none_when_nothing_changed(seeded):
    source = DashboardSource(seeded.db, poll_seconds=3600)
    first = source.refresh()
    assert first is not None and first.trading_enabled
    if source.watcher.backend == "sqlite" and "memdb" not in str(seeded.db.database):
        assert source.refresh() is None
    assert source.refresh(force=True) == first


def test_snapshot_holds_what_the_views_show(seeded):
    snap = DashboardSource(seeded.db).refresh()
    positions = {p.symbol: p for p in seeded.get_open_positions()}
    assert {p.symbol for p in snap.positions} == set(positions)
    for row in snap.positions:
        sign = 1 if row.side == "long" else -1
        assert row.unrealized_pnl == (row.last_price - row.avg_entry_price) * row.quantity * sign
    assert snap.totals[2] == sum((p.realized_pnl for p in positions.values()), Decimal(0))
    assert len(snap.orders.rows) == PAGE_SIZE and snap.orders.has_more
    assert [o.id for o in snap.orders.rows] == sorted(
        (o.id for o in snap.orders.rows), reverse=True
    )
    assert len(snap.strategies) == 4 and all(snap.pnl_series[s.id] for s in snap.strategies)


def test_orders_page_and_filter_in_sql(seeded):
    source = DashboardSource(seeded.db)
    first = source.orders(OrderQuery())
    second = source.orders(OrderQuery(before_id=first.rows[-1].id))
    assert second.rows[0].id < first.rows[-1].id
    assert len(first.rows) + len(second.rows) <= 2 * PAGE_SIZE
    buys = source.orders(OrderQuery(side="buy", strategy="momentum", status="filled"))
    assert buys.rows and all(
        o.side == "buy" and o.strategy == "momentum" and o.status == "filled" for o in buys.rows
    )
    assert source.orders(OrderQuery(strategy="no such strategy")).rows == ()


def test_sorted_pages_are_sorted_in_sql_over_the_whole_history(seeded):
    everything = seeded.orders.get_all(limit=None)
    by_price = sorted(
        (o for o in everything if o.price is not None), key=lambda o: (o.price, o.id), reverse=True
    )
    nulls = sorted((o.id for o in everything if o.price is None), reverse=True)
    want = [o.id for o in by_price] + nulls  # numbers as numbers (not text), empty last
    source = DashboardSource(seeded.db)
    query = OrderQuery(sort=Sort("price", descending=True))
    seen: list[int] = []
    page = source.orders(query)
    while True:
        seen += [o.id for o in page.rows]
        if not page.has_more:
            break
        query = query.next_page(page)
        page = source.orders(query)
    assert seen == want
    fills = sorted(seeded.trades.get_all(limit=None), key=lambda t: (t.price, t.id))
    assert [t.id for t in trade_page(seeded.db, sort="price", descending=False, limit=5)] == [
        t.id for t in fills[:5]
    ]
    costs = sorted(
        seeded.trades.get_all(limit=None), key=lambda t: (t.commission + t.fees, t.id), reverse=True
    )
    assert [t.id for t in trade_page(seeded.db, sort="costs", limit=5)] == [t.id for t in costs[:5]]
    with pytest.raises(ValidationError, match="cannot be sorted by 'strategy'"):
        order_page(seeded.db, sort="strategy")
    with pytest.raises(ValidationError):
        trade_page(seeded.db, sort="price; DROP TABLE trade")


def test_order_fills_and_operator_actions(seeded):
    source = DashboardSource(seeded.db)
    trade = seeded.get_recent_trades(1)[0]
    order, fills = source.order_fills(trade.order_id)
    assert order.id == trade.order_id and trade.id in [f.id for f in fills]
    source.set_trading_enabled(False)
    assert not seeded.is_trading_enabled()
    strategy = seeded.get_strategy_by_name("momentum")
    source.set_strategy_active(strategy.id, False)
    assert not seeded.get_strategy_by_name("momentum").is_active


def test_the_documented_snippet_runs(tmp_path, monkeypatch):
    """docs/dashboard.md's Python example, as written, on a new store in a scratch folder."""
    import pathlib
    import re

    doc = (pathlib.Path(__file__).parent.parent / "docs" / "dashboard.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(snippet, scope)
    assert scope["snapshot"] is not None and scope["snapshot"].trading_enabled
    assert scope["source"].refresh() is None
    scope["source"].close()


def test_the_store_never_imports_the_dashboard():
    """The dependency points one way: tui uses stocksbot_store, never the reverse."""
    import subprocess
    import sys

    code = (
        "import pkgutil, importlib, sys, stocksbot_store\n"
        "for m in pkgutil.iter_modules(stocksbot_store.__path__):\n"
        "    importlib.import_module('stocksbot_store.' + m.name)\n"
        "print(sorted(n for n in sys.modules\n"
        "             if n.split('.')[0] in ('tui', 'stocksbot_tui', 'textual')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_refresh_reads_one_snapshot_while_the_bot_commits(file_db_url, monkeypatch):
    """The bot commits an order and its fill after every statement of a refresh; the
    refresh still shows one committed state: each position is the sum of the fills of
    the orders shown, and every filled order's fill is in the trades shown."""
    bot_db = connect(file_db_url)
    init_db(bot_db)
    bot = StorageService(bot_db)
    symbols = ["AAA", "BBB", "CCC"]

    def trade(step: int) -> None:
        symbol = symbols[step % len(symbols)]
        order = bot.create_order(symbol, "buy", "market", step + 1)
        bot.record_trade(order.id, symbol, "buy", step + 1, "10")

    for step in range(3):
        trade(step)
    source = DashboardSource(file_db_url, poll_seconds=3600, page_size=500)
    source.refresh(force=True)  # the first one checks the schema, on a connection of its own
    commits: list[str] = []
    read = source.db.execute_sql

    def commit_after_each(sql, params=None):
        cursor = read(sql, params)
        if interleaving:
            commits.append(sql)
            trade(len(commits) + 3)
        return cursor

    monkeypatch.setattr(source.db, "execute_sql", commit_after_each)
    interleaving = True
    snap = source.refresh(force=True)
    interleaving = False
    assert len(commits) >= 5, commits  # the bot did commit between the refresh's reads

    def agree(snap) -> None:
        assert snap.failed == {}
        filled: dict[str, Decimal] = {}
        for order in snap.orders.rows:
            filled[order.symbol] = filled.get(order.symbol, Decimal(0)) + order.filled_quantity
        assert {p.symbol: p.quantity for p in snap.positions} == filled
        assert sorted(t.order_id for t in snap.trades) == sorted(
            o.id for o in snap.orders.rows if o.filled_quantity
        )
        assert all(p.last_price == Decimal(10) for p in snap.positions)

    agree(snap)
    later = source.refresh(force=True)
    agree(later)
    assert len(later.orders.rows) > len(snap.orders.rows)  # the bot's commits are there now
    source.close()
    bot_db.close()


@pytest.mark.parametrize("form", ["sqlite:///{}", "sqlite:///file:{}?mode=rw"])
def test_a_sqlite_dashboard_reads_while_the_bot_holds_the_write_lock(tmp_path, form):
    """The dashboard opens a SQLite file mode=ro: it never takes the write lock, so it
    reads while the bot holds it (BEGIN IMMEDIATE), and its reads cannot write. A
    ``file:`` URI naming the file is that file."""
    import sqlite3

    from stocksbot_store import ReadOnlyError

    path = tmp_path / "store.db"
    db = connect(f"sqlite:///{path}")
    init_db(db)
    seed_history(StorageService(db), orders=30)
    db.close()
    url = form.format(path)
    bot = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    bot.execute("BEGIN IMMEDIATE")
    try:
        source = DashboardSource(url, poll_seconds=3600)
        snap = source.refresh(force=True)
        assert snap is not None and snap.failed == {} and snap.orders.rows
        assert source.orders(OrderQuery(side="buy")).rows
        with pytest.raises(ReadOnlyError):
            source.storage.set_trading_enabled(False)
        impatient = f"{url}{'&' if '?' in url else '?'}timeout=0.2"
        with pytest.raises(Exception, match="locked"):  # an action waits for the bot
            DashboardSource(impatient).set_trading_enabled(False)
    finally:
        bot.execute("ROLLBACK")
        bot.close()
    source.set_trading_enabled(False)  # on a writable connection of its own
    assert source.refresh(force=True).trading_enabled is False
    source.close()


def test_only_the_data_module_imports_the_store():
    """tui/data.py is the dashboard's one door to the store (performance_data.py only
    holds the Performance view's types; the demo's bot writes a store of its own).
    Imports for type annotations alone (``if TYPE_CHECKING:``) do not count."""
    import ast
    import pathlib

    root = pathlib.Path(__file__).parent.parent / "tui"
    allowed = {"data.py", "performance_data.py", "demo.py"}
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                node.body = []
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n.split(".")[0] == "stocksbot_store" for n in names):
                found.append(path.relative_to(root).as_posix())
    assert found and set(found) <= allowed, found
    performance = (root / "performance_data.py").read_text()
    assert "StorageService" not in performance and "models" not in performance


@pytest.mark.replica
def test_a_refresh_reads_one_replica_and_sees_its_own_writes(monkeypatch):
    """With a read replica, a refresh's read transaction runs on the standby (one
    connection: ``pg_is_in_recovery()`` inside it is true), and a write the dashboard
    made on its own connection is seen by the next refresh (read-your-writes)."""
    from conftest import fresh_pg_database
    from test_replicas import replica_url_of, require_replica
    from test_replicas import wait_for as wait_until

    from stocksbot_store import StorageError, replica_status

    require_replica()
    with fresh_pg_database() as url:
        db = connect(url)
        init_db(db)
        seed_history(StorageService(db), orders=20)
        db.close()
        monkeypatch.setenv("DATABASE_REPLICA_URL", replica_url_of(url))
        monkeypatch.setattr("stocksbot_store.replicas.DEFAULT_MAX_LAG", 300.0)
        # The health line is read apart from the snapshot (its figures are the server's).
        source = DashboardSource(url, poll_seconds=3600, health=lambda db: None)
        orders = len(StorageService(connect(url, migrate=False)).orders.get_all(limit=None))

        def on_caught_up_standby() -> bool:
            """Whether a read transaction runs on the standby, which has the seeded store."""
            try:
                return source._read(
                    lambda storage: storage.db.execute_sql(
                        'SELECT pg_is_in_recovery(), count(*) FROM "order"'
                    ).fetchone()
                ) == (True, orders)
            # Not replayed yet: the database may be there before its tables are, and
            # the raw count's error is then the driver's, not the store's.
            except (StorageError, peewee.DatabaseError):
                return False

        wait_until(on_caught_up_standby, "the standby to replay the store")
        reads = replica_status(source.db)[0].reads
        assert source.refresh(force=True).trading_enabled is True
        assert replica_status(source.db)[0].reads == reads + 1  # one snapshot, one replica
        source.set_trading_enabled(False)
        assert source.refresh(force=True).trading_enabled is False
        source.close()
