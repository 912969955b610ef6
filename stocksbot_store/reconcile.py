"""Reconcile the store with the broker: what differs, and (when asked) the fix.

A bot calls it on start, after recording the fills it missed
(:meth:`StorageService.record_trades`; re-sent ones change nothing):
``storage.reconcile(broker_positions, broker_open_orders, apply=True)``.

Positions: the broker's view is complete, so a symbol the store has open and the
broker does not list is a difference (the broker holds 0). Each difference of
quantity is recorded, when applied, as one ADJUSTMENT trade (a fill without an order,
through the store's own fill rules) at the broker's average price when given, else
the store's average entry, else the symbol's latest mark or last fill price.

Orders: a live order of the store (pending, open or partially filled) that has a
broker id the broker no longer lists is moved to its final status: filled if its
fills fill it, else cancelled. A broker order the store does not know, or has as
final, is reported for a person to look at and never changed.

Every run is kept (:class:`~stocksbot_store.models.ReconcileRun`) so the dashboard
shows the last one. Applying is one transaction: all of it or nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from .database import write_transaction
from .errors import ValidationError
from .fields import in_money_context, tidy, to_decimal, utcnow
from .fills import Fill
from .marks import last_fill, latest_marks
from .models import Order, OrderStatusEnum, PositionSideEnum, ReconcileRun, Trade
from .validation import check_external_id, check_symbol

if TYPE_CHECKING:
    from .service import StorageService

_LIVE = (OrderStatusEnum.PENDING, OrderStatusEnum.OPEN, OrderStatusEnum.PARTIALLY_FILLED)
_SHORT = (PositionSideEnum.SHORT, PositionSideEnum.SHORT.value, "sell")


@dataclass(frozen=True)
class Difference:
    """One place where the store and the broker disagree."""

    #: ``"position"`` or ``"order"``.
    kind: str
    #: The symbol, or the order's broker id.
    subject: str
    store: str
    broker: str
    #: Broker minus store, signed (positions only).
    quantity: Decimal | None
    #: What reconcile does about it when applied (or what a person should do).
    action: str

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.subject}: store {self.store}, broker {self.broker}: {self.action}"
        )


@dataclass
class ReconcileReport:
    """What :func:`reconcile` found, and what it wrote when ``applied``."""

    at: dt.datetime
    applied: bool
    differences: list[Difference] = field(default_factory=list)
    #: ADJUSTMENT trades recorded (when applied).
    trades: list[Trade] = field(default_factory=list)
    #: Orders moved to a final status (when applied).
    orders: list[Order] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the store and the broker agree."""
        return not self.differences

    def format(self) -> str:
        """One line per difference (``nothing to do`` when none)."""
        if self.ok:
            return "store and broker agree: nothing to do"
        return "\n".join(str(d) for d in self.differences)


def _field(item: Any, *names: str) -> Any:
    for name in names:
        if isinstance(item, Mapping) and name in item:
            return item[name]
        if hasattr(item, name):
            return getattr(item, name)
    return None


def broker_positions(positions: Any) -> dict[str, tuple[Decimal, Decimal | None]]:
    """``{symbol: (signed quantity, average price or None)}`` from ``{symbol: signed
    quantity}``, ``{symbol: object}`` or objects with symbol/side/quantity/avg price."""
    items: Iterable[tuple[Any, Any]]
    if isinstance(positions, Mapping):
        items = positions.items()
    else:
        items = ((_field(p, "symbol"), p) for p in positions)
    found: dict[str, tuple[Decimal, Decimal | None]] = {}
    for symbol, value in items:
        symbol = check_symbol(symbol)
        if isinstance(value, (int, float, str, Decimal)) and not isinstance(value, bool):
            quantity, avg = to_decimal(value, f"{symbol} quantity"), None
        else:
            quantity = to_decimal(_field(value, "quantity", "qty"), f"{symbol} quantity")
            side = _field(value, "side")
            if side is not None and str(getattr(side, "value", side)).lower() in _SHORT:
                quantity = -abs(quantity)
            price = _field(value, "avg_price", "avg_entry_price", "average_price")
            avg = None if price is None else to_decimal(price, f"{symbol} avg_price")
        if symbol in found:
            raise ValidationError("positions", f"{symbol} is listed twice")
        found[symbol] = (quantity, avg)
    return found


def broker_order_ids(open_orders: Any) -> set[str]:
    """The broker ids of ``open_orders``: ids, a mapping keyed by id, or objects with
    ``external_id`` / ``id``."""
    items = open_orders.keys() if isinstance(open_orders, Mapping) else open_orders
    ids = set()
    for item in items:
        value = item if isinstance(item, (str, int)) else _field(item, "external_id", "id")
        checked = check_external_id(value, "open_orders")
        if checked is None:
            raise ValidationError("open_orders", "an open order has no broker id")
        ids.add(checked)
    return ids


