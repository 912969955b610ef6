"""Read-only queries for screens and reports, and change detection.

:func:`order_page` and :func:`trade_page` sort in SQL by a whitelisted column
(:data:`ORDER_SORTS`, :data:`TRADE_SORTS`), so a sorted screen shows the first
rows of the whole history, not a sort of the rows it happened to load.

Each query costs the same at any history size: it reads through an index a
bounded number of rows. :class:`ChangeWatcher` tells a reader whether another
connection committed since it last looked, so an unchanged store costs next to
nothing to poll: ``PRAGMA data_version`` on a kept-open SQLite connection, and
LISTEN on :data:`~stocksbot_store.notify.CHANNEL` on PostgreSQL, with a slow
poll as well since notifications sent while the listener is away are lost.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, cast

from peewee import ColumnBase, Database, Field, Node, SqliteDatabase

from .database import backend_of
from .errors import DatabaseUnavailableError, ValidationError, first_line, translate_errors
from .fields import ExactDecimalField, coerce_enum, in_money_context
from .models import ZERO, Order, OrderStatusEnum, Trade
from .notify import CHANNEL


def last_prices(db: Database, symbols: Iterable[str]) -> dict[str, Decimal]:
    """The latest fill price of each of ``symbols`` (absent when it never traded).

    One statement with an index probe per symbol (``trade_symbol_id``), so it suits
    the handful of symbols with open positions at any history size.
    """
    symbols = list(dict.fromkeys(symbols))
    if not symbols:
        return {}
    p = db.param
    probe = (
        f'SELECT CAST({p} AS TEXT), (SELECT "price" FROM "trade" '
        f'WHERE "symbol" = {p} ORDER BY "id" DESC LIMIT 1)'
    )
    sql = " UNION ALL ".join([probe] * len(symbols))
    with translate_errors("reading last prices"):
        rows = db.execute_sql(sql, [v for s in symbols for v in (s, s)]).fetchall()
    return {
        symbol: cast(Decimal, Trade.price.python_value(price))
        for symbol, price in rows
        if price is not None
    }  # not None in, so not None out


@in_money_context
def realized_pnl_series(
    db: Database, strategy_id: int, total: Decimal, points: int = 120
) -> list[tuple[dt.datetime, Decimal]]:
    """Cumulative realized P&L of a strategy after each of its last ``points`` closing
    fills, oldest first, ending at ``total`` (the strategy's stored ``total_pnl``).

    Reading only the last fills keeps it bounded at any history size; the running
    figure is worked backwards from the stored total.
    """
    # What .tuples() gives; the stubs know only model rows, hence the ignore below.
    rows: list[tuple[dt.datetime, Decimal | None]]
    with translate_errors("reading the P&L series"):
        rows = list(
            Trade.select(Trade.executed_at, Trade.realized_pnl)  # type: ignore[arg-type]
            .where((Trade.strategy == strategy_id) & Trade.realized_pnl.is_null(False))
            # The index's own order, so the plan is a short index scan even
            # before the table has statistics; fills at the same instant (one
            # broker report) by id, as they were recorded, whatever the plan.
            .order_by(Trade.strategy.desc(), Trade.executed_at.desc(), Trade.id.desc())
            .limit(points)
            .bind(db)
            .tuples()
        )
    series: list[tuple[dt.datetime, Decimal]] = []
    running = total
    for executed_at, pnl in rows:
        series.append((executed_at, running))
        running -= pnl or ZERO
    series.reverse()
    return series


#: What orders can be sorted by in SQL: a screen's column name -> the column(s) summed.
ORDER_SORTS: dict[str, tuple[Field, ...]] = {
    "id": (Order.id,),
    "time": (Order.created_at,),
    "symbol": (Order.symbol,),
    "side": (Order.side,),
    "type": (Order.type,),
    "status": (Order.status,),
    "quantity": (Order.quantity,),
    "filled": (Order.filled_quantity,),
    "price": (Order.price,),
    "avg_fill": (Order.avg_fill_price,),
}
#: What fills can be sorted by in SQL (``costs`` is commission plus fees).
TRADE_SORTS: dict[str, tuple[Field, ...]] = {
    "id": (Trade.id,),
    "time": (Trade.executed_at,),
    "symbol": (Trade.symbol,),
    "side": (Trade.side,),
    "type": (Trade.type,),
    "quantity": (Trade.quantity,),
    "price": (Trade.price,),
    "costs": (Trade.commission, Trade.fees),
    "realized": (Trade.realized_pnl,),
    "order": (Trade.order,),
}


def order_page(
    db: Database,
    *,
    symbol: str | None = None,
    status: Any = None,
    side: str | None = None,
    strategy_id: int | None = None,
    sort: str | None = None,
    descending: bool = True,
    before_id: int | None = None,
    offset: int = 0,
    limit: int = 50,
    include_deleted: bool = False,
) -> list[Order]:
    """A page of orders, filtered, sorted in SQL; soft-deleted orders are left out
    unless ``include_deleted``.

    Unsorted (``sort`` None) it is newest first with keyset paging: pass the last id
    of a page as ``before_id`` for the next one (as fast on page 1,000 as on 1).
    Sorted by a column of :data:`ORDER_SORTS` (ties by id, empty values last), pages
    are read with ``offset``. ValidationError for any other column.
    """
    query = Order.select().bind(db)
    if not include_deleted:
        query = query.where(Order.deleted_at.is_null())
    if symbol:
        query = query.where(Order.symbol == symbol)
    if status:
        query = query.where(Order.status == coerce_enum(OrderStatusEnum, status, "status"))
    if side:
        query = query.where(Order.side == side)
    if strategy_id is not None:
        query = query.where(Order.strategy == strategy_id)
    if sort is None:
        if before_id is not None:
            query = query.where(Order.id < before_id)
        query = query.order_by(Order.id.desc())
    else:
        query = query.order_by(*_sort_terms(db, Order, ORDER_SORTS, sort, descending))
        query = query.offset(offset)
    with translate_errors("reading a page of orders"):
        return list(query.limit(limit))


def trade_page(
    db: Database, *, sort: str | None = None, descending: bool = True, limit: int = 50
) -> list[Trade]:
    """The first ``limit`` fills by ``sort`` (a column of :data:`TRADE_SORTS`; ties by
    id, empty values last), or the most recent ones when ``sort`` is None."""
    query = Trade.select().bind(db)
    if sort is None:
        query = query.order_by(Trade.id.desc())
    else:
        query = query.order_by(*_sort_terms(db, Trade, TRADE_SORTS, sort, descending))
    with translate_errors("reading fills"):
        return list(query.limit(limit))


def _sort_terms(
    db: Database, model: Any, sorts: dict[str, tuple[Field, ...]], sort: str, descending: bool
) -> list[Node]:
    """ORDER BY terms for ``sort``: empty values last, then the column, then the id."""
    if sort not in sorts:
        raise ValidationError(
            "sort",
            f"{model.__name__} rows cannot be sorted by {sort!r}; "
            f"sort by one of {', '.join(sorts)}",
        )
    sqlite = backend_of(db) == "sqlite"
    terms = [
        f.cast("REAL") if sqlite and isinstance(f, ExactDecimalField) else f for f in sorts[sort]
    ]
    value: ColumnBase = terms[0]
    for term in terms[1:]:
        value = value + term
    if descending:
        return [value.is_null(), value.desc(), model.id.desc()]
    return [value.is_null(), value.asc(), model.id.asc()]


class ChangeWatcher:
    """Tells whether the store may have changed since the last :meth:`changed` call.

    The first call answers True. On SQLite it keeps one connection open and reads
    ``PRAGMA data_version``, which moves when another connection commits. On
    PostgreSQL it LISTENs on :data:`CHANNEL` and also answers True every
    ``poll_seconds`` (a notification sent while it was reconnecting is lost).
    Any failure closes the kept connection and answers True next time, so a
    reader re-reads everything once the database is back. Thread-safe.
    """

    def __init__(
        self, db: Database, poll_seconds: float = 15.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.db = db
        self.backend = backend_of(db)
        self.poll_seconds = poll_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: Any = None
        self._version: int | None = None
        self._last_full = float("-inf")

    def changed(self) -> bool:
        """True if another connection committed since the last call (or may have).

        A kept connection that fails (the server ended the session, say) is replaced
        at once; only a fresh one that fails too means the database is unavailable."""
        with self._lock:
            if self._conn is not None:
                try:
                    return self._changed()
                except Exception:
                    self._drop()
            try:
                return self._changed()
            except Exception as e:
                self._drop()
                raise DatabaseUnavailableError(
                    f"watching for changes failed ({first_line(e)}); retry later"
                ) from e

    def close(self) -> None:
        """Close the kept connection."""
        with self._lock:
            self._drop()

    def _changed(self) -> bool:
        return self._sqlite_changed() if self.backend == "sqlite" else self._postgres_changed()

    def _drop(self) -> None:
        conn, self._conn, self._version = self._conn, None, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken; nothing to release
                pass

    def _sqlite_changed(self) -> bool:
        if self._conn is None:
            assert isinstance(self.db, SqliteDatabase)
            params = self.db.connect_params
            self._conn = sqlite3.connect(
                self.db.database, uri=bool(params.get("uri")), timeout=1.0, check_same_thread=False
            )
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        changed = version != self._version
        self._version = version
        return changed

    def _postgres_changed(self) -> bool:
        now = self._clock()
        fresh = self._conn is None
        if fresh:
            import psycopg

            self._conn = psycopg.connect(
                autocommit=True, connect_timeout=3, **_libpq_params(self.db)
            )
            self._conn.execute(f"LISTEN {CHANNEL}")
        notified = any(True for _ in self._conn.notifies(timeout=0))
        if fresh or notified or now - self._last_full >= self.poll_seconds:
            self._last_full = now
            return True
        return False


def _libpq_params(db: Database) -> dict[str, Any]:
    """libpq connection keywords for ``db`` (the ones Peewee was given)."""
    params = {
        k: v
        for k, v in db.connect_params.items()
        if k in ("user", "password", "host", "port", "sslmode", "options")
    }
    return {"dbname": db.database, **params}


__all__ = [
    "ORDER_SORTS",
    "TRADE_SORTS",
    "ChangeWatcher",
    "last_prices",
    "order_page",
    "realized_pnl_series",
    "trade_page",
]
