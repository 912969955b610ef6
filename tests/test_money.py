"""Money is the store's own: the caller's decimal context changes nothing, the limits
are documented and enforced, every figure within them is exact, and a figure that
cannot be represented is shown as such instead of raising."""

from __future__ import annotations

import datetime as dt
import decimal
import threading
import time
from decimal import Decimal

import pytest
from conftest import dump_tables

from stocksbot_store import (
    ConflictError,
    StorageService,
    ValidationError,
    connect,
)
from stocksbot_store.check import check_ledger
from stocksbot_store.fields import MAX_MAGNITUDE
from stocksbot_store.queries import realized_pnl_series

AT = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.timezone.utc)
#: The documented limit of a derived figure (fields.MAX_DERIVED).
MAX_DERIVED = Decimal(10) ** 30


def _exact(a: str, b: str) -> Decimal:
    """``a x b`` rounded half-even to 10 places, computed with room to spare."""
    with decimal.localcontext(decimal.Context(prec=200)):
        return (Decimal(a) * Decimal(b)).quantize(
            Decimal("1e-10"), rounding=decimal.ROUND_HALF_EVEN
        )


# -- the caller's decimal context ---------------------------------------------------------


def _book(storage: StorageService, tag: str) -> list:
    """Every public call that computes with money, on symbols and a strategy of its own;
    what it stored and computed, without ids and times."""
    strategy = storage.create_strategy(f"s{tag}")
    x, y, z = f"X{tag}", f"Y{tag}", f"Z{tag}"
    buy = storage.create_order(
        x, "buy", "limit", "12345.123456789", "100.123456789", strategy=strategy.id
    )
    storage.record_trade(
        buy.id,
        x,
        "buy",
        "2345.123456789",
        "100.123456789",
        "1.23456789",
        "0.0012345",
        executed_at=AT,
    )
    storage.record_trade(buy.id, x, "buy", "1000.987654321", "100.654321987", executed_at=AT)
    storage.update_order_status(
        buy.id,
        "partially_filled",
        filled_quantity="3346.11111111",
        avg_fill_price=storage.orders.get(buy.id).avg_fill_price,
    )
    storage.update_order_status(buy.id, "cancelled")
    sell = storage.create_order(x, "sell", "market", "5000.5", strategy=strategy.id)
    storage.record_trade(
        sell.id, x, "sell", "3000.333333333", "101.987654321", "0.5", executed_at=AT
    )
    storage.record_trades(
        [
            {
                "order_id": sell.id,
                "symbol": x,
                "side": "sell",
                "quantity": "1999.777777777",
                "price": "99.123456789",
                "commission": "0.987654321",
                "executed_at": AT,
            },
            {
                "order_id": sell.id,
                "symbol": x,
                "side": "sell",
                "quantity": "0.388888890",
                "price": "98.7654321",
                "external_id": f"b{tag}",
                "executed_at": AT,
            },
        ]
    )
    position = storage.create_position(y, "long", "1234567.8912345", "3.14159265358")
    storage.update_position_quantity(position.id, "2234567.8912344")
    storage.update_position_quantity(position.id, "0.0000000001")
    big = storage.create_order(
        z, "buy", "market", "12345678901234.5678901234", strategy=strategy.id
    )
    storage.record_trade(
        big.id, z, "buy", "12345678901234.5678901234", "98765.4321098765", executed_at=AT
    )
    stats = [s for s in storage.get_strategy_stats() if s.name == f"s{tag}"]
    return [
        [
            (
                t.symbol[:1],
                t.side,
                t.type,
                t.quantity,
                t.price,
                t.commission,
                t.fees,
                t.realized_pnl,
                t.net_pnl,
            )
            for t in storage.trades.get_by_symbol(x)
            + storage.trades.get_by_symbol(y)
            + storage.trades.get_by_symbol(z)
        ],
        [
            (o.symbol[:1], o.status, o.filled_quantity, o.avg_fill_price, o.remaining_quantity)
            for o in (
                storage.orders.get(buy.id),
                storage.orders.get(sell.id),
                storage.orders.get(big.id),
            )
        ],
        [
            (
                p.symbol[:1],
                p.side,
                p.quantity,
                p.avg_entry_price,
                p.cost_basis,
                p.realized_pnl,
                p.commission,
                p.fees,
                p.is_open,
                p.net_pnl,
            )
            for symbol in (x, y, z)
            for p in [storage.positions.get_by_symbol(symbol, None)]
        ],
        [
            (
                s.trades,
                s.closing_trades,
                s.wins,
                s.losses,
                s.win_rate,
                s.gross_pnl,
                s.fees,
                s.net_pnl,
                s.gross_profit,
                s.gross_loss,
                s.profit_factor,
                s.max_drawdown,
            )
            for s in stats
        ],
        [pnl for _, pnl in realized_pnl_series(storage.db, strategy.id, stats[0].gross_pnl)],
        storage.get_strategy_by_name(f"s{tag}").net_pnl,
    ]


