"""The orders and fills every workload replays: deterministic, so the project and
the floor see exactly the same input and must end with exactly the same book.

Twenty symbols; each order is filled in two parts at two prices. Sides are drawn
so that positions open, grow, shrink, close and flip (a sell larger than the long
position it meets, and the other way round).
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

SYMBOLS = tuple(f"SYM{i:02d}" for i in range(20))
STRATEGIES = ("momentum", "mean_reversion", "breakout")
T = TypeVar("T")
START = dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class PlannedFill:
    """One part of an order's execution."""

    quantity: Decimal
    price: Decimal
    commission: Decimal
    executed_at: dt.datetime


@dataclass(frozen=True)
class PlannedOrder:
    """An order and the two partial fills that complete it."""

    symbol: str
    side: str
    quantity: Decimal
    strategy: str | None
    fills: tuple[PlannedFill, PlannedFill]


def plan(orders: int, seed: int = 7, symbols: int = len(SYMBOLS)) -> list[PlannedOrder]:
    """``orders`` orders over the first ``symbols`` symbols (the same list every time)."""
    return list(iter_plan(orders, seed, symbols))


def iter_plan(orders: int, seed: int = 7, symbols: int = len(SYMBOLS)) -> Iterator[PlannedOrder]:
    """:func:`plan` one order at a time, for histories too large to hold as a list."""
    rng = random.Random(seed)
    prices = {s: Decimal(100 + 10 * i) for i, s in enumerate(SYMBOLS[:symbols])}
    for k in range(orders):
        symbol = SYMBOLS[k % symbols]
        side = "buy" if rng.random() < 0.5 else "sell"
        quantity = Decimal(rng.randint(2, 400))
        first = Decimal(rng.randint(1, int(quantity) - 1))
        fills = []
        for part, qty in enumerate((first, quantity - first)):
            prices[symbol] = max(Decimal(1), prices[symbol] + Decimal(rng.randint(-150, 150)) / 100)
            fills.append(
                PlannedFill(
                    quantity=qty,
                    price=prices[symbol] + Decimal(rng.randint(0, 99)) / 10_000,
                    commission=Decimal(rng.randint(0, 100)) / 100,
                    executed_at=START + dt.timedelta(seconds=2 * k + part, microseconds=k % 997),
                )
            )
        strategy = None if k % 7 == 6 else STRATEGIES[k % len(STRATEGIES)]
        yield PlannedOrder(symbol, side, quantity, strategy, (fills[0], fills[1]))


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
