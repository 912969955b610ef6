"""The four workloads, each measured on the project and on the floor in one run.

1. fill ingest: create an order, record its two partial fills, each its own
   transaction (:func:`fill_ingest`);
2. bulk import: many fills in one transaction (:func:`bulk_import`);
3. dashboard reads on a large history (:func:`dashboard_reads`);
4. dashboard refresh, startup and memory (:func:`dashboard_refresh`).

Each returns its :class:`~bench.results.Result` rows; the first two also compare
the book the project wrote with the book the floor wrote and raise
:class:`BookMismatch` if they differ.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from stocksbot_store import StorageService, connect, init_db

from .book import differences, read_book, summary
from .databases import fresh_database, raw_connect
from .floor import FloorStore, MinimalFloor
from .fresh import run_probe
from .history import create_strategies, fills_of, insert_orders
from .refresh import dashboard_refresh_source
from .results import Result
from .scenario import STRATEGIES, plan


class BookMismatch(AssertionError):
    """The project and the floor recorded the same fills and ended with different books."""


@dataclass
class Sizes:
    """How much work each workload does: small in quick mode, large in full mode."""

    ingest_orders: int
    bulk_fills: int
    #: PostgreSQL commits wait for the disk (~ms each): fewer of them there.
    ingest_orders_pg: int
    #: The floor's bulk import runs eight round trips per fill on PostgreSQL.
    bulk_fills_pg: int
    history_orders: int
    small_history_orders: int
    read_repeats: int
    #: Old trades in the adopted database (workload 5, :mod:`bench.adopt`).
    adopt_trades: int = 4_000
    adopt_trades_pg: int = 2_000
    #: Fills of ``import_trades`` whose peak memory is compared, small and large
    #: (:mod:`bench.import_memory`); at least two batches of 5,000 each.
    import_fills: tuple[int, int] = (10_000, 30_000)
    import_fills_pg: tuple[int, int] = (10_000, 20_000)


QUICK = Sizes(
    ingest_orders=60,
    bulk_fills=1_000,
    ingest_orders_pg=40,
    bulk_fills_pg=600,
    history_orders=1_000,
    small_history_orders=300,
    read_repeats=7,
)
FULL = Sizes(
    ingest_orders=3_000,
    bulk_fills=200_000,
    ingest_orders_pg=1_000,
    bulk_fills_pg=20_000,
    history_orders=500_000,
    small_history_orders=50_000,
    read_repeats=51,
    adopt_trades=1_000_000,
    adopt_trades_pg=100_000,
    import_fills=(100_000, 1_000_000),
    import_fills_pg=(20_000, 200_000),
)


def _compare(
    workload: str,
    backend: str,
    project_query: Callable,
    floor_query: Callable,
    checks: dict[str, Any],
) -> None:
    project_book, floor_book = read_book(project_query), read_book(floor_query)
    problems = differences(project_book, floor_book)
    if problems:
        raise BookMismatch(
            f"{workload} on {backend}: project and floor disagree: " + "; ".join(problems)
        )
    checks[f"{workload}/{backend}"] = summary(project_book)


def _peewee_query(db: Any) -> Callable[[str], list[tuple]]:
    return lambda sql: db.execute_sql(sql).fetchall()


def _raw_query(conn: Any) -> Callable[[str], list[tuple]]:
    def run(sql: str) -> list[tuple]:
        cur = conn.cursor()
        cur.execute(sql)
        return cur.fetchall()

    return run


#: Orders per turn in the fill ingest: project and floor take turns, so a machine
#: that gets busier (or quieter) halfway through weighs on both alike.
TURN = 20


def fill_ingest(backend: str, folder: str, sizes: Sizes, checks: dict) -> list[Result]:
    """Workload 1: order + two partial fills, one transaction per call."""
    planned = plan(sizes.ingest_orders if backend == "sqlite" else sizes.ingest_orders_pg)
    fills = 2 * len(planned)
    with (
        fresh_database(backend, folder) as project_url,
        fresh_database(backend, folder) as floor_url,
        fresh_database(backend, folder) as minimal_url,
    ):
        db = init_db(connect(project_url))
        storage = StorageService(db)
        strategies = create_strategies(storage)
        init_db(connect(floor_url)).close()
        with (
            closing(raw_connect(backend, floor_url)) as conn,
            closing(raw_connect(backend, minimal_url)) as minimal_conn,
        ):
            floor = FloorStore(conn, backend)
            floor_strategies = {name: floor.create_strategy(name) for name in STRATEGIES}
            minimal = MinimalFloor(minimal_conn, backend)

            def project_order(o: Any, k: int) -> float:
                order = storage.create_order(
                    o.symbol, o.side, "market", o.quantity, strategy=strategies.get(o.strategy)
                )
                began = time.perf_counter()
                for part, f in enumerate(o.fills):
                    storage.record_trade(
                        order.id,
                        o.symbol,
                        o.side,
                        f.quantity,
                        f.price,
                        f.commission,
                        0,
                        f"F{k}-{part}",
                        f.executed_at,
                    )
                return time.perf_counter() - began

            def floor_order(o: Any, k: int) -> float:
                order_id = floor.create_order(
                    o.symbol, o.side, o.quantity, floor_strategies.get(o.strategy)
                )
                began = time.perf_counter()
                for part, f in enumerate(o.fills):
                    floor.record_fill(
                        order_id,
                        o.symbol,
                        o.side,
                        f.quantity,
                        f.price,
                        f.commission,
                        0,
                        f"F{k}-{part}",
                        f.executed_at,
                    )
                return time.perf_counter() - began

            def minimal_order(o: Any, k: int) -> float:
                order_id = minimal.create_order(o.symbol, o.side, o.quantity)
                began = time.perf_counter()
                for part, f in enumerate(o.fills):
                    minimal.record_fill(
                        order_id,
                        o.symbol,
                        o.side,
                        f.quantity,
                        f.price,
                        f"F{k}-{part}",
                        f.executed_at,
                    )
                return time.perf_counter() - began

            # [total seconds, seconds in record_trade] of project and the floors
            spent = {project_order: [0.0, 0.0], floor_order: [0.0, 0.0], minimal_order: [0.0, 0.0]}
            sides = list(spent)
            for turn_number, first in enumerate(range(0, len(planned), TURN)):
                turn = list(enumerate(planned[first : first + TURN], first))
                # each side goes first, second and last in turn
                shift = turn_number % len(sides)
                for side in sides[shift:] + sides[:shift]:
                    start = time.perf_counter()
                    spent[side][1] += sum(side(o, k) for k, o in turn)
                    spent[side][0] += time.perf_counter() - start
            _compare("ingest", backend, _peewee_query(db), _raw_query(conn), checks)
        db.close()
    (
        (project_total, in_fills),
        (floor_total, floor_in_fills),
        (minimal_total, minimal_in_fills),
    ) = spent.values()
    target = 0.5 if backend == "sqlite" else 0.8
    minimal_note = (
        "minimal floor: insert order, insert trade, update order, upsert "
        "position; REAL columns, no strategy or report figures"
    )
    return [
        Result(
            "1 fill ingest",
            backend,
            "order + 2 fills",
            "fills/s",
            fills / project_total,
            fills / floor_total,
        ),
        Result(
            "1 fill ingest",
            backend,
            "order + 2 fills, minimal floor",
            "fills/s",
            fills / project_total,
            fills / minimal_total,
            note=minimal_note,
        ).check_ratio(target),
        Result(
            "1 fill ingest",
            backend,
            "record_trade alone",
            "fills/s",
            fills / in_fills,
            fills / floor_in_fills,
        ),
        Result(
            "1 fill ingest",
            backend,
            "record_trade alone, minimal floor",
            "fills/s",
            fills / in_fills,
            fills / minimal_in_fills,
            note=minimal_note,
        ),
        Result(
            "1 fill ingest",
            backend,
            "create_order alone",
            "orders/s",
            len(planned) / (project_total - in_fills),
            len(planned) / (floor_total - floor_in_fills),
            note="the rest of the cycle: shows where a missed cycle target goes",
        ).check_ratio(0.8),
        Result(
            "1 fill ingest",
            backend,
            "create_order alone, minimal floor",
            "orders/s",
            len(planned) / (project_total - in_fills),
            len(planned) / (minimal_total - minimal_in_fills),
        ).check_ratio(0.8),
    ]


def bulk_import(backend: str, folder: str, sizes: Sizes, checks: dict) -> list[Result]:
    """Workload 2: ``record_trades`` with every fill in one transaction."""
    count = sizes.bulk_fills if backend == "sqlite" else sizes.bulk_fills_pg
    planned = plan(count // 2, seed=11)
    with (
        fresh_database(backend, folder) as project_url,
        fresh_database(backend, folder) as floor_url,
    ):
        db = init_db(connect(project_url))
        storage = StorageService(db)
        ids = insert_orders(
            db, planned, 1, {n: s.id for n, s in create_strategies(storage).items()}
        )
        batch = fills_of(planned, ids)
        start = time.perf_counter()
        storage.record_trades(batch)
        project_seconds = time.perf_counter() - start

        floor_db = init_db(connect(floor_url))
        floor_ids = insert_orders(
            floor_db,
            planned,
            1,
            {n: s.id for n, s in create_strategies(StorageService(floor_db)).items()},
        )
        floor_db.close()
        rows = [
            (
                f.order_id,
                f.symbol,
                f.side,
                f.quantity,
                f.price,
                f.commission,
                f.fees,
                f.external_id,
                f.executed_at,
            )
            for f in fills_of(planned, floor_ids)
        ]
        with closing(raw_connect(backend, floor_url)) as conn:
            start = time.perf_counter()
            FloorStore(conn, backend).record_many(rows)
            floor_seconds = time.perf_counter() - start
            _compare("bulk", backend, _peewee_query(db), _raw_query(conn), checks)
        trades = db.execute_sql("SELECT * FROM trade ORDER BY id").fetchall()
        db.close()
    results = [
        Result(
            "2 bulk import",
            backend,
            f"record_trades x{len(batch):,}",
            "fills/s",
            len(batch) / project_seconds,
            len(batch) / floor_seconds,
            note="floor: the per-fill statements in one transaction",
        )
    ]
    if backend == "sqlite":
        results[0].check_value(100_000)
        results.append(
            Result(
                "2 bulk import",
                backend,
                "trade INSERT alone, no accounting",
                "rows/s",
                _insert_ceiling(folder, planned, trades),
                note="the ceiling: executemany of the finished trade rows",
            )
        )
    return results


def _insert_ceiling(folder: str, planned: list, trades: list[tuple]) -> float:
    """Rows per second of inserting ``trades`` as they are, in one transaction on a
    fresh SQLite file: what the bulk import's biggest statement costs by itself."""
    with fresh_database("sqlite", folder) as url:
        db = init_db(connect(url))
        insert_orders(
            db, planned, 1, {n: s.id for n, s in create_strategies(StorageService(db)).items()}
        )
        marks = ", ".join("?" * len(trades[0]))
        start = time.perf_counter()
        with db.atomic():
            db.cursor().executemany(f"INSERT INTO trade VALUES ({marks})", trades)
        seconds = time.perf_counter() - start
        db.close()
    return len(trades) / seconds


