"""Crash safety: a writer killed with SIGKILL at random moments loses nothing it
committed and leaves nothing half-applied, on a SQLite file and on PostgreSQL.

A child process (``tests/procs/fill_loop.py``) records single fills, batches and
hand adjustments in a loop and prints each trade id after its commit. The test
kills it at a random moment, :data:`KILLS` times on the same database; after each
kill every reported id must be stored, every batch must be whole or absent, and
the ledger check must pass (so no order, position or strategy figure is out of
step with the trades).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from stocksbot_store import connect, init_db
from stocksbot_store.check import check_ledger, main

CHILD = Path(__file__).parent / "procs" / "fill_loop.py"
KILLS = 20


def read_lines(process: subprocess.Popen) -> list[str]:
    out, err = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, f"the child died on its own:\n{err[-3000:]}"
    return out.split("\n")[:-1]  # the last piece may be cut short


def start_child(url: str, tag: str, seed: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, str(CHILD), url, tag, str(seed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_ready(process: subprocess.Popen) -> None:
    line = process.stdout.readline()
    if line.strip() != "ready":
        process.kill()
        raise AssertionError(f"child did not start: {line!r} {process.stderr.read()[-2000:]}")


def test_sigkill_at_random_moments_loses_and_half_applies_nothing(file_db_url):
    rng = random.Random(int(os.environ.get("STOCKSBOT_CRASH_SEED", "0")) or None)
    db = connect(file_db_url)
    init_db(db)
    reported: set[int] = set()
    kills = 0
    for round_number in range(KILLS):
        child = start_child(file_db_url, f"r{round_number}", rng.randrange(1 << 30))
        if round_number % 4 == 0:
            time.sleep(rng.uniform(0.0, 0.3))  # sometimes during start-up itself
        else:
            wait_ready(child)
            time.sleep(rng.uniform(0.02, 0.4))
        os.kill(child.pid, signal.SIGKILL)
        kills += 1
        lines = read_lines(child)
        for line in lines:
            if line.startswith(("T ", "B ")):
                reported.update(int(x) for x in line.split()[1:])

        stored = {row[0] for row in db.execute_sql("SELECT id FROM trade").fetchall()}
        lost = reported - stored
        assert not lost, f"after kill {kills}: committed trades {sorted(lost)} are gone"
        batches: dict[str, list[str]] = {}
        for (external_id,) in db.execute_sql(
                "SELECT external_id FROM trade WHERE external_id IS NOT NULL").fetchall():
            key, size = re.fullmatch(r"(.+-b\d+)-\d+of(\d+)", external_id).groups()
            batches.setdefault(key, []).append(size)
        for key, sizes in batches.items():
            assert len(sizes) == int(sizes[0]), f"batch {key} is half-stored: {sizes}"
        report = check_ledger(db)
        assert report.ok, f"after kill {kills}:\n{report.format()}"

    assert kills >= 20
    assert len(reported) > KILLS, "the child barely wrote anything before the kills"
    db.close()
    assert main(["--url", file_db_url, "--no-progress"]) == 0
    print(f"{kills} kills, {len(reported)} committed trades reported, all present")