def _prec_6(c: decimal.Context) -> None:
    c.prec = 6


def _traps_inexact(c: decimal.Context) -> None:
    c.traps[decimal.Inexact] = True


def _traps_rounded(c: decimal.Context) -> None:
    c.traps[decimal.Rounded] = True


def _rounds_down(c: decimal.Context) -> None:
    c.rounding = decimal.ROUND_DOWN


def _small_emax(c: decimal.Context) -> None:
    c.Emax, c.Emin = 5, -5


def _no_traps(c: decimal.Context) -> None:
    c.prec = 3
    for signal in list(c.traps):
        c.traps[signal] = False


CALLER_CONTEXTS = [_prec_6, _traps_inexact, _traps_rounded, _rounds_down, _small_emax, _no_traps]


def _state(c: decimal.Context) -> tuple:
    return (c.prec, c.rounding, c.Emin, c.Emax, c.capitals, c.clamp, dict(c.traps), dict(c.flags))


@pytest.mark.parametrize("setup", CALLER_CONTEXTS, ids=lambda f: f.__name__.strip("_"))
def test_the_callers_decimal_context_changes_no_money(storage, setup):
    expected = _book(storage, "a")
    with decimal.localcontext() as caller:
        setup(caller)
        caller.clear_flags()
        before = _state(caller)
        got = _book(storage, "b")
        report = check_ledger(storage.db)
        assert decimal.getcontext() is caller
        assert _state(caller) == before, "the caller's decimal context was changed"
    assert got == expected
    assert report.ok, report.format()


@pytest.mark.parametrize("setup", [_traps_inexact, _no_traps], ids=["traps_inexact", "no_traps"])
def test_a_refused_call_leaves_the_callers_context_alone_too(storage, setup):
    order = storage.create_order("REF", "buy", "market", 1)
    with decimal.localcontext() as caller:
        setup(caller)
        caller.clear_flags()
        before = _state(caller)
        for bad in ("abc", "1e999999", "-0.33333333333333333333333", "nan"):
            with pytest.raises(ValidationError):
                storage.record_trade(order.id, "REF", "buy", 5, bad)
        with pytest.raises(ValidationError):
            storage.record_trade(order.id, "REF", "buy", "1.0000000001", 1)  # overfill
        assert _state(caller) == before


# -- limits, and exactness within them ----------------------------------------------------


def test_quantity_times_price_is_exact_to_the_tenth_place(storage):
    quantity, price = "12345678901234.5678901234", "98765.4321098765"
    position = storage.create_position("BIG", "long", quantity, price)
    assert position.cost_basis == _exact(quantity, price)
    order = storage.create_order("BIG2", "buy", "market", quantity)
    storage.record_trade(order.id, "BIG2", "buy", quantity, price)
    assert storage.get_position_by_symbol("BIG2").cost_basis == _exact(quantity, price)


def test_the_largest_amounts_are_exact(storage):
    top = "999999999999999.9999999999"  # the largest amount: below 1e15, 10 places
    position = storage.create_position("TOP", "long", top, top)
    assert position.quantity == Decimal(top) and position.avg_entry_price == Decimal(top)
    assert position.cost_basis == _exact(top, top) and position.cost_basis < MAX_DERIVED
    order = storage.create_order("TOP", "sell", "market", top)
    storage.record_trade(order.id, "TOP", "sell", top, "0.0000000001")
    closed = storage.positions.get(position.id)
    assert closed.realized_pnl == _exact(top, "-999999999999999.9999999998")
    assert check_ledger(storage.db).ok


@pytest.mark.parametrize(
    "value",
    ["1000000000000000", 10**15, Decimal("1e15"), 1e15, "999999999999999.99999999995", "-1e15"],
)
def test_an_amount_at_the_limit_is_refused_naming_the_field(storage, value):
    before = dump_tables(storage.db)
    for field in ("quantity", "price"):
        args = {
            "symbol": "LIM",
            "side": "buy",
            "order_type": "limit",
            "quantity": 1,
            "price": 1,
            field: value,
        }
        with pytest.raises(ValidationError) as info:
            storage.create_order(**args)
        assert info.value.field == field and "1e15" in str(info.value)
    with pytest.raises(ValidationError) as info:
        storage.create_position("LIM", "long", 1, value)
    assert info.value.field == "price"
    assert dump_tables(storage.db) == before
    assert MAX_MAGNITUDE == Decimal(10) ** 15


