"""No lost updates: every read-modify-write of the service, raced by real threads on a
SQLite file and on PostgreSQL.

Each race is made deterministic: a third connection holds the lock the callers need
(SQLite's write lock, the symbol's advisory lock or the row's lock on PostgreSQL) while the
callers start; only once every caller is blocked on it (PostgreSQL: its backend waits on a
lock; SQLite: its connection has started its first write statement, so anything read
before writing has been read) is the lock released. Code that read outside its write
transaction has then read stale data, every time; code that reads under the lock cannot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal as D
from typing import Any

import pytest

from stocksbot_store import DuplicateError, StorageService, ValidationError, connect
from stocksbot_store.check import check_ledger
from stocksbot_store.database import backend_of, write_transaction

WAIT_SECONDS = 60
_WRITES = ("BEGIN IMMEDIATE", "INSERT", "UPDATE", "DELETE")


@pytest.fixture
def shared(store_url) -> Iterator[tuple[StorageService, StorageService]]:
    """The store the callers share, and a second connection to it that holds locks."""
    db = connect(store_url)
    holder = connect(store_url)
    yield StorageService(db), StorageService(holder)
    holder.close()
    db.close()


def race(
    storage: StorageService,
    holder: StorageService,
    take_lock: Callable[[], Any],
    *calls: Callable[[], Any],
) -> list[Any]:
    """Run ``calls`` at once on threads of ``storage`` while ``holder`` holds the lock that
    ``take_lock`` takes; release it when every call is blocked. Returns each call's
    result or the exception it raised, in the order given."""
    db = storage.db
    started = [threading.Event() for _ in calls]
    outcomes: list[Any] = [None] * len(calls)

    def run(n: int) -> None:
        if backend_of(db) == "sqlite":

            def trace(sql: str) -> None:
                if sql.lstrip().upper().startswith(_WRITES):
                    started[n].set()

            db.connection().set_trace_callback(trace)
        else:
            started[n].set()
        try:
            outcomes[n] = calls[n]()
        except Exception as e:
            outcomes[n] = e
        finally:
            if backend_of(db) == "sqlite":
                db.connection().set_trace_callback(None)
            db.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    with write_transaction(holder.db):
        take_lock()
        for t in threads:
            t.start()
        _wait_until_blocked(storage, started, len(calls))
    for t in threads:
        t.join(WAIT_SECONDS)
        assert not t.is_alive(), "a caller never finished"
    return outcomes


def _wait_until_blocked(
    storage: StorageService, started: list[threading.Event], count: int
) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    for event in started:
        assert event.wait(max(0.0, deadline - time.monotonic())), "a caller never started"
    if backend_of(storage.db) == "sqlite":
        return  # each has started its first write, which waits for the holder's lock
    sql = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock'"
    )
    while storage.db.execute_sql(sql).fetchone()[0] < count:
        assert time.monotonic() < deadline, "the callers never blocked on the held lock"
        time.sleep(0.01)


def _books_agree(storage: StorageService) -> None:
    report = check_ledger(storage.db)
    assert report.ok, report.format()


def _errors(outcomes: list[Any]) -> list[Exception]:
    return [o for o in outcomes if isinstance(o, Exception)]


def test_two_hand_resizes_of_one_position_lose_nothing(shared):
    storage, holder = shared
    position = storage.create_position("AAPL", "long", 10, 100)
    outcomes = race(
        storage,
        holder,
        lambda: holder.adjustments.locked(position.id),
        lambda: storage.update_position_quantity(position.id, 25),
        lambda: storage.update_position_quantity(position.id, 30),
    )
    assert _errors(outcomes) == []
    # Whichever ran last set the quantity; a stale read would have added both changes (45).
    assert storage.get_position_by_symbol("AAPL").quantity in (25, 30)
    _books_agree(storage)


def test_two_deltas_on_one_position_both_count(shared):
    storage, holder = shared
    position = storage.create_position("AAPL", "long", 10, 100)
    outcomes = race(
        storage,
        holder,
        lambda: holder.adjustments.locked(position.id),
        lambda: storage.update_position_quantity(position, 5, 110),
        lambda: storage.update_position_quantity(position, -4, 120),
    )
    assert _errors(outcomes) == []
    stored = storage.get_position_by_symbol("AAPL")
    assert stored.quantity == 11
    _books_agree(storage)


def test_two_create_position_for_one_symbol_give_one_position(shared):
    storage, holder = shared
    outcomes = race(
        storage,
        holder,
        lambda: holder.adjustments.lock_symbol("AAPL"),
        lambda: storage.create_position("AAPL", "long", 10, 100),
        lambda: storage.create_position("AAPL", "long", 10, 100),
    )
    errors = _errors(outcomes)
    assert len(errors) == 1 and isinstance(errors[0], DuplicateError), outcomes
    assert storage.get_position_by_symbol("AAPL").quantity == 10
    assert len(storage.trades.get_by_symbol("AAPL")) == 1
    _books_agree(storage)


def test_two_broker_ids_for_one_order_one_wins(shared):
    storage, holder = shared
    order = storage.create_order("AAPL", "buy", "market", 1)
    outcomes = race(
        storage,
        holder,
        lambda: holder.orders.get_for_update(order.id),
        lambda: storage.attach_external_id(order.id, "BRK-A"),
        lambda: storage.attach_external_id(order.id, "BRK-B"),
    )
    errors = _errors(outcomes)
    assert len(errors) == 1 and isinstance(errors[0], ValidationError), outcomes
    (winner,) = [o for o in outcomes if not isinstance(o, Exception)]
    assert storage.orders.get(order.id).external_id == winner.external_id


def test_a_cancel_racing_a_move_to_open_leaves_the_order_cancelled(shared):
    storage, holder = shared
    order = storage.create_order("AAPL", "buy", "market", 10)
    outcomes = race(
        storage,
        holder,
        lambda: holder.orders.get_for_update(order.id),
        lambda: storage.cancel_order(order.id),
        lambda: storage.update_order_status(order.id, "open"),
    )
    stored = storage.orders.get(order.id)
    assert stored.status == "cancelled"
    # Either the move to open came first, or it found the order cancelled and was refused.
    assert all(isinstance(o, Exception) or o.status in ("open", "cancelled") for o in outcomes)
    _books_agree(storage)


def test_set_strategy_active_returns_the_row_it_wrote(shared):
    storage, holder = shared
    strategy = storage.create_strategy("s")
    outcomes = race(
        storage,
        holder,
        lambda: holder.strategies.get_for_update(strategy.id),
        lambda: storage.set_strategy_active(strategy.id, True),
        lambda: storage.set_strategy_active("s", "off"),
    )
    assert _errors(outcomes) == []
    assert [o.is_active for o in outcomes] == [True, False]
    assert storage.get_strategy_by_name("s").is_active in (True, False)


def test_config_upserts_return_what_each_wrote(shared):
    storage, holder = shared
    storage.set_config_value("risk", "0.01", "float")
    row = storage.config.get_by_key("risk")
    outcomes = race(
        storage,
        holder,
        lambda: holder.config.get_for_update(row.id),
        lambda: storage.set_config_value("risk", "0.02", "float"),
        lambda: storage.set_config_value("risk", "0.03", "float"),
    )
    assert _errors(outcomes) == []
    assert [o.value for o in outcomes] == ["0.02", "0.03"]
    assert storage.get_config_value("risk") in ("0.02", "0.03")


def test_a_hand_resize_racing_fills_of_its_symbol(shared):
    """A fill and a resize of one symbol queue on the same lock: the resize sets the
    quantity it was asked for, whether the fill came before or after, and the books agree."""
    storage, holder = shared
    position = storage.create_position("AAPL", "long", 10, 100)
    order = storage.create_order("AAPL", "buy", "market", 5)
    outcomes = race(
        storage,
        holder,
        lambda: holder.adjustments.lock_symbol("AAPL"),
        lambda: storage.update_position_quantity(position.id, 20),
        lambda: storage.record_trade(order.id, "AAPL", "buy", 5, 110),
    )
    assert _errors(outcomes) == []
    assert storage.get_position_by_symbol("AAPL").quantity in (D(20), D(25))
    _books_agree(storage)
