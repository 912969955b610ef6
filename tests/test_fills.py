"""record_trade keeps the books: trade, order, position and strategy in one transaction."""

from __future__ import annotations

import ast
import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal as D
from pathlib import Path

import pytest
from conftest import dump_tables

from stocksbot_store import (
    ConflictError,
    DeletedError,
    Fill,
    NotFoundError,
    OverfillError,
    StorageError,
    StorageService,
    ValidationError,
    connect,
    init_db,
)
from stocksbot_store.check import check_ledger


def buy(storage, symbol, qty, price, **kw):
    """Create a market order and fill it completely."""
    order = storage.create_order(symbol, "buy", "market", qty, strategy=kw.pop("strategy", None))
    return storage.record_trade(order.id, symbol, "buy", qty, price, **kw)


def sell(storage, symbol, qty, price, **kw):
    order = storage.create_order(symbol, "sell", "market", qty, strategy=kw.pop("strategy", None))
    return storage.record_trade(order.id, symbol, "sell", qty, price, **kw)


def test_partial_fills_move_the_order_forward(storage):
    order = storage.create_order("MSFT", "buy", "limit", 50, 301)
    first = storage.record_trade(order.id, "MSFT", "buy", 20, 300)
    order = storage.orders.get(order.id)
    assert order.status == "partially_filled" and order.filled_quantity == 20
    assert order.filled_at is None and order.remaining_quantity == 30
    storage.record_trade(order.id, "MSFT", "buy", 30, 301)
    order = storage.orders.get(order.id)
    assert order.status == "filled" and order.filled_quantity == 50
    assert order.avg_fill_price == D("300.6")  # (20*300 + 30*301) / 50
    assert order.filled_at is not None
    assert [t.id for t in storage.trades.get_by_order_id(order.id)][0] == first.id


def test_fills_open_add_reduce_and_close_a_long_position(storage):
    buy(storage, "AAPL", 100, 150)
    buy(storage, "AAPL", 100, 160)
    position = storage.get_position_by_symbol("AAPL")
    assert (position.side, position.quantity, position.avg_entry_price) == ("long", 200, 155)
    assert position.cost_basis == 31000

    trade = sell(storage, "AAPL", 50, 170)
    assert trade.type == "close" and trade.realized_pnl == D(750)  # 50 x (170 - 155)
    position = storage.get_position_by_symbol("AAPL")
    assert position.quantity == 150 and position.avg_entry_price == 155
    assert position.realized_pnl == 750

    trade = sell(storage, "AAPL", 150, 150)
    assert trade.realized_pnl == D(-750)
    assert storage.get_position_by_symbol("AAPL") is None
    closed = storage.positions.get_by_symbol("AAPL", is_open=False)
    assert closed.realized_pnl == 0 and closed.closed_at is not None and not closed.is_open


def test_a_short_position_gains_when_the_price_falls(storage):
    sell(storage, "TSLA", 10, 200)
    assert storage.get_position_by_symbol("TSLA").side == "short"
    trade = buy(storage, "TSLA", 4, 180)
    assert trade.realized_pnl == D(80)
    assert storage.get_position_by_symbol("TSLA").quantity == 6


def test_a_fill_past_zero_flips_the_position(storage):
    buy(storage, "NVDA", 10, 100)
    trade = sell(storage, "NVDA", 15, 110)
    assert trade.type == "close" and trade.realized_pnl == D(100)
    old = storage.positions.get_by_symbol("NVDA", is_open=False)
    assert old.side == "long" and not old.is_open and old.realized_pnl == 100
    new = storage.get_position_by_symbol("NVDA")
    assert (new.side, new.quantity, new.avg_entry_price, new.realized_pnl) == ("short", 5, 110, 0)
    assert len(storage.positions.get_all()) == 2


def test_commission_and_fees_are_kept_apart_from_gross_pnl(storage):
    strategy = storage.create_strategy("fees")
    buy(storage, "F", 10, 10, commission=1, fees=0.25, strategy=strategy.id)
    sell(storage, "F", 10, 12, commission=1, fees=0.25, strategy=strategy.id)
    closed = storage.positions.get_by_symbol("F", is_open=False)
    assert closed.realized_pnl == 20 and closed.net_pnl == D("17.5")
    stats = storage.get_strategy_stats()[0]
    assert (stats.gross_pnl, stats.fees, stats.net_pnl) == (20, D("2.5"), D("17.5"))
    trade = storage.get_recent_trades(1)[0]
    assert trade.net_pnl == D("18.75")


def test_strategy_figures_follow_the_fills(storage):
    storage.create_strategy("mom", "momentum", {"window": 20}, "trend following")
    for exit_price in (110, 90, 120, 100):  # +10, -10, +20, 0 per share
        buy(storage, "S", 1, 100, strategy="mom")
        sell(storage, "S", 1, exit_price, strategy="mom")
    strategy = storage.get_strategy_by_name("mom")
    assert strategy.total_trades == 8 and strategy.total_pnl == 20
    assert strategy.win_rate == D("0.5")  # 2 winners of 4 closing trades
    assert strategy.config == {"window": 20}
    stats = storage.get_strategy_stats()[0]
    assert (stats.wins, stats.losses, stats.closing_trades) == (2, 1, 4)
    assert stats.gross_profit == 30 and stats.gross_loss == 10
    assert stats.profit_factor == 3 and stats.max_drawdown == 10
    assert stats.last_trade_at is not None


