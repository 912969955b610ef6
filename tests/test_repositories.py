"""The repositories keep the old module's methods, names and meaning."""

from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal as D

import pytest

from stocksbot_store import DuplicateError, NotFoundError, ValidationError
from stocksbot_store.audit import created, row_values
from stocksbot_store.models import (
    Order,
    OrderSideEnum,
    OrderStatusEnum,
    OrderTypeEnum,
    PositionSideEnum,
    Strategy,
    TradeTypeEnum,
)
from stocksbot_store.repositories import (
    ConfigRepository,
    OrderRepository,
    PositionRepository,
    StrategyRepository,
    TradeRepository,
    check_new_order,
)


def test_positions(db):
    repo = PositionRepository(db)
    a = repo.create(
        symbol="AAPL",
        side=PositionSideEnum.LONG,
        quantity=100.0,
        avg_entry_price=150.0,
        cost_basis=15000.0,
    )
    b = repo.create(symbol="MSFT", side="short", quantity=5, avg_entry_price=300)
    assert b.cost_basis == 1500 and b.is_open and b.opened_at is not None
    assert repo.get_by_id(a.id).symbol == "AAPL" and repo.get_by_id(999) is None
    assert [p.symbol for p in repo.get_all_open()] == ["AAPL", "MSFT"]
    assert [p.id for p in repo.get_all(limit=1)] == [b.id]
    assert [p.id for p in repo.get_all(limit=1, offset=1)] == [a.id]
    repo.update(a, quantity=50)
    assert repo.get_by_id(a.id).quantity == 50 and a.quantity == 50
    repo.close_position(a, realized_pnl=D("500.25"))
    assert repo.get_by_symbol("AAPL", is_open=True) is None
    assert repo.get_by_symbol("AAPL", is_open=False).realized_pnl == D("500.25")
    with pytest.raises(DuplicateError):  # one open position per symbol
        repo.create(symbol="MSFT", side="long", quantity=1, avg_entry_price=1)
    with pytest.raises(ValidationError, match="close_position"):  # open: a fill moves it
        repo.delete(b)
    assert repo.delete(999) is False
    assert repo.delete(a) is True and a.deleted_at is not None  # closed: soft-deleted


def test_orders(db):
    repo = OrderRepository(db)
    made = [
        repo.create(
            symbol=s, side=OrderSideEnum.BUY, type="limit", quantity=1, price=2, external_id=f"E{i}"
        )
        for i, s in enumerate("ABAB")
    ]
    assert repo.get_by_external_id("E2").id == made[2].id
    assert [o.id for o in repo.get_by_symbol("A")] == [made[2].id, made[0].id]
    assert [o.id for o in repo.get_recent(limit=2)] == [made[3].id, made[2].id]
    repo.update_status(made[0], OrderStatusEnum.CANCELLED)
    assert [o.id for o in repo.get_by_status("cancelled")] == [made[0].id]
    assert repo.update(made[1], price=3).price == 3
    page = repo.page(symbol="B", limit=1)
    assert [o.id for o in page] == [made[3].id]
    assert [o.id for o in repo.page(symbol="B", before_id=page[-1].id)] == [made[1].id]
    assert repo.page(status="pending", side="sell") == []
    with pytest.raises(DuplicateError):
        repo.create(symbol="A", side="buy", type="market", quantity=1, external_id="E0")
    with pytest.raises(ValidationError) as info:
        repo.create(symbol="A", side="buy", type="market", quantity=1, colour="red")
    assert info.value.field == "colour"


def test_trades(storage, db):
    repo = TradeRepository(db)
    order = storage.create_order("A", "buy", "market", 3)
    t1 = storage.record_trade(order.id, "A", "buy", 1, 10, external_id="x")
    t2 = storage.record_trade(order.id, "A", "buy", 2, 11)
    assert [t.id for t in repo.get_by_order_id(order.id)] == [t1.id, t2.id]
    assert [t.id for t in repo.get_recent(limit=1)] == [t2.id]
    assert [t.id for t in repo.get_by_symbol("A")] == [t2.id, t1.id]
    assert repo.get_by_external_id("x").type == TradeTypeEnum.OPEN
    assert repo.get_by_id(t1.id).order_id == order.id


