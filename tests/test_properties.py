"""Property-based: random histories agree with a small reference model written here.

Hypothesis draws sequences of operations - create an order, fill it wholly or in
part, cancel it, re-send a fill (idempotent), re-send it changed (a conflict),
send a bad fill (over-fill, wrong side or symbol, unknown order, nonsense
numbers), open a position by hand - and applies each to the store and to
:class:`Book`, an in-memory model that shares no code with the store: exact
fractions, rounded half-even to 10 places where the store rounds. After every step
the open positions, realized P&L, every order's state and every strategy's figures
must agree; an operation the model rejects must raise a StorageError and leave every
table exactly as it was. After each example the ledger check must pass too.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

import pytest
from conftest import dump_tables
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stocksbot_store import (
    ConflictError,
    DuplicateError,
    InvalidTransitionError,
    NotFoundError,
    StorageError,
    ValidationError,
)
from stocksbot_store.check import check_ledger
from stocksbot_store.models import MODELS

SYMBOLS = ("AAA", "BBB")
STRATEGIES = ("alpha", "beta", None)
#: Examples per backend (PostgreSQL is slower per statement).
EXAMPLES = {"sqlite_memory": 200, "sqlite_file": 100, "postgres": 100}
#: What the examples did, reported at the end of each run.
TALLY: dict[str, int] = {}


def rounded(value: Fraction) -> Decimal:
    """Half-even to 10 places, from the exact value."""
    return Decimal(round(value * 10**10)).scaleb(-10)


def exact(value: Decimal) -> Fraction:
    return Fraction(value)


# -- the reference model -------------------------------------------------------------


@dataclass
class Holding:
    side: str
    quantity: Fraction
    avg: Decimal
    realized: Fraction = Fraction(0)
    commission: Fraction = Fraction(0)
    fees: Fraction = Fraction(0)


@dataclass
class OrderState:
    id: int
    symbol: str
    side: str
    quantity: Fraction
    strategy: str | None
    filled: Fraction = Fraction(0)
    avg: Decimal | None = None
    status: str = "pending"


@dataclass
class Figures:
    trades: int = 0
    closing: int = 0
    wins: int = 0
    losses: int = 0
    pnl: Fraction = Fraction(0)
    profit: Fraction = Fraction(0)
    loss: Fraction = Fraction(0)
    commission: Fraction = Fraction(0)
    fees: Fraction = Fraction(0)
    peak: Fraction = Fraction(0)
    drawdown: Fraction = Fraction(0)


@dataclass
class Book:
    holdings: dict[str, Holding] = field(default_factory=dict)
    orders: list[OrderState] = field(default_factory=list)
    figures: dict[str, Figures] = field(default_factory=dict)
    #: external id -> (order id, symbol, side, quantity, price)
    fills: dict[str, tuple] = field(default_factory=dict)

    def position_fill(
        self,
        symbol: str,
        side: str,
        qty: Fraction,
        price: Decimal,
        commission: Fraction,
        fees: Fraction,
    ) -> Fraction | None:
        """Average cost; returns the realized P&L, or None if nothing was closed."""
        facing = "long" if side == "buy" else "short"
        held = self.holdings.get(symbol)
        if held is None:
            self.holdings[symbol] = Holding(facing, qty, price, commission=commission, fees=fees)
            return None
        held.commission += commission
        held.fees += fees
        if held.side == facing:
            held.avg = rounded(
                (held.quantity * exact(held.avg) + qty * exact(price)) / (held.quantity + qty)
            )
            held.quantity += qty
            return None
        closing = min(qty, held.quantity)
        per_unit = exact(price) - exact(held.avg)
        pnl = exact(rounded(closing * (per_unit if held.side == "long" else -per_unit)))
        held.realized += pnl
        held.quantity -= closing
        if held.quantity == 0:
            del self.holdings[symbol]
            if qty > closing:
                self.holdings[symbol] = Holding(facing, qty - closing, price)
        return pnl

    def fill(
        self,
        order: OrderState,
        qty: Fraction,
        price: Decimal,
        commission: Fraction,
        external_id: str,
    ) -> None:
        pnl = self.position_fill(order.symbol, order.side, qty, price, commission, Fraction(0))
        if order.filled == 0:
            order.avg = price
        else:
            order.avg = rounded(
                (order.filled * exact(order.avg) + qty * exact(price)) / (order.filled + qty)
            )
        order.filled += qty
        order.status = "filled" if order.filled == order.quantity else "partially_filled"
        self.fills[external_id] = (order.id, order.symbol, order.side, qty, price)
        if order.strategy is not None:
            f = self.figures[order.strategy]
            f.trades += 1
            f.commission += commission
            if pnl is not None:
                f.closing += 1
                f.pnl += pnl
                f.wins += pnl > 0
                f.losses += pnl < 0
                f.profit += max(pnl, Fraction(0))
                f.loss += max(-pnl, Fraction(0))
                f.peak = max(f.peak, f.pnl)
                f.drawdown = max(f.drawdown, f.peak - f.pnl)


# -- the operations --------------------------------------------------------------------

amounts = st.integers(1, 40).map(lambda n: Decimal(n) / 4)  # 0.25 .. 10
prices = st.integers(100, 20_000).map(lambda n: Decimal(n) / 100)  # 1.00 .. 200.00
commissions = st.sampled_from([Decimal(0), Decimal("0.01"), Decimal("1.5")])
new_orders = st.tuples(
    st.just("order"),
    st.sampled_from(SYMBOLS),
    st.sampled_from(["buy", "sell"]),
    amounts,
    st.sampled_from(STRATEGIES),
)
fills = st.tuples(
    st.just("fill"), st.integers(0, 50), st.sampled_from([1, Fraction(1, 3)]), prices, commissions
)
#: Each kind of operation, with how often it is drawn.
KINDS = {
    "order": (new_orders, 3),
    "fill": (fills, 5),
    "resend": (st.tuples(st.just("resend"), st.integers(0, 50), st.booleans()), 1),
    "cancel": (st.tuples(st.just("cancel"), st.integers(0, 50)), 1),
    "bad": (
        st.tuples(
            st.just("bad"),
            st.integers(0, 50),
            st.sampled_from(
                [
                    "overfill",
                    "side",
                    "symbol",
                    "unknown",
                    "nan",
                    "zero",
                    "negative_commission",
                    "huge",
                ]
            ),
        ),
        1,
    ),
    "adjust": (
        st.tuples(
            st.just("adjust"),
            st.sampled_from(SYMBOLS),
            st.sampled_from(["long", "short"]),
            amounts,
            prices,
        ),
        1,
    ),
    # Several fills in one record_trades call; some repeat the one before (same
    # broker id) or re-send one stored earlier: both must be no-ops.
    "batch": (
        st.tuples(
            st.just("batch"),
            st.lists(
                st.tuples(
                    st.integers(0, 50),
                    st.sampled_from([Fraction(1, 4), Fraction(1, 3), Fraction(1, 2)]),
                    prices,
                    commissions,
                    st.sampled_from(["new", "new", "new", "repeat", "stored"]),
                ),
                min_size=1,
                max_size=6,
            ),
        ),
        2,
    ),
}
operations = st.sampled_from(
    [k for k, (_, weight) in KINDS.items() for _ in range(weight)]
).flatmap(lambda kind: KINDS[kind][0])


class Run:
    """Applies operations to the store and to the model and compares them."""

    def __init__(self, storage) -> None:
        self.storage = storage
        self.book = Book()
        self.strategy_ids: dict[str, int] = {}
        for name in STRATEGIES:
            if name is not None:
                self.strategy_ids[name] = storage.create_strategy(name).id
                self.book.figures[name] = Figures()
        self.sent = 0

    def order_at(self, index: int) -> OrderState | None:
        return self.book.orders[index % len(self.book.orders)] if self.book.orders else None

    def apply(self, op: tuple) -> None:
        kind = op[0]
        TALLY[kind] = TALLY.get(kind, 0) + 1
        if kind == "order":
            _, symbol, side, qty, strategy = op
            row = self.storage.create_order(symbol, side, "market", qty, strategy=strategy)
            self.book.orders.append(OrderState(row.id, symbol, side, exact(qty), strategy))
        elif kind == "fill":
            self.apply_fill(*op[1:])
        elif kind == "resend":
            self.apply_resend(*op[1:])
        elif kind == "cancel":
            order = self.order_at(op[1])
            if order is None:
                return
            if order.status in ("filled", "rejected"):
                self.rejected(InvalidTransitionError, self.storage.cancel_order, order.id)
            elif order.status == "cancelled":  # cancelling again is a no-op
                before = dump_tables(self.storage.db)
                self.storage.cancel_order(order.id)
                assert dump_tables(self.storage.db) == before
            else:
                self.storage.cancel_order(order.id)
                order.status = "cancelled"
        elif kind == "bad":
            self.apply_bad(*op[1:])
        elif kind == "batch":
            self.apply_batch(op[1])
        elif kind == "adjust":
            _, symbol, side, qty, price = op
            if symbol in self.book.holdings:
                self.rejected(
                    DuplicateError, self.storage.create_position, symbol, side, qty, price
                )
            else:
                self.storage.create_position(symbol, side, qty, price)
                self.book.position_fill(
                    symbol,
                    "buy" if side == "long" else "sell",
                    exact(qty),
                    price,
                    Fraction(0),
                    Fraction(0),
                )

    def apply_fill(self, index: int, share: Fraction, price: Decimal, commission: Decimal) -> None:
        order = self.order_at(index)
        if order is None:
            return
        left = order.quantity - order.filled
        qty = Decimal(round(left * share * 100)) / 100 if left else Decimal("0.25")
        self.sent += 1
        external_id = f"fill-{self.sent}"
        call = (
            self.storage.record_trade,
            order.id,
            order.symbol,
            order.side,
            qty,
            price,
            commission,
            0,
            external_id,
        )
        if order.status in ("cancelled", "rejected"):
            self.rejected(ValidationError, *call)
        elif qty <= 0 or exact(qty) > left:
            self.rejected(ValidationError, *call)
        else:
            call[0](*call[1:])
            TALLY["filled"] += 1
            self.book.fill(order, exact(qty), price, exact(commission), external_id)

    def apply_batch(self, items: list[tuple]) -> None:
        if not self.book.orders:
            return
        book = copy.deepcopy(self.book)
        fills: list[dict] = []
        valid = True
        for index, share, price, commission, mode in items:
            if mode == "repeat" and fills:
                fills.append(dict(fills[-1]))
                continue
            if mode == "stored" and book.fills:
                external_id = sorted(book.fills)[index % len(book.fills)]
                order_id, symbol, side, qty, stored_price = book.fills[external_id]
                fills.append(
                    {
                        "order_id": order_id,
                        "symbol": symbol,
                        "side": side,
                        "quantity": _as_decimal(qty),
                        "price": stored_price,
                        "commission": 0,
                        "external_id": external_id,
                    }
                )
                continue
            order = book.orders[index % len(book.orders)]
            left = order.quantity - order.filled
            qty = Decimal(round(left * share * 100)) / 100 if left else Decimal("0.25")
            self.sent += 1
            fills.append(
                {
                    "order_id": order.id,
                    "symbol": order.symbol,
                    "side": order.side,
                    "quantity": qty,
                    "price": price,
                    "commission": commission,
                    "external_id": f"fill-{self.sent}",
                }
            )
            if order.status in ("cancelled", "rejected") or qty <= 0 or exact(qty) > left:
                valid = False
            elif valid:
                book.fill(order, exact(qty), price, exact(commission), f"fill-{self.sent}")
        if not valid:
            self.rejected(ValidationError, self.storage.record_trades, fills)
            return
        trades = self.storage.record_trades(fills)
        assert [t.external_id for t in trades] == [f["external_id"] for f in fills]
        TALLY["batched"] = TALLY.get("batched", 0) + len(fills)
        self.book = book

    def apply_resend(self, index: int, changed: bool) -> None:
        if not self.book.fills:
            return
        external_id = sorted(self.book.fills)[index % len(self.book.fills)]
        order_id, symbol, side, qty, price = self.book.fills[external_id]
        quantity = Decimal(qty.numerator) / Decimal(qty.denominator)
        if changed:
            self.rejected(
                ConflictError,
                self.storage.record_trade,
                order_id,
                symbol,
                side,
                quantity + 1,
                price,
                0,
                0,
                external_id,
            )
        else:
            before = dump_tables(self.storage.db)
            trade = self.storage.record_trade(
                order_id, symbol, side, quantity, price, external_id=external_id
            )
            assert trade.external_id == external_id
            assert dump_tables(self.storage.db) == before, "a re-sent fill changed the books"

    def apply_bad(self, index: int, kind: str) -> None:
        order = self.order_at(index)
        if order is None:
            return
        left = order.quantity - order.filled
        other_side = "sell" if order.side == "buy" else "buy"
        other_symbol = next(s for s in SYMBOLS if s != order.symbol)
        args = {
            "overfill": (
                order.id,
                order.symbol,
                order.side,
                Decimal(left.numerator) / left.denominator + Decimal("0.25"),
                10,
            ),
            "side": (order.id, order.symbol, other_side, "0.25", 10),
            "symbol": (order.id, other_symbol, order.side, "0.25", 10),
            "unknown": (10**9, order.symbol, order.side, "0.25", 10),
            "nan": (order.id, order.symbol, order.side, "0.25", float("nan")),
            "zero": (order.id, order.symbol, order.side, 0, 10),
            "negative_commission": (order.id, order.symbol, order.side, "0.25", 10, -1),
            "huge": (order.id, order.symbol, order.side, "0.25", Decimal("1e30")),
        }[kind]
        expected = NotFoundError if kind == "unknown" else StorageError
        self.rejected(expected, self.storage.record_trade, *args)

    def rejected(self, error: type[Exception], function, *args) -> None:
        """``function(*args)`` must raise ``error`` and change nothing."""
        TALLY["rejected"] += 1
        before = dump_tables(self.storage.db)
        with pytest.raises(error):
            function(*args)
        assert dump_tables(self.storage.db) == before, "a rejected operation wrote something"

    # -- comparison ----------------------------------------------------------------

    def compare(self) -> None:
        stored = {
            p.symbol: (
                p.side.value,
                p.quantity,
                p.avg_entry_price,
                p.realized_pnl,
                p.commission,
                p.fees,
            )
            for p in self.storage.get_open_positions()
        }
        expected = {
            s: (h.side, h.quantity, h.avg, h.realized, h.commission, h.fees)
            for s, h in self.book.holdings.items()
        }
        assert stored == {s: tuple(_as_decimal(v) for v in row) for s, row in expected.items()}
        for order in self.book.orders:
            row = self.storage.orders.get(order.id)
            assert (row.status.value, row.filled_quantity, row.avg_fill_price) == (
                order.status,
                _as_decimal(order.filled),
                order.avg,
            ), f"order {order.id}"
        for stats in self.storage.get_strategy_stats():
            f = self.book.figures[stats.name]
            win_rate = rounded(Fraction(f.wins, f.closing)) if f.closing else Decimal(0)
            assert (
                stats.trades,
                stats.closing_trades,
                stats.wins,
                stats.losses,
                stats.gross_pnl,
                stats.gross_profit,
                stats.gross_loss,
                stats.fees,
                stats.max_drawdown,
                stats.win_rate,
            ) == (
                f.trades,
                f.closing,
                f.wins,
                f.losses,
                _as_decimal(f.pnl),
                _as_decimal(f.profit),
                _as_decimal(f.loss),
                _as_decimal(f.commission + f.fees),
                _as_decimal(f.drawdown),
                win_rate,
            ), f"strategy {stats.name}"


def _as_decimal(value) -> Decimal:
    if isinstance(value, Fraction):
        decimal = rounded(value)
        assert Fraction(decimal) == value, f"{value} is not exact in 10 places"
        return decimal
    return value


def _reset(db) -> None:
    for model in reversed(MODELS):
        if model._meta.table_name == "audit_log":
            continue  # append-only (PostgreSQL refuses DELETE on it); not read here
        db.execute_sql(f'DELETE FROM "{model._meta.table_name}"')


def test_random_histories_agree_with_the_reference_model(storage, backend):
    examples = 0
    TALLY.clear()
    TALLY.update(rejected=0, filled=0)

    @settings(
        max_examples=int(os.environ.get("STOCKSBOT_PROPERTY_EXAMPLES", 0)) or EXAMPLES[backend],
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        st.lists(new_orders, min_size=1, max_size=3), st.lists(operations, min_size=5, max_size=30)
    )
    def history(first, then):
        ops = first + then
        nonlocal examples
        examples += 1
        _reset(storage.db)
        run = Run(storage)
        for op in ops:
            run.apply(op)
            run.compare()
        report = check_ledger(storage.db)
        assert report.ok, report.format()

    history()
    print(f"\n{backend}: {examples} hypothesis examples; operations {TALLY}")
    assert examples >= 10
    assert TALLY["filled"] > examples and TALLY["rejected"] > examples / 4
