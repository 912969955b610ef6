"""The code a user writes, from the README, runs as written on every backend."""

from __future__ import annotations

from decimal import Decimal

from stocksbot_store import StorageService, connect, get_db, init_db
from stocksbot_store.models import OrderStatusEnum, PositionSideEnum
from stocksbot_store.repositories import PositionRepository


def test_readme_walkthrough(db_url):
    db = connect(db_url)
    init_db(db)
    storage = StorageService(db)

    position = storage.create_position("AAPL", "long", 100.0, 150.0)
    assert position.side == "long" == PositionSideEnum.LONG
    assert position.cost_basis == Decimal("15000")
    assert [p.symbol for p in storage.get_open_positions()] == ["AAPL"]

    order = storage.create_order("MSFT", "buy", "market", 50.0)
    assert order.status == "pending" and order.status == OrderStatusEnum.PENDING
    assert [o.id for o in storage.get_recent_orders(limit=10)] == [order.id]

    trade = storage.record_trade(
        order_id=order.id, symbol="MSFT", side="buy", quantity=50.0, price=300.0
    )
    assert trade.id and trade.type == "open"
    assert storage.orders.get(order.id).status == "filled"
    msft = storage.get_position_by_symbol("MSFT")
    assert (msft.quantity, msft.avg_entry_price) == (Decimal(50), Decimal(300))

    storage.set_config_value("trading_enabled", "true", "bool")
    assert storage.get_config_value("trading_enabled") == "true"
    assert storage.get_config("trading_enabled") is True

    db.close()


def test_repository_walkthrough(db):
    """The repository part of the example, as written, on a database of its own (the service
    part opened an AAPL position already, and a symbol has one open position at most)."""
    repo = PositionRepository(db)
    p = repo.create(
        symbol="AAPL",
        side=PositionSideEnum.LONG,
        quantity=100.0,
        avg_entry_price=150.0,
        cost_basis=15000.0,
    )
    p = repo.get_by_symbol("AAPL", is_open=True)
    closed = repo.close_position(p, realized_pnl=500.0)
    assert closed.is_open is False and closed.realized_pnl == Decimal(500)
    assert closed.closed_at is not None and closed.closed_at.utcoffset().total_seconds() == 0
    assert repo.get_by_symbol("AAPL", is_open=True) is None


def test_default_url_is_the_sqlite_file_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    db = connect()
    init_db(db)
    StorageService(db).create_strategy("s")
    db.close()
    assert (tmp_path / "stocksbot.db").exists()


def test_database_url_environment_variable_chooses_the_database(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", db_url)
    db = connect()
    init_db(db)
    assert StorageService(db).create_strategy("from-env").name == "from-env"
    # A second connect() to the same URL sees the same data (not for :memory:, which is
    # one database per connect()).
    if ":memory:" not in db_url:
        other = connect()
        assert StorageService(other).get_strategy_by_name("from-env") is not None
        other.close()
    db.close()


def test_get_db_is_a_generator_dependency(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'dep.db'}")
    dependency = get_db()
    db = next(dependency)
    init_db(db)
    assert StorageService(db).get_open_positions() == []
    dependency.close()
    assert db.is_closed()
