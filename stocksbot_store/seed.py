"""Realistic trading history and a simulated bot, written through :class:`StorageService`.

:func:`seed_history` fills an empty store with a few strategies and a few hundred
orders: partial fills, cancelled and rejected orders, open and closed positions,
long and short, winners and losers. The same ``seed`` and ``start`` always give the
same rows (timestamps included), so tests can snapshot screens drawn from them.

:class:`SimulatedBot` keeps trading after that: each :meth:`SimulatedBot.step`
places an order and records its fills, as a bot would; :meth:`SimulatedBot.start`
runs steps on a thread until :meth:`SimulatedBot.stop`. It stops placing orders
while trading is halted (config ``trading_enabled``), as a real bot must.

The dashboard's ``--demo``, the tests and the benchmarks share this module.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from peewee import Database

from .errors import CorruptRowError, StorageError, first_line
from .fields import in_money_context
from .models import Order, OrderStatusEnum, Trade
from .service import StorageService

#: Where a seeded history starts unless told otherwise (fixed, for stable snapshots).
SEED_START = dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.timezone.utc)

#: Symbols and their starting prices.
SYMBOLS: dict[str, Decimal] = {
    "AAPL": Decimal("187.40"),
    "MSFT": Decimal("402.10"),
    "NVDA": Decimal("612.55"),
    "TSLA": Decimal("238.90"),
    "AMZN": Decimal("151.25"),
    "SPY": Decimal("476.80"),
    "META": Decimal("355.60"),
    "AMD": Decimal("146.30"),
}

#: How often each strategy trades with the trend (0.5 is a coin toss: a loser after costs).
SKILL = {"momentum": 0.75, "mean_reversion": 0.62, "pairs": 0.5, "gap_fade": 0.35}

#: Strategies: name -> (type, description, is_active).
STRATEGIES: dict[str, tuple[str, str, bool]] = {
    "momentum": ("trend", "Buys strength, sells weakness on 20-bar breakouts", True),
    "mean_reversion": ("reversion", "Fades moves beyond two standard deviations", True),
    "pairs": ("stat_arb", "Trades the spread of correlated pairs", True),
    "gap_fade": ("intraday", "Fades opening gaps; paused after a drawdown", False),
}

CENT = Decimal("0.01")


@dataclass
class SeedSummary:
    """What :func:`seed_history` wrote."""

    strategies: int
    orders: int
    trades: int
    end: dt.datetime


@dataclass
class _Market:
    """A random walk of prices per symbol, with its own random generator."""

    rng: random.Random
    prices: dict[str, Decimal] = field(default_factory=lambda: dict(SYMBOLS))
    trends: dict[str, int] = field(default_factory=dict)

    def trend(self, symbol: str) -> int:
        """+1 or -1: where ``symbol`` is heading for now (it turns now and then)."""
        if symbol not in self.trends or self.rng.random() < 0.04:
            self.trends[symbol] = self.rng.choice((1, -1))
        return self.trends[symbol]

    def tick(self, symbol: str) -> Decimal:
        drift = Decimal(str(round(self.rng.gauss(0.0015 * self.trend(symbol), 0.005), 5)))
        price = max((self.prices[symbol] * (1 + drift)).quantize(CENT), Decimal("1.00"))
        self.prices[symbol] = price
        return price


@in_money_context
def seed_history(
    storage: StorageService,
    *,
    orders: int = 300,
    seed: int = 7,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> SeedSummary:
    """Write a deterministic trading history into an empty store, in one transaction.

    ``orders`` orders are spread a few minutes apart from ``start`` (default
    :data:`SEED_START`), or so that the last one is placed just before ``end`` (a demo
    passes the current time, so no seeded row lies in the future). Most fill in one to
    three parts, some stay partially filled, open or pending, a few are cancelled or
    rejected. Trading is left enabled. Returns what was written.
    """
    rng = random.Random(seed)
    # The pace has its own generator, so the span is known before anything is written.
    gaps = [dt.timedelta(minutes=m) for m in _pace(seed, orders)]
    if end is not None:
        start = end - sum(gaps, dt.timedelta()) - dt.timedelta(minutes=2)
    market = _Market(rng)
    trades = 0
    now = start or SEED_START
    with storage.db.atomic():
        for name, (kind, description, _) in STRATEGIES.items():
            storage.create_strategy(
                name, kind, {"symbols": list(SYMBOLS)}, description, is_active=True
            )
        storage.set_trading_enabled(True)
        for n, gap in enumerate(gaps):
            now += gap
            trades += _seed_order(storage, market, rng, n, now, last=n >= orders - 12)
        for name, (_, _, active) in STRATEGIES.items():
            if not active:
                storage.set_strategy_active(name, False)
    return SeedSummary(len(STRATEGIES), orders, trades, now)


def _pace(seed: int, orders: int) -> list[int]:
    """Minutes between one seeded order and the next (2 to 30)."""
    pace = random.Random(f"pace-{seed}")
    return [pace.randint(2, 30) for _ in range(orders)]


def _seed_order(
    storage: StorageService,
    market: _Market,
    rng: random.Random,
    n: int,
    when: dt.datetime,
    last: bool,
) -> int:
    symbol = rng.choice(list(SYMBOLS))
    strategy = rng.choice(list(STRATEGIES))
    order = _place(storage, market, symbol, strategy, f"seed-{n}")
    storage.orders.update(order, created_at=when)
    fate = rng.random()
    if fate < 0.05:
        storage.update_order_status(order.id, OrderStatusEnum.REJECTED)
        return 0
    storage.update_order_status(order.id, OrderStatusEnum.OPEN)
    if fate < 0.12:
        storage.cancel_order(order.id)
        return 0
    if last and fate < 0.45:
        return 0  # the newest orders include some still working
    count = rng.choice((1, 1, 2, 3))
    partly = last and fate < 0.7  # ...and some partly filled
    parts = _split(order.quantity, max(count, 2) if partly else count)
    if partly:
        parts = parts[:-1] or parts
    fills = 0
    for i, qty in enumerate(parts):
        storage.record_trade(
            order.id,
            symbol,
            order.side,
            qty,
            market.tick(symbol),
            commission=(qty * Decimal("0.005")).quantize(CENT),
            fees=Decimal("0.01"),
            external_id=f"seed-{n}-{i}",
            executed_at=when + dt.timedelta(seconds=20 * (i + 1)),
        )
        fills += 1
    return fills


def _place(
    storage: StorageService,
    market: _Market,
    symbol: str,
    strategy: str | None,
    external_id: str | None,
) -> Order:
    rng = market.rng
    with_trend = rng.random() < SKILL.get(strategy or "", 0.5)
    side = "buy" if (market.trend(symbol) > 0) == with_trend else "sell"
    price = market.tick(symbol)
    quantity = Decimal(rng.choice((5, 10, 20, 25, 50, 75, 100, 150, 200)))
    if rng.random() < 0.6:
        return storage.create_order(
            symbol, side, "market", quantity, strategy=strategy, external_id=external_id
        )
    return storage.create_order(
        symbol, side, "limit", quantity, price, strategy=strategy, external_id=external_id
    )


def _split(quantity: Decimal, parts: int) -> list[Decimal]:
    """``quantity`` in ``parts`` whole-share pieces (fewer if it is small)."""
    parts = max(1, min(parts, int(quantity)))
    piece = (quantity / parts).to_integral_value(rounding="ROUND_FLOOR")
    return [piece] * (parts - 1) + [quantity - piece * (parts - 1)]


def last_trade_prices(storage: StorageService) -> dict[str, Decimal]:
    """The latest fill price of each seeded symbol (for a bot to continue from)."""
    prices = dict(SYMBOLS)
    for symbol in SYMBOLS:
        row = storage.trades.get_by_symbol(symbol, limit=1)
        if row:
            prices[symbol] = row[0].price
    return prices


class SimulatedBot:
    """A bot that keeps placing orders and recording fills through StorageService.

    Give it a Database of its own (``connect(url)``) to write as another connection
    would, the way a bot process does; its thread connects on the first query.
    """

    def __init__(
        self,
        db: Database,
        *,
        seed: int | None = None,
        interval: float = 0.7,
        symbols: Iterable[str] | None = None,
    ) -> None:
        self.storage = StorageService(db)
        self.interval = interval
        self.rng = random.Random(seed)
        self.symbols = list(symbols or SYMBOLS)
        self.market = _Market(self.rng, last_trade_prices(self.storage))
        self.steps = 0
        self.errors = 0
        #: Steps skipped because trading was halted.
        self.halted = 0
        #: Why :meth:`run` stopped on its own (an error that is not the store's), or None.
        self.failure: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @in_money_context
    def step(self) -> Trade | None:
        """Place one order and fill it (fully or in part); None while trading is halted.

        Sometimes it cancels what is left of an older working order instead.
        """
        if not self.storage.is_trading_enabled():
            self.halted += 1
            return None
        self.steps += 1
        if self.rng.random() < 0.1:
            working = self.storage.orders.page(status=OrderStatusEnum.PARTIALLY_FILLED, limit=1)
            if working:
                self.storage.cancel_order(working[0].id)
                return None
        symbol = self.rng.choice(self.symbols)
        strategy = self.rng.choice([s.name for s in self.storage.get_active_strategies()] or [None])
        order = _place(self.storage, self.market, symbol, strategy, external_id=None)
        parts = _split(order.quantity, self.rng.choice((1, 2)))
        if self.rng.random() < 0.2:
            parts = parts[:1]
        trade = None
        for qty in parts:
            trade = self.storage.record_trade(
                order.id,
                symbol,
                order.side,
                qty,
                self.market.tick(symbol),
                commission=(qty * Decimal("0.005")).quantize(CENT),
                fees=Decimal("0.01"),
            )
        return trade

    def run(self) -> None:
        """Step every ``interval`` seconds until :meth:`stop`; store errors are counted
        and the bot carries on (a locked database is retried on the next step). A row
        the store cannot read (:class:`CorruptRowError`: retrying cannot mend it) or any
        other error stops it, with :attr:`failure` saying why in one line: a thread
        that dies prints a traceback, over the dashboard of the ``--demo``."""
        while not self._stop.is_set():
            try:
                with self.storage.db.connection_context():
                    self.step()
            except StorageError as e:
                if isinstance(e, CorruptRowError):
                    self.failure = f"{type(e).__name__}: {first_line(e)}"
                    return
                self.errors += 1
            except Exception as e:
                self.failure = f"{type(e).__name__}: {first_line(e)}"
                return
            self._stop.wait(self.interval)

    def start(self) -> SimulatedBot:
        """Run :meth:`run` on a daemon thread."""
        self._thread = threading.Thread(target=self.run, name="simulated-bot", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


__all__ = [
    "SEED_START",
    "STRATEGIES",
    "SYMBOLS",
    "SeedSummary",
    "SimulatedBot",
    "last_trade_prices",
    "seed_history",
]
