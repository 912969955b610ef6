"""StorageService: the old module's service surface, with fills that keep the books.

The service owns the transaction: :meth:`StorageService.record_trade` inserts the
trade, moves the order, applies the fill to the symbol's position and updates the
strategy's figures in one transaction (see :mod:`stocksbot_store.fills`), and is
idempotent on the broker's trade id. Positions changed by hand go through
:mod:`stocksbot_store.adjustments` as ADJUSTMENT trades. Every read-modify-write
here reads inside its write transaction with the row or the symbol locked. The
repositories are there as ``storage.positions``, ``.orders``, ``.trades``,
``.strategies`` and ``.config``.

Deleting is soft (:mod:`stocksbot_store.softdelete`): ``delete_order``,
``delete_position``, ``delete_strategy`` and ``delete_config`` mark the row deleted by
the service's ``actor``, every read leaves it out unless ``include_deleted=True``, and
the matching ``restore_*`` brings it back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from peewee import Database

from . import config_values, equity, marks, reconcile, reports
from .adjustments import Adjustments
from .audit import AuditEntry, check_actor, default_actor, get_audit_log
from .database import prepare_database, write_transaction
from .errors import CorruptRowError, NotFoundError, ValidationError
from .fields import (
    MAX_MAGNITUDE,
    coerce_enum,
    in_money_context,
    money_context,
)
from .fills import Fill, FillRecorder
from .fills.collector import collector_paused
from .fills.importer import (
    BATCH_SIZE,
    FILL_KEYS,
    ImportSummary,
    checked_fill,
    import_fills,
)
from .models import (
    SOFT_DELETE_MODELS,
    BaseModel,
    Config,
    ConfigValueType,
    Order,
    OrderStatusEnum,
    Position,
    ReconcileRun,
    Strategy,
    Trade,
)
from .repositories import (
    ConfigRepository,
    OrderRepository,
    PositionRepository,
    Repository,
    StrategyRepository,
    TradeRepository,
    check_new_order,
)
from .types import (
    Amount,
    ConfigValue,
    Flag,
    JSONValue,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    Price,
    Quantity,
    RangeBound,
    RowId,
    ValueType,
    When,
    Zone,
)
from .validation import check_external_id, check_id

TRADING_ENABLED = config_values.TRADING_ENABLED


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
    """Everything a bot records, on the database it is given.

    ``actor`` names who writes in the audit log (``"bot-eu-1"``); by default
    ``user@host:pid`` (:func:`~stocksbot_store.audit.default_actor`). Every change
    made through the service or its repositories has its audit rows, written in the
    transaction of the change.
    """

    def __init__(self, db: Database, actor: str | None = None) -> None:
        self.db = prepare_database(db)
        #: Who this service's changes are recorded as in the audit log, and the
        #: ``deleted_by`` of what it deletes.
        self.actor: str = default_actor() if actor is None else check_actor(actor)
        self._fills = FillRecorder(db, self.actor)
        self.positions = PositionRepository(db, self._fills, self.actor)
        #: Hand edits of positions, as ADJUSTMENT trades (shared with ``positions``).
        self.adjustments: Adjustments = self.positions.adjustments
        self.orders = OrderRepository(db, self.actor)
        self.trades = TradeRepository(db, self._fills, self.actor)
        self.strategies = StrategyRepository(db, self.actor)
        self.config = ConfigRepository(db, self.actor)

    # -- positions -----------------------------------------------------------------

    def get_open_positions(self) -> list[Position]:
        """Every open position, by symbol."""
        return self.positions.get_all_open()

    def get_position_by_symbol(self, symbol: str) -> Position | None:
        """The open position in ``symbol``, or None."""
        return self.positions.get_by_symbol(symbol, is_open=True)

    def create_position(
        self, symbol: str, side: PositionSide, quantity: Quantity, avg_entry_price: Price
    ) -> Position:
        """Open a position by hand (a transfer, or a holding from before the bot).

        It is recorded as an ADJUSTMENT trade so that positions still equal the
        replay of their trades. :class:`DuplicateError` if ``symbol`` has an open
        position already (checked with the symbol locked, so two callers at once get
        one position and one DuplicateError): record a fill against it instead.
        """
        return self.adjustments.open(symbol, side, quantity, avg_entry_price)

    @in_money_context
    def update_position_quantity(
        self,
        position: Position | RowId,
        quantity: Quantity | None = None,
        price: Price | None = None,
        *,
        quantity_delta: Quantity | None = None,
    ) -> Position:
        """Resize an open position by hand, as an ADJUSTMENT trade; two forms:

        * ``update_position_quantity(position_id, quantity)``: set the quantity; the
          difference is adjusted at the average entry price, so no P&L is realized;
        * ``update_position_quantity(position, quantity_delta, price)`` (the old
          module's form): add a signed ``quantity_delta`` at ``price``; an add moves
          the average cost, a reduction realizes P&L, reaching zero closes the
          position. Going past zero is refused: a flip is a fill.

        ``position`` is a Position or its id. The position is read inside the write
        transaction with its symbol locked, so concurrent edits and fills of the
        symbol never work from a stale read.
        """
        if quantity_delta is not None or price is not None:
            if quantity_delta is not None and quantity is not None:
                raise ValidationError("quantity_delta", "give quantity or quantity_delta, not both")
            delta = quantity if quantity_delta is None else quantity_delta
            if price is None:
                raise ValidationError("price", "a quantity_delta needs the price it was traded at")
            return self.adjustments.change(position, delta, price)
        if quantity is None:
            raise ValidationError("quantity", "give the new quantity, or quantity_delta and price")
        return self.adjustments.set_quantity(position, quantity)

    # -- orders --------------------------------------------------------------------

    def create_order(
        self,
        symbol: str,
        side: OrderSide,
        order_type: OrderType,
        quantity: Quantity,
        price: Price | None = None,
        strategy: str | RowId | Strategy | None = None,
        external_id: str | None = None,
        *,
        strategy_id: int | None = None,
    ) -> Order:
        """A new PENDING order. ``strategy`` is a Strategy, its id or its name;
        ``strategy_id=`` (the old module's keyword) is its id."""
        if strategy_id is not None:
            if strategy is not None:
                raise ValidationError("strategy_id", "give strategy or strategy_id, not both")
            strategy = check_id(strategy_id, "strategy_id")
        values = check_new_order(
            symbol, side, order_type, quantity, price, external_id, type_field="order_type"
        )
        values["strategy"] = self._strategy_id(strategy)
        return self._fills.create_order(lambda: self.orders.insert_checked(values))

    def get_order(self, order_id: int, include_deleted: bool = False) -> Order | None:
        """The order with this id, or None (also when it is deleted, unless
        ``include_deleted``)."""
        return self.orders.get_by_id(check_id(order_id, "order_id"), include_deleted)

    def get_order_fills(self, order_id: int) -> list[Trade]:
        """The fills (trades) of an order, oldest first."""
        return self.trades.get_by_order_id(check_id(order_id, "order_id"))

    def attach_external_id(self, order_id: int, external_id: str) -> Order:
        """Record the broker's id of an order written before it was sent. The order is
        read and written in one transaction with its row locked: of two callers
        attaching different ids at once, one wins and the other is refused."""
        checked = check_external_id(external_id)
        if checked is None:
            raise ValidationError("external_id", "must not be empty")
        external_id = checked
        with write_transaction(self.db):
            order = self.orders.get_for_update(check_id(order_id, "order_id"))
            if order.external_id == external_id:
                return order
            if order.external_id is not None:
                raise ValidationError(
                    "external_id", f"order {order.id} already has broker id {order.external_id!r}"
                )
            return self.orders.update(order, external_id=external_id)

    def get_recent_orders(self, limit: int = 100, include_deleted: bool = False) -> list[Order]:
        """The newest orders first."""
        return self.orders.get_recent(limit=limit, include_deleted=include_deleted)

    def update_order_status(
        self,
        order_id: RowId,
        status: OrderStatus,
        filled_quantity: Quantity | None = None,
        avg_fill_price: Price | None = None,
    ) -> Order | None:
        """Move an order forward: PENDING -> OPEN -> PARTIALLY_FILLED -> FILLED, or to
        CANCELLED / REJECTED. Steps may be skipped; going back, or out of FILLED,
        CANCELLED or REJECTED, is an :class:`InvalidTransitionError`. None if there
        is no such order (as in the old module).

        Fill figures are kept by :meth:`record_trade`; ``filled_quantity`` and
        ``avg_fill_price`` are accepted only when they agree with them, and
        PARTIALLY_FILLED / FILLED only when the recorded fills say so.
        """
        order_id = check_id(order_id, "order_id")
        coerce_enum(OrderStatusEnum, status, "status")
        try:
            return self.orders.update_status(order_id, status, filled_quantity, avg_fill_price)
        except NotFoundError:
            return None

    def cancel_order(self, order_id: int) -> Order:
        """Cancel what is left of an order; :class:`NotFoundError` if there is none."""
        return self.orders.update_status(check_id(order_id, "order_id"), OrderStatusEnum.CANCELLED)

    # -- trades --------------------------------------------------------------------

    def record_trade(
        self,
        order_id: RowId,
        symbol: str,
        side: OrderSide,
        quantity: Quantity,
        price: Price,
        commission: Amount = 0,
        fees: Amount = 0,
        external_id: str | None = None,
        executed_at: When | None = None,
    ) -> Trade:
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
        return self._fills.record(
            Fill(
                order_id, symbol, side, quantity, price, commission, fees, external_id, executed_at
            )
        )

    def record_trades(self, fills: Iterable[Fill | dict[str, Any]]) -> list[Trade]:
        """Record many fills in one transaction (a broker's reconnect, a backtest): the
        same book-keeping as :meth:`record_trade`, all of them or none. A fill is a
        :class:`Fill` or a dict of its fields (:data:`FILL_KEYS`). Every trade is
        returned, so memory grows with the fills: for a history of any size, use
        :meth:`import_trades`."""
        with collector_paused():
            return self._fills.record_checked([checked_fill(f, n) for n, f in enumerate(fills)])

    def import_trades(
        self,
        fills: Iterable[Fill | dict[str, Any]],
        *,
        batch_size: int = BATCH_SIZE,
        progress: Callable[[ImportSummary], None] | None = None,
    ) -> ImportSummary:
        """Record any number of fills (a broker's history) with memory that does not
        grow with them: ``fills`` is read as it goes (a generator is fine), each batch
        of ``batch_size`` is recorded as :meth:`record_trades` does, in its own
        transaction, and only counts are kept. ``progress(summary)`` is called after
        each batch commits.

        A refused fill stops the import with :class:`ImportStoppedError`, saying which
        fill (its index) and what the earlier batches stored; nothing of its batch is
        stored. Re-running the same import is safe when fills carry broker ids: those
        stored already change nothing (counted as ``resent``). See
        :mod:`stocksbot_store.fills.importer`."""
        return import_fills(self._fills, fills, batch_size, progress)

    def get_recent_trades(self, limit: int = 100) -> list[Trade]:
        """The most recently recorded trades first."""
        return self.trades.get_recent(limit=limit)

    # -- strategies ----------------------------------------------------------------

    def create_strategy(
        self,
        name: str,
        strategy_type: str | None = None,
        config: JSONValue = None,
        description: str | None = None,
        *,
        is_active: Flag = False,
    ) -> Strategy:
        """A new strategy, inactive unless ``is_active=True`` (as in the old module: a
        strategy runs once the bot activates it); :class:`DuplicateError` if the name
        is taken."""
        return self.strategies.create(
            name,
            strategy_type,
            config,
            description,
            is_active=config_values.to_bool(is_active, "is_active"),
        )

    def get_active_strategies(self) -> list[Strategy]:
        """Strategies that are active, by name."""
        return self.strategies.get_active()

    def get_strategy_by_name(self, name: str, include_deleted: bool = False) -> Strategy | None:
        """The strategy called ``name``, or None; with ``include_deleted`` a deleted one
        is found too (the live one first)."""
        return self.strategies.get_by_name(name, include_deleted)

    def set_strategy_active(self, strategy: str | RowId | Strategy, active: Flag) -> Strategy:
        """Activate or deactivate a strategy. ``active`` is a bool or a usual spelling
        of one (``"false"``, ``"off"``, ``0``...); anything else is refused."""
        active = config_values.to_bool(active, "active")
        with write_transaction(self.db):
            row = self.strategies.get_for_update(cast(int, self._strategy_id(strategy)))
            return self.strategies.update(row, is_active=active)

    def get_strategy_stats(self, include_deleted: bool = False) -> list[StrategyStats]:
        """Per strategy: trades, wins, losses, win rate, gross and net P&L, fees, profit
        factor, max drawdown and last trade time. Reads the figures fills maintain,
        so it costs one small query at any history size. Deleted strategies are left
        out unless ``include_deleted``."""
        return [_stats(s) for s in self.strategies.get_all(include_deleted=include_deleted)]

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

    def set_config_value(
        self,
        key: str,
        value: ConfigValue,
        value_type: ValueType = ConfigValueType.STRING,
        description: str | None = None,
    ) -> Config:
        """Create or replace a setting; the value must read as ``value_type``. The
        ``trading_enabled`` switch is always stored as a bool, whatever type is given
        (``"false"`` halts), so it cannot be left in a form that reads as on."""
        if key == TRADING_ENABLED:
            value_type = ConfigValueType.BOOL
        return self.config.upsert(key, value, value_type, description)

    def get_all_config(self) -> dict[str, str | None]:  # deleted settings read as unset
        """Every setting's stored text, by key."""
        return {row.key: row.value for row in self.config.get_all()}

    def is_trading_enabled(self) -> bool:
        """Whether the bot may trade. Unset means enabled (a new store trades); once
        set, trading is enabled only while the stored value clearly says so (true, 1,
        yes or on): any other value, of any type, reads as halted, and so does a row
        that cannot be read at all (a value type written outside the store)."""
        try:
            row = self.config.get_by_key(TRADING_ENABLED)
        except CorruptRowError:
            return False
        return row is None or config_values.clearly_true(row.value)

    def set_trading_enabled(self, enabled: Flag) -> Config:
        """Halt (False) or resume (True) trading; ``"false"``, ``"off"``, ``0``... halt
        too, and anything that is not a usual spelling of a bool is refused."""
        return self.set_config_value(
            TRADING_ENABLED,
            config_values.to_bool(enabled, "enabled"),
            ConfigValueType.BOOL,
            "False halts the bot's trading",
        )

    def halt_trading(self) -> Config:
        """Stop the bot's trading (``set_trading_enabled(False)``)."""
        return self.set_trading_enabled(False)

    def resume_trading(self) -> Config:
        """Let the bot trade again (``set_trading_enabled(True)``)."""
        return self.set_trading_enabled(True)

    # -- audit log -----------------------------------------------------------------

    def get_audit_log(
        self,
        table: str | None = None,
        row_id: int | None = None,
        since: dt.datetime | str | None = None,
        limit: int = 100,
        actor: str | None = None,
        before_id: int | None = None,
    ) -> list[AuditEntry]:
        """Audit rows newest first: who changed which order, trade, position, strategy
        or setting, when, from what to what. Filter by ``table`` (``orders``,
        ``trades``, ``positions``, ``strategies``, ``config``) and ``row_id``,
        ``since`` (a time, inclusive) and ``actor``; page with ``before_id``, the last
        id of the previous page. See :mod:`stocksbot_store.audit`."""
        return get_audit_log(self.db, table, row_id, since, limit, actor, before_id)

    # -- helpers -------------------------------------------------------------------

    def _strategy_id(self, strategy: str | int | Strategy | None) -> int | None:
        if strategy is None or isinstance(strategy, Strategy):
            return None if strategy is None else strategy.id
        if isinstance(strategy, str):
            strategy_id = self.strategies.id_for_name(strategy)
            if strategy_id is None:
                raise NotFoundError(f"strategy {strategy!r} does not exist; create_strategy first")
            return strategy_id
        strategy_id = check_id(strategy, "strategy")
        if not self.strategies.exists(strategy_id):
            self.strategies.get(strategy_id)  # says whether it is deleted or absent
        return strategy_id

    # -- soft delete and restore ---------------------------------------------------------

    def delete_order(self, order_id: int) -> Order:
        """Soft-delete an order without fills; reads leave it out from then on and its
        broker id is free again. Refused (ValidationError) for an order with fills:
        its trades name it. :class:`NotFoundError` if there is no such live order."""
        return self._delete(self.orders, check_id(order_id, "order_id"))

    def restore_order(self, order_id: int) -> Order:
        """Bring back a deleted order; :class:`DuplicateError` if its broker id was given
        to another order since."""
        return self.orders.restore(check_id(order_id, "order_id"))

    def delete_position(self, position_id: int) -> Position:
        """Soft-delete a closed position (it leaves the lists; the ledger check still
        counts it). Refused (ValidationError) for an open one: close it first."""
        return self._delete(self.positions, check_id(position_id, "position_id"))

    def restore_position(self, position_id: int) -> Position:
        """Bring back a deleted position."""
        return self.positions.restore(check_id(position_id, "position_id"))

    def delete_strategy(self, strategy: str | int | Strategy) -> Strategy:
        """Soft-delete a strategy (a Strategy, its id or its name). Its trades and
        figures stay as they are and the fills of its orders still add to them; its
        name is free for a new strategy, and new orders cannot name it."""
        return self._delete(self.strategies, self._strategy_id(strategy))

    def restore_strategy(self, strategy_id: int) -> Strategy:
        """Bring back a deleted strategy (by id: a deleted name may be taken again);
        :class:`DuplicateError` if its name was given to another strategy since."""
        return self.strategies.restore(check_id(strategy_id, "strategy_id"))

    def delete_config(self, key: str) -> Config:
        """Soft-delete a setting: it reads as unset from then on. Refused for
        ``trading_enabled`` while it halts trading (unset means enabled)."""
        row = self.config.get_by_key(key)
        if row is None:
            raise NotFoundError(f"config {key!r} does not exist")
        return self._delete(self.config, row.id)

    def restore_config(self, key: str | int) -> Config:
        """Bring back a deleted setting, by key (its most recently deleted row) or id;
        :class:`DuplicateError` if the key was set again since."""
        return self.config.restore(key)

    def _delete(self, repository: Any, row_id: int | None) -> Any:
        # None (an unsaved Strategy given to delete_strategy) is refused by delete()'s check
        with write_transaction(self.db):
            if not repository.delete(row_id, deleted_by=self.actor):
                raise repository._missing(row_id)
            return repository.get(row_id, include_deleted=True)

    def get_deleted(self, kind: type[BaseModel], limit: int = 100) -> list[Any]:
        """Soft-deleted rows of ``kind`` (Order, Position, Strategy or Config), most
        recently deleted first."""
        repositories: dict[type[BaseModel], Repository[Any]] = {
            Order: self.orders,
            Position: self.positions,
            Strategy: self.strategies,
            Config: self.config,
        }
        if kind not in SOFT_DELETE_MODELS:
            raise ValidationError(
                "kind",
                f"{getattr(kind, '__name__', kind)} rows are never "
                "deleted; give Order, Position, Strategy or Config",
            )
        return repositories[kind].get_deleted(limit)

    # -- reconcile, marks and reports --------------------------------------------------

    def reconcile(
        self, positions: Any, open_orders: Any = None, *, apply: bool = False
    ) -> reconcile.ReconcileReport:
        """Compare the store with the broker's positions (``{symbol: signed quantity}``
        or objects with symbol/side/quantity/avg price) and open orders (broker ids);
        ``apply=True`` records ADJUSTMENT trades and closes the orders the broker no
        longer has, in one transaction. See :mod:`stocksbot_store.reconcile`."""
        return reconcile.reconcile(self, positions, open_orders, apply=apply)

    def last_reconcile(self) -> ReconcileRun | None:
        """The newest reconcile run kept (time, differences, applied or not)."""
        return reconcile.last_run(self)

    def record_marks(self, prices: Mapping[str, Price], at: When | None = None) -> int:
        """Keep market prices ``{symbol: price}`` observed ``at`` (default now) as each
        symbol's latest mark and its UTC day's closing mark."""
        return marks.record_marks(self.db, prices, at)

    def get_position_values(self) -> list[marks.PositionValue]:
        """Open positions with their unrealized P&L at the latest mark, else at the last
        fill price (``source`` says which) and the price's age."""
        return marks.position_values(self.db, self.get_open_positions())

    def pnl_by_period(
        self,
        period: str = "day",
        since: RangeBound | None = None,
        until: RangeBound | None = None,
        strategy: str | RowId | Strategy | None = None,
        symbol: str | None = None,
        tz: Zone | None = None,
    ) -> list[reports.PnlRow]:
        """Realized P&L, fees, trades, wins/losses and volume per day, week or month of
        ``tz`` (default UTC), from the figures fills keep. See
        :mod:`stocksbot_store.reports`."""
        return reports.pnl_by_period(
            self.db, period, since, until, self._strategy_id(strategy), symbol, tz
        )

    def pnl_by_symbol(
        self,
        since: RangeBound | None = None,
        until: RangeBound | None = None,
        strategy: str | RowId | Strategy | None = None,
        tz: Zone | None = None,
    ) -> list[reports.PnlRow]:
        """Realized P&L, fees, trades, wins/losses and volume per symbol."""
        return reports.pnl_by_symbol(self.db, since, until, self._strategy_id(strategy), tz)

    def equity_curve(
        self, since: RangeBound | None = None, until: RangeBound | None = None
    ) -> list[equity.EquityPoint]:
        """Per UTC day: realized P&L to date, fees, unrealized P&L at the day's closing
        marks, equity and drawdown. See :mod:`stocksbot_store.equity`."""
        return equity.equity_curve(self.db, since, until)


def _stats(s: Strategy) -> StrategyStats:
    with money_context():
        fees = s.commission + s.fees
        return StrategyStats(
            id=s.id,
            name=s.name,
            is_active=s.is_active,
            is_enabled=s.is_enabled,
            trades=s.total_trades,
            closing_trades=s.closing_trades,
            wins=s.winning_trades,
            losses=s.losing_trades,
            win_rate=s.win_rate,
            gross_pnl=s.total_pnl,
            fees=fees,
            net_pnl=s.total_pnl - fees,
            gross_profit=s.gross_profit,
            gross_loss=s.gross_loss,
            profit_factor=_profit_factor(s.gross_profit, s.gross_loss),
            max_drawdown=s.max_drawdown,
            last_trade_at=s.last_trade_at,
        )


def _profit_factor(gross_profit: Decimal, gross_loss: Decimal) -> Decimal | None:
    if not gross_loss:
        return None
    try:
        ratio = gross_profit / gross_loss
        return Decimal("Infinity") if ratio >= MAX_MAGNITUDE else ratio.quantize(Decimal("0.0001"))
    except ArithmeticError:  # figures written around the store (NaN, beyond any limit)
        return Decimal("NaN")


__all__ = [
    "FILL_KEYS",
    "TRADING_ENABLED",
    "ImportSummary",
    "StorageService",
    "StrategyStats",
]
