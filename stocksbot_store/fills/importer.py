"""Importing any number of fills in batches, with memory that does not grow with them.

:meth:`StorageService.record_trades <stocksbot_store.StorageService.record_trades>`
records one list in one transaction and returns every trade: right for a
reconnect's few dozen fills, not for a broker history of millions, whose trades
alone take about 3.4 KB each. :func:`import_fills` reads the fills from any
iterable (a generator is never turned into a list), records each batch of
``batch_size`` through the same bulk path (:mod:`.bulk`) and keeps only counts:
what stays in memory is one batch, whatever the number of fills.

Each batch is its own transaction. A fill the store refuses stops the import with
:class:`ImportStoppedError`, which says which fill (its index in the iterable,
from 0) was refused and why, and what was stored before it (every earlier batch,
nothing of the refused fill's batch). Running the same import again is safe when
the fills carry the broker's ids: fills stored already change nothing and are
counted as ``resent``. Without broker ids, resume from
``error.stored.fills`` instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import MISSING, dataclass, fields
from typing import Any

from peewee import fn

from ..backends import read_transaction
from ..database import write_transaction
from ..errors import (
    CommitUnknownError,
    ConfigurationError,
    DatabaseUnavailableError,
    DatabaseWriteError,
    ImportCommitUnknownError,
    ImportInterruptedError,
    ImportStoppedError,
    SchemaError,
    StorageError,
    ValidationError,
)
from ..models import Trade
from .recorder import FillRecorder
from .rows import CheckedFill, Fill, check_fill, check_fill_values

#: What a fill given as a dict may hold: the fields of :class:`Fill`.
FILL_KEYS = tuple(f.name for f in fields(Fill))
_FILL_REQUIRED = tuple(f.name for f in fields(Fill) if f.default is MISSING)
_ACCEPTED_KEYS, _REQUIRED_KEYS = frozenset(FILL_KEYS), frozenset(_FILL_REQUIRED)

#: Fills per transaction by default: large enough that a batch's dozen statements
#: cost little per fill, small enough that a batch's objects stay a few MB.
BATCH_SIZE = 5_000
#: Errors that are about the database, not about a fill: no fill is to blame.
_NOT_A_FILL = (DatabaseUnavailableError, DatabaseWriteError, SchemaError, ConfigurationError)


@dataclass(frozen=True)
class ImportSummary:
    """What an import stored (so far, when a progress callback or an error gives it)."""

    #: Fills read and stored: where a stopped import resumes (an index of the fills).
    fills: int = 0
    #: New trades written.
    recorded: int = 0
    #: Fills whose broker id was stored already (earlier, or earlier in the import):
    #: they changed nothing. Told apart from new trades by id (a batch's new trades
    #: take ids above every trade stored before it), so the split is exact unless
    #: another writer stores one of a batch's broker ids while the batch starts.
    resent: int = 0
    #: Batches committed, each its own transaction.
    batches: int = 0
    #: Ids of the first and last new trade (None while none was written); trades other
    #: writers record meanwhile may take ids between them.
    first_trade_id: int | None = None
    last_trade_id: int | None = None

    def describe(self) -> str:
        """``10,000 fills in 2 batches (9,990 new trades 1-9,990, 10 re-sent)``."""
        batches = "batch" if self.batches == 1 else "batches"
        text = f"{self.fills:,} fills in {self.batches:,} {batches} ({self.recorded:,} new trades"
        if self.first_trade_id is not None:
            text += f" {self.first_trade_id}-{self.last_trade_id}"
        return text + f", {self.resent:,} re-sent)"


Progress = Callable[[ImportSummary], None]


def fill_fields(values: Any, index: int) -> dict[str, Any]:
    """``values`` if it is a dict of a :class:`Fill`'s fields; a typo or a missing
    field is a ValidationError naming it and the accepted keys (nothing is written)."""
    if isinstance(values, dict) and _REQUIRED_KEYS <= values.keys() <= _ACCEPTED_KEYS:
        return values
    if not isinstance(values, dict):
        raise ValidationError(
            "fills", f"fill {index} must be a Fill or a dict, got {type(values).__name__}"
        )
    accepted = ", ".join(FILL_KEYS)
    unknown = sorted(str(k) for k in values if k not in FILL_KEYS)
    if unknown:
        raise ValidationError(
            unknown[0],
            f"fill {index} has unknown key(s) {', '.join(unknown)}; accepted: {accepted}",
        )
    missing = [k for k in _FILL_REQUIRED if k not in values]
    if missing:
        raise ValidationError(
            missing[0], f"fill {index} lacks {', '.join(missing)}; accepted: {accepted}"
        )
    return values  # pragma: no cover - the keys were fine after all


def checked_fill(fill: Fill | dict[str, Any], index: int) -> CheckedFill:
    """Fill number ``index`` (a :class:`Fill` or a dict of its fields) checked, as the
    bulk path takes it; a dict's values are checked as they are, no Fill is built."""
    if isinstance(fill, Fill):
        order_id = fill.order_id
    else:
        order_id = fill_fields(fill, index).get("order_id")
    if order_id is None:
        raise ValidationError("order_id", "a fill needs its order; create_order first")
    return check_fill(fill) if isinstance(fill, Fill) else check_fill_values(**fill)


