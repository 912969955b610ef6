"""StorageService: the old module's service surface, with fills that keep the books.

The service owns the transaction: :meth:`StorageService.record_trade` inserts the
trade, moves the order, applies the fill to the symbol's position and updates the
strategy's figures in one transaction (see :mod:`stocksbot_store.fills`), and is
idempotent on the broker's trade id. The repositories are there as
``storage.positions``, ``.orders``, ``.trades``, ``.strategies`` and ``.config``
for plain reads and writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from peewee import Database

from . import config_values, equity, marks, reconcile, reports
from .database import prepare_database, write_transaction
from .errors import (
    DuplicateError,
    InvalidTransitionError,
    NotFoundError,
    ValidationError,
)
from .fields import (
    MAX_MAGNITUDE,
    coerce_enum,
    in_money_context,
    money_context,
    to_decimal,
    to_positive_decimal,
)
from .fills import Fill, FillRecorder
from .models import (
    ZERO,
    Config,
    ConfigValueType,
    Order,
    OrderSideEnum,
    OrderStatusEnum,
    OrderTypeEnum,
    Position,
    PositionSideEnum,
    ReconcileRun,
    Strategy,
    Trade,
)
from .repositories import (
    ConfigRepository,
    OrderRepository,
    PositionRepository,
    StrategyRepository,
    TradeRepository,
)
from .validation import check_external_id, check_id, check_symbol

TRADING_ENABLED = "trading_enabled"

# Forward order of the statuses an order moves through while it is live.
_RANK = {
    OrderStatusEnum.PENDING: 0,
    OrderStatusEnum.OPEN: 1,
    OrderStatusEnum.PARTIALLY_FILLED: 2,
    OrderStatusEnum.FILLED: 3,
}
_FINAL = (OrderStatusEnum.FILLED, OrderStatusEnum.CANCELLED, OrderStatusEnum.REJECTED)


@dataclass(frozen=True)
class StrategyStats:
    """One strategy's performance, as the dashboard shows it.

    Building it never raises for a figure: ``profit_factor`` is None while nothing was
    lost, and ``Decimal('Infinity')`` when it is 1e15 or more (a loss too small beside
    the profit for the ratio to mean anything, e.g. 1e14 of profit over a loss of
    1e-10); if the stored figures do not allow computing it at all (figures written
    around the store), it is ``Decimal('NaN')``.
    """

    id: int
    name: str
    is_active: bool
    is_enabled: bool
    trades: int
    closing_trades: int
    wins: int
    losses: int
    win_rate: Decimal
    gross_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    #: Gross profit over gross loss to 4 places; None when nothing was lost yet,
    #: ``Decimal('Infinity')`` from 1e15 up.
    profit_factor: Decimal | None
    max_drawdown: Decimal
    last_trade_at: dt.datetime | None


class StorageService:
    """Everything a bot records, on the database it is given."""

    def __init__(self, db: Database) -> None:
        self.db = prepare_database(db)
        self.positions = PositionRepository(db)
        self.orders = OrderRepository(db)
        self.trades = TradeRepository(db)
        self.strategies = StrategyRepository(db)
        self.config = ConfigRepository(db)
        self._fills = FillRecorder(db)

    # -- positions -----------------------------------------------------------------

    def get_open_positions(self) -> list[Position]:
        """Every open position, by symbol."""
        return self.positions.get_all_open()

    def get_position_by_symbol(self, symbol: str) -> Position | None:
        """The open position in ``symbol``, or None."""
        return self.positions.get_by_symbol(symbol, is_open=True)

    def create_position(self, symbol: str, side: Any, quantity: Any,
                        avg_entry_price: Any) -> Position:
        """Open a position by hand (a transfer, or a holding from before the bot).

        It is recorded as an ADJUSTMENT trade so that positions still equal the
        replay of their trades. :class:`DuplicateError` if ``symbol`` has an open
        position already: record a fill against it instead.
        """
        symbol = check_symbol(symbol)
        side = coerce_enum(PositionSideEnum, side, "side")
        with write_transaction(self.db):
            if self.get_position_by_symbol(symbol) is not None:
                raise DuplicateError(f"{symbol} has an open position already; record a fill "
                                     "(record_trade) to change it")
            self._fills.record(Fill(None, symbol, _opening_side(side), quantity,
                                    avg_entry_price))
        return self.get_position_by_symbol(symbol)

    @in_money_context
    def update_position_quantity(self, position_id: int, quantity: Any) -> Position:
        """Set an open position's quantity by hand, as an ADJUSTMENT trade of the
        difference at the average entry price (so no P&L is realized)."""
        position = self.positions.get(check_id(position_id, "position_id"))
        target = to_positive_decimal(quantity, "quantity")
        if not position.is_open:
            raise ValidationError("position_id", f"position {position.id} is closed")
        change = target - position.quantity
        if change:
            grows = change > 0
            side = _opening_side(position.side) if grows else _closing_side(position.side)
            self._fills.record(Fill(None, position.symbol, side, abs(change),
                                    position.avg_entry_price))
        return self.positions.get(position.id)

    # -- orders --------------------------------------------------------------------

    def create_order(self, symbol: str, side: Any, order_type: Any, quantity: Any,
                     price: Any = None, strategy: str | int | Strategy | None = None,
                     external_id: str | None = None) -> Order:
        """A new PENDING order. ``strategy`` is a Strategy, its id or its name."""
        values = {
            "symbol": check_symbol(symbol),
            "side": coerce_enum(OrderSideEnum, side, "side"),
            "type": coerce_enum(OrderTypeEnum, order_type, "order_type"),
            "quantity": to_positive_decimal(quantity, "quantity"),
            "price": None if price is None else to_positive_decimal(price, "price"),
            "external_id": check_external_id(external_id),
            "strategy": self._strategy_id(strategy),
        }
        if values["type"] is not OrderTypeEnum.MARKET and values["price"] is None:
            raise ValidationError("price", f"a {values['type'].value} order needs a price")
        return self.orders.create(**values)

    def attach_external_id(self, order_id: int, external_id: str) -> Order:
        """Record the broker's id of an order written before it was sent."""
        order = self.orders.get(check_id(order_id, "order_id"))
        external_id = check_external_id(external_id)
        if external_id is None:
            raise ValidationError("external_id", "must not be empty")
        if order.external_id == external_id:
            return order
        if order.external_id is not None:
            raise ValidationError("external_id", f"order {order.id} already has broker id "
                                                 f"{order.external_id!r}")
        return self.orders.update(order, external_id=external_id)

    def get_recent_orders(self, limit: int = 100) -> list[Order]:
        """The newest orders first."""
        return self.orders.get_recent(limit=limit)

    def update_order_status(self, order_id: int, status: Any, filled_quantity: Any = None,
                            avg_fill_price: Any = None) -> Order:
        """Move an order forward: PENDING -> OPEN -> PARTIALLY_FILLED -> FILLED, or to
        CANCELLED / REJECTED. Steps may be skipped; going back, or out of FILLED,
        CANCELLED or REJECTED, is an :class:`InvalidTransitionError`.

        Fill figures are kept by :meth:`record_trade`; ``filled_quantity`` and
        ``avg_fill_price`` are accepted only when they agree with them, and
        PARTIALLY_FILLED / FILLED only when the recorded fills say so.
        """
        status = coerce_enum(OrderStatusEnum, status, "status")
        with write_transaction(self.db):
            order = self.orders.get_for_update(check_id(order_id, "order_id"))
            _check_transition(order, status)
            self._check_fill_figures(order, status, filled_quantity, avg_fill_price)
            if status == order.status:
                return order
            return self.orders.update_status(order, status)

    def cancel_order(self, order_id: int) -> Order:
        """Cancel what is left of an order."""
        return self.update_order_status(order_id, OrderStatusEnum.CANCELLED)

    # -- trades --------------------------------------------------------------------

    def record_trade(self, order_id: int, symbol: str, side: Any, quantity: Any, price: Any,
                     commission: Any = 0, fees: Any = 0, external_id: str | None = None,
                     executed_at: dt.datetime | str | None = None) -> Trade:
        """Record one fill of an order, keeping the books, in one transaction.

        The trade is inserted; the order's filled quantity, average fill price and
        status move; the fill is applied to the symbol's position by average cost
        (open, add, reduce, close or flip), realizing P&L; the order's strategy's
        figures are updated. A fill whose ``external_id`` is stored already returns
        the stored trade and changes nothing; one that disagrees with it raises
        :class:`ConflictError`. Anything invalid raises a StorageError and writes
        nothing.
        """
        if order_id is None:
            raise ValidationError("order_id", "a fill needs its order; create_order first")
        return self._fills.record(Fill(order_id, symbol, side, quantity, price, commission,
                                       fees, external_id, executed_at))

    def record_trades(self, fills: Iterable[Fill | dict[str, Any]]) -> list[Trade]:
        """Record many fills in one transaction (a broker history, a backtest): the same
        book-keeping as :meth:`record_trade`, all of them or none."""
        batch = [f if isinstance(f, Fill) else Fill(**f) for f in fills]
        for fill in batch:
            if fill.order_id is None:
                raise ValidationError("order_id", "a fill needs its order; create_order first")
        return self._fills.record_many(batch)

    def get_recent_trades(self, limit: int = 100) -> list[Trade]:
        """The most recently recorded trades first."""
        return self.trades.get_recent(limit=limit)

    # -- strategies ----------------------------------------------------------------

    def create_strategy(self, name: str, strategy_type: str | None = None,
                        config: Any = None, description: str | None = None) -> Strategy:
        """A new strategy; :class:`DuplicateError` if the name is taken."""
        return self.strategies.create(name, strategy_type, config, description)

    def get_active_strategies(self) -> list[Strategy]:
        """Strategies that are active, by name."""
        return self.strategies.get_active()

    def get_strategy_by_name(self, name: str) -> Strategy | None:
        """The strategy called ``name``, or None."""
        return self.strategies.get_by_name(name)

    def set_strategy_active(self, strategy: str | int | Strategy, active: bool) -> Strategy:
        """Activate or deactivate a strategy."""
        row = self.strategies.get(self._strategy_id(strategy))
        return self.strategies.update(row, is_active=bool(active))

    def get_strategy_stats(self) -> list[StrategyStats]:
        """Per strategy: trades, wins, losses, win rate, gross and net P&L, fees, profit
        factor, max drawdown and last trade time. Reads the figures fills maintain,
        so it costs one small query at any history size."""
        return [_stats(s) for s in self.strategies.get_all()]

    # -- config --------------------------------------------------------------------

    def get_config_value(self, key: str, default: str | None = None) -> str | None:
        """The stored text of a setting, or ``default``."""
        row = self.config.get_by_key(key)
        return default if row is None else row.value

    def get_config(self, key: str, default: Any = None) -> Any:
        """A setting read as its type: bool, int, float, a json value or str."""
        row = self.config.get_by_key(key)
        if row is None:
            return default
        return config_values.from_text(row.value, row.value_type, key)

    def set_config_value(self, key: str, value: Any, value_type: Any = ConfigValueType.STRING,
                         description: str | None = None) -> Config:
        """Create or replace a setting; the value must read as ``value_type``."""
        text, kind = config_values.to_text(value, value_type, key)
        return self.config.upsert(key, text, kind, description)

    def get_all_config(self) -> dict[str, str | None]:
        """Every setting's stored text, by key."""
        return {row.key: row.value for row in self.config.get_all()}

    def is_trading_enabled(self) -> bool:
        """The ``trading_enabled`` setting (trading is enabled when it is unset)."""
        return bool(self.get_config(TRADING_ENABLED, True))

    def set_trading_enabled(self, enabled: bool) -> Config:
        """Halt (False) or resume (True) trading."""
        return self.set_config_value(TRADING_ENABLED, bool(enabled), ConfigValueType.BOOL,
                                     "False halts the bot's trading")

    # -- helpers -------------------------------------------------------------------

    def _strategy_id(self, strategy: str | int | Strategy | None) -> int | None:
        if strategy is None or isinstance(strategy, Strategy):
            return None if strategy is None else strategy.id
        if isinstance(strategy, str):
            strategy_id = self.strategies.id_for_name(strategy)
            if strategy_id is None:
                raise NotFoundError(f"strategy {strategy!r} does not exist; create_strategy "
                                    "first")
            return strategy_id
        strategy_id = check_id(strategy, "strategy")
        if not self.strategies.exists(strategy_id):
            raise NotFoundError(f"strategy {strategy_id} does not exist; create_strategy first")
        return strategy_id

    def _check_fill_figures(self, order: Order, status: OrderStatusEnum, filled_quantity: Any,
                            avg_fill_price: Any) -> None:
        if filled_quantity is not None and \
                to_decimal(filled_quantity, "filled_quantity") != order.filled_quantity:
            raise ValidationError("filled_quantity", f"order {order.id} has "
                                  f"{order.filled_quantity} filled by its recorded trades; "
                                  "record fills with record_trade")
        if avg_fill_price is not None and \
                to_decimal(avg_fill_price, "avg_fill_price") != order.avg_fill_price:
            raise ValidationError("avg_fill_price", f"order {order.id}'s average fill price "
                                  f"is {order.avg_fill_price} by its recorded trades")
        if status is OrderStatusEnum.FILLED and order.filled_quantity != order.quantity:
            raise ValidationError("status", f"order {order.id} has {order.filled_quantity} of "
                                  f"{order.quantity} filled; record_trade fills it")
        if status is OrderStatusEnum.PARTIALLY_FILLED and order.filled_quantity == ZERO:
            raise ValidationError("status", f"order {order.id} has no fills yet")

    # -- reconcile, marks and reports --------------------------------------------------

    def reconcile(self, positions: Any, open_orders: Any = None, *,
                  apply: bool = False) -> reconcile.ReconcileReport:
        """Compare the store with the broker's positions (``{symbol: signed quantity}``
        or objects with symbol/side/quantity/avg price) and open orders (broker ids);
        ``apply=True`` records ADJUSTMENT trades and closes the orders the broker no
        longer has, in one transaction. See :mod:`stocksbot_store.reconcile`."""
        return reconcile.reconcile(self, positions, open_orders, apply=apply)

    def last_reconcile(self) -> ReconcileRun | None:
        """The newest reconcile run kept (time, differences, applied or not)."""
        return reconcile.last_run(self)

    def record_marks(self, prices: dict[str, Any], at: dt.datetime | str | None = None) -> int:
        """Keep market prices ``{symbol: price}`` observed ``at`` (default now) as each
        symbol's latest mark and its UTC day's closing mark."""
        return marks.record_marks(self.db, prices, at)

    def get_position_values(self) -> list[marks.PositionValue]:
        """Open positions with their unrealized P&L at the latest mark, else at the last
        fill price (``source`` says which) and the price's age."""
        return marks.position_values(self.db, self.get_open_positions())

    def pnl_by_period(self, period: str = "day", since: Any = None, until: Any = None,
                      strategy: str | int | Strategy | None = None, symbol: str | None = None,
                      tz: Any = None) -> list[reports.PnlRow]:
        """Realized P&L, fees, trades, wins/losses and volume per day, week or month of
        ``tz`` (default UTC), from the figures fills keep. See
        :mod:`stocksbot_store.reports`."""
        return reports.pnl_by_period(self.db, period, since, until,
                                     self._strategy_id(strategy), symbol, tz)

    def pnl_by_symbol(self, since: Any = None, until: Any = None,
                      strategy: str | int | Strategy | None = None,
                      tz: Any = None) -> list[reports.PnlRow]:
        """Realized P&L, fees, trades, wins/losses and volume per symbol."""
        return reports.pnl_by_symbol(self.db, since, until, self._strategy_id(strategy), tz)

    def equity_curve(self, since: Any = None, until: Any = None) -> list[equity.EquityPoint]:
        """Per UTC day: realized P&L to date, fees, unrealized P&L at the day's closing
        marks, equity and drawdown. See :mod:`stocksbot_store.equity`."""
        return equity.equity_curve(self.db, since, until)


