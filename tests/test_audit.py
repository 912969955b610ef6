"""The audit log: every change to orders, trades, positions, strategies and config has
its rows, written in the transaction of the change, on every backend."""

from __future__ import annotations

import datetime as dt
import inspect
import itertools
import json
import re
import sqlite3
from collections import Counter
from decimal import Decimal

import peewee
import pytest
from conftest import fresh_database_url

from stocksbot_store import Fill, ImportStoppedError, StorageService, connect, init_db
from stocksbot_store import audit as audit_module
from stocksbot_store.adjustments import Adjustments
from stocksbot_store.audit import AuditWriter, default_actor, get_audit_log
from stocksbot_store.audit_cli import main as audit_main
from stocksbot_store.errors import (
    CorruptRowError,
    DatabaseUnavailableError,
    StorageError,
    ValidationError,
)
from stocksbot_store.models import MODELS
from stocksbot_store.repositories import (
    ConfigRepository,
    OrderRepository,
    PositionRepository,
    StrategyRepository,
    TradeRepository,
)

ACTOR = "bot-eu-1"
MAX = audit_module.MAX_LIMIT
_symbols = (f"S{n}" for n in itertools.count(1))


def sym() -> str:
    return next(_symbols)


def newest_id(db) -> int:
    entries = get_audit_log(db, limit=1)
    return entries[0].id if entries else 0


def rows_after(db, mark: int) -> list:
    return sorted((e for e in get_audit_log(db, limit=1000) if e.id > mark), key=lambda e: e.id)


# -- every public write method, and what it must record -----------------------------------
#
# A scenario sets up what the call needs, calls ``start()`` (from here on, audit rows
# count), makes the call and returns the rows it must have written: (table, action,
# row id or None for any). A refused call returns [] and must write nothing.


def _order(s, symbol=None, quantity=10, **kw):
    return s.create_order(symbol or sym(), "buy", "limit", quantity, 100, **kw)


def _strategy(s):
    return s.create_strategy(f"strategy-{sym()}")


def _position(s, quantity=5):
    return s.create_position(sym(), "long", quantity, 100)


FILLED = [("trades", "create", None), ("positions", "create", None)]
ADJUSTED = [("trades", "create", None), ("positions", "fill", None)]


def sc_create_position(s, start):
    start()
    p = s.create_position(sym(), "long", 5, 100)
    return [("trades", "create", None), ("positions", "create", p.id)]


def sc_update_position_quantity(s, start):
    p = _position(s)
    start()
    s.update_position_quantity(p.id, 8)
    return [("trades", "create", None), ("positions", "fill", p.id)]


def sc_create_order(s, start):
    start()
    return [("orders", "create", _order(s).id)]


def sc_attach_external_id(s, start):
    o = _order(s)
    start()
    s.attach_external_id(o.id, f"broker-{o.id}")
    return [("orders", "update", o.id)]


def sc_update_order_status(s, start):
    o = _order(s)
    start()
    s.update_order_status(o.id, "open")
    return [("orders", "status", o.id)]


def sc_cancel_order(s, start):
    o = _order(s)
    start()
    s.cancel_order(o.id)
    return [("orders", "status", o.id)]


def sc_record_trade(s, start):
    st = _strategy(s)
    o = _order(s, strategy=st.id)
    start()
    t = s.record_trade(o.id, o.symbol, "buy", 4, 100)
    return [
        ("trades", "create", t.id),
        ("orders", "fill", o.id),
        ("positions", "create", None),
        ("strategies", "fill", st.id),
    ]


def sc_record_trades(s, start):
    st = _strategy(s)
    o = _order(s, strategy=st.id)
    start()
    fills = [
        {"order_id": o.id, "symbol": o.symbol, "side": "buy", "quantity": q, "price": 100 + q}
        for q in (2, 3)
    ]
    t1, t2 = s.record_trades(fills)
    return [
        ("trades", "create", t1.id),
        ("trades", "create", t2.id),
        ("orders", "fill", o.id),
        ("positions", "create", None),
        ("strategies", "fill", st.id),
    ]


def sc_import_trades(s, start):
    st = _strategy(s)
    o = _order(s, strategy=st.id)
    start()
    fills = (Fill(o.id, o.symbol, "buy", q, 100 + q) for q in (2, 3))
    try:
        summary = s.import_trades(fills, batch_size=1)  # two batches, two transactions
    except ImportStoppedError as e:
        raise e.error from e  # what stopped it (the locked-file test expects it busy)
    return [
        ("trades", "create", summary.first_trade_id),
        ("trades", "create", summary.last_trade_id),
        ("orders", "fill", o.id),
        ("orders", "fill", o.id),
        ("positions", "create", None),
        ("positions", "fill", None),
        ("strategies", "fill", st.id),
        ("strategies", "fill", st.id),
    ]


def sc_create_strategy(s, start):
    start()
    return [("strategies", "create", _strategy(s).id)]


def sc_set_strategy_active(s, start):
    st = _strategy(s)
    start()
    s.set_strategy_active(st.id, True)
    return [("strategies", "update", st.id)]


