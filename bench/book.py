"""The resulting book of a database, read with plain SQL, to compare two runs.

Two stores that recorded the same fills must agree on every position (symbol,
side, quantity, average price, realized P&L, charges, open or closed), on every
strategy's figures and on every order's fill state. Numbers are compared as
:class:`~decimal.Decimal`, so ``'1.5000000000'`` (SQLite text) equals ``1.5``
(PostgreSQL numeric).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

Query = Callable[[str], list[tuple]]


def _dec(value: Any) -> Any:
    return None if value is None else Decimal(str(value))


def read_book(query: Query) -> dict[str, list[tuple]]:
    """Positions, strategies and orders of the database ``query`` runs SQL on."""
    positions = [
        (symbol, side, _dec(qty), _dec(avg), _dec(pnl), _dec(comm), _dec(fees), bool(is_open))
        for symbol, side, qty, avg, pnl, comm, fees, is_open in query(
            "SELECT symbol, side, quantity, avg_entry_price, realized_pnl, commission, fees, "
            "is_open FROM position ORDER BY symbol, id"
        )
    ]
    strategies = [
        (
            name,
            trades,
            closing,
            wins,
            losses,
            _dec(pnl),
            _dec(comm),
            _dec(fees),
            _dec(peak),
            _dec(dd),
            _dec(rate),
        )
        for name, trades, closing, wins, losses, pnl, comm, fees, peak, dd, rate in query(
            "SELECT name, total_trades, closing_trades, winning_trades, losing_trades, "
            "total_pnl, commission, fees, pnl_peak, max_drawdown, win_rate FROM strategy "
            "ORDER BY name"
        )
    ]
    orders = [
        (oid, status, _dec(filled), _dec(avg))
        for oid, status, filled, avg in query(
            'SELECT id, status, filled_quantity, avg_fill_price FROM "order" ORDER BY id'
        )
    ]
    return {"positions": positions, "strategies": strategies, "orders": orders}


def summary(book: dict[str, list[tuple]]) -> dict[str, Any]:
    """The figures a person checks first: open positions and realized P&L."""
    return {
        "open_positions": sum(1 for p in book["positions"] if p[7]),
        "positions": len(book["positions"]),
        "realized_pnl": str(sum((p[4] for p in book["positions"]), Decimal(0))),
    }


def differences(
    left: dict[str, list[tuple]], right: dict[str, list[tuple]], limit: int = 3
) -> list[str]:
    """Where two books disagree (at most ``limit`` lines per part); empty if they agree."""
    out = []
    for part in ("positions", "strategies", "orders"):
        a, b = left[part], right[part]
        if len(a) != len(b):
            out.append(f"{part}: {len(a)} rows vs {len(b)}")
        out += [f"{part}: {x} != {y}" for x, y in zip(a, b, strict=False) if x != y][:limit]
    return out
