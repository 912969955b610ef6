"""The report of an adoption (``migrate adopt``): what it printed and what it keeps.

:class:`AdoptionReport` collects, while :mod:`stocksbot_store.adopt_convert` works,
the rows per table, every figure that changed (old value, new value, why) and every
row handled by one of the :data:`RULES`; :meth:`AdoptionReport.format` prints it and
the tables ``adoption_report`` and ``adoption_change`` keep it in the database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from peewee import AutoField, CharField, IntegerField, Model, TextField

from .errors import MigrationError
from .fields import UTCDateTimeField, tidy, utcnow
from .legacy import REPORT_TABLES

#: Changes printed per kind unless the full report is asked for.
SHOWN = 20

#: How rows that this store's rules do not allow are handled (also in the README).
RULES = {
    "orphan": "a trade whose order does not exist is kept, without an order: its order_id "
    "becomes empty and it is an ADJUSTMENT trade (the missing id is in the report)",
    "mismatch": "a trade whose symbol or side differs from its order's is kept, without "
    "an order, as an ADJUSTMENT trade",
    "duplicate": "of several rows with one external id, the lowest id keeps it; the later "
    "ones keep their rows and figures, their external_id becomes empty",
    "strategy": "an order naming a strategy that does not exist loses the link (as deleting "
    "a strategy does in this store); its trades count for no strategy",
    "overfill": "an order whose trades fill more than its quantity gets the filled "
    "quantity as its quantity",
    "unfilled": "an order the old row calls filled or partially filled beyond what its "
    "trades fill stays open (or partially filled) for the rest",
    "adjustment": "--positions as-stored: where the replay of a symbol's trades does not "
    "give the open position the old bot held, ADJUSTMENT trades (at the "
    "average price, so they realize nothing) bring the book to it",
    "position": "positions are rebuilt from the trades (and adjustments); an open position "
    "keeps the id of the old open row of its symbol, the old rows' figures are "
    "in the report and in the backup",
}


class AdoptionError(MigrationError):
    """The old database cannot be adopted as it is; nothing was changed."""


class AdoptionReportRow(Model):
    """One adoption: when, from what, with which options, and its printed summary."""

    id = AutoField()
    adopted_at = UTCDateTimeField()
    source = CharField(max_length=500)
    backup = TextField(null=True)
    time_zone = CharField(max_length=100)
    positions = CharField(max_length=20)
    counts = TextField()
    summary = TextField()

    class Meta:
        table_name = REPORT_TABLES[0]


class AdoptionChange(Model):
    """One figure an adoption changed, or one row it handled by a rule."""

    id = AutoField()
    adoption = IntegerField()
    kind = CharField(max_length=20)
    table_name = CharField(max_length=20)
    row_id = IntegerField(null=True)
    field = CharField(max_length=40)
    old = TextField(null=True)
    new = TextField(null=True)
    why = TextField()

    class Meta:
        table_name = REPORT_TABLES[1]


REPORT_MODELS = [AdoptionReportRow, AdoptionChange]


@dataclass
class AdoptionReport:
    """What an adoption did (or, dry, would do)."""

    database: str
    time_zone: str
    positions: str
    dry_run: bool
    backup: str | None = None
    adopted_at: dt.datetime = field(default_factory=utcnow)
    #: table -> (rows in the old table, rows in this store's table)
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: (kind, table, row id, field, old, new, why)
    changes: list[tuple] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: (table, field) -> [rows, first id, last id]: figures the old module left empty
    #: and the replay filled in (the new values are in the rows themselves).
    filled_in: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def fill_in(self, table: str, name: str, row_id: int) -> None:
        """Count one figure the old module left empty and the replay filled in."""
        found = self.filled_in.get((table, name))
        if found is None:
            self.filled_in[(table, name)] = [1, row_id, row_id]
        else:
            found[0] += 1
            found[2] = row_id

    def filled_in_changes(self) -> list[tuple]:
        """The filled-in figures as report rows, one per table and field."""
        return [
            (
                "filled in",
                table,
                None,
                name,
                None,
                f"{count:,} rows",
                f"ids {first} to {last}: {_FILLED_IN.get(name, '')}",
            )
            for (table, name), (count, first, last) in self.filled_in.items()
        ]

    def change(
        self, kind: str, table: str, row_id: int | None, name: str, old: Any, new: Any, why: str
    ) -> None:
        """Record one changed figure or handled row."""
        self.changes.append((kind, table, row_id, name, _text(old), _text(new), why))

    def by_kind(self) -> dict[str, list[tuple]]:
        """The changes grouped by kind, in a stable order."""
        groups: dict[str, list[tuple]] = {}
        for change in self.changes:
            groups.setdefault(change[0], []).append(change)
        return groups

    def format(self, full: bool = False) -> str:
        """The report as printed: counts, notes, and the changes by kind (the first
        :data:`SHOWN` of each unless ``full``)."""
        verb = "would adopt (dry run: nothing written)" if self.dry_run else "adopted"
        lines = [
            f"{verb}: {self.database}",
            f"times: naive times stamped by the bot read in {self.time_zone}, stored as UTC",
            f"positions: {self.positions}",
        ]
        if self.backup:
            lines.append(f"backup: {self.backup}")
        lines.append("rows (old -> now):")
        for table, (old, new) in self.counts.items():
            lines.append(f"  {table}: {old:,} -> {new:,}")
        lines += [f"note: {note}" for note in self.notes]
        groups = self.by_kind()
        lines.append(f"changes: {len(self.changes):,}" + ("" if self.changes else " (none)"))
        if self.filled_in:
            lines.append("\nfilled in: figures the old module left empty, now in the rows")
            for _, table, _, name, _, new, why in self.filled_in_changes():
                lines.append(f"  {table} {name}: {new}, {why}")
        for kind, found in groups.items():
            lines.append(f"\n{kind} ({len(found):,}): {RULES.get(kind, _WHY.get(kind, ''))}")
            for _, table, row_id, name, old, new, why in found[: None if full else SHOWN]:
                lines.append(f"  {table} {row_id} {name}: {old} -> {new} ({why})")
            if not full and len(found) > SHOWN:
                where = (
                    "run again with --full to list them"
                    if self.dry_run
                    else f"all are in the table {REPORT_TABLES[1]}, or use --full"
                )
                lines.append(f"  ... and {len(found) - SHOWN:,} more: {where}")
        return "\n".join(lines)


_FILLED_IN = {
    "realized_pnl": "closing trades the old module recorded without P&L, given the P&L of "
    "the replay",
    "fill state": "orders the old module never updated (pending, nothing filled), given "
    "the status, filled quantity and average price of their trades",
}

_WHY = {
    "figure": "figures this store derives from the trades, recomputed by its rules",
    "time": "times that could not be kept as they were",
    "config": "config rows this store reads differently",
}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return str(tidy(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(" ")
    return str(value)
