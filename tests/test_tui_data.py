"""The dashboard's data access (tui.data) and the store queries it uses, on every backend."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from stocksbot_store import StorageService, ValidationError, connect
from stocksbot_store.queries import (
    ChangeWatcher,
    last_prices,
    order_page,
    realized_pnl_series,
    trade_page,
)
from stocksbot_store.seed import seed_history
from tui.data import PAGE_SIZE, DashboardSource, OrderQuery, Sort


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
    closing = [t for t in seeded.trades.get_all(limit=None)
               if t.strategy_id == stats.id and t.realized_pnl is not None]
    assert series[-1][1] - series[-2][1] == max(closing, key=lambda t: t.executed_at).realized_pnl


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
    assert [o.id for o in snap.orders.rows] == sorted((o.id for o in snap.orders.rows),
                                                       reverse=True)
    assert len(snap.strategies) == 4 and all(snap.pnl_series[s.id] for s in snap.strategies)


def test_orders_page_and_filter_in_sql(seeded):
    source = DashboardSource(seeded.db)
    first = source.orders(OrderQuery())
    second = source.orders(OrderQuery(before_id=first.rows[-1].id))
    assert second.rows[0].id < first.rows[-1].id
    assert len(first.rows) + len(second.rows) <= 2 * PAGE_SIZE
    buys = source.orders(OrderQuery(side="buy", strategy="momentum", status="filled"))
    assert buys.rows and all(o.side == "buy" and o.strategy == "momentum"
                             and o.status == "filled" for o in buys.rows)
    assert source.orders(OrderQuery(strategy="no such strategy")).rows == ()


def test_sorted_pages_are_sorted_in_sql_over_the_whole_history(seeded):
    everything = seeded.orders.get_all(limit=None)
    by_price = sorted((o for o in everything if o.price is not None),
                      key=lambda o: (o.price, o.id), reverse=True)
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
    assert [t.id for t in trade_page(seeded.db, sort="price", descending=False, limit=5)] == \
        [t.id for t in fills[:5]]
    costs = sorted(seeded.trades.get_all(limit=None),
                   key=lambda t: (t.commission + t.fees, t.id), reverse=True)
    assert [t.id for t in trade_page(seeded.db, sort="costs", limit=5)] == \
        [t.id for t in costs[:5]]
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

    code = ("import pkgutil, importlib, sys, stocksbot_store\n"
            "for m in pkgutil.iter_modules(stocksbot_store.__path__):\n"
            "    importlib.import_module('stocksbot_store.' + m.name)\n"
            "print(sorted(n for n in sys.modules if n.split('.')[0] in ('tui', 'textual')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
