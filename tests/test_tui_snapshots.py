"""SVG snapshots of each view over a fixed seeded store (fixed seed, timestamps and clock).

Update them after an intended change of the screens with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import replace

import pytest
from peewee import Database

from stocksbot_store import StorageService, StoreStats, connect, init_db, stats
from stocksbot_store.models import AuditLog
from stocksbot_store.seed import seed_history
from stocksbot_tui.app import DashboardApp
from stocksbot_tui.data import DashboardSource
from stocksbot_tui.screens.order_detail import OrderDetailScreen

SIZE = (160, 48)
NOW = dt.datetime(2026, 1, 9, 8, 0, tzinfo=dt.timezone.utc)
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")


def steady_health(db: Database) -> StoreStats:
    """The store's real figures, with the statements' times (which vary from run to
    run) set to 1 ms each, so that the health line is the same in every run."""
    figures = stats(db)
    return replace(
        figures,
        statements={
            kind: replace(f, seconds=f.count / 1000, max_seconds=0.001)
            for kind, f in figures.statements.items()
        },
    )


def steady_audit_log(db: Database) -> None:
    """The audit log's times and actor (the writer's clock and user@host:pid), and the
    times its changes took from the wall clock (when the seed created an order, before
    dating it back), set to NOW and one actor, so that the screens are the same in
    every run. Times before NOW are the seed's own and stay. SQLite only."""
    now = NOW.isoformat(timespec="microseconds")

    def steady(match: re.Match) -> str:
        return now if match.group(0) > now else match.group(0)

    rows = db.execute_sql("SELECT id, changes FROM audit_log").fetchall()
    with db.atomic():
        AuditLog.update(at=NOW, actor="bot-eu-1").bind(db).execute()
        for entry_id, changes in rows:
            db.execute_sql(
                "UPDATE audit_log SET changes = ? WHERE id = ?",
                (TIMESTAMP.sub(steady, changes), entry_id),
            )
    db.execute_sql("VACUUM")  # the file's size as if written so in the first place


@pytest.fixture
def app(tmp_path, monkeypatch) -> DashboardApp:
    """The dashboard on a seeded SQLite file whose URL is the same in every run."""
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///./snapshot.db"
    db = connect(url)
    init_db(db)
    seed_history(StorageService(db), orders=120)
    steady_audit_log(db)
    db.close()
    return DashboardApp(
        DashboardSource(url, health=steady_health), refresh_seconds=3600, clock=lambda: NOW
    )


async def drawn(pilot) -> None:
    deadline = time.monotonic() + 10
    # The Audit view reads its page on a worker of its own, after the refresh.
    while pilot.app.snapshot is None or pilot.app.view("audit").page is None:
        assert time.monotonic() < deadline, "the dashboard drew nothing"
        await pilot.pause(0.05)
    await pilot.pause()


@pytest.mark.parametrize(
    "key", ["1", "2", "3", "4", "6"], ids=["positions", "orders", "strategies", "trades", "audit"]
)
def test_view(snap_compare, app, key):
    assert snap_compare(app, press=[key], terminal_size=SIZE, run_before=drawn)


def test_order_detail(snap_compare, app):
    async def open_detail(pilot) -> None:
        await drawn(pilot)
        await pilot.press("2", "down", "down", "enter")
        deadline = time.monotonic() + 10
        while not isinstance(pilot.app.screen, OrderDetailScreen):
            assert time.monotonic() < deadline, "the order detail did not open"
            await pilot.pause(0.05)

    assert snap_compare(app, terminal_size=SIZE, run_before=open_detail)