def test_a_resent_fill_changes_nothing(storage, db):
    order = storage.create_order("MSFT", "buy", "market", 50)
    first = storage.record_trade(order.id, "MSFT", "buy", 20, 300, external_id="T-1")
    before = dump_tables(db)
    again = storage.record_trade(order.id, "MSFT", "buy", 20.0, "300", external_id="T-1")
    assert again.id == first.id
    assert dump_tables(db) == before


@pytest.mark.parametrize("changed", [{"quantity": 21}, {"price": 301}, {"side": "sell"}])
def test_a_resent_fill_that_disagrees_is_a_conflict(storage, db, changed):
    order = storage.create_order("MSFT", "buy", "market", 50)
    storage.record_trade(order.id, "MSFT", "buy", 20, 300, external_id="T-1")
    before = dump_tables(db)
    fill = {
        "order_id": order.id,
        "symbol": "MSFT",
        "side": "buy",
        "quantity": 20,
        "price": 300,
        "external_id": "T-1",
        **changed,
    }
    with pytest.raises(ConflictError, match="T-1"):
        storage.record_trade(**fill)
    assert dump_tables(db) == before


def test_rejected_fills_write_nothing(storage, db):
    order = storage.create_order("MSFT", "buy", "market", 50)
    storage.record_trade(order.id, "MSFT", "buy", 20, 300)
    cancelled = storage.create_order("MSFT", "buy", "market", 5)
    storage.cancel_order(cancelled.id)
    before = dump_tables(db)
    bad = [
        (dict(order_id=9999), NotFoundError, None),
        (dict(symbol="AAPL"), ValidationError, "symbol"),
        (dict(side="sell"), ValidationError, "side"),
        (dict(quantity=0), ValidationError, "quantity"),
        (dict(quantity=-5), ValidationError, "quantity"),
        (dict(price=float("nan")), ValidationError, "price"),
        (dict(price=float("inf")), ValidationError, "price"),
        (dict(quantity=31), OverfillError, "quantity"),
        (dict(order_id=cancelled.id, quantity=1), ValidationError, "order_id"),
        (dict(commission=-1), ValidationError, "commission"),
    ]
    for change, error, field in bad:
        fill = {
            "order_id": order.id,
            "symbol": "MSFT",
            "side": "buy",
            "quantity": 10,
            "price": 300,
            **change,
        }
        with pytest.raises(error) as info:
            storage.record_trade(**fill)
        assert isinstance(info.value, StorageError)
        if field:
            assert info.value.field == field, change
        assert dump_tables(db) == before, change


def test_a_filled_order_takes_no_more_fills(storage):
    trade = buy(storage, "X", 1, 1)
    with pytest.raises(OverfillError):
        storage.record_trade(trade.order_id, "X", "buy", 1, 1)


def test_record_trades_is_all_or_nothing(storage, db):
    order = storage.create_order("B", "buy", "market", 10)
    before = dump_tables(db)
    fills = [
        Fill(order.id, "B", "buy", 4, 10),
        Fill(order.id, "B", "buy", 4, 11),
        Fill(order.id, "B", "buy", 4, 12),
    ]  # the third overfills
    with pytest.raises(OverfillError):
        storage.record_trades(fills)
    assert dump_tables(db) == before
    trades = storage.record_trades(
        fills[:2] + [dict(order_id=order.id, symbol="B", side="buy", quantity=2, price=13)]
    )
    assert len(trades) == 3
    order = storage.orders.get(order.id)
    assert order.status == "filled" and order.avg_fill_price == 11  # (40 + 44 + 26) / 10


def test_the_bulk_path_keeps_the_same_books_as_fill_by_fill(db_url, tmp_path):
    from stocksbot_store import StorageService, connect, init_db

    def play(storage, bulk):
        strategy = storage.create_strategy("s")
        fills = []
        prices = [100, 104, 97, 110, 95, 101, 120, 99]
        for i, price in enumerate(prices):
            side = "buy" if i % 3 != 2 else "sell"
            order = storage.create_order("Z", side, "market", 7, strategy=strategy.id)
            for qty in (3, 4):
                fills.append(Fill(order.id, "Z", side, qty, price + qty, external_id=f"{i}-{qty}"))
        if bulk:
            storage.record_trades(fills)
        else:
            for f in fills:
                storage.record_trade(
                    f.order_id, f.symbol, f.side, f.quantity, f.price, external_id=f.external_id
                )
        positions = [
            (p.symbol, p.side, p.quantity, p.avg_entry_price, p.realized_pnl, p.is_open)
            for p in storage.positions.get_all(None)
        ]
        return positions, storage.get_strategy_stats()[0].__dict__ | {"last_trade_at": None}

    one = connect(db_url)
    init_db(one)
    by_fill = play(StorageService(one), bulk=False)
    one.close()
    other = connect(f"sqlite:///{tmp_path / 'bulk.db'}")
    init_db(other)
    assert play(StorageService(other), bulk=True) == by_fill
    other.close()