def test_strategies(db):
    repo = StrategyRepository(db)
    s = repo.create("alpha", "momentum", {"n": 1}, "desc", is_active=True)
    assert repo.get_by_name("alpha").description == "desc"
    assert [x.name for x in repo.get_active()] == ["alpha"]
    repo.update(s, is_active="off")
    assert repo.get_active() == []
    assert [x.name for x in repo.get_all()] == ["alpha"]
    assert repo.delete(s)
    with pytest.raises(NotFoundError):
        repo.get(s.id)


def test_config(db):
    repo = ConfigRepository(db)
    repo.create("a", "1", "int")
    assert repo.upsert("a", "2", "int").value == "2"
    assert repo.upsert("b", "x").value_type == "string"
    assert [c.key for c in repo.get_all()] == ["a", "b"]
    assert repo.get_by_key("a").value == "2"
    with pytest.raises(DuplicateError):
        repo.create("a", "3")
    assert repo.delete(repo.get_by_key("b"))


def test_created_rows_hold_what_the_database_stores(storage):
    """create() does not read the row back; what it returns must equal what is stored."""
    made = [
        storage.create_strategy("alpha", "momentum", {"n": [1, 2]}, "d"),
        storage.create_order("X", "buy", "limit", 0.1, 150.1, strategy="alpha", external_id="E1"),
        storage.positions.create(symbol="Y", side="short", quantity=3.5, avg_entry_price=2.25),
        storage.config.create("k", "1", "int", "a setting"),
    ]
    for row in made:
        stored = type(row).select().where(type(row).id == row.id).bind(storage.db).get()
        assert row.__data__ == stored.__data__, type(row).__name__


@pytest.mark.parametrize(
    "args, kw",
    [
        (("X", "buy", "limit", 0.1, 150.1), {"strategy": "alpha", "external_id": "E1"}),
        (("Y", "sell", "market", "1e-10"), {}),
        (("BRK.B", "SELL", " Stop ", D("123456789.0123456789"), "99999.5"), {"strategy": 1}),
        (("Z", "buy", "market", 7), {"external_id": 'q"uote\\ \u00fcml\u00e4ut \u2603'}),
    ],
)
def test_a_new_order_and_its_audit_row_are_what_the_database_stores(storage, args, kw):
    """create_order builds the order it returns and its audit row's changes from the
    checked values, without reading the row back: each must be what the database holds,
    field for field, type for type, and the audit row's changes what the generic path
    (``created(row_values(row))``) writes for the row as stored."""
    storage.create_strategy("alpha")
    order = storage.create_order(*args, **kw)
    stored = Order.select().where(Order.id == order.id).bind(storage.db).get()
    for name in Order._meta.sorted_field_names:
        mine, theirs = order.__data__[name], stored.__data__[name]
        assert (mine, type(mine), str(mine)) == (theirs, type(theirs), str(theirs)), name
    assert order.to_dict() == stored.to_dict() and not order.dirty_fields
    select = (
        'SELECT actor, action, changes FROM "audit_log" WHERE table_name = '
        f"{storage.db.param} AND row_id = {storage.db.param}"
    )
    expected = json.dumps(created(row_values(stored)), separators=(",", ":"), default=str)
    rows = storage.db.execute_sql(select, ("orders", order.id)).fetchall()
    assert rows == [(storage.orders.audit.actor, "create", expected)]


def test_a_new_order_is_echoed_and_counted_statement_by_statement(storage, db, caplog):
    """However its statements travel, SQL_ECHO (the ``peewee`` logger) shows each of a
    new order's statements and the statement monitor counts them as writes."""
    seen = []
    db.query_hooks.append(lambda event: seen.append(event.sql.split(" (")[0]))
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        storage.create_order("AAPL", "buy", "market", 1)
    echoed = [r.getMessage() for r in caplog.records if r.name == "peewee"]
    for table in ('"order"', '"audit_log"'):
        assert f"INSERT INTO {table}" in seen
        assert any(f"INSERT INTO {table}" in line for line in echoed), table


