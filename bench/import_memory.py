"""Workload 2, memory: ``import_trades`` of a generator of fills, peak memory by size.

For each size, a fresh database gets the plan's orders (one ``executemany``, as
:mod:`bench.history` does), then a fresh interpreter imports their fills from a
generator (nothing holds them as a list) and reports its peak resident set
(VmHWM), which includes the interpreter and its imports. Flat means the peak at the
large size within 10 % of the small one's.

``python -m bench.import_memory [--backend sqlite|postgres] [--tracemalloc] SIZE...``
runs it alone and prints one JSON line per size; ``--tracemalloc`` also reports the
peak of Python's allocations during the import and what the import kept after its
first batch (about 3x slower). ``python -m bench.import_memory probe URL FILLS
[--tracemalloc]`` is the fresh interpreter's part.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from .databases import fresh_database
from .fresh import run_probe
from .results import Result

WORKLOAD = "2 bulk import"
#: The plan's seed for these imports (any; the same in both processes).
SEED = 13
#: Orders inserted per statement while the database is prepared.
ORDER_CHUNK = 50_000


def prepare(url: str, fills: int) -> None:
    """The plan's strategies and its ``fills // 2`` orders, ids from 1, at ``url``."""
    from stocksbot_store import StorageService, connect, init_db

    from .history import create_strategies, insert_orders
    from .scenario import batches, iter_plan

    db = init_db(connect(url))
    strategies = {n: s.id for n, s in create_strategies(StorageService(db)).items()}
    next_id = 1
    for chunk in batches(iter_plan(fills // 2, seed=SEED), ORDER_CHUNK):
        next_id += len(insert_orders(db, chunk, next_id, strategies))
    db.close()


def planned_fills(fills: int) -> Iterator[Any]:
    """The fills of :func:`prepare`'s orders, one at a time."""
    from stocksbot_store import Fill

    from .scenario import iter_plan

    for k, o in enumerate(iter_plan(fills // 2, seed=SEED)):
        for part, f in enumerate(o.fills):
            yield Fill(
                k + 1,
                o.symbol,
                o.side,
                f.quantity,
                f.price,
                f.commission,
                0,
                f"I{k + 1}-{part}",
                f.executed_at,
            )


def probe(url: str, fills: int, traced: bool) -> dict[str, Any]:
    """Import ``fills`` fills into the prepared database at ``url``; what it measured."""
    import gc
    import tracemalloc

    from stocksbot_store import StorageService, connect

    from .probe import _peak_rss_kb

    db = connect(url)
    storage = StorageService(db)
    after_first: list[int] = []

    def progress(summary: Any) -> None:
        if traced and not after_first:
            gc.collect()
            after_first.append(tracemalloc.get_traced_memory()[0])

    if traced:
        tracemalloc.start()
    start = time.perf_counter()
    summary = storage.import_trades(planned_fills(fills), progress=progress)
    seconds = time.perf_counter() - start
    out: dict[str, Any] = {
        "fills": summary.fills,
        "recorded": summary.recorded,
        "batches": summary.batches,
        "seconds": seconds,
        "peak_rss_mb": _peak_rss_kb() / 1024,
    }
    if traced:
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["traced_peak_mb"] = peak / 2**20
        out["kept_after_first_batch_kb"] = (current - after_first[0]) / 1024
    db.close()
    return out


def measure(backend: str, folder: str, fills: int, traced: bool = False) -> dict[str, Any]:
    """Prepare a fresh database and run :func:`probe` on it in a fresh interpreter."""
    with fresh_database(backend, folder) as url:
        prepare(url, fills)
        traced_flag = ("--tracemalloc",) if traced else ()
        return run_probe("bench.import_memory", "probe", url, str(fills), *traced_flag)


def import_memory(backend: str, folder: str, small: int, large: int) -> list[Result]:
    """Peak RSS of ``import_trades`` at ``small`` and ``large`` fills: flat or not."""
    low, high = measure(backend, folder, small), measure(backend, folder, large)
    growth = high["peak_rss_mb"] - low["peak_rss_mb"]
    return [
        Result(
            WORKLOAD,
            backend,
            f"import_trades peak RSS at {large:,} fills",
            "MB",
            high["peak_rss_mb"],
            higher_is_better=False,
            target="flat (< +10%)",
            passed=growth < 0.1 * low["peak_rss_mb"],
            note=f"{low['peak_rss_mb']:.1f} MB at {small:,} fills; a generator, batches "
            f"of 5,000; {large / high['seconds']:,.0f} fills/s",
            extra={"small_fills": small, "small_mb": low["peak_rss_mb"], "growth_mb": growth},
        )
    ]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "probe":
        url, fills = args[1], int(args[2])
        print(json.dumps(probe(url, fills, "--tracemalloc" in args[3:])))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.import_memory", description=__doc__)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("sizes", nargs="+", type=int, metavar="SIZE")
    options = parser.parse_args(args)
    with tempfile.TemporaryDirectory(prefix="stocksbot-bench-") as folder:
        for size in options.sizes:
            result = measure(options.backend, folder, size, options.tracemalloc)
            print(json.dumps({"backend": options.backend, **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