def _median_ms(call: Callable[[], Any], repeats: int) -> float:
    call()  # warm the cache and the connection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def dashboard_reads(backend: str, url: str, sizes: Sizes) -> list[Result]:
    """Workload 3: the dashboard's reads on the large history at ``url``; median ms."""
    db = connect(url)
    storage = StorageService(db)
    order_id = db.execute_sql("SELECT max(order_id) FROM trade").fetchone()[0]
    trades = db.execute_sql("SELECT count(*) FROM trade").fetchone()[0]
    symbol, status = "SYM07", "filled"
    project = {
        "open positions": storage.get_open_positions,
        "newest 100 orders": lambda: storage.get_recent_orders(100),
        "orders page (symbol+status)": lambda: storage.orders.page(
            symbol=symbol, status=status, limit=100
        ),
        "strategy stats": storage.get_strategy_stats,
        "one order's fills": lambda: storage.trades.get_by_order_id(order_id),
    }
    mark = "%s" if backend == "postgres" else "?"
    floor_sql = {
        "open positions": (
            f"SELECT * FROM position WHERE is_open = {mark} ORDER BY symbol",
            (True,),
        ),
        "newest 100 orders": ('SELECT * FROM "order" ORDER BY id DESC LIMIT 100', ()),
        "orders page (symbol+status)": (
            f'SELECT * FROM "order" WHERE symbol = {mark} AND status = {mark} '
            "ORDER BY id DESC LIMIT 100",
            (symbol, status),
        ),
        "strategy stats": ("SELECT * FROM strategy ORDER BY name", ()),
        "one order's fills": (
            f"SELECT * FROM trade WHERE order_id = {mark} ORDER BY id",
            (order_id,),
        ),
    }
    results = []
    with closing(raw_connect(backend, url)) as conn:
        cur = conn.cursor()

        def floor_call(sql: str, params: tuple) -> Callable[[], Any]:
            return lambda: cur.execute(sql, params).fetchall()

        for name, call in project.items():
            results.append(
                Result(
                    "3 dashboard reads",
                    backend,
                    name,
                    "ms",
                    _median_ms(call, sizes.read_repeats),
                    _median_ms(floor_call(*floor_sql[name]), sizes.read_repeats),
                    higher_is_better=False,
                    extra={"trades": trades},
                ).check_value(5)
            )
        if backend == "postgres":
            conn.rollback()
    db.close()
    return results