def test_insert_checked_keeps_a_given_creation_time(storage):
    """insert_checked with a name beyond check_new_order's (a ``created_at``) inserts as
    the generic path does, keeping it."""
    at = dt.datetime(2026, 1, 5, 14, 30, 0, 123456, tzinfo=dt.timezone.utc)
    values = check_new_order("AAPL", "buy", "market", 1, None, None)
    order = storage.orders.insert_checked({**values, "created_at": at})
    assert order.created_at == at == storage.get_order(order.id).created_at


def test_a_refused_new_order_leaves_no_transaction_open(storage, db):
    """An order refused by the database (its broker id taken, its strategy gone) ends its
    transaction: the connection is idle and the next order is stored."""
    storage.create_order("AAPL", "buy", "market", 1, external_id="b-1")
    for refused in (
        lambda: storage.create_order("AAPL", "buy", "market", 2, external_id="b-1"),
        lambda: storage.create_order("AAPL", "buy", "market", 2, strategy=Strategy(id=999)),
    ):
        with pytest.raises((DuplicateError, ValidationError)):
            refused()
        conn = db.connection()
        status = getattr(getattr(conn, "info", None), "transaction_status", None)
        assert not getattr(conn, "in_transaction", False) and status in (None, 0)
    order = storage.create_order("MSFT", "sell", "market", 3)
    recent = [(o.id, o.symbol, o.external_id) for o in storage.get_recent_orders()]
    assert recent[0] == (order.id, "MSFT", None) and recent[1][1:] == ("AAPL", "b-1")
    assert len(recent) == 2


@pytest.mark.parametrize(
    "side, order_type",
    [
        ("sell", "stop_limit"),
        ("SELL", " Stop_Limit "),
        (OrderSideEnum.SELL, OrderTypeEnum.STOP_LIMIT),
    ],
)
def test_a_new_orders_side_and_type_are_taken_as_text_in_any_case_or_as_members(side, order_type):
    values = check_new_order("AAPL", side, order_type, 1, 2, None)
    assert values["side"] is OrderSideEnum.SELL
    assert values["type"] is OrderTypeEnum.STOP_LIMIT


@pytest.mark.parametrize(
    "args, field",
    [
        (("AAPL", ["buy"], "market", 1), "side"),
        (("AAPL", "buy", {"market"}, 1), "order_type"),
        (("AAPL", "buy ", "markets", 1), "order_type"),
    ],
)
def test_create_order_refuses_a_side_or_type_it_cannot_name(storage, args, field):
    """A side or type that names no member (text or not, hashable or not) is a
    ValidationError naming the argument, and nothing is written."""
    with pytest.raises(ValidationError) as refused:
        storage.create_order(*args)
    assert refused.value.field == field
    assert storage.get_recent_orders() == []


def test_a_new_order_in_the_callers_transaction_is_part_of_it(storage, db):
    """Inside a caller's transaction a new order and its audit row are written in it:
    gone with its rollback, kept with its commit, and the order returned is the one
    the database holds."""

    def audited() -> list[int]:
        sql = f'SELECT row_id FROM "audit_log" WHERE table_name = {db.param} ORDER BY id'
        return [row_id for (row_id,) in db.execute_sql(sql, ("orders",)).fetchall()]

    with pytest.raises(RuntimeError), db.atomic():
        storage.create_order("GONE", "buy", "market", 1)
        raise RuntimeError("the caller gives up")
    assert storage.get_recent_orders() == [] and audited() == []
    with db.atomic():
        kept = storage.create_order("KEPT", "sell", "limit", 2, 10, external_id="k-1")
        assert db.in_transaction()
    stored = storage.get_order(kept.id)
    assert stored.__data__ == kept.__data__ and stored.symbol == "KEPT"
    assert [o.id for o in storage.get_recent_orders()] == [kept.id]
    assert audited() == [kept.id]