def test_a_position_is_not_grown_to_the_limit(storage):
    top = "999999999999999.9999999999"
    order = storage.create_order("GROW", "buy", "market", top)
    storage.record_trade(order.id, "GROW", "buy", top, 1)
    other = storage.create_order("GROW", "buy", "market", 1)
    before = dump_tables(storage.db)
    with pytest.raises(ValidationError) as info:
        storage.record_trade(other.id, "GROW", "buy", "0.0000000001", 1)
    assert info.value.field == "quantity"
    with pytest.raises(ValidationError) as info:
        storage.record_trades(
            [
                {
                    "order_id": other.id,
                    "symbol": "GROW",
                    "side": "buy",
                    "quantity": "0.0000000001",
                    "price": 1,
                }
            ]
        )
    assert info.value.field == "quantity"
    assert dump_tables(storage.db) == before


def _round_trip(storage, symbol, strategy, quantity, buy_at):
    """Buy ``quantity`` of ``symbol`` at ``buy_at``; the order that will sell it."""
    buy = storage.create_order(symbol, "buy", "market", quantity, strategy=strategy)
    storage.record_trade(buy.id, symbol, "buy", quantity, buy_at)
    sell = storage.create_order(symbol, "sell", "market", quantity, strategy=strategy)
    return sell


def test_pnl_sums_are_refused_at_the_derived_limit(storage):
    strategy = storage.create_strategy("huge").id
    q, low, high = "900000000000000", "1", "999999999999999"
    sell = _round_trip(storage, "P1", strategy, q, low)
    storage.record_trade(sell.id, "P1", "sell", q, high)  # realizes about 9e29
    sell = _round_trip(storage, "P2", strategy, q, low)
    before = dump_tables(storage.db)
    with pytest.raises(ValidationError) as info:
        storage.record_trade(sell.id, "P2", "sell", q, high)  # gross profit past 1e30
    assert info.value.field == "gross_profit"
    assert dump_tables(storage.db) == before
    with pytest.raises(ValidationError) as info:
        storage.record_trades(
            [{"order_id": sell.id, "symbol": "P2", "side": "sell", "quantity": q, "price": high}]
        )
    assert info.value.field == "gross_profit"
    assert dump_tables(storage.db) == before
    stats = storage.get_strategy_stats()[0]
    assert stats.gross_profit == _exact(q, "999999999999998") < MAX_DERIVED


def test_a_positions_realized_pnl_is_refused_at_the_derived_limit(storage):
    q, low, high = "900000000000000", "1", "999999999999999"
    buy = storage.create_order("R", "buy", "market", q)
    storage.record_trade(buy.id, "R", "buy", q, low)
    sell = storage.create_order("R", "sell", "market", "899999999999999")
    storage.record_trade(sell.id, "R", "sell", "899999999999999", high)  # leaves 1 open
    again = storage.create_order("R", "buy", "market", "899999999999999")
    storage.record_trade(again.id, "R", "buy", "899999999999999", low)
    last = storage.create_order("R", "sell", "market", q)
    before = dump_tables(storage.db)
    with pytest.raises(ValidationError) as info:
        storage.record_trade(last.id, "R", "sell", q, high)
    assert info.value.field == "realized_pnl"
    assert dump_tables(storage.db) == before


# -- figures that cannot be represented ---------------------------------------------------


def _profit_and_loss(storage, profit: tuple[str, str, str], loss: tuple[str, str, str]):
    strategy = storage.create_strategy("pf").id
    for symbol, (quantity, bought, sold) in (("WIN", profit), ("LOSS", loss)):
        sell = _round_trip(storage, symbol, strategy, quantity, bought)
        storage.record_trade(sell.id, symbol, "sell", quantity, sold)
    return storage.get_strategy_stats()[0]


def test_a_profit_factor_too_large_to_mean_anything_is_infinite(storage):
    # 1e14 of profit over a loss of 1e-10: the ratio is 1e24.
    stats = _profit_and_loss(storage, ("1000000", "1", "100000001"), ("1", "1.0000000001", "1"))
    assert stats.gross_profit == Decimal("1e14") and stats.gross_loss == Decimal("1e-10")
    assert stats.profit_factor == Decimal("Infinity")
    assert stats.net_pnl == Decimal("99999999999999.9999999999")


