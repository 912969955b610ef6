"""Pooled PostgreSQL URLs: ``postgresql+pool://...?max_connections=&stale_timeout=&timeout=``.

More threads than connections wait up to ``timeout`` for one to come back, then get a
DatabaseUnavailableError that names the pool size and how to raise it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from conftest import store_on

from stocksbot_store import DatabaseUnavailableError, StorageService, connect

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def pool_url(request, tmp_path) -> Iterator[str]:
    """An empty store's URL, with the pool scheme and no query string yet."""
    with store_on("postgres", request, tmp_path) as url:
        yield url.replace("postgresql://", "postgresql+pool://", 1)


class WatchedCondition(threading.Condition):
    """The pool's condition, telling the test when a thread starts waiting on it."""

    def __init__(self, lock) -> None:
        super().__init__(lock)
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


class Holder:
    """A thread that takes a pooled connection and keeps it until released."""

    def __init__(self, db) -> None:
        self.db = db
        self.holding = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.holding.wait(30)

    def _run(self) -> None:
        self.db.execute_sql("SELECT 1")
        self.holding.set()
        self.release.wait(60)
        self.db.close()

    def stop(self) -> None:
        self.release.set()
        self.thread.join(30)


def test_url_options_reach_the_pool(pool_url):
    db = connect(pool_url + "?max_connections=20&stale_timeout=300&timeout=10")
    assert (db._max_connections, db._stale_timeout, db._wait_timeout) == (20, 300, 10)
    db.close()


def test_a_full_pool_waits_for_timeout_then_names_its_size(pool_url):
    db = connect(pool_url + "?max_connections=2&timeout=1")
    holders = [Holder(db), Holder(db)]
    storage = StorageService(db)
    try:
        start = time.monotonic()
        with pytest.raises(DatabaseUnavailableError) as raised:
            storage.get_recent_orders()
        waited = time.monotonic() - start
    finally:
        for holder in holders:
            holder.stop()
    message = str(raised.value)
    assert "all 2 connections of the pool" in message
    assert "timeout=1 s" in message and "max_connections=" in message
    assert "?max_connections=4" in message
    assert waited >= 0.9  # it waited for the timeout before giving up
    assert storage.get_recent_orders() == []  # connections came back: usable again
    db.close()
    db.close_all()


def test_a_waiting_thread_gets_the_connection_that_comes_back(pool_url):
    db = connect(pool_url + "?max_connections=1&timeout=30")
    db._pool_available = pool = WatchedCondition(db._pool_lock)
    holder = Holder(db)
    result: list = []

    def reader() -> None:
        result.append(StorageService(db).get_recent_orders())
        db.close()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    # A state, not a time: the reader is queued on the pool before the holder lets go.
    assert pool.waiting.wait(30), "the reader never waited for a connection"
    holder.stop()
    thread.join(30)
    assert result == [[]]
    db.close_all()


def test_without_timeout_a_full_pool_fails_at_once(pool_url):
    db = connect(pool_url + "?max_connections=1")
    holder = Holder(db)
    try:
        with pytest.raises(DatabaseUnavailableError, match="without waiting"):
            db.execute_sql("SELECT 1")
    finally:
        holder.stop()
    db.close_all()