def sc_set_config_value(s, start):
    start()
    row = s.set_config_value(f"key-{sym()}", 3, "int")
    return [("config", "set", row.id)]


def sc_set_trading_enabled(s, start):
    s.set_trading_enabled(False)
    start()
    return [("config", "set", s.set_trading_enabled(True).id)]


def sc_halt_trading(s, start):
    s.set_trading_enabled(True)
    start()
    return [("config", "set", s.halt_trading().id)]


def sc_resume_trading(s, start):
    s.set_trading_enabled(False)
    start()
    return [("config", "set", s.resume_trading().id)]


def sc_reconcile(s, start):
    p = _position(s)
    broker = {q.symbol: q.quantity for q in s.get_open_positions()}
    broker[p.symbol] = Decimal(7)
    start()
    s.reconcile(broker, apply=True)
    return [("trades", "create", None), ("positions", "fill", p.id)]


def sc_record_marks(s, start):
    start()
    s.record_marks({sym(): 10})
    return []  # marks are market prices, not the books: no audited table


def sc_positions_create(s, start):
    start()
    p = s.positions.create(sym(), "long", 5, 100)
    return [("trades", "create", None), ("positions", "create", p.id)]


def sc_positions_update(s, start):
    p = _position(s)
    start()
    s.positions.update(p, quantity=3)
    return [("trades", "create", None), ("positions", "fill", p.id)]


def sc_positions_close_position(s, start):
    p = _position(s)
    start()
    s.positions.close_position(p)
    return [("trades", "create", None), ("positions", "fill", p.id)]


def sc_positions_delete(s, start):
    p = _position(s)
    start()
    with pytest.raises(ValidationError):
        s.positions.delete(p.id)
    return []


def sc_orders_create(s, start):
    start()
    return [("orders", "create", s.orders.create(sym(), "buy", "market", 1).id)]


def sc_orders_insert_checked(s, start):
    from stocksbot_store.repositories import check_new_order

    values = check_new_order(sym(), "sell", "market", 2, None, None)
    start()
    return [("orders", "create", s.orders.insert_checked(values).id)]


def sc_orders_update_status(s, start):
    o = _order(s)
    start()
    s.orders.update_status(o, "rejected")
    return [("orders", "status", o.id)]


def sc_orders_update(s, start):
    o = _order(s)
    start()
    s.orders.update(o, quantity=12)
    return [("orders", "update", o.id)]


def sc_orders_delete(s, start):
    o = _order(s)
    start()
    assert s.orders.delete(o.id) is True
    return [("orders", "delete", o.id)]


def sc_trades_create(s, start):
    o = _order(s)
    start()
    t = s.trades.create(o.id, o.symbol, "buy", "open", 10, 100)
    return [("trades", "create", t.id), ("orders", "fill", o.id), ("positions", "create", None)]


def sc_trades_update(s, start):
    o = _order(s)
    t = s.record_trade(o.id, o.symbol, "buy", 1, 100)
    start()
    with pytest.raises(ValidationError):
        s.trades.update(t, quantity=2)
    return []


def sc_trades_delete(s, start):
    o = _order(s)
    t = s.record_trade(o.id, o.symbol, "buy", 1, 100)
    start()
    with pytest.raises(ValidationError):
        s.trades.delete(t.id)
    return []


def sc_strategies_create(s, start):
    start()
    return [("strategies", "create", s.strategies.create(f"repo-{sym()}").id)]


def sc_strategies_update(s, start):
    st = _strategy(s)
    start()
    s.strategies.update(st, description="trend following")
    return [("strategies", "update", st.id)]


def sc_strategies_delete(s, start):
    st = _strategy(s)
    start()
    assert s.strategies.delete(st.id) is True
    return [("strategies", "delete", st.id)]


def sc_config_create(s, start):
    start()
    return [("config", "create", s.config.create(f"c-{sym()}", "x").id)]


def sc_config_update(s, start):
    row = s.config.create(f"c-{sym()}", "x")
    start()
    s.config.update(row, "y")
    return [("config", "update", row.id)]


def sc_config_upsert(s, start):
    key = f"c-{sym()}"
    s.config.upsert(key, "1")
    start()
    return [("config", "set", s.config.upsert(key, "2").id)]


def sc_config_delete(s, start):
    row = s.config.create(f"c-{sym()}", "x")
    start()
    assert s.config.delete(row.key) is True
    return [("config", "delete", row.id)]


def _closed_position(s):
    p = _position(s)
    s.positions.close_position(p.id)
    return p


def sc_delete_order(s, start):
    o = _order(s)
    start()
    return [("orders", "delete", s.delete_order(o.id).id)]


def sc_restore_order(s, start):
    o = s.delete_order(_order(s).id)
    start()
    return [("orders", "restore", s.restore_order(o.id).id)]


def sc_delete_position(s, start):
    p = _closed_position(s)
    start()
    return [("positions", "delete", s.delete_position(p.id).id)]


def sc_restore_position(s, start):
    p = s.delete_position(_closed_position(s).id)
    start()
    return [("positions", "restore", s.restore_position(p.id).id)]