def dashboard_refresh(backend: str, url: str, sizes: Sizes) -> list[Result]:
    """Workload 4 (in-process part): refresh with nothing new and after one new fill.

    The fills come from a second connection, as they would from the bot."""
    source = dashboard_refresh_source(connect(url))
    source.refresh()
    no_change = _median_ms(source.refresh, sizes.read_repeats)
    writer = connect(url)
    storage = StorageService(writer)
    one_fill = []
    for k in range(max(3, sizes.read_repeats // 5)):
        order = storage.create_order("SYM03", "buy", "market", 5)
        storage.record_trade(order.id, "SYM03", "buy", 5, 101, external_id=f"R{k}-{order.id}")
        start = time.perf_counter()
        snapshot = source.refresh()
        one_fill.append((time.perf_counter() - start) * 1000)
        if snapshot is None:
            raise AssertionError(f"{source.name}: a refresh after a new fill saw no change")
    writer.close()
    source.close()
    return [
        Result(
            "4 dashboard refresh",
            backend,
            f"no change ({source.name})",
            "ms",
            no_change,
            higher_is_better=False,
        ).check_value(5),
        Result(
            "4 dashboard refresh",
            backend,
            f"one new fill ({source.name})",
            "ms",
            statistics.median(one_fill),
            higher_is_better=False,
        ).check_value(50),
    ]


def probe(url: str, refreshes: int) -> dict[str, Any]:
    """Run :mod:`bench.probe` on ``url`` in a fresh interpreter; what it measured."""
    return run_probe("bench.probe", url, str(refreshes), timeout=600)


def startup_and_memory(backend: str, small_url: str, large_url: str, sizes: Sizes) -> list[Result]:
    """Workload 4 (process part): startup time, and peak RSS on a small and a large history."""
    refreshes = max(5, sizes.read_repeats // 2)
    small, large = probe(small_url, refreshes), probe(large_url, refreshes)
    trades = {}
    for name, url in (("small", small_url), ("large", large_url)):
        db = connect(url)
        trades[name] = db.execute_sql("SELECT count(*) FROM trade").fetchone()[0]
        db.close()
    growth = large["peak_rss_mb"] - small["peak_rss_mb"]
    return [
        Result(
            "4 dashboard refresh",
            backend,
            "startup to first refresh",
            "s",
            large["startup_s"],
            higher_is_better=False,
            note=f"imports {', '.join(large['modules']) or 'the store'}",
        ).check_value(1),
        Result(
            "4 dashboard refresh",
            backend,
            f"peak RSS at {trades['small']:,} trades",
            "MB",
            small["peak_rss_mb"],
            higher_is_better=False,
        ),
        Result(
            "4 dashboard refresh",
            backend,
            f"peak RSS at {trades['large']:,} trades",
            "MB",
            large["peak_rss_mb"],
            higher_is_better=False,
            target="flat (< +10%)",
            passed=growth < 0.1 * small["peak_rss_mb"],
            extra={"growth_mb": growth},
        ),
    ]
