"""get_db as a FastAPI dependency, in a real app driven by its TestClient."""

from __future__ import annotations

import threading

import pytest

fastapi = pytest.importorskip("fastapi")
from fastapi import Depends, FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from stocksbot_store import StorageService, get_db, init_db  # noqa: E402
from stocksbot_store.database import close_default_databases, default_database  # noqa: E402


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
        return [{"symbol": p.symbol, "quantity": str(p.quantity)}
                for p in StorageService(db).get_open_positions()]

    with TestClient(app) as client:
        yield client, threads
    close_default_databases()


def test_endpoints_use_the_database_whatever_thread_they_run_on(app_client):
    client, threads = app_client
    for i in range(10):
        assert client.post(f"/orders/S{i % 3}").status_code == 200
    response = client.get("/positions")
    assert response.status_code == 200
    assert response.json() == [{"symbol": f"S{i}", "quantity": q}
                               for i, q in ((0, "40"), (1, "30"), (2, "30"))]
    # The async endpoint runs on the event loop's thread, its sync dependency in the
    # thread pool: the connection cannot be the dependency's, and it does not need to be.
    assert threads["endpoint"] - threads["dependency"]
