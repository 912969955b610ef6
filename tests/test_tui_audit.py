"""The dashboard's Audit view and an order's history, over the store's audit log: the
door's reads (stocksbot_tui.data) on a SQLite file and PostgreSQL, and the view and the
order detail driven with Pilot."""

from __future__ import annotations

import pytest
from test_tui import SIZE, dashboard, drive, table, wait_for
from textual.widgets import Input, Select

from stocksbot_store import StorageService, connect, init_db
from stocksbot_tui.data import DashboardSource
from stocksbot_tui.rows import AuditQuery
from stocksbot_tui.screens.audit_filter import AuditFilterScreen
from stocksbot_tui.screens.order_detail import OrderDetailScreen
from stocksbot_tui.widgets.keyed_table import KeyedTable


@pytest.fixture
def book(file_db_url) -> dict:
    """A store where two actors wrote: the bot placed and filled orders, an operator
    halted trading. Returns the URL and what was written."""
    db = connect(file_db_url)
    init_db(db)
    bot = StorageService(db, actor="bot-eu-1")
    orders = []
    for number, symbol in enumerate(["AAPL", "MSFT", "AAPL", "NVDA"]):
        order = bot.create_order(symbol, "buy", "limit", 10, price="100")
        bot.record_trade(order.id, symbol, "buy", 4 + number, "99.5")
        orders.append(order.id)
    StorageService(db, actor="ops@desk").set_trading_enabled(False)
    everything = StorageService(db).get_audit_log(limit=1000)
    db.close()
    return {"url": file_db_url, "orders": orders, "entries": everything}


def test_the_audit_log_newest_first_a_page_at_a_time(book):
    source = DashboardSource(book["url"], poll_seconds=3600, page_size=5)
    seen: list[int] = []
    query = AuditQuery()
    while True:
        page = source.audit(query)
        assert len(page.rows) <= 5
        seen += [r.id for r in page.rows]
        if not page.has_more:
            break
        query = query.next_page(page)
    assert seen == [e.id for e in book["entries"]]  # every entry once, newest first
    assert seen == sorted(seen, reverse=True)
    source.close()


def test_the_audit_log_filtered_by_table_row_and_actor(book):
    source = DashboardSource(book["url"], poll_seconds=3600)
    order = book["orders"][1]
    rows = source.audit(AuditQuery(table="orders", row_id=order)).rows
    assert rows and all(r.table == "orders" and r.row_id == order for r in rows)
    assert rows[-1].action == "create"
    assert ("symbol", "-", "MSFT") in rows[-1].changes
    by_ops = source.audit(AuditQuery(actor="ops@desk")).rows
    assert [r.table for r in by_ops] == ["config"]
    assert {r.actor for r in source.audit(AuditQuery(table="trades")).rows} == {"bot-eu-1"}
    assert source.audit(AuditQuery(actor="nobody")).rows == ()
    detail = source.order_detail(order)
    assert detail.history_failed is None
    assert [r.id for r in detail.history] == [r.id for r in rows]
    assert [f.order_id for f in detail.fills] == [order]
    source.close()


@drive
async def test_the_audit_view_pages_and_filters(book):
    app = dashboard(book["url"])
    app.source.page_size = 4
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        await pilot.press("6")
        assert app.current_view == "audit"
        audit = table(app, "audit")
        newest = [str(e.id) for e in book["entries"]]
        await wait_for(pilot, lambda: audit.keys() == newest[:4])
        await pilot.press("n")
        await wait_for(pilot, lambda: audit.keys() == newest[4:8])
        await pilot.press("p")
        await wait_for(pilot, lambda: audit.keys() == newest[:4])

        await pilot.press("slash")
        await wait_for(pilot, lambda: isinstance(app.screen, AuditFilterScreen))
        app.screen.query_one("#audit-row", Input).value = str(book["orders"][0])
        await pilot.press("enter")  # a row id without its table is refused, in the dialog
        assert isinstance(app.screen, AuditFilterScreen)
        app.screen.query_one("#audit-table-choice", Select).value = "orders"
        app.screen.query_one("#audit-row", Input).focus()
        await pilot.press("enter")
        want = [
            str(e.id)
            for e in book["entries"]
            if e.table == "orders" and e.row_id == book["orders"][0]
        ]
        await wait_for(pilot, lambda: audit.keys() == want)
        assert "table=orders id=" in str(app.view("audit").caption())


@drive
async def test_an_orders_detail_shows_its_history(book):
    app = dashboard(book["url"])
    order = book["orders"][-1]
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None)
        await pilot.press("2")
        orders = table(app, "orders")
        await wait_for(pilot, lambda: str(order) in orders.keys())
        orders.select_key(str(order))
        orders.focus()
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, OrderDetailScreen))
        history = app.screen.query_one("#detail-history", KeyedTable)
        want = [str(e.id) for e in book["entries"] if e.table == "orders" and e.row_id == order]
        assert want and history.keys() == want
