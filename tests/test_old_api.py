"""The old storage module's code runs unchanged: every call form of its public API, as it
defined them (positionally and by keyword, with its defaults and return conventions), and
its README's usage, on every backend. Where an old call would break the books it does the
book-keeping way or is refused; after every test the ledger check still agrees."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from conftest import dump_tables

from stocksbot_store import (
    InvalidTransitionError,
    StorageService,
    ValidationError,
)
from stocksbot_store.check import check_ledger
from stocksbot_store.models import (
    OrderSideEnum,
    OrderStatusEnum,
    OrderTypeEnum,
    PositionSideEnum,
    TradeTypeEnum,
)
from stocksbot_store.repositories import (
    ConfigRepository,
    OrderRepository,
    PositionRepository,
    StrategyRepository,
    TradeRepository,
)


@pytest.fixture
def books_agree(db):
    """After the test, the ledger check finds the books equal to the replay of the trades."""
    yield
    report = check_ledger(db)
    assert report.ok, report.format()


# -- the old README, as written ---------------------------------------------------------


def test_the_old_readme_repository_pattern(db, books_agree):
    position_repo = PositionRepository(db)
    position = position_repo.create(
        symbol="AAPL",
        side=PositionSideEnum.LONG,
        quantity=100.0,
        avg_entry_price=150.0,
        cost_basis=15000.0,
    )
    assert position.is_open and position.quantity == 100
    position = position_repo.get_by_symbol("AAPL", is_open=True)
    closed_position = position_repo.close_position(position, realized_pnl=500.0)
    assert closed_position is position  # the object given, refreshed
    assert (closed_position.is_open, closed_position.realized_pnl) == (False, D(500))
    # It was closed by an adjustment priced to realize exactly that P&L.
    (opening, closing) = TradeRepository(db).get_by_symbol("AAPL")[::-1]
    assert (opening.type, closing.type) == (TradeTypeEnum.ADJUSTMENT, TradeTypeEnum.ADJUSTMENT)
    assert (closing.side, closing.quantity, closing.price) == ("sell", D(100), D(155))


def test_the_old_readme_storage_service(db, books_agree):
    storage = StorageService(db)
    position = storage.create_position("AAPL", "long", 100.0, 150.0)
    open_positions = storage.get_open_positions()
    assert [p.id for p in open_positions] == [position.id]

    order = storage.create_order("MSFT", "buy", "market", 50.0)
    recent_orders = storage.get_recent_orders(limit=10)
    assert [o.id for o in recent_orders] == [order.id]

    trade = storage.record_trade(
        order_id=order.id,
        symbol="MSFT",
        side="buy",
        quantity=50.0,
        price=300.0,
    )
    assert trade.order_id == order.id

    storage.set_config_value("trading_enabled", "true", "bool")
    value = storage.get_config_value("trading_enabled")
    assert value == "true"


# -- PositionRepository -------------------------------------------------------------------


def test_position_repository_call_forms(db, books_agree):
    repo = PositionRepository(db)
    a = repo.create("AAPL", PositionSideEnum.LONG, 100.0, 150.0, 15000.0)  # positionally
    b = repo.create("MSFT", "short", 10, 300, None)
    assert a.is_open is True and (b.side, b.cost_basis) == ("short", D(3000))
    assert repo.get_by_id(a.id).symbol == "AAPL" and repo.get_by_id(10_000) is None
    assert repo.get_by_symbol("AAPL").id == a.id  # is_open=True by default
    assert repo.get_by_symbol("AAPL", False) is None
    assert [p.symbol for p in repo.get_all_open()] == ["AAPL", "MSFT"]
    assert [p.id for p in repo.get_all()] == [b.id, a.id]  # limit=100, offset=0
    assert [p.id for p in repo.get_all(1, 1)] == [a.id]

    a.quantity = 120  # the old update(position)
    assert repo.update(a) is a and a.quantity == 120 and a.avg_entry_price == 150
    assert repo.get_by_id(a.id).quantity == 120

    closed = repo.close_position(b, -50)  # positionally
    assert (closed.is_open, closed.realized_pnl, closed.closed_at is not None) == (
        False,
        D(-50),
        True,
    )
    assert repo.get_by_symbol("MSFT", is_open=False).id == b.id

    assert repo.delete(10_000) is False  # no such row
    with pytest.raises(ValidationError, match="close_position"):
        repo.delete(a.id)  # open: a fill moves it
    assert repo.delete(b.id) is True  # closed: a soft delete
    assert repo.get_by_id(b.id) is None and repo.get_by_id(b.id, include_deleted=True)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"avg_entry_price": 1}, "avg_entry_price"),
        ({"side": "short"}, "side"),
        ({"realized_pnl": 5}, "realized_pnl"),
        ({"cost_basis": 1}, "cost_basis"),
        ({"is_open": True, "quantity": 3}, "is_open"),
    ],
)
def test_hand_edits_that_no_trade_explains_are_refused(db, change, field, books_agree):
    repo = PositionRepository(db)
    position = repo.create("AAPL", "long", 10, 100, 1000)
    if field == "is_open":
        repo.close_position(position)
    before = dump_tables(db)
    for name, value in change.items():
        setattr(position, name, value)
    with pytest.raises(ValidationError) as info:
        repo.update(position)
    assert info.value.field in change
    assert dump_tables(db) == before


def test_position_create_checks_the_cost_basis(db):
    with pytest.raises(ValidationError) as info:
        PositionRepository(db).create("AAPL", "long", 10, 100, 999)
    assert info.value.field == "cost_basis"


def test_close_position_refuses_a_pnl_no_price_can_realize(db, books_agree):
    repo = PositionRepository(db)
    position = repo.create("AAPL", "long", 3, 10)
    before = dump_tables(db)
    with pytest.raises(ValidationError) as info:
        repo.close_position(position, 1)  # 1/3 a share is not a price of 10 places
    assert info.value.field == "realized_pnl"
    with pytest.raises(ValidationError):
        repo.close_position(position, -31)  # below a price of zero
    assert dump_tables(db) == before
    assert repo.close_position(position, D("1.5")).realized_pnl == D("1.5")


# -- OrderRepository ----------------------------------------------------------------------


def test_order_repository_call_forms(db, books_agree):
    strategy = StrategyRepository(db).create("s", "momentum", {})
    repo = OrderRepository(db)
    o1 = repo.create(
        "AAPL", OrderSideEnum.BUY, OrderTypeEnum.LIMIT, 10, 150.0, strategy.id, "BRK-1"
    )  # every argument positionally
    o2 = repo.create("AAPL", "sell", "market", 5)
    o3 = repo.create(
        symbol="MSFT",
        side="buy",
        type="stop",
        quantity=1,
        price=2,
        strategy_id=strategy.id,
        external_id="BRK-3",
    )
    assert o1.status == OrderStatusEnum.PENDING and o1.strategy_id == strategy.id
    assert (o1.price, o1.external_id, o2.price, o2.strategy_id) == (150, "BRK-1", None, None)
    assert repo.get_by_id(o1.id).id == o1.id and repo.get_by_id(10_000) is None
    assert repo.get_by_external_id("BRK-3").id == o3.id and repo.get_by_external_id("x") is None
    assert [o.id for o in repo.get_by_status(OrderStatusEnum.PENDING)] == [o3.id, o2.id, o1.id]
    assert [o.id for o in repo.get_by_status("pending", 1)] == [o3.id]
    assert [o.id for o in repo.get_by_symbol("AAPL")] == [o2.id, o1.id]
    assert [o.id for o in repo.get_by_symbol("AAPL", 1)] == [o2.id]
    assert [o.id for o in repo.get_recent()] == [o3.id, o2.id, o1.id]
    assert [o.id for o in repo.get_recent(2)] == [o3.id, o2.id]

    assert repo.update_status(o1, OrderStatusEnum.OPEN) is o1 and o1.status == "open"
    o2.price = 99  # the old update(order)
    o2.status = OrderStatusEnum.CANCELLED
    assert repo.update(o2) is o2
    assert (repo.get_by_id(o2.id).price, repo.get_by_id(o2.id).status) == (99, "cancelled")


def test_order_fill_figures_given_by_hand_must_agree_with_the_fills(db, books_agree):
    storage = StorageService(db)
    repo = OrderRepository(db)
    order = repo.create("AAPL", "buy", "market", 10)
    before = dump_tables(db)
    with pytest.raises(ValidationError) as info:
        repo.update_status(order, OrderStatusEnum.FILLED, 10, 150.0)
    assert info.value.field == "filled_quantity"
    order.filled_quantity = 4
    with pytest.raises(ValidationError):
        repo.update(order)
    assert dump_tables(db) == before
    TradeRepository(db).create(order.id, "AAPL", "buy", TradeTypeEnum.OPEN, 10, 150.0)
    assert repo.update_status(order, "filled", 10, 150.0).status == "filled"
    with pytest.raises(InvalidTransitionError):
        repo.update_status(order, "pending")
    assert storage.get_position_by_symbol("AAPL").quantity == 10


def test_an_order_with_fills_keeps_what_its_trades_say(db, books_agree):
    storage = StorageService(db)
    strategy = storage.create_strategy("s")
    order = storage.create_order("AAPL", "buy", "limit", 10, 10)
    storage.record_trade(order.id, "AAPL", "buy", 4, 10)
    for name, value in (
        ("symbol", "MSFT"),
        ("side", "sell"),
        ("quantity", 12),
        ("strategy_id", strategy.id),
    ):
        with pytest.raises(ValidationError) as info:
            storage.orders.update(order, **{name: value})
        assert info.value.field in (name, "strategy")
    assert storage.orders.update(order, price=11).price == 11
    unfilled = storage.create_order("AAPL", "buy", "market", 10)
    assert storage.orders.update(unfilled, quantity=12, strategy_id=strategy.id).quantity == 12


# -- TradeRepository ----------------------------------------------------------------------


def test_trade_repository_call_forms(db, books_agree):
    orders = OrderRepository(db)
    repo = TradeRepository(db)
    order = orders.create("AAPL", "buy", "market", 10)
    when = dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.timezone.utc)
    t1 = repo.create(
        order.id, "AAPL", "buy", TradeTypeEnum.OPEN, 4, 150.0, 1.0, 0.02, "FILL-1", when
    )  # every argument positionally
    t2 = repo.create(
        order_id=order.id,
        symbol="AAPL",
        side=OrderSideEnum.BUY,
        type=TradeTypeEnum.OPEN,
        quantity=6,
        price=151.0,
    )
    assert (t1.commission, t1.fees, t1.external_id, t1.executed_at) == (
        1,
        D("0.02"),
        "FILL-1",
        when,
    )
    assert (t2.commission, t2.fees, t2.external_id) == (0, 0, None)
    # The fill path kept the books: the order is filled, the position opened.
    assert orders.get_by_id(order.id).status == OrderStatusEnum.FILLED
    assert StorageService(db).get_position_by_symbol("AAPL").quantity == 10
    assert repo.get_by_id(t1.id).order_id == order.id and repo.get_by_id(10_000) is None
    assert [t.id for t in repo.get_by_order_id(order.id)] == [t1.id, t2.id]
    assert repo.get_by_order_id(10_000) == []
    assert [t.id for t in repo.get_by_symbol("AAPL")] == [t2.id, t1.id]
    assert [t.id for t in repo.get_by_symbol("AAPL", 1)] == [t2.id]
    assert [t.id for t in repo.get_recent()] == [t2.id, t1.id]
    assert [t.id for t in repo.get_recent(1)] == [t2.id]
    # A type that disagrees with what the fill does is not taken: it closes here.
    sell = orders.create("AAPL", "sell", "market", 10)
    assert repo.create(sell.id, "AAPL", "sell", "open", 10, 160).type == TradeTypeEnum.CLOSE
    with pytest.raises(ValidationError) as info:
        repo.create(sell.id, "AAPL", "sell", "sideways", 1, 160)
    assert info.value.field == "type"


def test_a_trade_is_history(db, books_agree):
    storage = StorageService(db)
    order = storage.create_order("AAPL", "buy", "market", 1)
    trade = storage.record_trade(order.id, "AAPL", "buy", 1, 10)
    before = dump_tables(db)
    trade.price = 11
    with pytest.raises(ValidationError, match="correcting fill"):
        storage.trades.update(trade)
    with pytest.raises(ValidationError, match="correcting fill"):
        storage.trades.delete(trade.id)
    assert storage.trades.delete(10_000) is False
    with pytest.raises(ValidationError, match="1 fill"):  # nor can its order go
        storage.orders.delete(order.id)
    assert dump_tables(db) == before


# -- StrategyRepository -------------------------------------------------------------------


def test_strategy_repository_call_forms(db, books_agree):
    repo = StrategyRepository(db)
    s = repo.create("momentum", "momentum", {"window": 20})  # description=None
    t = repo.create("reversion", "mean_reversion", None, "buys dips")
    assert (s.is_active, s.is_enabled, s.description) == (False, True, None)  # old default
    assert repo.get_by_id(s.id).config == {"window": 20} and repo.get_by_id(10_000) is None
    assert repo.get_by_name("reversion").id == t.id and repo.get_by_name("x") is None
    assert repo.get_active() == []
    s.is_active = True
    assert repo.update(s) is s
    assert [x.name for x in repo.get_active()] == ["momentum"]
    assert [x.name for x in repo.get_all()] == ["momentum", "reversion"]
    s.total_pnl = 1_000_000
    with pytest.raises(ValidationError) as info:
        repo.update(s)  # figures are kept by the fills
    assert info.value.field == "total_pnl"


def test_deleting_a_strategy_keeps_its_orders_and_trades(db, books_agree):
    storage = StorageService(db)
    strategy = storage.create_strategy("gone")
    order = storage.create_order("AAPL", "buy", "market", 1, None, strategy.id)
    trade = storage.record_trade(order.id, "AAPL", "buy", 1, 10)
    assert storage.strategies.delete(strategy.id) is True  # a soft delete
    assert storage.strategies.delete(strategy.id) is False
    assert storage.strategies.get_by_id(strategy.id) is None
    assert storage.orders.get_by_id(order.id).strategy_id == strategy.id
    assert storage.trades.get_by_id(trade.id).strategy_id == strategy.id


# -- ConfigRepository ---------------------------------------------------------------------


def test_config_repository_call_forms(db):
    repo = ConfigRepository(db)
    c = repo.create("max_orders", "5", "int")  # description=None
    repo.create("name", "bot", "string", "the bot's name")
    assert (c.value, c.value_type, c.description) == ("5", "int", None)
    assert repo.get_by_key("max_orders").id == c.id and repo.get_by_key("x") is None
    assert [x.key for x in repo.get_all()] == ["max_orders", "name"]
    assert repo.update(c, "7") is c and repo.get_by_key("max_orders").value == "7"
    with pytest.raises(ValidationError):
        repo.update(c, "seven")  # still an int setting
    assert repo.upsert("max_orders", "9", "int").value == "9"
    assert repo.upsert("risk", "0.02", "float", "per trade").description == "per trade"
    assert repo.delete("name") is True and repo.delete("name") is False
    assert [x.key for x in repo.get_all()] == ["max_orders", "risk"]


# -- StorageService -----------------------------------------------------------------------


def test_update_position_quantity_by_delta_and_price(db, books_agree):
    storage = StorageService(db)
    position = storage.create_position("AAPL", "long", 100, 150)
    position = storage.update_position_quantity(position, 100, 160)  # add: average cost
    assert (position.quantity, position.avg_entry_price) == (200, 155)
    position = storage.update_position_quantity(position, quantity_delta=-50, price=165)
    assert (position.quantity, position.realized_pnl) == (150, 500)  # 50 x (165 - 155)
    position = storage.update_position_quantity(position.id, -150, 150)  # to zero: closes
    assert (position.is_open, position.realized_pnl) == (False, -250)
    assert storage.get_position_by_symbol("AAPL") is None

    short = storage.create_position("MSFT", "short", 10, 300)
    short = storage.update_position_quantity(short, -4, 290)  # cover 4 at a profit
    assert (short.quantity, short.realized_pnl) == (6, 40)
    before = dump_tables(db)
    with pytest.raises(ValidationError) as info:
        storage.update_position_quantity(short, -7, 290)  # past zero: a flip
    assert info.value.field == "quantity_delta"
    assert dump_tables(db) == before
    # The project's own form stays: set the quantity, adjusted at the average price.
    assert storage.update_position_quantity(short.id, 8).quantity == 8


def test_service_create_order_and_update_order_status(db, books_agree):
    storage = StorageService(db)
    strategy = storage.create_strategy("s")
    order = storage.create_order("AAPL", "buy", "limit", 10, 150.0, strategy_id=strategy.id)
    assert (order.strategy_id, order.price) == (strategy.id, 150)
    by_position = storage.create_order("AAPL", "buy", "limit", 10, 150.0, strategy.id)
    by_name = storage.create_order("AAPL", "buy", "market", 1, None, "s")
    assert by_position.strategy_id == by_name.strategy_id == strategy.id
    assert storage.update_order_status(order.id, OrderStatusEnum.OPEN).status == "open"
    assert storage.update_order_status(10_000, "open") is None  # as the old module
    storage.record_trade(order.id, "AAPL", "buy", 10, 150)
    assert storage.update_order_status(order.id, "filled", 10, 150.0).status == "filled"


def test_service_config_calls(storage):
    assert storage.get_config_value("missing") is None
    assert storage.get_config_value("missing", "dflt") == "dflt"
    row = storage.set_config_value("name", "bot")  # value_type="string"
    assert (row.value, row.value_type, row.description) == ("bot", "string", None)
    storage.set_config_value("max_orders", "5", "int", "per minute")
    assert storage.get_all_config() == {"max_orders": "5", "name": "bot"}


# -- init_db and get_db -------------------------------------------------------------------


def test_init_db_without_an_argument_uses_the_default_database(db_url, monkeypatch, tmp_path):
    from stocksbot_store import close_default_databases, get_db, init_db

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    try:
        db = init_db()
        dependency = get_db()
        assert next(dependency) is db
        StorageService(db).create_strategy("seen")
        dependency.close()
        assert StorageService(db).get_strategy_by_name("seen") is not None
    finally:
        close_default_databases()
