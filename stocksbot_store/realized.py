"""Realized P&L for an accountant: one row per closing trade, and a yearly summary.

The store keeps its books by **average cost** (:mod:`stocksbot_store.ledger`); this
module replays the same trades, in the same order, with the same rules, and adds
what a tax report needs. It offers two methods, named in every row:

* ``average`` ("average cost"): the figures of the store's books. Gross P&L is the
  trade's realized P&L as the ledger computes it.
* ``fifo`` ("FIFO"): the same trades, with each close matched against the oldest
  open lots first.

Per closing trade: symbol, the side of the position closed, quantity closed, the
date(s) the closed lots were opened (``2026-01-02``, or ``first..last`` when they
span several days; lots are taken oldest first under both methods, which is also
how the holding period of average-cost shares is counted), the closing date,
proceeds, cost basis, gross P&L (proceeds less cost basis), fees and net P&L.
For a long position proceeds are what the sale brought and cost basis what the
lots cost; for a short one proceeds are what the short sale brought and cost basis
what covering it cost. Fees are the closing trade's commission and fees plus the
share of the opening trades' commission and fees that belongs to the quantity
closed (pro rata of the position under average cost, of each lot under FIFO), so
over a history that ends flat the net P&L of all rows is the realized P&L less
every fee paid. A flip (one trade closing a position and opening the other side)
charges its own fees to the close, as the books do.

Everything is exact (decimals in the store's money context, rounded half-even to
10 places only where an amount is divided). Trades are read in keyset-paged
batches inside one snapshot: memory grows with the number of open lots, not with
the history.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from peewee import Database

from . import ledger
from .backends import read_transaction
from .errors import translate_path_errors
from .fields import money_context, quantize, tidy
from .models import ZERO, Trade
from .rows import Progress, canonical_batches, count_rows, describe_model, restrict

METHODS = {"average": "average cost", "fifo": "FIFO"}

_COLUMNS = ("id", "symbol", "side", "quantity", "price", "commission", "fees", "executed_at")

ROW_HEADER = (
    "method",
    "trade_id",
    "symbol",
    "side",
    "quantity",
    "opened",
    "closed",
    "proceeds",
    "cost_basis",
    "gross_pnl",
    "fees",
    "net_pnl",
)
YEAR_HEADER = (
    "method",
    "year",
    "symbol",
    "closing_trades",
    "quantity",
    "proceeds",
    "cost_basis",
    "gross_pnl",
    "fees",
    "net_pnl",
)


@dataclass(frozen=True)
class RealizedRow:
    """One closing trade's realized figures by one method."""

    method: str
    trade_id: int
    symbol: str
    #: Side of the position the trade closed (long or short).
    side: str
    quantity: Decimal
    opened: str
    closed: dt.date
    proceeds: Decimal
    cost_basis: Decimal
    gross_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal

    def cells(self) -> list[str]:
        """The row as CSV cells, decimals exact and without trailing zeros."""
        return [
            METHODS[self.method],
            str(self.trade_id),
            self.symbol,
            self.side,
            _text(self.quantity),
            self.opened,
            self.closed.isoformat(),
            *(
                _text(v)
                for v in (self.proceeds, self.cost_basis, self.gross_pnl, self.fees, self.net_pnl)
            ),
        ]


@dataclass
class YearRow:
    """A symbol's realized figures over one calendar year (UTC) by one method."""

    method: str
    year: int
    symbol: str
    closing_trades: int = 0
    quantity: Decimal = ZERO
    proceeds: Decimal = ZERO
    cost_basis: Decimal = ZERO
    gross_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    net_pnl: Decimal = ZERO

    def add(self, row: RealizedRow) -> None:
        """Count one closing trade."""
        self.closing_trades += 1
        self.quantity += row.quantity
        self.proceeds += row.proceeds
        self.cost_basis += row.cost_basis
        self.gross_pnl += row.gross_pnl
        self.fees += row.fees
        self.net_pnl += row.net_pnl

    def cells(self) -> list[str]:
        """The row as CSV cells."""
        return [
            METHODS[self.method],
            str(self.year),
            self.symbol,
            str(self.closing_trades),
            *(
                _text(v)
                for v in (
                    self.quantity,
                    self.proceeds,
                    self.cost_basis,
                    self.gross_pnl,
                    self.fees,
                    self.net_pnl,
                )
            ),
        ]


def _text(value: Decimal) -> str:
    return format(tidy(value), "f")


@dataclass
class _Lot:
    quantity: Decimal
    price: Decimal
    opened_at: dt.datetime
    fees: Decimal


@dataclass
class _Book:
    position: ledger.PositionState | None = None
    lots: deque[_Lot] = field(default_factory=deque)
    #: Opening fees of the open position not yet charged to a close (average cost).
    pool: Decimal = ZERO