def test_a_fill_is_one_transaction(storage, db, monkeypatch):
    """A failure after the trade insert (here: in the strategy update) undoes it all."""
    storage.create_strategy("s")
    order = storage.create_order("T", "buy", "market", 5, strategy="s")
    before = dump_tables(db)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(storage._fills, "_update_strategy", broken)
    with pytest.raises(RuntimeError):
        storage.record_trade(order.id, "T", "buy", 5, 10)
    assert dump_tables(db) == before


# -- the fill path's shape: its statements come from the models, its modules share no
# private names ---------------------------------------------------------------------

_PACKAGE = Path(__file__).resolve().parent.parent / "stocksbot_store"
_SQL_WORDS = re.compile(r"\b(SELECT|INSERT\s+INTO|UPDATE|DELETE\s+FROM)\b\s+\S")


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_the_fill_path_and_the_check_have_no_sql_text_of_their_own():
    """Their statements are built from the models (peewee's compiler), never typed out
    beside them, and never rewritten from one parameter style to another."""
    files = sorted((_PACKAGE / "fills").glob("*.py")) + [_PACKAGE / "check.py"]
    found = [
        f"{path.name}:{line}: {text[:60]!r}"
        for path in files
        for line, text in _string_constants(path)
        if _SQL_WORDS.search(text) or text == "?"
    ]
    assert files[0].parent.is_dir() and len(files) > 4
    assert found == []


