"""The Performance view: an SVG snapshot at 100x30 over a fixed seeded store with marks
and a reconcile run, and its keys switching the period and the filters."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from test_tui import drive
from test_tui_snapshots import steady_audit_log, steady_health

from stocksbot_store import StorageService, connect, init_db
from stocksbot_store.seed import seed_history
from stocksbot_tui.app import DashboardApp
from stocksbot_tui.data import DashboardSource
from stocksbot_tui.widgets.performance_view import PerformanceView, age_text

SIZE = (100, 30)
NOW = dt.datetime(2026, 1, 9, 8, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def app(tmp_path, monkeypatch) -> DashboardApp:
    """The dashboard on a seeded SQLite file, with marks and one reconcile run."""
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///./performance.db"
    db = connect(url)
    init_db(db)
    storage = StorageService(db)
    seed_history(storage, orders=400)
    held = {p.symbol: p for p in storage.get_open_positions()}
    marked = sorted(held)[:-1]  # the last one stays at its last fill price
    for day in (6, 7, 8):
        storage.record_marks(
            {s: held[s].avg_entry_price * (100 + day) / 100 for s in marked},
            at=dt.datetime(2026, 1, day, 21, tzinfo=dt.timezone.utc),
        )
    storage.reconcile(
        {
            p.symbol: p.quantity if p.side.value == "long" else -p.quantity
            for p in held.values()
            if p.symbol != marked[0]
        }
    )
    db.execute_sql("UPDATE reconcile_run SET ran_at = ?", ("2026-01-09 07:30:00.000000+00:00",))
    steady_audit_log(db)
    db.close()
    return DashboardApp(
        DashboardSource(url, health=steady_health), refresh_seconds=3600, clock=lambda: NOW
    )


async def performance_drawn(pilot) -> None:
    await pilot.press("5")
    view = pilot.app.query_one(PerformanceView)
    deadline = time.monotonic() + 10
    while view.performance is None:
        assert time.monotonic() < deadline, "the performance view drew nothing"
        await pilot.pause(0.05)
    await pilot.pause()


def test_performance_view(snap_compare, app):
    assert snap_compare(app, terminal_size=SIZE, run_before=performance_drawn)


@drive
async def test_keys_switch_the_period_and_the_filters(app):
    async with app.run_test(size=SIZE) as pilot:
        await performance_drawn(pilot)
        view = app.query_one(PerformanceView)
        first = view.performance
        assert first.reconcile is not None and not first.reconcile.applied
        assert len(first.reconcile.differences) == 1
        assert {v.source for v in first.positions} == {"mark", "fill"}

        async def after(key: str):
            before = view.performance
            await pilot.press(key)
            deadline = time.monotonic() + 10
            while view.performance is before:
                assert time.monotonic() < deadline, f"{key} loaded nothing"
                await pilot.pause(0.05)
            return view.performance

        weekly = await after("p")
        assert weekly.query.period == "week"
        assert len(weekly.by_period) <= len(first.by_period)
        assert sum(r.trades for r in weekly.by_period) == sum(r.trades for r in first.by_period)
        strategy = await after("g")
        assert strategy.query.strategy == first.strategies[0]
        symbol = await after("y")
        assert symbol.query.symbol == first.symbols[0]
        assert sum(r.trades for r in symbol.by_period) <= sum(r.trades for r in strategy.by_period)


def test_age_text():
    assert [age_text(dt.timedelta(seconds=s)) for s in (5, 90, 7200, 200_000)] == [
        "5s",
        "1m",
        "2h",
        "2d",
    ]


def test_the_positions_view_values_positions_at_their_marks(app):
    storage = app.source.storage
    values = {v.position.symbol: v for v in storage.get_position_values()}
    snapshot = app.source.refresh(force=True)
    assert {p.symbol: p.last_price for p in snapshot.positions} == {
        s: v.price for s, v in values.items()
    }
    assert {v.source for v in values.values()} == {"mark", "fill"}
    app.source.close()