def sc_delete_strategy(s, start):
    st = _strategy(s)
    start()
    return [("strategies", "delete", s.delete_strategy(st.id).id)]


def sc_restore_strategy(s, start):
    st = s.delete_strategy(_strategy(s).id)
    start()
    return [("strategies", "restore", s.restore_strategy(st.id).id)]


def sc_delete_config(s, start):
    row = s.config.create(f"c-{sym()}", "x")
    start()
    return [("config", "delete", s.delete_config(row.key).id)]


def sc_restore_config(s, start):
    row = s.delete_config(s.config.create(f"c-{sym()}", "x").key)
    start()
    return [("config", "restore", s.restore_config(row.key).id)]


def sc_orders_restore(s, start):
    o = s.delete_order(_order(s).id)
    start()
    return [("orders", "restore", s.orders.restore(o.id).id)]


def sc_positions_restore(s, start):
    p = s.delete_position(_closed_position(s).id)
    start()
    return [("positions", "restore", s.positions.restore(p.id).id)]


def sc_strategies_restore(s, start):
    st = s.delete_strategy(_strategy(s).id)
    start()
    return [("strategies", "restore", s.strategies.restore(st.id).id)]


def sc_config_restore(s, start):
    row = s.delete_config(s.config.create(f"c-{sym()}", "x").key)
    start()
    return [("config", "restore", s.config.restore(row.id).id)]


def sc_trades_restore(s, start):
    o = _order(s)
    t = s.record_trade(o.id, o.symbol, "buy", 1, 100)
    start()
    with pytest.raises(ValidationError):  # a trade is never deleted
        s.trades.restore(t.id)
    return []


def sc_adjust_open(s, start):
    start()
    p = s.adjustments.open(sym(), "short", 4, 50)
    return [("trades", "create", None), ("positions", "create", p.id)]


def sc_adjust_set_quantity(s, start):
    p = _position(s)
    start()
    s.adjustments.set_quantity(p, 9)
    return [("trades", "create", None), ("positions", "fill", p.id)]


def sc_adjust_change(s, start):
    p = _position(s)
    start()
    s.adjustments.change(p, -2, 110)
    return [("trades", "create", None), ("positions", "fill", p.id)]


def sc_adjust_close(s, start):
    p = _position(s)
    start()
    s.adjustments.close(p, 25)
    return [("trades", "create", None), ("positions", "fill", p.id)]


#: The classes whose public methods write, how to reach them on a service, and their
#: scenarios by method name.
SURFACE = {
    StorageService: (lambda s: s, "sc_"),
    PositionRepository: (lambda s: s.positions, "sc_positions_"),
    OrderRepository: (lambda s: s.orders, "sc_orders_"),
    TradeRepository: (lambda s: s.trades, "sc_trades_"),
    StrategyRepository: (lambda s: s.strategies, "sc_strategies_"),
    ConfigRepository: (lambda s: s.config, "sc_config_"),
    Adjustments: (lambda s: s.adjustments, "sc_adjust_"),
}
#: Public methods that only read (or lock inside the caller's transaction).
READS = {
    "get_open_positions",
    "get_position_by_symbol",
    "get_order",
    "get_order_fills",
    "get_recent_orders",
    "get_recent_trades",
    "get_active_strategies",
    "get_strategy_by_name",
    "get_strategy_stats",
    "get_config_value",
    "get_config",
    "get_all_config",
    "is_trading_enabled",
    "last_reconcile",
    "get_position_values",
    "pnl_by_period",
    "pnl_by_symbol",
    "equity_curve",
    "get_audit_log",
    "get_by_id",
    "exists",
    "get",
    "get_for_update",
    "get_all",
    "get_by_symbol",
    "get_all_open",
    "get_by_external_id",
    "get_by_status",
    "get_recent",
    "page",
    "get_by_order_id",
    "get_by_name",
    "id_for_name",
    "get_active",
    "get_by_key",
    "lock_symbol",
    "open_position",
    "locked",
    "get_deleted",
    "check_delete",
}


def public_methods(cls: type) -> list[str]:
    return sorted(
        name
        for name, member in inspect.getmembers(cls, callable)
        if not name.startswith("_") and not inspect.isclass(member)
    )


def scenario_for(cls: type, name: str):
    prefix = SURFACE[cls][1]
    return globals().get(f"{prefix}{name}")


def test_every_public_method_is_a_read_or_has_an_audit_scenario():
    """A new write method fails here until its audit rows are checked below."""
    missing = [
        f"{cls.__name__}.{name}"
        for cls in SURFACE
        for name in public_methods(cls)
        if name not in READS and scenario_for(cls, name) is None
    ]
    assert not missing, (
        f"public methods with no audit scenario: {missing}; add one to "
        "tests/test_audit.py (or list the method in READS if it only reads)"
    )


