"""Rows written in the same transaction as a fill, beside its trade, order, position
and strategy.

Today these are the figures reports keep on write (:mod:`stocksbot_store.buckets`)
and the fill's audit rows (:mod:`stocksbot_store.audit`, written from the values the
fill path already holds, with the audit log's own statement). Anything else a fill
must write atomically with itself goes here, in both methods, so the single and the
bulk path keep writing the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from peewee import Database

from .. import ledger
from ..audit import AuditWriter, IdInDatabase
from ..buckets import KeptFigures
from .rows import CheckedFill
from .updates import columns, update_sql

#: ``(fill, its trade's id, its strategy's id, what it did to the book)``.
Applied = tuple[CheckedFill, int, "int | None", ledger.FillOutcome]
#: Runs one statement with its parameters in the fill's transaction.
Execute = Callable[[str, Sequence], Any]


class Before(NamedTuple):
    """What one fill's order, position and strategy held before it (for the audit
    log): the order's ``(filled, avg, status)``, the symbol's open position, the
    strategy's figures (None when there was none)."""

    order: tuple | None
    position: ledger.PositionState | None
    figures: ledger.StrategyFigures | None


class BatchBefore(NamedTuple):
    """What a batch's orders, positions and strategies held before it, by id, and the
    ids its new positions (numbered -1, -2, ...) were given."""

    orders: dict[int, tuple]
    positions: dict[int, ledger.PositionState]
    figures: dict[int, ledger.StrategyFigures]
    position_ids: list[int]


def order_before(order: ledger.OrderState) -> tuple:
    """What the audit log compares an order's fill figures with: ``(filled, avg,
    status)`` before the fill."""
    return order.filled, order.avg, order.status


class Alongside:
    """Writes the rows that go with fills, inside the caller's fill transaction."""

    def __init__(self, db: Database, backend: str, actor: str | None = None) -> None:
        self.db = db
        self.pg = backend == "postgres"
        self.kept = KeptFigures(db, backend)
        #: Writes each fill's audit rows as ``actor``.
        self.audit = AuditWriter(db, actor)

    def one(
        self,
        execute: Execute,
        fill: CheckedFill,
        stamp: str,
        trade_id: int | IdInDatabase,
        trade: tuple,
        order: ledger.OrderState | None,
        strategy_id: int | None,
        figures: ledger.StrategyFigures | None,
        outcome: ledger.FillOutcome,
        before: Before,
    ) -> None:
        """After one fill's trade (its id, or the SQL that gives it, and its
        ``insert_trade`` parameters ``trade``), order, positions (ids given likewise) and
        strategy (``figures`` after it, None if it has none) were written (or queued
        before these rows); ``execute(sql, params)`` runs a statement in the fill's
        transaction."""
        self.kept.add(fill, strategy_id, outcome, execute)
        self.audit.fill(
            stamp,
            trade_id,
            trade,
            order,
            before.order,  # type: ignore[arg-type]  # None only with no order
            before.position,
            outcome.touched,
            strategy_id,
            before.figures,
            figures,
            execute,
        )

    def many(
        self,
        cursor: Any,
        applied: Sequence[Applied],
        stamp: str,
        trades: list[tuple],
        trade_ids: list[int],
        orders: dict[int, ledger.OrderState],
        positions: dict[int, ledger.PositionState],
        figures: dict[int, ledger.StrategyFigures],
        before: BatchBefore,
    ) -> None:
        """After a batch's rows were written; ``applied`` in the order the fills were
        applied (new trades only, not re-sent ones); ``trades`` their ``insert_trade``
        parameters and ids; ``orders``, ``positions`` and ``figures`` as the batch
        left them."""

        def add_buckets(rows: list[tuple]) -> None:
            # PostgreSQL: one statement of arrays, not one per bucket (see .updates).
            cursor.execute(update_sql(self.db, "add_buckets"), columns(rows), prepare=False)

        self.kept.add_many(
            cursor,
            ((fill, strategy_id, outcome) for fill, _, strategy_id, outcome in applied),
            add_buckets if self.pg else None,
        )
        self.audit.fill_batch(
            cursor,
            stamp,
            trades,
            trade_ids,
            before.orders,
            orders,
            before.positions,
            positions,
            before.position_ids,
            before.figures,
            figures,
        )