def test_an_ordinary_profit_factor_has_four_places(storage):
    stats = _profit_and_loss(storage, ("3", "10", "12"), ("7", "10", "9.75"))
    assert stats.profit_factor == Decimal("3.4286")  # 6 / 1.75


def test_a_profit_factor_just_below_the_cap_is_shown(storage):
    stats = _profit_and_loss(storage, ("999999999999999", "1", "2"), ("1", "2", "1"))
    assert stats.profit_factor == Decimal("999999999999999.0000")


def test_figures_written_around_the_store_do_not_break_the_stats(storage):
    strategy = storage.create_strategy("odd")
    storage.db.execute_sql(
        f"UPDATE strategy SET gross_profit = 'NaN', gross_loss = '1' WHERE id = {strategy.id}"
    )
    stats = storage.get_strategy_stats()[0]
    assert stats.profit_factor.is_nan()


# -- a batch racing a single fill with the same broker id ---------------------------------


def _orders(db):
    storage = StorageService(db)
    return (
        storage,
        storage.create_order("AAA", "buy", "market", 10),
        storage.create_order("BBB", "buy", "market", 10),
    )


def _run_batch(url: str, fills: list[dict], outcome: dict) -> None:
    db = connect(url)
    try:
        outcome["result"] = StorageService(db).record_trades(fills)
    except Exception as e:  # the test looks at what it was
        outcome["error"] = e
    finally:
        db.close()


def _waiting_on_a_lock(db) -> int:
    return db.execute_sql(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
        "current_database() AND wait_event_type = 'Lock'"
    ).fetchone()[0]


@pytest.mark.postgres_only
def test_a_batch_losing_a_race_to_a_different_fill_is_a_conflict(db, db_url):
    """The batch reads the broker ids it carries (none stored), then waits for its order's
    row; meanwhile a single fill of another symbol stores one of those ids and commits.
    Ordered by a row lock, not by timing."""
    storage, a, b = _orders(db)
    blocker = connect(db_url)
    outcome: dict = {}
    batch = [
        {
            "order_id": a.id,
            "symbol": "AAA",
            "side": "buy",
            "quantity": 1,
            "price": 10,
            "external_id": "E1",
        }
    ]
    with blocker.atomic():
        blocker.execute_sql('SELECT id FROM "order" WHERE id = %s FOR UPDATE', (a.id,))
        thread = threading.Thread(target=_run_batch, args=(db_url, batch, outcome))
        thread.start()
        deadline = time.monotonic() + 60
        while not _waiting_on_a_lock(db):  # a state to reach, not a time to guess
            assert time.monotonic() < deadline, "the batch never reached the order's lock"
            time.sleep(0.02)
        single = storage.record_trade(b.id, "BBB", "buy", 2, 20, external_id="E1")
    thread.join(60)
    blocker.close()
    assert isinstance(outcome.get("error"), ConflictError), outcome
    assert "E1" in str(outcome["error"])
    assert [t.id for t in storage.trades.get_recent()] == [single.id]
    assert storage.orders.get(a.id).filled_quantity == 0


def test_a_batch_after_a_single_fill_with_the_same_broker_id(store_url):
    """On a SQLite file the two cannot interleave (each takes the write lock first); on
    both, whichever comes second sees the first: the same fill is returned as stored,
    a different one is a conflict."""
    db = connect(store_url)
    storage, a, b = _orders(db)
    single = storage.record_trade(b.id, "BBB", "buy", 2, 20, external_id="E2")
    outcome: dict = {}
    different = [
        {
            "order_id": a.id,
            "symbol": "AAA",
            "side": "buy",
            "quantity": 1,
            "price": 10,
            "external_id": "E2",
        }
    ]
    thread = threading.Thread(target=_run_batch, args=(store_url, different, outcome))
    thread.start()
    thread.join(60)
    assert isinstance(outcome.get("error"), ConflictError), outcome
    same = [
        {
            "order_id": b.id,
            "symbol": "BBB",
            "side": "buy",
            "quantity": 2,
            "price": 20,
            "external_id": "E2",
        }
    ]
    outcome = {}
    thread = threading.Thread(target=_run_batch, args=(store_url, same, outcome))
    thread.start()
    thread.join(60)
    assert [t.id for t in outcome["result"]] == [single.id]
    assert storage.orders.get(b.id).filled_quantity == 2
    db.close()