def realized_report(
    db: Database, method: str = "average", progress: Progress | None = None
) -> Iterator[RealizedRow]:
    """Every closing trade of ``db`` with its realized figures by ``method``
    (``average`` or ``fifo``), in trade order; see the module docstring."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use {' or '.join(METHODS)}")
    table = restrict(describe_model(Trade), _COLUMNS)
    books: dict[str, _Book] = {}
    with read_transaction(db):
        total, done = count_rows(db, table.name), 0
        for batch in canonical_batches(db, table):
            for row in batch:
                result = _replay(books, method, *row)
                if result is not None:
                    yield result
            done += len(batch)
            if progress is not None:
                progress("trades", done, total)


def _replay(
    books: dict[str, _Book],
    method: str,
    trade_id: int,
    symbol: str,
    side: str,
    quantity: str,
    price: str,
    commission: str,
    fees: str,
    executed_at: str,
) -> RealizedRow | None:
    q, p = Decimal(quantity), Decimal(price)
    fee = Decimal(commission) + Decimal(fees)
    at = dt.datetime.fromisoformat(executed_at)
    book = books.setdefault(symbol, _Book())
    before = book.position
    with money_context():  # the ledger computes in the store's context, as the books did
        outcome = ledger.apply_fill(
            before, symbol, side, q, p, Decimal(commission), Decimal(fees), at
        )
    book.position = outcome.open_position
    if outcome.trade_type == ledger.OPEN:
        book.lots.append(_Lot(q, p, at, fee))
        book.pool += fee
        return None
    # A close or a reduction: there was a position, and the fill realized a P&L.
    assert before is not None and outcome.realized_pnl is not None
    closed = min(q, before.quantity)
    long = before.side == ledger.LONG
    with money_context():
        # FIFO: take the oldest lots first (their dates serve both methods).
        entry, lot_fees, dates = ZERO, ZERO, []
        left = closed
        while left > 0:
            lot = book.lots[0]
            take = min(left, lot.quantity)
            share = lot.fees if take == lot.quantity else quantize(lot.fees * take / lot.quantity)
            entry += take * lot.price
            lot_fees += share
            lot.fees -= share
            lot.quantity -= take
            dates.append(lot.opened_at.date())
            if lot.quantity == 0:
                book.lots.popleft()
            left -= take
        exit_value = quantize(closed * p)
        if method == "fifo":
            entry_value, opening_fees = quantize(entry), lot_fees
            gross = exit_value - entry_value if long else entry_value - exit_value
        else:
            gross = outcome.realized_pnl
            entry_value = exit_value - gross if long else exit_value + gross
            opening_fees = (
                book.pool
                if closed == before.quantity
                else quantize(book.pool * closed / before.quantity)
            )
            book.pool -= opening_fees
    remainder = q - closed
    if closed == before.quantity:
        book.pool = ZERO
        if remainder > 0:  # a flip: the rest opens a new position at this price, no fees
            book.lots.append(_Lot(remainder, p, at, ZERO))
    proceeds, cost = (exit_value, entry_value) if long else (entry_value, exit_value)
    total_fees = fee + opening_fees
    first, last = min(dates), max(dates)
    opened = first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()}"
    return RealizedRow(
        method,
        trade_id,
        symbol,
        before.side,
        closed,
        opened,
        at.date(),
        proceeds,
        cost,
        gross,
        total_fees,
        gross - total_fees,
    )


def yearly_summary(rows: Iterable[RealizedRow]) -> list[YearRow]:
    """Per calendar year and symbol, the sums of ``rows``; by year, then symbol."""
    years: dict[tuple[int, str], YearRow] = {}
    for row in rows:
        key = (row.closed.year, row.symbol)
        if key not in years:
            years[key] = YearRow(row.method, *key)
        years[key].add(row)
    return [years[key] for key in sorted(years)]


def write_realized_report(
    db: Database, folder: str, method: str = "average", progress: Progress | None = None
) -> tuple[str, str, int]:
    """Write ``realized-<method>.csv`` (one row per closing trade) and
    ``realized-<method>-yearly.csv`` into ``folder``; their paths and the row count.

    Each file is written beside its name and renamed when whole, so a failure (a path
    that cannot be written, a full disk, a database error) leaves the files that were
    there before and no half report; a file-system fault is a
    :class:`~stocksbot_store.errors.PathError` naming the path and the fix."""
    rows_path = os.path.join(folder, f"realized-{method}.csv")
    years_path = os.path.join(folder, f"realized-{method}-yearly.csv")
    partials = [f"{rows_path}.partial", f"{years_path}.partial"]
    written = [0]

    def rows_written(writer: Any) -> Iterator[RealizedRow]:
        for row in realized_report(db, method, progress):
            writer.writerow(row.cells())
            written[0] += 1
            yield row

    try:
        with translate_path_errors("the realized report", folder):
            os.makedirs(folder, exist_ok=True)
            with open(partials[0], "w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out, lineterminator="\n")
                writer.writerow(ROW_HEADER)
                years = yearly_summary(rows_written(writer))
            with open(partials[1], "w", newline="", encoding="utf-8") as out:
                writer = csv.writer(out, lineterminator="\n")
                writer.writerow(YEAR_HEADER)
                writer.writerows(year.cells() for year in years)
            os.replace(partials[0], rows_path)
            os.replace(partials[1], years_path)
    except BaseException:
        for partial in partials:
            if os.path.isfile(partial):
                os.remove(partial)
        raise
    return rows_path, years_path, written[0]