@pytest.mark.sqlite_only
def test_a_new_order_whose_commit_is_refused_is_rolled_back(storage, db):
    """On SQLite a new order's COMMIT is its own: one that fails (here a foreign key
    checked at COMMIT, as a deferred one is) is a StorageError, leaves no order, no
    audit row and no transaction open, and the next order is stored."""
    db.execute_sql("PRAGMA defer_foreign_keys = ON")  # until the next COMMIT or ROLLBACK
    with pytest.raises(ValidationError):
        storage.create_order("AAPL", "buy", "market", 1, strategy=Strategy(id=999))
    assert not db.connection().in_transaction
    assert storage.get_recent_orders() == []
    assert db.execute_sql('SELECT count(*) FROM "audit_log"').fetchone() == (0,)
    order = storage.create_order("MSFT", "sell", "market", 3)
    assert [o.id for o in storage.get_recent_orders()] == [order.id]


@pytest.mark.postgres_only
def test_a_new_order_on_postgresql_takes_one_round_trip(storage, db, monkeypatch):
    """BEGIN, the order's INSERT, its audit row's and COMMIT go in one message (issue
    #15): the client waits for the server once per order. A refused one (its broker id
    taken) also waits once, is rolled back without a statement psycopg would answer by
    dropping the connection's prepared statements, and leaves nothing: no order, no
    audit row, no transaction open."""
    import psycopg

    waits = []
    wait = psycopg.Connection.wait

    def counted(self, gen, *args, **kwargs):
        waits.append(gen)
        return wait(self, gen, *args, **kwargs)

    def audit_rows() -> list[tuple]:
        sql = 'SELECT row_id, action FROM "audit_log" WHERE table_name = %s ORDER BY id'
        return db.execute_sql(sql, ("orders",)).fetchall()

    strategy = storage.create_strategy("s")  # given as a Strategy: no look-up by name
    first = storage.create_order("AAPL", "buy", "market", 1)  # the connection is open
    monkeypatch.setattr(psycopg.Connection, "wait", counted)
    made = [first]
    for args, kw in [
        (("AAPL", "buy", "limit", 2, 100), {"strategy": strategy, "external_id": "rt-1"}),
        (("MSFT", "sell", "market", 3), {}),
    ]:
        waits.clear()
        made.append(storage.create_order(*args, **kw))
        assert len(waits) == 1, args
    waits.clear()
    with pytest.raises(DuplicateError):
        storage.create_order("AAPL", "buy", "market", 2, external_id="rt-1")
    assert len(waits) == 1
    monkeypatch.undo()
    assert db.connection().info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert [o.id for o in storage.get_recent_orders()] == [o.id for o in reversed(made)]
    assert audit_rows() == [(o.id, "create") for o in made]


@pytest.mark.parametrize(
    "args, field",
    [
        (("AAPL", "buy", "market", -5), "quantity"),
        (("AAPL", "buy", "market", 0), "quantity"),
        (("AAPL", "buy", "market", 10**20), "quantity"),
        (("AAPL", "buy", "limit", 5, -1), "price"),
        (("AAPL", "buy", "limit", 5), "price"),
        (("AAPL", "up", "market", 5), "side"),
        (("AAPL", "buy", "wat", 5), "type"),
        (("", "buy", "market", 5), "symbol"),
        (("AAPL", ["buy"], "market", 5), "side"),  # not text: no look-up by value
        (("AAPL", "buy", {"market"}, 5), "type"),
        (("AAPL", OrderTypeEnum.LIMIT, "market", 5), "side"),  # a member of another enum
    ],
)
def test_an_order_the_service_would_refuse_is_refused_by_the_repository_too(db, args, field):
    # The old module's OrderRepository.create is a second door to the orders table: it
    # checks what StorageService.create_order checks, and writes nothing on a refusal.
    repo = OrderRepository(db)
    with pytest.raises(ValidationError) as refused:
        repo.create(*args)
    assert refused.value.field == field
    assert repo.get_recent() == []
