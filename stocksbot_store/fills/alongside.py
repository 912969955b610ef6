"""Rows written in the same transaction as a fill, beside its trade, order, position
and strategy.

Today these are the figures reports keep on write (:mod:`stocksbot_store.buckets`).
Anything else a fill must write atomically with itself goes here, in both methods,
so the single and the bulk path keep writing the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from peewee import Database

from .. import ledger
from ..buckets import KeptFigures
from .rows import CheckedFill

#: ``(fill, its trade's id, its strategy's id, what it did to the book)``.
Applied = tuple[CheckedFill, int, "int | None", ledger.FillOutcome]
#: Runs one statement with its parameters in the fill's transaction.
Execute = Callable[[str, Sequence], Any]


class Alongside:
    """Writes the rows that go with fills, inside the caller's fill transaction."""

    def __init__(self, db: Database, backend: str) -> None:
        self.kept = KeptFigures(db, backend)

    def one(self, execute: Execute, fill: CheckedFill, trade_id: int,
            strategy_id: int | None, outcome: ledger.FillOutcome) -> None:
        """After one fill's trade, order, position and strategy were written;
        ``execute(sql, params)`` runs a statement in the fill's transaction."""
        self.kept.add(fill, strategy_id, outcome, execute)

    def many(self, cursor: Any, applied: Sequence[Applied]) -> None:
        """After a batch's rows were written; ``applied`` in the order the fills were
        applied (new trades only, not re-sent ones)."""
        self.kept.add_many(cursor, [(fill, strategy_id, outcome)
                                    for fill, _, strategy_id, outcome in applied])
