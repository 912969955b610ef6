"""Crash safety: a writer killed with SIGKILL at random moments loses nothing it
committed and leaves nothing half-applied, on a SQLite file and on PostgreSQL.

A child process (``tests/procs/fill_loop.py``) records single fills, batches and
hand adjustments in a loop and prints each trade id after its commit. The test
kills it at a random moment (during start-up, or after a random number of commits),
:data:`KILLS` times on the same database; after each kill every reported id must be
stored, every batch must be whole or absent, and the ledger check must pass (so no
order, position or strategy figure is out of step with the trades). The seed is
printed; ``STOCKSBOT_SEED=<seed>`` replays the same moments.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from children import COMMITS, Child

from stocksbot_store import connect
from stocksbot_store.check import check_ledger, main

CHILD = Path(__file__).parent / "procs" / "fill_loop.py"
KILLS = 20

pytestmark = pytest.mark.slow


def kill_at_a_random_moment(child: Child, round_number: int, rng) -> None:
    if round_number % 4 == 0:
        time.sleep(rng.uniform(0.0, 0.3))  # often during start-up itself
    else:
        # After a random number of commits: a state to reach, not a time to guess, so
        # the kill lands among the writes on a fast machine and on a slow one alike.
        wanted = rng.randint(1, 30)
        child.wait_for(lambda: child.commits() >= wanted)
    child.stop()


def test_sigkill_at_random_moments_loses_and_half_applies_nothing(store_url, rng):
    db = connect(store_url)
    reported: set[int] = set()
    for round_number in range(KILLS):
        child = Child([CHILD, store_url, f"r{round_number}", rng.randrange(1 << 30)])
        kill_at_a_random_moment(child, round_number, rng)
        assert child.process.returncode == -signal.SIGKILL, (
            f"the child died on its own:\n{child.error[-3000:]}"
        )
        for line in child.text()[:-1]:  # the last piece may be cut short
            if line.startswith(COMMITS):
                reported.update(int(x) for x in line.split()[1:])

        after = f"after kill {round_number + 1}"
        stored = {row[0] for row in db.execute_sql("SELECT id FROM trade").fetchall()}
        lost = reported - stored
        assert not lost, f"{after}: committed trades {sorted(lost)} are gone"
        batches: dict[str, list[str]] = {}
        for (external_id,) in db.execute_sql(
            "SELECT external_id FROM trade WHERE external_id IS NOT NULL"
        ).fetchall():
            key, size = re.fullmatch(r"(.+-b\d+)-\d+of(\d+)", external_id).groups()
            batches.setdefault(key, []).append(size)
        for key, sizes in batches.items():
            assert len(sizes) == int(sizes[0]), f"{after}: batch {key} is half-stored: {sizes}"
        report = check_ledger(db)
        assert report.ok, f"{after}:\n{report.format()}"

    db.close()
    assert main(["--url", store_url, "--no-progress"]) == 0
    print(f"{KILLS} kills, {len(reported)} committed trades reported, all present")