def _describe(quantity: Decimal, avg: Decimal | None) -> str:
    if not quantity:
        return "flat"
    side = "long" if quantity > 0 else "short"
    price = "" if avg is None else f" @ {tidy(avg)}"
    return f"{side} {tidy(abs(quantity))}{price}"


@in_money_context
def reconcile(
    storage: StorageService, positions: Any, open_orders: Any = None, *, apply: bool = False
) -> ReconcileReport:
    """Compare the store with the broker's ``positions`` and ``open_orders``; with
    ``apply`` record the fixes. See the module docstring."""
    broker = broker_positions(positions)
    broker_ids = None if open_orders is None else broker_order_ids(open_orders)
    db = storage.db
    report = ReconcileReport(utcnow(), apply)
    with write_transaction(db):
        fixes: list[Fill] = []
        store = {
            p.symbol: (
                p.quantity if p.side == PositionSideEnum.LONG else -p.quantity,
                p.avg_entry_price,
            )
            for p in storage.get_open_positions()
        }
        marks = None
        for symbol in sorted(set(store) | set(broker)):
            have, have_avg = store.get(symbol, (Decimal(0), None))
            want, want_avg = broker.get(symbol, (Decimal(0), None))
            change = want - have
            if not change:
                continue
            price = want_avg if want_avg is not None else have_avg
            if price is None:
                marks = latest_marks(db) if marks is None else marks
                found = marks.get(symbol) or last_fill(db, symbol)
                if found is None:
                    raise ValidationError(
                        "positions",
                        f"the broker holds {symbol}, which the "
                        "store has never traded: give its average price",
                    )
                price = found[0]
            side = "buy" if change > 0 else "sell"
            report.differences.append(
                Difference(
                    "position",
                    symbol,
                    _describe(have, have_avg),
                    _describe(want, want_avg),
                    change,
                    f"record an adjustment: {side} {tidy(abs(change))} @ {tidy(price)}",
                )
            )
            fixes.append(Fill(None, symbol, side, abs(change), price))
        moves: list[tuple[int, OrderStatusEnum]] = []
        if broker_ids is not None:
            moves = _order_differences(storage, broker_ids, report)
        if apply:
            for fix in fixes:
                report.trades.append(storage._fills.record(fix))
            for order_id, status in moves:
                moved = storage.update_order_status(order_id, status)
                assert moved is not None  # read under this transaction's lock: it exists
                report.orders.append(moved)
        ReconcileRun.insert(
            ran_at=report.at,
            applied=apply,
            difference_count=len(report.differences),
            differences=[_as_json(d) for d in report.differences],
        ).execute(db)
    return report


def _order_differences(
    storage: StorageService, broker_ids: set[str], report: ReconcileReport
) -> list[tuple[int, OrderStatusEnum]]:
    moves = []
    order: Order | None
    # Soft-deleted orders are not the store's any more: neither closed nor matched.
    live = (
        Order.select()
        .where(
            Order.status.in_(_LIVE), Order.external_id.is_null(False), Order.deleted_at.is_null()
        )
        .order_by(Order.id)
        .bind(storage.db)
    )
    for order in live:
        if order.external_id in broker_ids:
            continue
        final = (
            OrderStatusEnum.FILLED
            if order.filled_quantity == order.quantity
            else OrderStatusEnum.CANCELLED
        )
        report.differences.append(
            Difference(
                "order",
                cast(str, order.external_id),  # not null: selected so
                f"{order.status.value}, {tidy(order.filled_quantity)} of "
                f"{tidy(order.quantity)} filled",
                "not open",
                None,
                f"mark it {final.value}",
            )
        )
        moves.append((order.id, final))
    known = (
        {
            o.external_id: o
            for o in Order.select()
            .where(Order.external_id.in_(sorted(broker_ids)), Order.deleted_at.is_null())
            .bind(storage.db)
        }
        if broker_ids
        else {}
    )
    for external_id in sorted(broker_ids):
        order = known.get(external_id)
        if order is not None and order.status in _LIVE:
            continue
        have = "no such order" if order is None else order.status.value
        report.differences.append(
            Difference(
                "order",
                external_id,
                have,
                "open",
                None,
                "none: look at it (create_order / attach_external_id if the bot sent it)",
            )
        )
    return moves


def _as_json(difference: Difference) -> dict[str, Any]:
    values = asdict(difference)
    if values["quantity"] is not None:
        values["quantity"] = str(tidy(values["quantity"]))
    return values


def last_run(storage: StorageService) -> ReconcileRun | None:
    """The newest kept reconcile run, or None."""
    return ReconcileRun.select().order_by(ReconcileRun.id.desc()).limit(1).bind(storage.db).first()


__all__ = [
    "Difference",
    "ReconcileReport",
    "broker_order_ids",
    "broker_positions",
    "last_run",
    "reconcile",
]
