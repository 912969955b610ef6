"""``python -m bench [--quick] [--backend sqlite|postgres|all] [--json PATH]``.

Runs every workload on each backend, project and floor side by side, prints the
table and writes the JSON. Exit status: 0 when every workload ran and the
project and the floor agreed on every book (a missed target is reported, not an
error), 1 when the books disagree, 2 when the bench cannot run (no PostgreSQL
under ``CI=true``, a bad argument...). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import sqlite3
import sys
import tempfile
import time
from contextlib import ExitStack

import peewee

from .adopt import adopt_workload
from .databases import BenchSetupError, fresh_database, postgres_problem
from .history import build_history, cached_sqlite_history
from .import_memory import import_memory
from .movement import data_movement_postgres, data_movement_sqlite
from .reports import report_reads
from .results import Result, table, write_json
from .workloads import (
    FULL,
    QUICK,
    BookMismatch,
    Sizes,
    bulk_import,
    dashboard_reads,
    dashboard_refresh,
    fill_ingest,
    startup_and_memory,
)

DEFAULT_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "latest.json")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine(backends: list[str]) -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    meta = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "peewee": peewee.__version__,
    }
    if "postgres" in backends:
        import psycopg

        from .databases import _admin_dsn

        with psycopg.connect(_admin_dsn()) as conn:
            meta["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
    return meta


def run_backend(backend: str, sizes: Sizes, folder: str, checks: dict) -> list[Result]:
    """Every workload on one backend."""
    results = []
    log(f"{backend}: fill ingest")
    results += fill_ingest(backend, folder, sizes, checks)
    log(f"{backend}: bulk import")
    results += bulk_import(backend, folder, sizes, checks)
    log(f"{backend}: import_trades memory")
    small, large = sizes.import_fills if backend == "sqlite" else sizes.import_fills_pg
    results += import_memory(backend, folder, small, large)
    with ExitStack() as stack:
        urls = {}
        for label, orders in (
            ("small", sizes.small_history_orders),
            ("large", sizes.history_orders),
        ):
            if backend == "sqlite":
                urls[label] = cached_sqlite_history(orders, folder, log)
            else:
                urls[label] = stack.enter_context(fresh_database(backend, folder))
                log(f"postgres: building a history of {orders:,} orders")
                start = time.perf_counter()
                build_history(urls[label], orders)
                log(f"postgres: built in {time.perf_counter() - start:.1f} s")
        log(f"{backend}: dashboard reads on {2 * sizes.history_orders:,} trades")
        results += dashboard_reads(backend, urls["large"], sizes)
        log(f"{backend}: reports on {2 * sizes.history_orders:,} trades")
        results += report_reads(backend, urls["large"], sizes)
        log(f"{backend}: dashboard refresh, startup and memory")
        results += startup_and_memory(backend, urls["small"], urls["large"], sizes)
        results += dashboard_refresh(backend, urls["large"], sizes)
        log(f"{backend}: data movement (backup, export, convert)")
        if backend == "sqlite":
            results += data_movement_sqlite(urls["small"], urls["large"], folder)
        else:
            sources = [
                cached_sqlite_history(orders, folder, log)
                for orders in (sizes.small_history_orders, sizes.history_orders)
            ]
            results += data_movement_postgres(*sources, folder)
    results += adopt_workload(
        backend, folder, sizes.adopt_trades if backend == "sqlite" else sizes.adopt_trades_pg, log
    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (what CI runs); targets are not judged"
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument(
        "--json",
        default=DEFAULT_JSON,
        metavar="PATH",
        help=f"where to write the results (default {DEFAULT_JSON})",
    )
    args = parser.parse_args(argv)
    # A terminated run still drops its throwaway PostgreSQL databases.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = QUICK if args.quick else FULL
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    try:
        if "postgres" in backends:
            problem = postgres_problem()
            if problem and (
                args.backend == "postgres" or os.environ.get("CI", "").lower() == "true"
            ):
                raise BenchSetupError(f"PostgreSQL is needed: {problem}")
            if problem:
                log(f"skipping PostgreSQL: {problem}")
                backends.remove("postgres")
        meta = machine(backends)
        meta["mode"] = "quick" if args.quick else "full"
        results: list[Result] = []
        checks: dict = {}
        with tempfile.TemporaryDirectory(prefix="stocksbot-bench-") as folder:
            for backend in backends:
                results += run_backend(backend, sizes, folder, checks)
    except BookMismatch as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (BenchSetupError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    meta["books"] = checks
    print(table(results, args.quick))
    write_json(args.json, results, meta)
    log(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