def test_every_write_method_records_its_changes_in_the_audit_log(db):
    storage = StorageService(db, actor=ACTOR)
    before_all = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    checked = []
    for cls in SURFACE:
        for name in public_methods(cls):
            scenario = scenario_for(cls, name)
            if scenario is None:
                continue
            marks: list[int] = []
            expected = scenario(storage, lambda marks=marks: marks.append(newest_id(db)))
            assert marks, f"{scenario.__name__} never called start()"
            got = rows_after(db, marks[0])
            where = f"{cls.__name__}.{name}"
            assert Counter((e.table, e.action) for e in got) == Counter(
                (t, a) for t, a, _ in expected
            ), (where, [(e.table, e.action, e.changes) for e in got])
            for table, action, row_id in expected:
                if row_id is not None:
                    assert any(
                        e.table == table and e.action == action and e.row_id == row_id for e in got
                    ), (where, table, action, row_id)
            for e in got:
                assert e.actor == ACTOR and e.at >= before_all and e.row_id, (where, e)
                assert isinstance(e.changes, dict) and (e.changes or e.action == "delete")
            checked.append(where)
    assert len(checked) >= 35


def test_every_write_method_on_a_locked_sqlite_file_says_busy_and_writes_nothing(tmp_path):
    """Another connection holds the write lock past the URL's ``?timeout=``: each write
    method raises DatabaseUnavailableError (a StorageError saying retry, never the
    driver's "database is locked") after that wait, not the default 30 s, and leaves
    every table as it was. A call refused before it needs the lock writes nothing too."""
    path = tmp_path / "locked.db"
    db = connect(f"sqlite:///{path}?timeout=0.05")
    init_db(db)
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 50
    storage = StorageService(db, actor=ACTOR)
    tables = [m._meta.table_name for m in MODELS]
    holder = sqlite3.connect(path, isolation_level=None)

    def counts() -> list[int]:
        return [db.execute_sql(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables]

    wrong, busy = [], 0
    for cls in SURFACE:
        for name in public_methods(cls):
            scenario = scenario_for(cls, name)
            if scenario is None:
                continue
            before: list[list[int]] = []

            def start(before=before) -> None:
                before.append(counts())
                holder.execute("BEGIN IMMEDIATE")

            try:
                outcome = scenario(storage, start)
            except StorageError as e:
                outcome = e
            finally:
                if holder.in_transaction:
                    holder.execute("ROLLBACK")
            where = f"{cls.__name__}.{name}"
            if isinstance(outcome, DatabaseUnavailableError) and "write lock" in str(outcome):
                busy += 1
            elif outcome != []:
                wrong.append((where, repr(outcome)[:200]))
            if counts() != before[0]:
                wrong.append((where, "wrote while the file was locked"))
    holder.close()
    db.close()
    assert not wrong, wrong
    assert busy >= 30


# -- what a row says -------------------------------------------------------------------


def test_a_fill_records_exact_before_and_after_values(db):
    storage = StorageService(db, actor=ACTOR)
    strategy = storage.create_strategy("trend")
    order = storage.create_order("AAPL", "buy", "limit", 10, "150.25", strategy=strategy)
    mark = newest_id(db)
    trade = storage.record_trade(
        order.id, "AAPL", "buy", "4", "150.1", commission="0.35", executed_at="2026-01-05T14:30:00Z"
    )
    rows = {e.table: e for e in rows_after(db, mark)}
    assert rows["trades"].row_id == trade.id
    assert rows["trades"].changes["price"] == [None, "150.1000000000"]
    assert rows["trades"].changes["executed_at"] == [None, "2026-01-05T14:30:00.000000+00:00"]
    assert rows["orders"].changes == {
        "filled_quantity": ["0.0000000000", "4.0000000000"],
        "avg_fill_price": [None, "150.1000000000"],
        "status": ["pending", "partially_filled"],
    }
    assert rows["positions"].action == "create"
    assert rows["positions"].changes["quantity"] == [None, "4.0000000000"]
    assert rows["positions"].changes["side"] == [None, "long"]
    assert rows["strategies"].changes["total_trades"] == [0, 1]
    assert rows["strategies"].changes["commission"] == ["0.0000000000", "0.3500000000"]
    # The position's next fill: only what changed, before and after.
    mark = newest_id(db)
    storage.record_trade(order.id, "AAPL", "buy", "6", "151", executed_at="2026-01-05T15:00Z")
    position = {e.table: e for e in rows_after(db, mark)}["positions"]
    assert position.action == "fill"
    assert position.changes["quantity"] == ["4.0000000000", "10.0000000000"]
    assert "side" not in position.changes and "opened_at" not in position.changes


def test_a_batch_records_each_trade_and_the_net_change_of_each_row(db):
    storage = StorageService(db, actor=ACTOR)
    order = storage.create_order("MSFT", "sell", "market", 9)
    mark = newest_id(db)
    storage.record_trades(
        [
            {"order_id": order.id, "symbol": "MSFT", "side": "sell", "quantity": 3, "price": p}
            for p in (10, 11, 12)
        ]
    )
    rows = rows_after(db, mark)
    assert Counter(e.table for e in rows) == {"trades": 3, "orders": 1, "positions": 1}
    order_row = next(e for e in rows if e.table == "orders")
    assert order_row.changes["filled_quantity"] == ["0.0000000000", "9.0000000000"]
    assert order_row.changes["status"] == ["pending", "filled"]
    position = next(e for e in rows if e.table == "positions")
    assert position.action == "create" and position.row_id is not None
    assert position.changes["quantity"] == [None, "9.0000000000"]
    # A re-sent batch changes nothing and records nothing.
    cover = storage.create_order("MSFT", "buy", "market", 1)
    mark = newest_id(db)
    fills = [
        {
            "order_id": cover.id,
            "symbol": "MSFT",
            "side": "buy",
            "quantity": 1,
            "price": 9,
            "external_id": "x-1",
        }
    ]
    storage.record_trades(fills)
    assert len(rows_after(db, mark)) == 3  # the trade, the order, the position
    mark = newest_id(db)
    storage.record_trades(fills)
    assert rows_after(db, mark) == []


def test_a_batch_makes_its_audit_rows_a_chunk_at_a_time(db):
    """A batch of a million fills must not hold a million audit rows at once: at every
    write, the entries taken from the caller's iterator and not written yet are at
    most one chunk's (before, all of them were made before the first statement)."""
    writer = AuditWriter(db, ACTOR)
    chunk = audit_module._ROWS_PER_CALL
    total = 3 * chunk + 7
    made = written = most_pending = 0

    def entries():
        nonlocal made
        for n in range(total):
            made += 1
            yield ("trades", n + 1, "create", '{"symbol":[null,"X"]}')

    def wrote(rows: int) -> None:
        nonlocal written, most_pending
        most_pending = max(most_pending, made - written)
        written += rows

    class Copy:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write_row(self, row):
            wrote(1)

    class Cursor:  # records the writes instead of running them
        def executemany(self, sql, params):
            wrote(sum(len(p) for p in params) // 6)

        def execute(self, sql, params):
            wrote(len(params) // 6)

        def copy(self, sql):
            return Copy()

    writer.write_many(entries(), "2026-01-05 14:30:00.000000+00:00", Cursor())
    assert written == total
    assert 0 < most_pending <= chunk


def test_an_orders_fill_changes_are_the_json_of_their_values():
    """The batch's order rows are made from a template: the same text json.dumps gives
    of ``{field: [before, after]}`` (compact, in field order, ``null`` for None)."""
    from stocksbot_store import ledger
    from stocksbot_store.fields import money_context

    with money_context():
        order = ledger.OrderState(7, "X", "buy", "open", Decimal(10), Decimal(0), None, None)
        before = (order.filled, order.avg, order.status)
        order.apply_fill(Decimal(4), Decimal("10.5"), "2026-01-05 14:30:00.000000+00:00")
        partly = audit_module._order_changes(before, order)
        again = (order.filled, order.avg, order.status)
        order.apply_fill(Decimal(6), Decimal(11), "2026-01-05 14:31:00.000000+00:00")
        filled = audit_module._order_changes(again, order)
    dumps = lambda changes: json.dumps(changes, separators=(",", ":"))  # noqa: E731
    assert partly == dumps(
        {
            "filled_quantity": ["0.0000000000", "4.0000000000"],
            "avg_fill_price": [None, "10.5000000000"],
            "status": ["open", "partially_filled"],
        }
    )
    assert filled == dumps(
        {
            "filled_quantity": ["4.0000000000", "10.0000000000"],
            "avg_fill_price": ["10.5000000000", "10.8000000000"],
            "status": ["partially_filled", "filled"],
            "filled_at": [None, "2026-01-05T14:31:00.000000+00:00"],
        }
    )


def test_a_flip_records_the_closed_position_and_the_opened_one(db):
    storage = StorageService(db, actor=ACTOR)
    storage.create_position("TSLA", "long", 2, 100)
    order = storage.create_order("TSLA", "sell", "market", 5)
    mark = newest_id(db)
    storage.record_trades(
        [{"order_id": order.id, "symbol": "TSLA", "side": "sell", "quantity": 5, "price": 90}]
    )
    positions = [e for e in rows_after(db, mark) if e.table == "positions"]
    assert sorted(e.action for e in positions) == ["create", "fill"]
    closed = next(e for e in positions if e.action == "fill")
    assert closed.changes["is_open"] == [True, False]
    opened = next(e for e in positions if e.action == "create")
    assert opened.changes["side"] == [None, "short"] and opened.row_id != closed.row_id


# -- the same transaction ----------------------------------------------------------------


def test_a_rolled_back_change_leaves_no_audit_row(db):
    storage = StorageService(db, actor=ACTOR)
    order = storage.create_order("AAPL", "buy", "limit", 5, 10)
    mark = newest_id(db)
    with pytest.raises(RuntimeError), db.atomic():
        storage.record_trade(order.id, "AAPL", "buy", 1, 10)
        storage.create_strategy("gone")
        storage.set_config_value("k", "v")
        raise RuntimeError("the caller gives up")
    assert rows_after(db, mark) == []
    with pytest.raises(StorageError):  # a refused fill: nothing written, nothing recorded
        storage.record_trade(order.id, "AAPL", "buy", 50, 10)
    with pytest.raises(StorageError):  # one bad fill refuses the whole batch
        storage.record_trades(
            [
                {"order_id": order.id, "symbol": "AAPL", "side": "buy", "quantity": 1, "price": 10},
                {
                    "order_id": order.id,
                    "symbol": "AAPL",
                    "side": "sell",
                    "quantity": 1,
                    "price": 10,
                },
            ]
        )
    assert rows_after(db, mark) == []
    storage.record_trade(order.id, "AAPL", "buy", 1, 10)
    assert len(rows_after(db, mark)) == 3


@pytest.mark.parametrize(
    "v",
    [
        None,
        True,
        False,
        0,
        7,
        Decimal("1.5"),
        Decimal("-0.0000000001"),
        Decimal("0E-10"),
        Decimal("123456789012345.1234567890"),
        dt.datetime(2026, 1, 5, 14, 30, 0, 1, tzinfo=dt.timezone.utc),
        dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.timezone.utc),
        dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
        "plain",
        'a "quoted" \\ name',
        "caf\u00e9",
        "filled",
    ],
)
def test_the_fill_paths_json_is_what_json_dumps_writes(v):
    """The fill path writes its audit rows' JSON without json.dumps (it costs as much as
    the insert); every value it writes must come out as json.dumps would write it."""
    expected = json.dumps(audit_module.value(v), separators=(",", ":"))
    assert audit_module._json(v) == expected
    assert audit_module._json(v) == expected  # again: a time's text is remembered


def test_a_failed_audit_write_rolls_the_change_back(db, monkeypatch):
    """The audit row is part of the change: if it cannot be written, neither is the
    change."""
    storage = StorageService(db, actor=ACTOR)
    order = storage.create_order("AAPL", "buy", "limit", 5, 10)

    def broken(*args, **kwargs):
        raise StorageError("audit log unavailable")

    monkeypatch.setattr(AuditWriter, "write", broken)
    with pytest.raises(StorageError, match="audit log unavailable"):
        storage.record_trade(order.id, "AAPL", "buy", 1, 10)
    with pytest.raises(StorageError, match="audit log unavailable"):
        storage.create_strategy("never")
    monkeypatch.undo()
    assert storage.get_order_fills(order.id) == []
    assert storage.get_strategy_by_name("never") is None
    assert storage.get_order(order.id).filled_quantity == 0


@pytest.mark.postgres_only
def test_postgres_refuses_update_and_delete_on_the_audit_log(db):
    storage = StorageService(db, actor=ACTOR)
    storage.create_strategy("kept")
    for sql in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(peewee.DatabaseError, match="append-only"), db.atomic():
            db.execute_sql(sql)
    assert [e.actor for e in storage.get_audit_log()] == [ACTOR]
    db.execute_sql(
        "INSERT INTO audit_log (at, actor, table_name, row_id, action, changes) "
        "VALUES (now(), 'x', 'config', 1, 'set', '{}')"
    )  # appending is fine


def test_the_api_has_no_way_to_change_or_remove_audit_rows():
    names = [n for n in dir(audit_module) + dir(AuditWriter) if not n.startswith("_")]
    assert not [n for n in names if re.search(r"update|delete|remove|purge|clear", n)]


def test_writes_outside_a_transaction_commit_with_their_audit_rows(file_db_url):
    db = connect(file_db_url)
    init_db(db)
    StorageService(db, actor=ACTOR).create_strategy("committed")
    db.close()
    other = connect(file_db_url)
    try:
        rows = get_audit_log(other, table="strategies")
        assert [(e.action, e.changes["name"]) for e in rows] == [("create", [None, "committed"])]
    finally:
        other.close()


# -- who ---------------------------------------------------------------------------------


def test_the_default_actor_is_user_at_host_pid(db):
    import os

    assert re.fullmatch(rf".+@.+:{os.getpid()}", default_actor())
    storage = StorageService(db)
    assert storage.actor == default_actor()
    storage.create_strategy("mine")
    assert storage.get_audit_log()[0].actor == default_actor()


def test_repositories_take_an_actor_and_the_old_constructors_work(db):
    OrderRepository(db).create("AAPL", "buy", "market", 1)
    OrderRepository(db, actor="script").create("AAPL", "buy", "market", 2)
    StrategyRepository(db, actor="ops").create("s1")
    ConfigRepository(db).create("k", "v")
    PositionRepository(db, actor="desk").create("MSFT", "long", 1, 10)
    actors = [(e.table, e.actor) for e in get_audit_log(db)]
    assert ("orders", "script") in actors and ("strategies", "ops") in actors
    assert ("positions", "desk") in actors and ("trades", "desk") in actors
    assert ("orders", default_actor()) in actors
    with pytest.raises(ValidationError, match="actor"):
        StorageService(db, actor="")
    with pytest.raises(ValidationError, match="actor"):
        TradeRepository(db, actor="a\nb")


# -- reading -------------------------------------------------------------------------------


def test_an_audit_row_edited_by_hand_is_named_not_a_json_traceback(file_db_url, capsys):
    """changes that are not the JSON object the store writes: CorruptRowError with the row's
    id, from the API and the CLI (exit 2), instead of a JSONDecodeError."""
    db = connect(file_db_url)
    init_db(db)
    StorageService(db, actor=ACTOR).create_strategy("hand-edited")
    for bad in ("{not json", "[1, 2]"):
        db.execute_sql(
            'INSERT INTO "audit_log" ("at", "actor", "table_name", "row_id", "action", "changes")'
            f" VALUES ('2026-01-01 00:00:00.000000+00:00', 'x', 'orders', 1, 'update', '{bad}')"
        )
        newest = db.execute_sql('SELECT max("id") FROM "audit_log"').fetchone()[0]
        with pytest.raises(CorruptRowError, match=f"audit_log row {newest}"):
            get_audit_log(db)
        assert audit_main(["--url", file_db_url]) == 2
        assert f"audit_log row {newest}" in capsys.readouterr().err
    assert [e.table for e in get_audit_log(db, before_id=newest - 1)] == ["strategies"]
    db.close()


def test_get_audit_log_filters_and_pages_newest_first(db):
    bot = StorageService(db, actor="bot")
    person = StorageService(db, actor="person")
    order = bot.create_order("AAPL", "buy", "limit", 5, 10)
    bot.update_order_status(order.id, "open")
    person.cancel_order(order.id)
    bot.set_config_value("mode", "live")
    history = bot.get_audit_log(table="orders", row_id=order.id)
    assert [e.action for e in history] == ["status", "status", "create"]
    assert history[0].changes == {"status": ["open", "cancelled"]}
    assert [e.table for e in bot.get_audit_log(actor="person")] == ["orders"]
    assert bot.get_audit_log(table="order", row_id=order.id) == history  # the SQL name too
    everything = bot.get_audit_log()
    assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
    first, second = (
        bot.get_audit_log(limit=2),
        bot.get_audit_log(limit=2, before_id=everything[1].id),
    )
    assert [e.id for e in first + second] == [e.id for e in everything]
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    assert bot.get_audit_log(since=later) == []
    assert len(bot.get_audit_log(since=everything[-1].at)) == len(everything)
    assert everything[0].to_dict()["table"] == "config"
    for bad in ({"table": "trade_log"}, {"row_id": 1}, {"limit": 0}, {"since": "yesterday"}):
        with pytest.raises(ValidationError):
            bot.get_audit_log(**bad)


def test_a_page_of_one_table_sorts_ids_not_rows(tmp_path):
    """A newest-first page of one table, on SQLite: its ids come from the (table_name,
    row_id, id) index alone and only they are sorted; sorting the whole rows made the
    dashboard's table filter take 10 times longer (0.26 s at 150,000 audit rows)."""
    db = init_db(connect(f"sqlite:///{tmp_path / 'store.db'}"))
    try:
        storage = StorageService(db, actor=ACTOR)
        order = storage.create_order("AAPL", "buy", "limit", 5, 10)
        storage.record_trade(order.id, "AAPL", "buy", 1, 10)
        ran: list[tuple] = []
        db.query_hooks.append(lambda event: ran.append((event.sql, event.params)))
        page = get_audit_log(db, table="trades")
        db.query_hooks.pop()
        assert [e.table for e in page] == ["trades"]
        ((sql, params),) = [(s, p) for s, p in ran if "audit_log" in s]
        plan = " | ".join(row[3] for row in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params))
        assert "COVERING INDEX audit_log_table_row" in plan, plan
    finally:
        db.close()


def test_the_measurement_switch_writes_nothing_while_off(db):
    storage = StorageService(db, actor=ACTOR)
    order = storage.create_order("AAPL", "buy", "limit", 5, 10)
    mark = newest_id(db)
    storage._fills.audit.enabled = False
    storage.record_trade(order.id, "AAPL", "buy", 1, 10)
    assert rows_after(db, mark) == []
    storage._fills.audit.enabled = True
    storage.record_trade(order.id, "AAPL", "buy", 1, 10)
    assert len(rows_after(db, mark)) == 3


# -- the command ---------------------------------------------------------------------------


@pytest.fixture
def audited_file(file_db_url):
    db = connect(file_db_url)
    init_db(db)
    storage = StorageService(db, actor=ACTOR)
    order = storage.create_order("AAPL", "buy", "limit", 5, "10.5")
    storage.record_trade(order.id, "AAPL", "buy", 2, "10.5")
    storage.set_config_value("mode", "paper")
    db.close()
    return file_db_url, order.id


def test_cli_shows_one_orders_history_as_text(audited_file, capsys):
    url, order_id = audited_file
    assert audit_main(["--url", url, "--table", "orders", "--id", str(order_id)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.match(rf"#\d+  \d{{4}}-\d\d-\d\dT\S+  {ACTOR}  orders {order_id}  fill$", out[0])
    assert "    filled_quantity: 0.0000000000 -> 2.0000000000" in out
    assert any(line.endswith(f"orders {order_id}  create") for line in out)
    assert not any("trades" in line or "config" in line for line in out)


def test_cli_json_for_scripts(audited_file, capsys):
    url, _ = audited_file
    assert audit_main(["--url", url, "--format", "json", "--limit", "2", "--actor", ACTOR]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["table"] for r in rows] == ["config", "strategies"] or [r["table"] for r in rows][
        0
    ] == "config"
    assert rows[0]["changes"]["value"] == [None, "paper"] and rows[0]["actor"] == ACTOR
    assert audit_main(["--url", url, "--since", "2999-01-01"]) == 0
    assert capsys.readouterr().out.strip() == "no audit rows match"


def test_cli_help_and_bad_arguments(capsys):
    with pytest.raises(SystemExit) as done:
        audit_main(["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and out.startswith("usage: stocksbot-audit")
    assert "read-only" in out and "Exit status: 0" in out
    with pytest.raises(SystemExit) as done:
        audit_main(["--id", "3"])
    assert done.value.code == 2 and "--id needs --table" in capsys.readouterr().err


def test_cli_never_shows_the_password(capsys):
    url = "postgresql://bot:s3cret-pw@127.0.0.1:1/nowhere"
    assert audit_main(["--url", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stocksbot-audit: error:") and "s3cret-pw" not in err


def test_cli_reads_a_sqlite_file_while_the_bot_holds_its_write_lock(tmp_path, capsys):
    path = tmp_path / "bot.db"
    url = f"sqlite:///{path}"
    db = connect(url)
    init_db(db)
    StorageService(db, actor=ACTOR).create_strategy("live")
    db.close()
    bot = sqlite3.connect(path)
    try:
        bot.execute("BEGIN IMMEDIATE")
        assert audit_main(["--url", url]) == 0
        assert "strategies" in capsys.readouterr().out
    finally:
        bot.rollback()
        bot.close()


# -- adoption and import: one summary row per table ---------------------------------------


def test_an_adoption_writes_one_summary_row_per_table(backend, tmp_path):
    from test_adopt import OldDatabase, fill_history

    from stocksbot_store.adopt import adopt

    with fresh_database_url(backend, tmp_path) as url:
        old = OldDatabase(url, backend)
        try:
            fill_history(old.bot)
            adopt(old.db, zone="UTC", actor="migration-job")
            rows = get_audit_log(old.db)
            assert {e.action for e in rows} == {"adopt"}
            assert {e.actor for e in rows} == {"migration-job"}
            by_table = {e.table: e for e in rows}
            assert {"orders", "trades", "strategies"} <= set(by_table)
            trades = by_table["trades"]
            count = old.db.execute_sql('SELECT count(*), min(id), max(id) FROM "trade"').fetchone()
            assert trades.row_id is None
            assert [trades.changes[k][1] for k in ("rows", "first_id", "last_id")] == list(count)
        finally:
            old.close()


def test_an_import_keeps_the_sources_audit_log_and_adds_its_summary(tmp_path):
    from stocksbot_store.archive import export_archive, import_archive

    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    source = connect(source_url)
    init_db(source)
    storage = StorageService(source, actor=ACTOR)
    order = storage.create_order("AAPL", "buy", "limit", 3, 10)
    storage.record_trade(order.id, "AAPL", "buy", 3, 10)
    before = get_audit_log(source)
    export_archive(source, str(tmp_path / "archive"))
    source.close()
    target_url = f"sqlite:///{tmp_path / 'target.db'}"
    import_archive(str(tmp_path / "archive"), target_url)
    target = connect(target_url)
    try:
        after = get_audit_log(target)
        added = after[: len(after) - len(before)]
        assert after[len(added) :] == before  # the source's rows, as they were
        assert {e.action for e in added} == {"import"}
        assert {e.table for e in added} == {"orders", "trades", "positions"}
        assert all(e.changes["source"][1].startswith("archive ") for e in added)
    finally:
        target.close()


def test_the_overhead_bench_runs_both_sides(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.audit_overhead import measure

    results = measure(f"sqlite:///{tmp_path / 'bench.db'}", fills=4, batch=7, rounds=2)
    assert set(results) == {"record_trade", "record_trades"}
    assert all(on > 0 and off > 0 for on, off in results.values())
    db = connect(f"sqlite:///{tmp_path / 'bench.db'}")
    try:  # both sides ran: audited fills and fills without audit rows
        fills = db.execute_sql("SELECT count(*) FROM trade").fetchone()[0]
        audited = len(get_audit_log(db, table="trades", limit=MAX))
        assert 0 < audited < fills
    finally:
        db.close()


def test_the_migration_goes_down_and_up_again(db_url):
    from stocksbot_store.runner import Runner

    db = connect(db_url)
    try:
        StorageService(db, actor=ACTOR).create_strategy("before")
        runner = Runner(db)
        assert runner.downgrade("0002_marks_and_reports") == ["0004_soft_delete", "0003_audit_log"]
        assert "audit_log" not in db.get_tables()
        if db.param == "%s":  # PostgreSQL: the trigger's function went with it
            assert not db.execute_sql(
                "SELECT 1 FROM pg_proc WHERE proname = 'audit_log_append_only'"
            ).fetchall()
        assert runner.upgrade("head") == ["0003_audit_log", "0004_soft_delete"]
        StorageService(db, actor=ACTOR).create_strategy("after")
        assert [e.changes["name"][1] for e in get_audit_log(db)] == ["after"]
    finally:
        db.close()
