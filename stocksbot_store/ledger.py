"""The book-keeping rules, as pure functions on plain values.

One place says how a fill changes an order, a position and a strategy's figures,
and which order status may follow which: the fill path
(:mod:`stocksbot_store.fills`), the repositories, the service, the ledger check and
anything that replays trades all call these, so they cannot drift apart.

Orders: an order moves forward through PENDING -> OPEN -> PARTIALLY_FILLED ->
FILLED (steps may be skipped), or ends CANCELLED or REJECTED from any live
status. FILLED, CANCELLED and REJECTED are final: no status follows them and they
take no fills (:data:`FINAL_STATUSES`). Fills move the status themselves: an order
with fills is PARTIALLY_FILLED until they add up to its quantity, then FILLED
(:func:`status_after_fill`); :func:`statuses_for` says which statuses agree with an
order's fill state.

Positions use the **average-cost method**: a fill in the position's direction adds
at a new quantity-weighted average price; a fill against it realizes
``closed quantity x (price - average)`` (sign by side), closes the position when it
reaches zero, and opens the remainder on the other side at the fill price (a flip).
Averages are rounded half-even to :data:`~stocksbot_store.fields.SCALE` places at
each step, the same way on every path.

These functions compute with the current decimal context: their callers (the fill
path, the ledger check) run them inside
:func:`~stocksbot_store.fields.money_context`, once per call rather than once per
operation. They refuse a fill that would take a position's quantity or a P&L sum
past the store's limits (see :mod:`stocksbot_store.fields`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from .errors import DeletedError, InvalidTransitionError, OverfillError, ValidationError
from .fields import MAGNITUDE_DIGITS, MONEY_CONTEXT, check_derived, quantize, tidy
from .models import ZERO, OrderStatusEnum

#: A strategy's stored figures that fills maintain (:class:`StrategyFigures`), in the
#: order the fill path reads and writes them.
STRATEGY_FIGURES = (
    "total_trades",
    "closing_trades",
    "winning_trades",
    "losing_trades",
    "total_pnl",
    "gross_profit",
    "gross_loss",
    "commission",
    "fees",
    "pnl_peak",
    "max_drawdown",
    "last_trade_at",
)

LONG, SHORT = "long", "short"
BUY, SELL = "buy", "sell"
OPEN, CLOSE, ADJUSTMENT = "open", "close", "adjustment"

PENDING, OPEN_ORDER, PARTIALLY_FILLED, FILLED, CANCELLED, REJECTED = (
    s.value for s in OrderStatusEnum
)
#: Statuses no other status may follow, and that take no fills.
FINAL_STATUSES = frozenset({FILLED, CANCELLED, REJECTED})
#: Statuses an order may be in when a fill comes.
TAKES_FILLS = frozenset(s.value for s in OrderStatusEnum) - FINAL_STATUSES
#: Forward order of the live statuses (and FILLED, where they lead).
_RANK = {PENDING: 0, OPEN_ORDER: 1, PARTIALLY_FILLED: 2, FILLED: 3}
#: What a fill state allows: (nothing filled, part filled, all filled).
_AGREEING = (
    frozenset({PENDING, OPEN_ORDER, CANCELLED, REJECTED}),
    frozenset({PARTIALLY_FILLED, CANCELLED, REJECTED}),
    frozenset({FILLED}),
)


def _value(status: object) -> str:
    return status.value if isinstance(status, OrderStatusEnum) else str(status)


def check_transition(order_id: int | None, old: object, new: object) -> None:
    """Raise :class:`InvalidTransitionError` unless an order may go from ``old`` to
    ``new`` (statuses as enum members or their values)."""
    old, new = _value(old), _value(new)
    if old == new:
        return
    if old in FINAL_STATUSES:
        raise InvalidTransitionError(
            f"order {order_id} is {old}, a final status; it cannot become {new}"
        )
    if new in _RANK and _RANK[new] < _RANK[old]:
        raise InvalidTransitionError(f"order {order_id} cannot go back from {old} to {new}")


def statuses_for(filled: Decimal, quantity: Decimal) -> frozenset[str]:
    """The statuses that agree with ``filled`` of ``quantity``."""
    if filled == 0:
        return _AGREEING[0]
    return _AGREEING[1] if filled < quantity else _AGREEING[2]


def status_after_fill(filled: Decimal, quantity: Decimal) -> str:
    """The status a fill leaves an order in with ``filled`` of ``quantity``."""
    return FILLED if filled == quantity else PARTIALLY_FILLED


def check_status_agrees(
    order_id: int | None, status: object, filled: Decimal, quantity: Decimal
) -> None:
    """Raise :class:`ValidationError` unless ``status`` agrees with the order's fill
    state (what a caller setting a status by hand may not contradict)."""
    status = _value(status)
    if status in (PARTIALLY_FILLED, FILLED) and status not in statuses_for(filled, quantity):
        if status == FILLED:
            raise ValidationError(
                "status",
                f"order {order_id} has {filled} of {quantity} filled; record_trade fills it",
            )
        what = "no fills yet" if not filled else "all of its quantity filled"
        raise ValidationError("status", f"order {order_id} has {what}")


class OrderState:
    """The fill figures of one order while fills are applied to it."""

    __slots__ = (
        "id",
        "symbol",
        "side",
        "status",
        "quantity",
        "filled",
        "avg",
        "strategy_id",
        "filled_at",
        "updated_at",
        "deleted",
    )
    id: int
    symbol: str
    side: str
    status: str
    quantity: Decimal
    filled: Decimal
    avg: Decimal | None
    strategy_id: int | None
    filled_at: str | None  # times as their stored text
    updated_at: str | None
    deleted: bool  # soft-deleted: takes no fills

    def __init__(
        self,
        id: int,
        symbol: str,
        side: str,
        status: str,
        quantity: Decimal,
        filled: Decimal,
        avg: Decimal | None,
        strategy_id: int | None,
        deleted: bool = False,
    ) -> None:
        self.id, self.symbol, self.side, self.status = id, symbol, side, status
        self.quantity, self.filled, self.avg = quantity, filled, avg
        self.strategy_id, self.deleted = strategy_id, deleted
        #: The stored text of when it was filled / updated, once a fill set them.
        self.filled_at = None
        self.updated_at = None

    def copy(self) -> OrderState:
        """A new state with the same figures."""
        other = OrderState(
            self.id,
            self.symbol,
            self.side,
            self.status,
            self.quantity,
            self.filled,
            self.avg,
            self.strategy_id,
            self.deleted,
        )
        other.filled_at, other.updated_at = self.filled_at, self.updated_at
        return other

    def check_takes(self, symbol: str, side: str, quantity: Decimal) -> None:
        """Raise unless a fill of ``quantity`` ``side`` ``symbol`` fits this order
        (not deleted; symbol, side, status, what is left)."""
        if self.deleted:
            raise DeletedError(
                f"order {self.id} is deleted and takes no fills; "
                f"restore it (restore_order({self.id})) to record "
                "this fill"
            )
        if self.symbol != symbol:
            raise ValidationError(
                "symbol", f"{symbol!r} is not the symbol of order {self.id} ({self.symbol!r})"
            )
        if self.side != side:
            raise ValidationError(
                "side", f"{side!r} is not the side of order {self.id} ({self.side!r})"
            )
        if self.status == FILLED:
            raise OverfillError("quantity", f"order {self.id} is filled; it takes no more fills")
        if self.status not in TAKES_FILLS:
            raise ValidationError(
                "order_id", f"order {self.id} is {self.status}; it takes no more fills"
            )
        remaining = self.quantity - self.filled
        if quantity > remaining:
            raise OverfillError(
                "quantity", f"{quantity} is more than the {tidy(remaining)} left of order {self.id}"
            )

    def apply_fill(self, quantity: Decimal, price: Decimal, stamp: str) -> None:
        """Move the filled quantity, average price and status by a fill (``stamp``:
        the stored text of the time it is recorded)."""
        self.filled, self.avg = order_after_fill(self.filled, self.avg, quantity, price)
        self.status = status_after_fill(self.filled, self.quantity)
        if self.status == FILLED:
            self.filled_at = stamp
        self.updated_at = stamp


@dataclass(slots=True)
class PositionState:
    """The figures of one position (``id`` is None until it is stored). Slotted: a bulk
    import keeps a state per fill until it writes the batch's report figures, and a
    slotted one is a third of the size (and faster to build and read)."""

    symbol: str
    side: str
    quantity: Decimal
    avg_entry_price: Decimal
    realized_pnl: Decimal = ZERO
    commission: Decimal = ZERO
    fees: Decimal = ZERO
    is_open: bool = True
    id: int | None = None
    opened_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None

    def copy(self) -> PositionState:
        """A new state with the same figures (``dataclasses.replace`` without its
        introspection, which costs more than the fill's arithmetic)."""
        return PositionState(
            self.symbol,
            self.side,
            self.quantity,
            self.avg_entry_price,
            self.realized_pnl,
            self.commission,
            self.fees,
            self.is_open,
            self.id,
            self.opened_at,
            self.closed_at,
        )

    @property
    def cost_basis(self) -> Decimal:
        """Quantity times average entry price."""
        return cost_basis(self.quantity, self.avg_entry_price)


def cost_basis(quantity: Decimal, price: Decimal) -> Decimal:
    """``quantity x price`` rounded to the store's places, whatever the caller's decimal
    context (exact: both are below 1e15 with 10 places, the product has at most 50
    digits)."""
    return quantize(MONEY_CONTEXT.multiply(quantity, price))


@dataclass(slots=True)
class FillOutcome:
    """What one fill did to the book of its symbol (slotted, as :class:`PositionState`)."""

    trade_type: str
    realized_pnl: Decimal | None
    #: The position that was open before the fill, as it is after it (None if none was).
    existing: PositionState | None
    #: A position the fill opened: a first one, or the remainder of a flip.
    opened: PositionState | None
    #: Every position touched, in the order they should be written.
    touched: list[PositionState] = field(default_factory=list)

    @property
    def open_position(self) -> PositionState | None:
        """The symbol's open position after the fill, if any."""
        if self.opened is not None:
            return self.opened
        if self.existing is not None and self.existing.is_open:
            return self.existing
        return None


def direction(side: str) -> str:
    """The position side a buy or a sell opens."""
    return LONG if side == BUY else SHORT


def apply_fill(
    position: PositionState | None,
    symbol: str,
    side: str,
    quantity: Decimal,
    price: Decimal,
    commission: Decimal = ZERO,
    fees: Decimal = ZERO,
    at: dt.datetime | None = None,
) -> FillOutcome:
    """Apply a fill of ``quantity`` at ``price`` to the symbol's open ``position``.

    ``position`` is not modified; the outcome holds new states. Commission and fees
    are charged to the position that was open before the fill, or to the one the
    fill opened if there was none.
    """
    opened: PositionState | None
    opens = LONG if side == BUY else SHORT  # direction(side), once
    if position is None or not position.is_open:
        opened = PositionState(symbol, opens, quantity, price, ZERO, commission, fees, opened_at=at)
        return FillOutcome(OPEN, None, None, opened, [opened])

    existing = position.copy()
    existing.commission += commission
    existing.fees += fees
    if opens == position.side:
        total = check_derived(position.quantity + quantity, "quantity", MAGNITUDE_DIGITS)
        existing.avg_entry_price = quantize(
            (position.quantity * position.avg_entry_price + quantity * price) / total
        )
        existing.quantity = total
        return FillOutcome(OPEN, None, existing, None, [existing])

    closed = min(quantity, position.quantity)
    move = price - position.avg_entry_price
    pnl = quantize(closed * (move if position.side == LONG else -move))
    existing.realized_pnl = check_derived(position.realized_pnl + pnl, "realized_pnl")
    existing.quantity = position.quantity - closed
    opened = None
    if existing.quantity == 0:
        existing.is_open = False
        existing.closed_at = at
        remainder = quantity - closed
        if remainder > 0:
            opened = PositionState(symbol, opens, remainder, price, opened_at=at)
    touched = [existing] if opened is None else [existing, opened]
    return FillOutcome(CLOSE, pnl, existing, opened, touched)


def order_after_fill(
    filled_quantity: Decimal, avg_fill_price: Decimal | None, quantity: Decimal, price: Decimal
) -> tuple[Decimal, Decimal]:
    """An order's new filled quantity and quantity-weighted average fill price."""
    total = filled_quantity + quantity
    if not filled_quantity or avg_fill_price is None:
        return total, price
    return total, quantize((filled_quantity * avg_fill_price + quantity * price) / total)


@dataclass
class StrategyFigures:
    """The figures of a strategy that fills maintain."""

    total_trades: int = 0
    closing_trades: int = 0
    winning_trades: int = 0
    losing_trades: int = 0
    total_pnl: Decimal = ZERO
    gross_profit: Decimal = ZERO
    gross_loss: Decimal = ZERO
    commission: Decimal = ZERO
    fees: Decimal = ZERO
    pnl_peak: Decimal = ZERO
    max_drawdown: Decimal = ZERO
    last_trade_at: dt.datetime | None = None

    def copy(self) -> StrategyFigures:
        """A new instance with the same figures (``copy.copy`` goes through the pickle
        protocol and costs five times as much; a fill copies twice)."""
        other = StrategyFigures.__new__(StrategyFigures)
        other.__dict__.update(self.__dict__)
        return other

    @property
    def win_rate(self) -> Decimal:
        """Winning closing trades over closing trades (0 when none closed)."""
        if not self.closing_trades:
            return ZERO
        return quantize(Decimal(self.winning_trades) / Decimal(self.closing_trades))

    def add_trade(
        self, realized_pnl: Decimal | None, commission: Decimal, fees: Decimal, at: dt.datetime
    ) -> None:
        """Count one trade; ``realized_pnl`` is None for a fill that closed nothing."""
        self.total_trades += 1
        self.commission += commission
        self.fees += fees
        if self.last_trade_at is None or at > self.last_trade_at:
            self.last_trade_at = at
        if realized_pnl is None:
            return
        self.closing_trades += 1
        self.total_pnl += realized_pnl
        if realized_pnl > 0:
            self.winning_trades += 1
            self.gross_profit = check_derived(self.gross_profit + realized_pnl, "gross_profit")
        elif realized_pnl < 0:
            self.losing_trades += 1
            self.gross_loss = check_derived(self.gross_loss - realized_pnl, "gross_loss")
        # As max() (which keeps the first of equal values), without its call per trade.
        if self.total_pnl > self.pnl_peak:
            self.pnl_peak = self.total_pnl
        drawdown = self.pnl_peak - self.total_pnl
        if drawdown > self.max_drawdown:
            self.max_drawdown = drawdown
