"""A connection PostgreSQL drops (terminate, idle timeout) is replaced on the next call.

Each test ends the sessions of its own throwaway database only (``pg_terminate_backend``
filtered by ``datname``), with plain and pooled URLs. Safe work is retried on a fresh
connection; a transaction cut in the middle leaves nothing; a connection lost during
COMMIT is reported as such and never repeated.
"""

from __future__ import annotations

import threading
import time

import pytest
from conftest import _admin_dsn, dump_tables, fresh_pg_database

from stocksbot_store import (
    CommitUnknownError,
    DatabaseUnavailableError,
    StorageService,
    connect,
)
from stocksbot_store.check import check_ledger
from stocksbot_store.database import write_transaction

WAIT_FOR_EXIT = 30.0  # seconds; a bound on waiting for the server, not a timing assert


@pytest.fixture(params=["plain", "pool"])
def pg_url(request):
    """A new store's URL, ``postgresql://`` or ``postgresql+pool://``."""
    with fresh_pg_database("stocksbot_reconnect") as url:
        if request.param == "pool":
            url = url.replace("postgresql://", "postgresql+pool://") + "?max_connections=2"
        yield url


@pytest.fixture
def db(pg_url):
    """The store at ``pg_url``, connected by ``connect()``; every connection closed after."""
    database = connect(pg_url)
    yield database
    database.close_all() if hasattr(database, "close_all") else database.close()


def terminate(url: str, pid: int | None = None) -> int:
    """End the sessions of ``url``'s database (or just ``pid``'s) and wait until they are
    gone. Returns how many were ended."""
    return end_sessions_of(url.rsplit("/", 1)[1].split("?")[0], pid)


def end_sessions_of(database: str, pid: int | None = None, admin_url: str | None = None) -> int:
    """End the client sessions of ``database`` (or just ``pid``'s) on the server of
    ``admin_url`` (default the primary's), as a failover or an admin would, and wait
    until they are gone. Returns how many were ended."""
    import psycopg

    with psycopg.connect(admin_url or _admin_dsn(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend' AND (%s::int IS NULL OR pid = %s::int)",
            (database, pid, pid),
        ).fetchall()
        pids = [row[0] for row in rows]
        for victim in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (victim,))
        wait_until_gone(admin, pids)
    return len(pids)


def wait_until_gone(admin, pids: list[int]) -> None:
    deadline = time.monotonic() + WAIT_FOR_EXIT
    while admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
    ).fetchone()[0]:
        assert time.monotonic() < deadline, f"backends {pids} did not exit"
        time.sleep(0.02)


def backend_pid(db) -> int:
    return db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]


def test_calls_after_a_terminated_connection_work(pg_url, db):
    storage = StorageService(db)
    storage.create_strategy("s")
    order = storage.create_order("AAPL", "buy", "market", 5, strategy="s")
    backend_pid(db)  # this thread holds a connection now

    assert terminate(pg_url) == 1
    assert storage.get_open_positions() == []  # a read outside a transaction
    assert terminate(pg_url) == 1
    second = storage.create_order("MSFT", "buy", "limit", 1, price=10)  # a plain insert
    assert terminate(pg_url) == 1
    trade = storage.record_trade(order.id, "AAPL", "buy", 2, 100, external_id="f1")
    assert terminate(pg_url) == 1
    storage.record_trades(
        [
            {
                "order_id": order.id,
                "symbol": "AAPL",
                "side": "buy",
                "quantity": 3,
                "price": 101,
                "external_id": "f2",
            }
        ]
    )

    assert [o.id for o in storage.get_recent_orders()] == [second.id, order.id]
    assert storage.get_position_by_symbol("AAPL").quantity == 5
    assert storage.trades.get_by_external_id("f1").id == trade.id
    assert check_ledger(db).ok
    if hasattr(db, "close_all"):
        assert len(db._in_use) <= 1  # the dead slots were let go


def test_is_closed_tells_the_truth_after_the_driver_saw_the_loss(pg_url, db):
    pid = backend_pid(db)
    terminate(pg_url)
    assert db.is_closed() is False  # nobody has seen the loss yet
    with pytest.raises(Exception):  # noqa: B017 - the raw driver call sees the loss itself
        db.connection().execute("SELECT 1")
    assert db.is_closed() is True
    assert backend_pid(db) != pid
    assert db.is_closed() is False


def test_an_idle_timeout_is_survived(pg_url, db):
    storage = StorageService(db)
    storage.create_strategy("idle", is_active=True)
    pid = backend_pid(db)
    db.execute_sql("SET idle_session_timeout = '50ms'")
    import psycopg

    with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
        wait_until_gone(admin, [pid])  # the server ended the idle session on its own
    assert [s.name for s in storage.get_active_strategies()] == ["idle"]
    assert storage.create_strategy("after").name == "after"
    assert backend_pid(db) != pid


