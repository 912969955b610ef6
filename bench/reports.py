"""Workload 6: the performance reports on the large history; median ms, target 50 ms.

Each report is read through :class:`StorageService` as the dashboard reads it. The
floor is what a report costs without the figures fills keep: the same question asked
of the trade table with one ``GROUP BY`` over every trade (realized P&L, fees, count
per UTC day, or per symbol), which is the cost the kept buckets avoid.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import closing
from typing import Any

from stocksbot_store import StorageService, connect

from .databases import raw_connect
from .results import Result
from .workloads import Sizes, _median_ms

#: The operator's zone of the zoned reports: a +05:30 offset, which no hourly bucket fits.
ZONE = "Asia/Kolkata"
TARGET_MS = 50


def report_reads(backend: str, url: str, sizes: Sizes) -> list[Result]:
    """Every report on the history at ``url``, beside the trade-table floor where one
    compares."""
    db = connect(url)
    storage = StorageService(db)
    trades = db.execute_sql("SELECT count(*) FROM trade").fetchone()[0]
    first = db.execute_sql("SELECT min(executed_at) FROM trade").fetchone()[0]
    since = (
        first if isinstance(first, dt.datetime) else dt.datetime.fromisoformat(first)
    ).date() + dt.timedelta(days=2)
    storage.record_marks({f"SYM{i:02d}": 100 + i for i in range(20)})
    project: dict[str, Callable[[], Any]] = {
        "pnl by day (UTC)": lambda: storage.pnl_by_period("day"),
        f"pnl by day ({ZONE})": lambda: storage.pnl_by_period("day", tz=ZONE),
        "pnl by week, one strategy": lambda: storage.pnl_by_period("week", strategy="momentum"),
        "pnl by month, one symbol": lambda: storage.pnl_by_period("month", symbol="SYM07"),
        "pnl by symbol": storage.pnl_by_symbol,
        f"pnl by symbol since a day ({ZONE})": lambda: storage.pnl_by_symbol(since=since, tz=ZONE),
        "equity curve": storage.equity_curve,
        "positions with marks": storage.get_position_values,
    }
    day = "date(executed_at)" if backend == "sqlite" else "(executed_at AT TIME ZONE 'UTC')::date"
    floor_sql = {
        "pnl by day (UTC)": f"SELECT {day}, count(*), sum(realized_pnl), sum(commission + fees) "
        "FROM trade GROUP BY 1 ORDER BY 1",
        "pnl by symbol": "SELECT symbol, count(*), sum(realized_pnl), sum(commission + fees) "
        "FROM trade GROUP BY symbol ORDER BY symbol",
    }
    results = []
    with closing(raw_connect(backend, url)) as conn:
        cur = conn.cursor()
        for name, call in project.items():
            floor = None
            if name in floor_sql:
                sql = floor_sql[name]
                floor = _median_ms(
                    lambda sql=sql: cur.execute(sql).fetchall(), max(3, sizes.read_repeats // 10)
                )
            results.append(
                Result(
                    "7 reports",
                    backend,
                    name,
                    "ms",
                    _median_ms(call, sizes.read_repeats),
                    floor,
                    higher_is_better=False,
                    extra={"trades": trades},
                    note="floor: GROUP BY over every trade" if floor else "",
                ).check_value(TARGET_MS)
            )
        if backend == "postgres":
            conn.rollback()
    db.close()
    return results
