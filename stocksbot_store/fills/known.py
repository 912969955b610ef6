"""What one SQLite connection's last fills left in the book, trusted only while fresh.

A fill reads the state it changes: its order's fill figures, its symbol's open
position, its strategy's figures. A bot records fills one after the other on one
connection, so the state a fill reads is, almost always, the state the previous
fill of that connection wrote. :class:`KnownBook` keeps those states, per
connection, and hands them out only when it is **provably** what the database
holds, which on SQLite is checked inside the fill's own ``BEGIN IMMEDIATE``
transaction (so nobody can write while the fill runs):

* ``PRAGMA data_version`` is what it was in the last fill that stored the states:
  SQLite changes it whenever *another* connection (any process) commits;
* the connection's ``total_changes`` is what it was just after that fill
  committed: any row inserted, updated or deleted *on this connection* since (a
  repository call, a hand-run statement, a batch, a fill that failed and rolled
  back) moves it;
* it is the same connection object (a reconnect starts with nothing known).

The states are stored only after the fill's transaction has committed, and only
for a fill that was the outermost transaction (a fill inside a caller's
transaction may still be rolled back with it); from the moment a fill begins
until it has committed, nothing is trusted. Anything else empties the book, and
the fill reads from the database as it would without one.
"""

from __future__ import annotations

from typing import Any

from .. import ledger

#: Orders kept at most; beyond it the book starts again (a bot fills recent orders).
MAX_ORDERS = 10_000


class KnownBook:
    """The states one connection's committed fills left, with the marks that prove
    them fresh."""

    __slots__ = ("conn", "data_version", "total_changes", "orders", "positions", "strategies")

    def __init__(self) -> None:
        self.conn: Any = None
        self.data_version: int | None = None
        self.total_changes: int | None = None
        self.orders: dict[int, ledger.OrderState] = {}
        #: symbol -> its open position, or None when it has none.
        self.positions: dict[str, ledger.PositionState | None] = {}
        self.strategies: dict[int, ledger.StrategyFigures] = {}

    def begin(self, conn: Any, data_version: int) -> bool:
        """At the start of a fill's transaction: True if the states are fresh (see the
        module). From now until :meth:`commit`, they are not trusted again."""
        fresh = (
            conn is self.conn
            and data_version == self.data_version
            and conn.total_changes == self.total_changes
        )
        if not fresh:
            self.orders.clear()
            self.positions.clear()
            self.strategies.clear()
        self.conn, self.data_version, self.total_changes = conn, data_version, None
        return fresh

    def commit(
        self,
        order: ledger.OrderState | None,
        symbol: str,
        position: ledger.PositionState | None,
        strategy_id: int | None,
        figures: ledger.StrategyFigures | None,
    ) -> None:
        """After the fill's transaction committed: what it left, and the mark of this
        connection's changes that proves it fresh next time."""
        if order is not None:
            if order.status in ledger.TAKES_FILLS:
                if len(self.orders) >= MAX_ORDERS:
                    self.orders.clear()
                self.orders[order.id] = order
            else:
                self.orders.pop(order.id, None)
        self.positions[symbol] = position
        if strategy_id is not None and figures is not None:
            self.strategies[strategy_id] = figures
        self.total_changes = self.conn.total_changes

    def forget(self) -> None:
        """Trust nothing (after a failure, or a fill inside a caller's transaction)."""
        self.conn = self.data_version = self.total_changes = None
        self.orders.clear()
        self.positions.clear()
        self.strategies.clear()