def test_no_private_name_crosses_a_module_of_the_store():
    """Modules share what they export; a private name imported from another module (the
    fill path's two modules shared six) is a name nobody knows they must keep."""
    crossing = []
    for path in sorted(_PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (
                node.level or (node.module or "").startswith("stocksbot_store")
            ):
                crossing += [
                    f"{path.relative_to(_PACKAGE)}: {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert crossing == []


# -- what a connection knows is never stale ------------------------------------------


def _books_agree(db) -> None:
    from stocksbot_store.check import check_ledger

    report = check_ledger(db)
    assert report.ok, report.format()


def test_a_fill_sees_what_another_connection_committed(file_db_url):
    """Two services on two connections take turns filling one symbol: each fill starts
    from the other's last one (the position adds up), never from what it knew."""
    first, second = connect(file_db_url), connect(file_db_url)
    try:
        one, two = StorageService(init_db(first)), StorageService(second)
        strategy = one.create_strategy("both")
        for k in range(3):
            for storage in (one, two):
                order = storage.create_order("SHARED", "buy", "market", 2, strategy=strategy.id)
                storage.record_trade(order.id, "SHARED", "buy", 2, 10 + k)
        position = one.get_position_by_symbol("SHARED")
        assert position.quantity == 12
        assert one.strategies.get(strategy.id).total_trades == 6
        _books_agree(first)
    finally:
        first.close()
        second.close()


def test_a_fill_sees_a_change_made_on_its_own_connection(storage, db):
    """A write on the fill's own connection that the fill path did not make (here a
    hand-run update, as a repair would) is seen by the next fill."""
    order = storage.create_order("OWN", "buy", "market", 10)
    storage.record_trade(order.id, "OWN", "buy", 4, 10)
    db.execute_sql(
        "UPDATE position SET quantity = '6.0000000000', "
        "cost_basis = '60.0000000000' WHERE symbol = 'OWN'"
    )
    storage.record_trade(order.id, "OWN", "buy", 4, 10)
    assert storage.get_position_by_symbol("OWN").quantity == 10  # 6 + 4, not 4 + 4


def test_a_fill_rolled_back_with_its_callers_transaction_is_forgotten(storage, db):
    order = storage.create_order("GONE", "buy", "market", 10)
    storage.record_trade(order.id, "GONE", "buy", 2, 10)
    with pytest.raises(RuntimeError):
        with db.atomic():
            storage.record_trade(order.id, "GONE", "buy", 3, 10)
            raise RuntimeError("the caller changes its mind")
    storage.record_trade(order.id, "GONE", "buy", 5, 10)
    assert storage.get_position_by_symbol("GONE").quantity == 7
    assert storage.orders.get(order.id).filled_quantity == 7
    _books_agree(db)


def test_a_fill_that_failed_leaves_nothing_known(storage, db, monkeypatch):
    storage.create_strategy("s")
    order = storage.create_order("FAIL", "buy", "market", 10, strategy="s")
    storage.record_trade(order.id, "FAIL", "buy", 2, 10)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as patch:
        patch.setattr(storage._fills, "_update_strategy", broken)
        with pytest.raises(RuntimeError):
            storage.record_trade(order.id, "FAIL", "buy", 3, 10)
    storage.record_trade(order.id, "FAIL", "buy", 3, 11)
    assert storage.get_position_by_symbol("FAIL").quantity == 5
    _books_agree(db)


def test_an_order_deleted_after_the_book_knew_it_takes_no_fill(file_db_url, file_backend):
    """A SQLite connection's book knows a new order once a fill made it fresh; a soft
    delete of that order, on the same connection (total_changes moves) or on another
    (data_version moves), is seen by the next fill, single or bulk."""
    first, second = connect(file_db_url), connect(file_db_url)
    try:
        one, two = StorageService(init_db(first)), StorageService(second)
        for deleter in (one, two):
            warm = one.create_order("KNOWN", "buy", "market", 1)
            one.record_trade(warm.id, "KNOWN", "buy", 1, 10)
            order = one.create_order("KNOWN", "buy", "market", 2)
            if file_backend != "postgres":
                assert order.id in one._fills._book().orders  # what makes the test bite
            deleter.delete_order(order.id)
            before = dump_tables(first)
            with pytest.raises(DeletedError, match=rf"order {order.id} is deleted.*restore_order"):
                one.record_trade(order.id, "KNOWN", "buy", 1, 10)
            with pytest.raises(DeletedError, match=f"order {order.id} is deleted"):
                one.record_trades([Fill(order.id, "KNOWN", "buy", 1, 10)])
            assert dump_tables(first) == before
        _books_agree(first)
    finally:
        first.close()
        second.close()


@pytest.mark.sqlite_only  # the book of what a connection knows is SQLite's
def test_a_bot_filling_order_after_order_reads_nothing_it_knows(storage, db):
    """The common case: a new order (its row and its audit row) between two fills of
    one connection leaves what the first fill wrote fresh, so the second fill reads
    no order, position or strategy; it still sees them right."""
    storage.create_strategy("s")
    first = storage.create_order("BOT", "buy", "market", 5, strategy="s")
    storage.record_trade(first.id, "BOT", "buy", 5, 10)
    second = storage.create_order("BOT", "buy", "market", 5, strategy="s")
    reads = []

    def hook(event):
        if event.sql.lstrip().upper().startswith("SELECT"):
            reads.append(event.sql)

    db.query_hooks.append(hook)
    try:
        storage.record_trade(second.id, "BOT", "buy", 5, 12)
    finally:
        db.query_hooks.remove(hook)
    assert reads == []
    assert storage.get_position_by_symbol("BOT").quantity == 10
    assert storage.orders.get(second.id).filled_quantity == 5
    assert storage.strategies.get_by_name("s").total_trades == 2
    _books_agree(db)


def test_a_batch_pauses_the_garbage_collector_only_while_it_runs(storage, monkeypatch):
    """record_trades turns the cyclic collector off for the batch, and back on after
    it, even when the batch fails; nested and concurrent batches share one pause, and
    a collector the application turned off stays off."""
    import gc
    import threading

    from stocksbot_store.fills import collector

    order = storage.create_order("GC", "buy", "market", 10)
    seen = []
    record_checked = storage._fills.record_checked

    def spy(checked):
        seen.append(gc.isenabled())
        return record_checked(checked)

    monkeypatch.setattr(storage._fills, "record_checked", spy)
    assert gc.isenabled()
    storage.record_trades(
        [{"order_id": order.id, "symbol": "GC", "side": "buy", "quantity": 1, "price": 5}]
    )
    with pytest.raises(ValidationError):
        storage.record_trades(
            [{"order_id": order.id, "symbol": "GC", "side": "buy", "quantity": 1, "price": -5}]
        )
    with pytest.raises(OverfillError):
        storage.record_trades(
            [{"order_id": order.id, "symbol": "GC", "side": "buy", "quantity": 99, "price": 5}]
        )
    assert seen == [False, False] and gc.isenabled()

    inside, leave = threading.Event(), threading.Event()

    def other_batch():
        with collector.collector_paused():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=other_batch)
    thread.start()
    inside.wait(5)
    with collector.collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other batch still runs
    leave.set()
    thread.join()
    assert gc.isenabled()

    gc.disable()
    try:
        with collector.collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.postgres_only
def test_a_batch_puts_back_the_planner_setting_it_changes_for_its_reads(storage, db):
    """The bulk path reads by key with sequential scans off; the setting the connection
    had before (off or on) is what it has after the batch."""
    order = storage.create_order("SEQ", "buy", "market", 10)

    def batch(n):
        return [
            {
                "order_id": order.id,
                "symbol": "SEQ",
                "side": "buy",
                "quantity": 1,
                "price": 5,
                "external_id": f"seq-{n}",
            }
        ]

    def setting():
        return db.execute_sql("SELECT current_setting('enable_seqscan')").fetchone()[0]

    assert setting() == "on"
    storage.record_trades(batch(1))
    assert setting() == "on"
    db.execute_sql("SET enable_seqscan = off")
    try:
        storage.record_trades(batch(2))
        assert setting() == "off"
    finally:
        db.execute_sql("RESET enable_seqscan")
    with db.atomic():
        storage.record_trades(batch(3))
        assert setting() == "on"


def test_a_fill_is_echoed_and_counted_statement_by_statement(storage, db, caplog):
    """However its statements travel (two messages on PostgreSQL), SQL_ECHO (the
    ``peewee`` logger) and the database's query hooks (the statement monitor) see each
    statement of a fill as written, not what carries it to the server."""
    import logging

    order = storage.create_order("ECHO", "buy", "market", 2)
    storage.record_trade(order.id, "ECHO", "buy", 1, 100)  # prepared, where they are
    seen = []
    db.query_hooks.append(lambda event: seen.append(event.sql.split(" (")[0]))
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        storage.record_trade(order.id, "ECHO", "buy", 1, 101, external_id="echo-1")
    echoed = [r.getMessage() for r in caplog.records if r.name == "peewee"]
    for table in ('"trade"', '"audit_log"'):
        assert f"INSERT INTO {table}" in seen
        assert any(f"INSERT INTO {table}" in line for line in echoed), table
    assert any(s.startswith('UPDATE "order"') for s in seen)
    assert not any("EXECUTE" in s or "PREPARE" in s for s in seen + echoed)


def _counting_waits(monkeypatch) -> list:
    """Each time the client waits for the server through psycopg: one a round trip."""
    import psycopg

    waits: list = []
    wait = psycopg.Connection.wait

    def counted(self, gen, *args, **kwargs):
        waits.append(gen)
        return wait(self, gen, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "wait", counted)
    return waits


def _store_prepared(db) -> list[str]:
    sql = "SELECT name FROM pg_prepared_statements WHERE name LIKE 'stocksbot%%' ORDER BY 1"
    return [name for (name,) in db.connection().execute(sql).fetchall()]


@pytest.mark.postgres_only
def test_a_fill_on_postgresql_takes_two_round_trips(storage, db, monkeypatch):
    """The locks and reads in one message, the writes and the COMMIT in the next (issue
    #15), for every kind of fill; a re-sent or refused fill reads in one and rolls back,
    keeping the connection's prepared statements, and uses up no id; the ids the audit
    rows name are the ids the rows took. The statements are prepared on the server once
    a connection, not once a fill."""
    storage.create_strategy("s")
    order = storage.create_order("RT", "buy", "market", 10, strategy="s")
    flip = storage.create_order("RT", "sell", "market", 12, strategy="s")
    waits = _counting_waits(monkeypatch)
    fills = [
        (order.id, "buy", 4, "rt-1"),  # opens a position, with a broker id
        (order.id, "buy", 3, None),  # adds, without one
        (flip.id, "sell", 12, "rt-2"),  # closes it and opens a short one
    ]
    trades = []
    for order_id, side, quantity, external_id in fills:
        waits.clear()
        trades.append(
            storage.record_trade(order_id, "RT", side, quantity, 100, external_id=external_id)
        )
        assert len(waits) == 2, (side, quantity, external_id, len(waits))

    monkeypatch.undo()
    kept = _store_prepared(db)
    assert kept  # prepared on the server, by the store
    waits = _counting_waits(monkeypatch)
    assert storage.record_trade(order.id, "RT", "buy", 4, 100, external_id="rt-1") == trades[0]
    with pytest.raises(ConflictError):
        storage.record_trade(order.id, "RT", "buy", 1, 100, external_id="rt-1")
    with pytest.raises(OverfillError):
        storage.record_trade(order.id, "RT", "buy", 4, 100)
    assert len(waits) == 3  # the ROLLBACK goes through the libpq wrapper
    monkeypatch.undo()
    assert _store_prepared(db) == kept
    assert storage.record_trade(order.id, "RT", "buy", 3, 100).id == trades[-1].id + 1
    short = storage.get_position_by_symbol("RT")
    audit = storage.get_audit_log(table="trades")
    assert sorted(e.row_id for e in audit) == [t.id for t in trades] + [trades[-1].id + 1]
    opened = [e.row_id for e in storage.get_audit_log(table="positions") if e.action == "create"]
    assert len(opened) == 2 and max(opened) == short.id and short.side == "short"


@pytest.mark.postgres_only
@pytest.mark.parametrize("when", ["before the fill", "between its round trips", "stale"])
def test_a_fill_whose_prepared_statements_were_dropped_is_stored_once(
    storage, db, monkeypatch, when
):
    """psycopg drops every prepared statement of a connection (``DEALLOCATE ALL``) when
    it sees a ``ROLLBACK`` go through a cursor while it has prepared some itself, and a
    table changed since a statement was prepared may no longer fit its plan. A fill that
    finds the store's gone or stale prepares them again (before its writes) or, if they
    went between its round trips, is written by the plain path: stored once, whole."""
    from stocksbot_store import at_once
    from stocksbot_store.fills import recorder

    storage.create_strategy("s")
    order = storage.create_order("DA", "buy", "market", 10, strategy="s")
    first = storage.record_trade(order.id, "DA", "buy", 1, 100, external_id="da-1")
    assert _store_prepared(db)
    if when == "before the fill":
        db.connection().execute("DEALLOCATE ALL")
    elif when == "stale":
        # The symbol's lock, as prepared, reads a (temporary) table whose column then
        # changes type: its next run fails, "cached plan must not change result type".
        name = at_once._prepared(storage._fills.sql["lock_symbol"], (str,))[0]
        db.connection().pgconn.exec_(
            f"CREATE TEMP TABLE stale (c int); DEALLOCATE {name}; "
            f"PREPARE {name} (unknown) AS SELECT c FROM stale WHERE $1::text <> ''; "
            f"EXECUTE {name}('x'); ALTER TABLE stale ALTER COLUMN c TYPE bigint".encode()
        )
    else:
        look = recorder.raise_if_lost

        def dropping(conn, *args):
            conn.pgconn.exec_(b"DEALLOCATE ALL")
            return look(conn, *args)

        monkeypatch.setattr(recorder, "raise_if_lost", dropping)
    trade = storage.record_trade(order.id, "DA", "buy", 2, 101, external_id="da-2")
    monkeypatch.undo()
    assert storage.trades.get_by_external_id("da-2").id == trade.id
    assert storage.get_position_by_symbol("DA").quantity == 3
    assert storage.get_order(order.id).filled_quantity == 3
    assert storage.get_strategy_by_name("s").total_trades == 2
    audit = storage.get_audit_log(table="trades")
    assert sorted(e.row_id for e in audit) == [first.id, trade.id]
    assert check_ledger(db).ok
    storage.record_trade(order.id, "DA", "buy", 1, 100, external_id="da-3")
    assert _store_prepared(db)  # prepared again


@pytest.mark.postgres_only
def test_a_fill_sent_at_once_stores_what_the_plain_path_stores(storage, db, monkeypatch):
    """The same fills, on two symbols and strategies, once by the two messages of a fill
    of its own and once by the plain path (a statement at a time, values bound by the
    server): every row they write is the same, value for value and type for type, but
    for ids, names and the times they were written at."""
    fills = [  # opens, adds, shrinks, flips, closes; commission and fees
        ("buy", "2.5", "100.1234567891", "0.01", "0", "2026-03-02T10:00:00.123456+05:30"),
        ("buy", "1", "99", "0", "0.5", "2026-03-02T10:01:00+00:00"),
        ("sell", "2", "101.5", "0.02", "0.01", "2026-03-02T10:02:00+00:00"),
        ("sell", "4", "98.25", "0", "0", "2026-03-02T10:03:00+00:00"),
        ("buy", "2.5", "97", "0", "0", "2026-03-02T10:04:00+00:00"),
    ]

    def run(symbol: str) -> None:
        strategy = storage.create_strategy(f"eq-{symbol}")
        for n, (side, qty, price, commission, fees, at) in enumerate(fills):
            order = storage.create_order(symbol, side, "market", qty, strategy=strategy)
            storage.record_trade(
                order.id, symbol, side, qty, price, commission, fees, f"{symbol}-{n}", at
            )
        # a re-sent fill changes nothing
        side, qty, price, commission, fees, at = fills[0]
        first = storage.trades.get_by_external_id(f"{symbol}-0")
        again = storage.record_trade(
            first.order_id, symbol, side, qty, price, commission, fees, f"{symbol}-0", at
        )
        assert again == first

    run("AT")
    monkeypatch.setattr(storage._fills, "at_once", False)
    run("PL")

    ignored = {"id", "created_at", "updated_at", "filled_at", "name", "at"}

    def rows(sql: str, symbol: str) -> list[tuple]:
        cursor = db.execute_sql(sql, (symbol,))
        names = [c[0] for c in cursor.description]
        return [
            tuple(
                (n, type(v).__name__, "S" if v == symbol else v)
                for n, v in zip(names, row, strict=True)
                if n not in ignored and not n.endswith("_id") and n != "strategy_key"
            )
            for row in cursor.fetchall()
        ]

    tables = {
        "trades": 'SELECT * FROM "trade" WHERE symbol = %s ORDER BY id',
        "orders": 'SELECT * FROM "order" WHERE symbol = %s ORDER BY id',
        "positions": 'SELECT * FROM "position" WHERE symbol = %s ORDER BY id',
        "strategy": 'SELECT * FROM "strategy" WHERE name = %s',
        "buckets": "SELECT * FROM pnl_bucket WHERE symbol = %s ORDER BY span, bucket_start",
        "days": "SELECT * FROM position_day WHERE symbol = %s ORDER BY day",
    }
    for table, sql in tables.items():
        if table == "strategy":
            at_once, plain = rows(sql, "eq-AT"), rows(sql, "eq-PL")
        else:
            at_once, plain = rows(sql, "AT"), rows(sql, "PL")
        assert at_once and at_once == plain, table

    # The audit rows: the same from each run, in the same order, but for ids and times.
    ids = re.compile(r'"\w*_id":\[[^\]]*\]')
    times = re.compile(r"\d{4}-\d\d-\d\d[T ][\d:.]+\+00:00")
    audit = [
        (table, action, times.sub("T", ids.sub("", changes)).replace("PL", "AT"))
        for table, action, changes in db.execute_sql(
            'SELECT table_name, action, changes FROM "audit_log" ORDER BY id'
        ).fetchall()
    ]
    half = len(audit) // 2
    assert half > len(fills) and audit[:half] == audit[half:]


@pytest.mark.postgres_only
def test_no_statement_of_a_fill_is_parsed_again_on_every_fill(storage, monkeypatch):
    """A fill's statements are prepared on the server the first time a connection needs
    them and then only executed: parsing and planning its dozen statements on every fill
    cost the server about 0.3 ms a round trip."""
    import psycopg

    sent = []
    execute = psycopg.Cursor.execute

    def seen(self, query, params=None, **kwargs):
        sent.append(query if isinstance(query, bytes) else str(query).encode())
        return execute(self, query, params, **kwargs)

    storage.create_strategy("s")
    order = storage.create_order("P", "buy", "market", 10, strategy="s")
    storage.record_trade(order.id, "P", "buy", 4, 100, external_id="p-1")
    storage.record_trade(order.id, "P", "buy", 3, 100)
    monkeypatch.setattr(psycopg.Cursor, "execute", seen)
    storage.record_trade(order.id, "P", "buy", 2, 101, external_id="p-2")
    storage.record_trade(order.id, "P", "buy", 1, 102)
    assert len(sent) == 4 and all(b"EXECUTE stocksbot_" in q for q in sent)
    assert not any(b"PREPARE" in q for q in sent)


def test_the_trades_a_batch_returns_are_the_trades_read_back(storage):
    """New and re-sent fills alike: each returned Trade holds, field for field and with
    the same types, what reading it back gives, compares equal to it, and has nothing
    dirty."""
    from stocksbot_store.models import Trade

    storage.create_strategy("eq")
    buy = storage.create_order("EQ", "buy", "limit", 10, 100, strategy="eq")
    sell = storage.create_order("EQ", "sell", "limit", 10, 100, strategy="eq")
    fills = [
        {
            "order_id": buy.id,
            "symbol": "EQ",
            "side": "buy",
            "quantity": "2.50",
            "price": "100.1",
            "commission": "0.01",
            "external_id": "eq-1",
            "executed_at": "2026-03-02T10:00:00.123456+05:30",
        },
        {
            "order_id": sell.id,
            "symbol": "EQ",
            "side": "sell",
            "quantity": 1,
            "price": 101,
            "fees": "0.5",
        },
    ]
    first = storage.record_trades(fills)
    again = storage.record_trades(
        [fills[0], {**fills[1], "external_id": "eq-2"}]
    )  # eq-1 re-sent: the stored trade
    stored = {t.id: t for o in (buy, sell) for t in storage.get_order_fills(o.id)}
    names = [f.name for f in Trade._meta.sorted_fields]
    for trade in [*first, *again]:
        read = stored[trade.id]
        for name in names:
            mine, theirs = trade.__data__[name], read.__data__[name]
            assert (mine, type(mine)) == (theirs, type(theirs)), name
            assert str(mine) == str(theirs), name
        assert trade == read and trade.to_dict() == read.to_dict() and not trade.dirty_fields
    assert again[0].id == first[0].id and again[0] is not first[0]


@pytest.mark.parametrize("single", [True, False], ids=["record_trade", "record_trades"])
def test_a_position_figure_changed_outside_the_store_is_named_and_nothing_written(
    storage, db, single
):
    """A stored quantity that is not a number ('NaN' fits a PostgreSQL NUMERIC too): the
    fill stops with CorruptRowError pointing at stocksbot-check, instead of the decimal
    module's bare InvalidOperation, and writes nothing."""
    from stocksbot_store import CorruptRowError

    buy(storage, "AAPL", 10, 100)
    db.execute_sql('UPDATE "position" SET "quantity" = \'NaN\' WHERE "is_open"')
    order = storage.create_order("AAPL", "buy", "market", 5)
    before = dump_tables(db)
    fill = {"order_id": order.id, "symbol": "AAPL", "side": "buy", "quantity": 5, "price": 101}
    with pytest.raises(CorruptRowError, match="stocksbot-check"):
        if single:
            storage.record_trade(**fill)
        else:
            storage.record_trades([fill])
    assert repr(dump_tables(db)) == repr(before)  # repr: a NaN never equals itself


@contextmanager
def statements_seen(db, event: str, tables: tuple[str, ...]) -> Iterator[dict[str, int]]:
    """PostgreSQL: count the ``event`` (INSERT, UPDATE...) statements run on ``tables``
    in the block, by table (a statement trigger on each, dropped after it)."""
    seen: dict[str, int] = {}
    db.execute_sql("CREATE TEMP TABLE statements_seen (name text)")
    db.execute_sql(
        "CREATE FUNCTION test_note_statement() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO statements_seen VALUES (TG_TABLE_NAME); RETURN NULL; END $$"
    )
    try:
        for table in tables:
            db.execute_sql(
                f'CREATE TRIGGER test_note_statement AFTER {event} ON "{table}" '
                "FOR EACH STATEMENT EXECUTE FUNCTION test_note_statement()"
            )
        yield seen
        rows = db.execute_sql("SELECT name, count(*) FROM statements_seen GROUP BY name")
        seen.update(rows.fetchall())
    finally:
        for table in tables:
            db.execute_sql(f'DROP TRIGGER IF EXISTS test_note_statement ON "{table}"')
        db.execute_sql("DROP FUNCTION IF EXISTS test_note_statement()")
        db.execute_sql("DROP TABLE IF EXISTS statements_seen")


@pytest.mark.postgres_only
def test_a_batch_adds_to_many_report_buckets_with_one_statement(storage, db):
    """On PostgreSQL a batch adds its fills to the report buckets with one statement,
    however many buckets (new ones and ones earlier fills made), and the buckets hold
    what the trades add up to (the ledger check recomputes them from the trades)."""
    strategies = [storage.create_strategy(name).id for name in ("one", "two")]
    start = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
    buy(storage, "B0", 50, 100, executed_at=start)  # a bucket the batch adds to
    fills = []
    for i in range(60):  # 20 quarter hours, 3 symbols, 2 strategies and none: ~200 rows
        symbol = f"B{i % 3}"
        strategy = strategies[i % 2] if i % 5 else None
        order = storage.create_order(symbol, "buy", "market", 2, strategy=strategy)
        at = start + dt.timedelta(minutes=5 * i)
        fills.append(Fill(order.id, symbol, "buy", 2, D("100.25") + i, D("0.5"), 0, None, at))
    with statements_seen(db, "INSERT", ("pnl_bucket",)) as seen:
        storage.record_trades(fills)
    buckets = db.execute_sql("SELECT count(*), sum(trades) FROM pnl_bucket").fetchone()
    assert seen == {"pnl_bucket": 1}
    assert buckets[0] > 100 and buckets[1] == 3 * 61  # three buckets per trade
    assert check_ledger(db).violations == []


@pytest.mark.postgres_only
def test_a_batch_reads_each_kind_of_row_with_one_statement(storage, monkeypatch):
    """On PostgreSQL a batch reads its stored trades, orders, positions and strategies
    with one statement each (an array of keys), however many: a re-sent batch of 1,200
    fills of 600 orders reads its broker ids once, not in lists of 500."""
    from stocksbot_store.fills.statements import Statements

    strategy = storage.create_strategy("reads").id
    orders = [
        storage.create_order(f"R{i % 4}", "buy", "market", 2, strategy=strategy) for i in range(600)
    ]
    fills = [
        Fill(o.id, o.symbol, "buy", 1, 10, external_id=f"r{o.id}-{k}")
        for o in orders
        for k in (0, 1)
    ]
    first = storage.record_trades(fills)
    reads: list[str] = []
    in_list = Statements.in_list
    monkeypatch.setattr(
        Statements,
        "in_list",
        lambda self, name, count: reads.append(name) or in_list(self, name, count),
    )
    assert storage.record_trades(fills) == first  # all re-sent: the stored trades
    assert sorted(reads) == ["orders", "positions", "stored_trades", "strategies", "trades"]


@pytest.mark.postgres_only
def test_a_batch_updates_many_rows_of_a_table_with_one_statement_and_exact_figures(storage, db):
    """On PostgreSQL a batch writes its orders, stored positions and strategies with one
    UPDATE each, however many rows (not one statement per row), and each row ends with
    its own exact figures: ten decimal places kept, NULLs (an order's average price and
    fill time, a position's close time) kept where nothing filled or closed them."""
    price = D("100.1234567891")
    strategies = [storage.create_strategy(name).id for name in ("one", "two")]
    for symbol, quantity in (("U0", 24), ("U1", 30), ("U2", 30)):  # the batch closes U0
        buy(storage, symbol, quantity, price)
    fills, expected = [], {}
    for i in range(24):
        symbol = f"U{i % 3}"
        side = "sell" if symbol == "U0" else "buy"
        order = storage.create_order(symbol, side, "market", 5, strategy=strategies[i % 2])
        if i % 4 == 3:  # never filled
            expected[order.id] = ("pending", D(0), None, False)
        elif i % 2:  # partly filled
            fills.append(Fill(order.id, symbol, side, 2, price + i))
            expected[order.id] = ("partially_filled", D(2), price + i, False)
        else:  # filled in two parts
            fills += [Fill(order.id, symbol, side, q, p) for q, p in ((2, price), (3, i + 7))]
            average = ((2 * price + 3 * (i + 7)) / 5).quantize(D("1e-10"))  # half-even
            expected[order.id] = ("filled", D(5), average, True)
    with statements_seen(db, "UPDATE", ("order", "position", "strategy")) as seen:
        storage.record_trades(fills)
    assert seen == {"order": 1, "position": 1, "strategy": 1}
    for order_id, (status, filled, avg, filled_at) in expected.items():
        order = storage.orders.get(order_id)
        assert (order.status, order.filled_quantity, order.avg_fill_price) == (status, filled, avg)
        assert (order.filled_at is not None) == filled_at
    positions = {p.symbol: p for p in storage.positions.get_all(None)}
    assert positions["U0"].is_open is False and positions["U0"].closed_at is not None
    assert positions["U0"].realized_pnl == sum(
        (f.quantity * (D(f.price) - price) for f in fills if f.symbol == "U0"), D(0)
    ).quantize(D("1e-10"))
    for symbol in ("U1", "U2"):
        added = sum(f.quantity for f in fills if f.symbol == symbol)
        assert positions[symbol].is_open and positions[symbol].closed_at is None
        assert positions[symbol].quantity == 30 + added
    assert check_ledger(db).violations == []
