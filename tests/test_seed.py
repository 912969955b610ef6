"""The seeded history and the simulated bot, on every backend."""

from __future__ import annotations

from collections import Counter

from stocksbot_store import StorageService, connect, init_db
from stocksbot_store.models import Trade
from stocksbot_store.seed import STRATEGIES, SimulatedBot, seed_history


def test_seed_history_writes_a_realistic_book(storage):
    summary = seed_history(storage, orders=300)
    assert summary.orders == 300 and summary.strategies == len(STRATEGIES)
    orders = storage.orders.get_recent(limit=1000)
    statuses = Counter(o.status.value for o in orders)
    assert {"filled", "partially_filled", "open", "cancelled", "rejected"} <= set(statuses)
    assert summary.trades == len(storage.trades.get_recent(limit=5000))
    assert max(Counter(t.order_id for t in storage.get_recent_trades(5000)).values()) > 1
    sides = {p.side.value for p in storage.get_open_positions()}
    assert sides == {"long", "short"}
    assert len(storage.positions.get_all(limit=None)) > len(storage.get_open_positions())
    stats = storage.get_strategy_stats()
    assert any(s.net_pnl > 0 for s in stats) and any(s.net_pnl < 0 for s in stats)
    assert [s.name for s in stats if not s.is_active] == ["gap_fade"]
    assert storage.is_trading_enabled()


def test_the_same_seed_writes_the_same_rows(tmp_path):
    def fills(name: str) -> list[tuple]:
        db = connect(f"sqlite:///{tmp_path / name}")
        init_db(db)
        seed_history(StorageService(db), orders=40, seed=3)
        with db.bind_ctx([Trade]):
            return [
                (t.symbol, t.side, t.quantity, t.price, t.executed_at)
                for t in Trade.select().order_by(Trade.id)
            ]

    assert fills("a.db") == fills("b.db")


def test_the_bot_trades_until_trading_is_halted(storage):
    seed_history(storage, orders=20)
    bot = SimulatedBot(storage.db, seed=1)
    before = len(storage.get_recent_trades(1000))
    traded = [bot.step() for _ in range(10)]
    assert len(storage.get_recent_trades(1000)) > before
    assert any(t is not None for t in traded)
    storage.set_trading_enabled(False)
    halted = len(storage.get_recent_trades(1000))
    assert [bot.step() for _ in range(5)] == [None] * 5
    assert len(storage.get_recent_trades(1000)) == halted


def test_the_bot_thread_writes_through_its_own_connection(store_url):
    db = connect(store_url)
    storage = StorageService(db)
    seed_history(storage, orders=10)
    before = len(storage.get_recent_trades(1000))
    bot = SimulatedBot(connect(store_url), seed=2, interval=0.01).start()
    try:
        for _ in range(500):
            if len(storage.get_recent_trades(1000)) > before + 3:
                break
            bot._stop.wait(0.01)
    finally:
        bot.stop()
    assert len(storage.get_recent_trades(1000)) > before + 3
    assert bot.errors == 0
    db.close()