def import_fills(
    recorder: FillRecorder,
    fills: Iterable[Fill | dict[str, Any]],
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> ImportSummary:
    """Record ``fills`` in batches of ``batch_size``, each its own transaction, reading
    them as it goes; the summary of what was stored. ``progress(summary)`` is called
    after each batch is committed. See the module docstring for what an error leaves."""
    if type(batch_size) is not int or batch_size < 1:
        raise ValidationError("batch_size", f"must be a positive int, got {batch_size!r}")
    summary = ImportSummary()
    source: Iterator[Fill | dict[str, Any]] = iter(fills)
    while True:
        start = summary.fills
        batch: list[CheckedFill] = []
        for index, fill in enumerate(itertools.islice(source, batch_size), start):
            try:
                batch.append(checked_fill(fill, index))
            except StorageError as e:
                raise _stopped(summary, index, e) from e
        if not batch:
            return summary
        summary = _record_batch(recorder, batch, summary)
        del batch
        if progress is not None:
            progress(summary)


def _record_batch(
    recorder: FillRecorder, batch: list[CheckedFill], before: ImportSummary
) -> ImportSummary:
    """Record one batch; the summary with it added. Only the new trades' ids are
    kept of the trades it returns."""
    db = recorder.db
    # Trades stored before the batch have ids up to this; the batch's new trades take
    # larger ones (see ImportSummary.resent for the one case it cannot tell). Read on
    # the primary: a replica may not have replayed another writer's trades yet.
    with read_transaction(db):
        newest = Trade.select(fn.MAX(Trade.id)).bind(db).scalar() or 0
    try:
        trades = recorder.record_checked(batch)
    except StorageError as e:
        refused = None if isinstance(e, _NOT_A_FILL) else _first_refused(recorder, batch)
        raise _stopped(before, None if refused is None else before.fills + refused, e) from e
    new_ids = {t.id for t in trades if t.id > newest}
    del trades
    first, last = before.first_trade_id, before.last_trade_id
    if new_ids:
        first = min(new_ids) if first is None else first
        last = max(new_ids)
    return ImportSummary(
        before.fills + len(batch),
        before.recorded + len(new_ids),
        before.resent + len(batch) - len(new_ids),
        before.batches + 1,
        first,
        last,
    )


class _Undo(Exception):
    """Raised to roll back a trial batch that went through."""


def _first_refused(recorder: FillRecorder, batch: list[CheckedFill]) -> int | None:
    """Index in ``batch`` of the fill the bulk path refuses (it checks the fills in
    order and stops at the first bad one, so a prefix fails exactly when it holds
    it): found by bisection, recording prefixes in transactions rolled back. None if
    the database fails meanwhile (the batch's error is reported then, without an
    index)."""
    good, bad = 0, len(batch)  # batch[:good] goes through, batch[:bad] is refused
    while bad - good > 1:
        middle = (good + bad) // 2
        try:
            with write_transaction(recorder.db):
                recorder.record_checked(batch[:middle])
                raise _Undo
        except _Undo:
            good = middle
        except _NOT_A_FILL:
            return None
        except StorageError:
            bad = middle
    return bad - 1


def _stopped(stored: ImportSummary, index: int | None, error: StorageError) -> ImportStoppedError:
    """The error that stops an import after ``stored``, at fill ``index``."""
    batch = stored.batches + 1
    if index is None:
        what = f"batch {batch} (from fill {stored.fills}) failed: {error}."
        if isinstance(error, CommitUnknownError):
            what += f" Batch {batch} may or may not be stored."
        else:
            what += f" Nothing of batch {batch} was stored."
    else:
        what = (
            f"fill {index} (counting from 0, in batch {batch}) was refused: {error}. "
            f"Nothing of batch {batch} was stored."
        )
    message = (
        f"import stopped: {what} Stored before it, each batch its own transaction: "
        f"{stored.describe()}. Run the import again once the cause is fixed: fills whose "
        f"broker id (external_id) is stored change nothing; without broker ids, resume "
        f"from fill {stored.fills}."
    )
    if isinstance(error, CommitUnknownError):
        return ImportCommitUnknownError(message, stored, index, error)
    if isinstance(error, DatabaseUnavailableError):
        return ImportInterruptedError(message, stored, index, error)
    return ImportStoppedError(message, stored, index, error)


__all__ = [
    "BATCH_SIZE",
    "FILL_KEYS",
    "ImportSummary",
    "checked_fill",
    "import_fills",
]
