"""get_db as a FastAPI dependency, in a real app driven by its TestClient."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

fastapi = pytest.importorskip("fastapi")
from fastapi import Depends, FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from stocksbot_store import StorageService, connect, get_db, init_db  # noqa: E402
from stocksbot_store.models import Order, Position, Strategy  # noqa: E402
from stocksbot_store.store import close_default_databases, default_database  # noqa: E402


@pytest.fixture
def app_client(db_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    init_db(default_database())
    threads: dict[str, set[int]] = {"dependency": set(), "endpoint": set()}
    app = FastAPI()

    def tracked_db():
        threads["dependency"].add(threading.get_ident())
        yield from get_db()

    @app.post("/orders/{symbol}")
    def create_order(symbol: str, db=Depends(tracked_db)):
        threads["endpoint"].add(threading.get_ident())
        order = StorageService(db).create_order(symbol, "buy", "market", 10)
        StorageService(db).record_trade(order.id, symbol, "buy", 10, 100)
        return {"id": order.id}

    @app.get("/positions")
    async def positions(db=Depends(get_db)):
        threads["endpoint"].add(threading.get_ident())
        return [
            {"symbol": p.symbol, "quantity": str(p.quantity)}
            for p in StorageService(db).get_open_positions()
        ]

    with TestClient(app) as client:
        yield client, threads
    close_default_databases()


def test_endpoints_use_the_database_whatever_thread_they_run_on(app_client):
    client, threads = app_client
    for i in range(10):
        assert client.post(f"/orders/S{i % 3}").status_code == 200
    response = client.get("/positions")
    assert response.status_code == 200
    assert response.json() == [
        {"symbol": f"S{i}", "quantity": q} for i, q in ((0, "40"), (1, "30"), (2, "30"))
    ]
    # The async endpoint runs on the event loop's thread, its sync dependency in the
    # thread pool: the connection cannot be the dependency's, and it does not need to be.
    assert threads["endpoint"] - threads["dependency"]


def test_the_old_readme_endpoint_returns_rows_as_json_objects(db_url, monkeypatch, tmp_path):
    """The old README's endpoint returns the rows themselves; FastAPI's default encoder
    gives each as an object of its fields: exact decimals as text, UTC ISO times, enum
    values; the same mapping as ``row.to_dict()``."""
    from fastapi.encoders import jsonable_encoder

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    db = init_db()  # the old module's call: the process's default database
    storage = StorageService(db)
    position = storage.create_position("AAPL", "long", 100.5, 150.1)
    order = storage.create_order("MSFT", "buy", "limit", 3, 300.25)
    trade = storage.record_trade(order.id, "MSFT", "buy", 3, 0.0000001)
    app = FastAPI()

    @app.get("/positions")
    async def get_positions(db=Depends(get_db)):
        storage = StorageService(db)
        positions = storage.get_open_positions()
        return positions

    @app.get("/orders/{order_id}")
    def get_order(order_id: int, db=Depends(get_db)):
        return StorageService(db).get_order(order_id)

    @app.get("/trades")
    def get_trades(db=Depends(get_db)):
        return StorageService(db).get_recent_trades()

    try:
        with TestClient(app) as client:
            positions = client.get("/positions").json()
            got_order = client.get(f"/orders/{order.id}").json()
            trades = client.get("/trades").json()
    finally:
        close_default_databases()
    aapl = next(p for p in positions if p["symbol"] == "AAPL")
    assert aapl == jsonable_encoder(position) == position.to_dict()
    assert aapl["id"] == position.id and aapl["side"] == "long" and aapl["is_open"] is True
    assert (aapl["quantity"], aapl["avg_entry_price"], aapl["cost_basis"]) == (
        "100.5",
        "150.1",
        "15085.05",
    )
    assert aapl["closed_at"] is None
    assert dt.datetime.fromisoformat(aapl["opened_at"]).utcoffset() == dt.timedelta(0)
    assert (
        got_order["status"],
        got_order["price"],
        got_order["filled_quantity"],
        got_order["strategy_id"],
    ) == ("filled", "300.25", "3", None)
    assert trades[0] == trade.to_dict()
    assert (trades[0]["order_id"], trades[0]["price"], trades[0]["type"]) == (
        order.id,
        "0.0000001",
        "open",
    )
    assert set(aapl) == {f.column_name for f in Position._meta.sorted_fields}


def test_the_old_testing_recipe_in_memory(monkeypatch):
    """The old module's test recipe: DATABASE_URL=sqlite:///:memory:, init_db(), then a
    TestClient whose endpoints get the database by Depends(get_db), on worker threads."""
    monkeypatch.setenv("DATABASE_URL", "sqlite:///:memory:")
    init_db()
    app = FastAPI()

    @app.post("/strategies/{name}")
    def create(name: str, db=Depends(get_db)):
        return StorageService(db).create_strategy(name, "momentum", {"n": 1})

    @app.get("/strategies")
    def listed(db=Depends(get_db)):
        return StorageService(db).strategies.get_all()

    try:
        with TestClient(app) as client:
            made = client.post("/strategies/alpha").json()
            assert (made["name"], made["is_active"], made["config"]) == ("alpha", False, {"n": 1})
            assert [s["name"] for s in client.get("/strategies").json()] == ["alpha"]
    finally:
        close_default_databases()


def test_connect_with_no_url_is_the_database_get_db_yields(monkeypatch, tmp_path):
    """``db = connect(); init_db(db)`` sets up the very database the endpoints get, even
    in memory (where a second object would be a second, empty database), and a relative
    SQLite path stays the same file after the process changes folder."""
    monkeypatch.setenv("DATABASE_URL", "sqlite:///:memory:")
    db = connect()
    init_db(db)
    StorageService(db).create_strategy("alpha")
    app = FastAPI()

    @app.get("/strategies")
    def listed(db=Depends(get_db)):
        return StorageService(db).strategies.get_all()

    try:
        assert connect() is db
        with TestClient(app) as client:
            assert [s["name"] for s in client.get("/strategies").json()] == ["alpha"]
        assert connect("sqlite:///:memory:") is not db  # a URL gives an object of its own
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("DATABASE_URL", "sqlite:///./here.db")
        here = connect()
        monkeypatch.chdir(tmp_path.parent)
        assert connect() is not here  # ./here.db is now another file
        assert here.database == str(tmp_path / "here.db")
    finally:
        close_default_databases()


def test_a_relative_file_uri_stays_the_same_file_after_a_change_of_folder(monkeypatch, tmp_path):
    """``sqlite:///file:here.db?mode=rwc`` names ./here.db as ``sqlite:///./here.db``
    does: the default database keeps that file when the process changes folder."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///file:here.db?mode=rwc")
    try:
        here = connect()
        StorageService(here).create_strategy("alpha")
        monkeypatch.chdir(elsewhere)
        here.close()  # the next statement connects again, from the new folder
        assert [s.name for s in StorageService(here).strategies.get_all()] == ["alpha"]
        assert list(elsewhere.iterdir()) == []
    finally:
        close_default_databases()


def test_rows_stay_peewee_models(db):
    """Iterating a row gives (field, JSON value) pairs for dict(row); Peewee still treats it
    as a model: saved, compared, used in a query."""
    storage = StorageService(db)
    strategy = storage.create_strategy("s")
    assert dict(strategy) == strategy.to_dict()
    orders = [storage.create_order("X", "buy", "market", 1, strategy=strategy) for _ in "ab"]
    with db.bind_ctx([Order, Strategy]):
        assert Order.select().where(Order.strategy == strategy).count() == 2
        assert Order.select().where(Order.id.in_([o.id for o in orders])).count() == 2
        assert Order.get_by_id(orders[0].id) == orders[0]
        strategy.description = "saved by peewee"
        strategy.save()
    assert storage.get_strategy_by_name("s").description == "saved by peewee"