def test_a_terminate_mid_transaction_writes_nothing_and_the_next_call_works(pg_url, db):
    storage = StorageService(db)
    order = storage.create_order("AAPL", "buy", "market", 5)
    pid = backend_pid(db)
    before = dump_tables(db)

    def cut(event) -> None:  # once the fill's transaction holds its lock, end the session
        # (between the fill's two round trips: the second, its writes and its COMMIT, is
        # never sent; a session lost during it is CommitUnknownError, see
        # test_monitor_faults)
        if "pg_advisory_xact_lock" in event.sql and event.exception is None:
            db.query_hooks.remove(cut)
            terminate(pg_url, pid)

    db.query_hooks.append(cut)
    with pytest.raises(DatabaseUnavailableError) as caught:
        storage.record_trade(order.id, "AAPL", "buy", 2, 100, external_id="mid")
    assert not isinstance(caught.value, CommitUnknownError)
    assert "connection" in str(caught.value) and "lost" in str(caught.value)
    assert dump_tables(db) == before  # nothing half-written
    trade = storage.record_trade(order.id, "AAPL", "buy", 2, 100, external_id="mid")
    assert trade.quantity == 2 and storage.get_position_by_symbol("AAPL").quantity == 2
    assert check_ledger(db).ok


def test_a_connection_lost_at_commit_is_reported_never_repeated(pg_url, db):
    storage = StorageService(db)
    order = storage.create_order("AAPL", "buy", "market", 5)
    pid = backend_pid(db)
    with pytest.raises(CommitUnknownError) as caught:
        with write_transaction(db):
            storage.record_trade(order.id, "AAPL", "buy", 2, 100, external_id="commit-1")
            terminate(pg_url, pid)
    assert isinstance(caught.value, DatabaseUnavailableError)
    message = str(caught.value)
    assert "may or may not" in message and "broker id" in message
    assert "retry later" not in message
    # The store did not repeat it on its own: the server never committed it.
    assert storage.trades.get_by_external_id("commit-1") is None
    # The bot checks by broker id and records it again; everything works.
    storage.record_trade(order.id, "AAPL", "buy", 2, 100, external_id="commit-1")
    assert storage.get_position_by_symbol("AAPL").quantity == 2
    assert check_ledger(db).ok


@pytest.mark.parametrize("what", ["order", "fill"])
def test_a_write_whose_message_is_cut_is_reported_never_repeated(pg_url, db, monkeypatch, what):
    """create_order sends its writes and its COMMIT in one message, and so does a fill's
    second round trip: a session lost once the message is sent (here while its audit row
    waits for a lock) is CommitUnknownError, the replicas are told a commit may have
    happened, and nothing is written again behind the caller's back."""
    import psycopg

    from stocksbot_store import at_once

    storage = StorageService(db)
    first = storage.create_order("AAPL", "buy", "market", 5)
    storage.record_trade(first.id, "AAPL", "buy", 1, 100)  # its statements are prepared
    pid = backend_pid(db)
    before = dump_tables(db)
    noted = []
    monkeypatch.setattr(at_once, "note_commit", lambda database: noted.append(database))

    def write() -> None:
        if what == "order":
            storage.create_order("MSFT", "buy", "market", 3, external_id="o-1")
        else:
            storage.record_trade(first.id, "AAPL", "buy", 2, 100, external_id="f-1")

    name = pg_url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(_admin_dsn().rsplit("/", 1)[0] + "/" + name) as blocker:
        blocker.execute('LOCK TABLE "audit_log" IN SHARE ROW EXCLUSIVE MODE')

        def cut() -> None:  # once the audit row waits for the lock, end the session
            deadline = time.monotonic() + WAIT_FOR_EXIT
            with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
                while not admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
                    " AND wait_event_type = 'Lock'",
                    (pid,),
                ).fetchone()[0]:
                    assert time.monotonic() < deadline, f"the {what} never waited for the lock"
                    time.sleep(0.02)
            terminate(pg_url, pid)
            blocker.rollback()  # nothing waits for the lock any more, whatever was sent

        cutter = threading.Thread(target=cut)
        cutter.start()
        try:
            with pytest.raises(CommitUnknownError) as caught:
                write()
        finally:
            cutter.join(WAIT_FOR_EXIT)
    assert "may or may not" in str(caught.value)
    assert noted == [db]
    assert dump_tables(db) == before  # the server never committed it, nor did the store
    write()  # the caller checks, finds nothing stored, and writes it again
    if what == "order":
        assert storage.orders.get_by_external_id("o-1") is not None
    else:
        assert storage.get_position_by_symbol("AAPL").quantity == 3
        assert check_ledger(db).ok
