"""Workload 6: data movement (backup, export, convert), each beside a floor.

* **backup** (SQLite): :func:`stocksbot_store.backup` without its verification
  against SQLite's backup API called by hand (``sqlite3`` ``Connection.backup``,
  what ``sqlite3 .backup`` does) on the same file; and the verified backup
  (integrity check and ledger check of the copy) on its own;
* **export**: rows per second of :func:`stocksbot_store.export_archive` (JSON lines)
  over every table;
* **convert to PostgreSQL**: :func:`stocksbot_store.convert` (copy, then the
  verification: every table's checksum read back and the ledger check) against the
  same rows written by hand with ``COPY`` and no verification;
* **memory**: peak RSS of each job in a fresh process on the small and the large
  history; flat means the large within 10 % of the small.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing

from stocksbot_store import backup, connect, convert, export_archive, init_db
from stocksbot_store.models import MODELS
from stocksbot_store.rows import count_rows

from .databases import fresh_database, raw_connect
from .fresh import run_probe
from .results import Result

WORKLOAD = "6 data movement"


def _rows(url: str) -> tuple[int, int]:
    """Trades, and rows of every table, at ``url``."""
    db = connect(url)
    try:
        counts = {m._meta.table_name: count_rows(db, m._meta.table_name) for m in MODELS}
    finally:
        db.close()
    return counts["trade"], sum(counts.values())


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _probe(action: str, source: str, target: str) -> dict:
    return run_probe("bench.movement_probe", action, source, target)


def _memory(action: str, backend: str, small: str, large: str, target_of) -> Result:
    sizes, peaks = [], []
    for url in (small, large):
        sizes.append(_rows(url)[0])
        peaks.append(_probe(action, url, target_of())["peak_rss_mb"])
    growth = peaks[1] - peaks[0]
    return Result(
        WORKLOAD,
        backend,
        f"{action} peak RSS at {sizes[1]:,} trades",
        "MB",
        peaks[1],
        higher_is_better=False,
        target="flat (< +10%)",
        passed=growth < 0.1 * peaks[0],
        note=f"{peaks[0]:.1f} MB at {sizes[0]:,} trades",
        extra={"small_trades": sizes[0], "small_mb": peaks[0], "growth_mb": growth},
    )


def data_movement_sqlite(small: str, large: str, folder: str) -> list[Result]:
    """Backup and export of the SQLite histories ``small`` and ``large``."""
    trades, rows = _rows(large)
    path = large.split(":///", 1)[1]
    counter = iter(range(1_000_000))

    def fresh(name: str) -> str:
        return os.path.join(folder, f"{name}-{next(counter)}")

    def floor_backup() -> None:
        with (
            closing(sqlite3.connect(path)) as source,
            closing(sqlite3.connect(fresh("floor") + ".db")) as target,
        ):
            source.backup(target)

    db = connect(large)
    floor_backup()  # warm the page cache for both
    # Turns, the best of three each: on a busy machine one run says more about the others.
    floor, project = float("inf"), float("inf")
    for _ in range(3):
        floor = min(floor, _timed(floor_backup))
        project = min(project, _timed(lambda: backup(db, fresh("copy") + ".db", verify=False)))
    verified = _timed(lambda: backup(db, fresh("verified") + ".db"))
    exported = _timed(lambda: export_archive(db, fresh("export")))
    db.close()
    return [
        Result(
            WORKLOAD,
            "sqlite",
            f"backup copy, {trades:,} trades",
            "s",
            project,
            floor,
            higher_is_better=False,
            note="best of 3 turns each; floor: sqlite3 Connection.backup by hand",
        ).check_ratio(0.5),
        Result(
            WORKLOAD,
            "sqlite",
            "backup + integrity + ledger check",
            "s",
            verified,
            higher_is_better=False,
            note="the verification reads every trade",
        ),
        Result(
            WORKLOAD, "sqlite", f"export jsonl, {rows:,} rows", "rows/s", rows / exported
        ).check_value(100_000),
        _memory("backup", "sqlite", small, large, lambda: fresh("rss") + ".db"),
        _memory("export", "sqlite", small, large, lambda: fresh("rss")),
    ]


def _copy_by_hand(source_path: str, pg_url: str) -> None:
    """The floor: every table read with sqlite3 and written with COPY, ids kept."""
    with (
        closing(sqlite3.connect(source_path)) as source,
        closing(raw_connect("postgres", pg_url)) as target,
    ):
        cursor = target.cursor()
        for model in MODELS:
            table = model._meta.table_name
            columns = [f.column_name for f in model._meta.sorted_fields]
            names = ", ".join(f'"{c}"' for c in columns)
            rows = source.execute(f'SELECT {names} FROM "{table}" ORDER BY id')
            with cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
                while batch := rows.fetchmany(5000):
                    for row in batch:
                        copy.write_row(row)
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                f'COALESCE(MAX(id), 0) + 1, false) FROM "{table}"'
            )
        target.commit()


def data_movement_postgres(small: str, large: str, folder: str) -> list[Result]:
    """Convert the SQLite histories to PostgreSQL, beside COPY by hand."""
    trades, rows = _rows(large)
    with (
        fresh_database("postgres", folder) as floor_url,
        fresh_database("postgres", folder) as project_url,
    ):
        init_db(connect(floor_url)).close()
        floor = _timed(lambda: _copy_by_hand(large.split(":///", 1)[1], floor_url))
        start = time.perf_counter()
        report = convert(large, project_url)
        project = time.perf_counter() - start
        exported = _timed(lambda: _export(project_url, os.path.join(folder, "pg-export")))
    results = [
        Result(
            WORKLOAD,
            "postgres",
            f"convert SQLite -> PostgreSQL, {trades:,} trades",
            "s",
            project,
            floor,
            higher_is_better=False,
            note="project verifies (checksums read back, ledger check); floor: COPY by "
            "hand, no verification",
        ).check_ratio(0.5),
        Result(
            WORKLOAD,
            "postgres",
            "convert: copy phase alone",
            "s",
            report.copy_seconds,
            floor,
            higher_is_better=False,
            note="reading SQLite in canonical form and COPY, as the floor does",
        ).check_ratio(0.5),
        Result(
            WORKLOAD,
            "postgres",
            "convert: verification alone",
            "s",
            report.verify_seconds,
            higher_is_better=False,
            note="every table's sha256 read back, and the ledger check on the target",
        ),
        Result(
            WORKLOAD, "postgres", f"export jsonl, {rows:,} rows", "rows/s", rows / exported
        ).check_value(100_000),
    ]
    memory = []
    for url in (small, large):
        with fresh_database("postgres", folder) as target:
            memory.append((_rows(url)[0], _probe("convert", url, target)["peak_rss_mb"]))
    (small_trades, small_mb), (large_trades, large_mb) = memory
    results.append(
        Result(
            WORKLOAD,
            "postgres",
            f"convert peak RSS at {large_trades:,} trades",
            "MB",
            large_mb,
            higher_is_better=False,
            target="flat (< +10%)",
            passed=large_mb - small_mb < 0.1 * small_mb,
            note=f"{small_mb:.1f} MB at {small_trades:,} trades",
        )
    )
    return results


def _export(url: str, out: str) -> None:
    db = connect(url)
    try:
        export_archive(db, out)
    finally:
        db.close()
