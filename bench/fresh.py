"""Running a measuring module in a fresh interpreter.

Startup time and peak memory are only meaningful in a process that did nothing
else first, so the probes (:mod:`bench.probe`, :mod:`bench.movement_probe`,
:mod:`bench.import_memory`'s ``probe``) run as ``python -m MODULE ARGS...`` from the
project's folder and print their figures as one JSON line, the last they print.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

#: The project's folder, where ``python -m bench.*`` finds the package.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_probe(module: str, *args: str, timeout: float = 7200) -> dict[str, Any]:
    """Run ``python -m module args...`` in a fresh interpreter; the JSON object of the
    last line it printed. A probe that fails raises with the end of its stderr."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args[:1])} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