def _check_transition(order: Order, new: OrderStatusEnum) -> None:
    old = order.status
    if old == new:
        return
    if old in _FINAL:
        raise InvalidTransitionError(f"order {order.id} is {old.value}, a final status; it "
                                     f"cannot become {new.value}")
    if new in _RANK and _RANK[new] < _RANK[old]:
        raise InvalidTransitionError(f"order {order.id} cannot go back from {old.value} to "
                                     f"{new.value}")


def _opening_side(side: PositionSideEnum | str) -> str:
    return "buy" if side == PositionSideEnum.LONG else "sell"


def _closing_side(side: PositionSideEnum | str) -> str:
    return "sell" if side == PositionSideEnum.LONG else "buy"


def _stats(s: Strategy) -> StrategyStats:
    with money_context():
        fees = s.commission + s.fees
        return StrategyStats(
            id=s.id, name=s.name, is_active=s.is_active, is_enabled=s.is_enabled,
            trades=s.total_trades, closing_trades=s.closing_trades, wins=s.winning_trades,
            losses=s.losing_trades, win_rate=s.win_rate, gross_pnl=s.total_pnl, fees=fees,
            net_pnl=s.total_pnl - fees, gross_profit=s.gross_profit, gross_loss=s.gross_loss,
            profit_factor=_profit_factor(s.gross_profit, s.gross_loss),
            max_drawdown=s.max_drawdown, last_trade_at=s.last_trade_at)


def _profit_factor(gross_profit: Decimal, gross_loss: Decimal) -> Decimal | None:
    if not gross_loss:
        return None
    try:
        ratio = gross_profit / gross_loss
        return Decimal("Infinity") if ratio >= MAX_MAGNITUDE else ratio.quantize(
            Decimal("0.0001"))
    except ArithmeticError:  # figures written around the store (NaN, beyond any limit)
        return Decimal("NaN")


__all__ = ["TRADING_ENABLED", "StorageService", "StrategyStats"]
