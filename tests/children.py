"""A test's child process whose output is read as it comes, so the test can wait for a
state the child reports (``ready``, so many commits) instead of sleeping for a time
that is right on one machine only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

COMMITS = ("T ", "B ")  # the lines tests/procs/fill_loop.py prints after each commit


class Child:
    """``python ARGS...`` in its own process; a thread collects its stdout lines with the
    time each arrived."""

    def __init__(self, args: Sequence[str]) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[tuple[float, str]] = []
        self.error = ""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def text(self) -> list[str]:
        return [line for _, line in self.lines]

    def commits(self) -> int:
        """How many commits the child has reported so far."""
        return sum(line.startswith(COMMITS) for _, line in self.lines)

    def wait_for(self, reached: Callable[[], bool] | int, timeout: float = 120) -> None:
        """Wait until ``reached()`` is true (an int: until that many lines came); the
        child is killed and the test fails if it stops or stalls first."""

        def enough_lines() -> bool:
            return len(self.lines) >= reached

        condition = enough_lines if isinstance(reached, int) else reached
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"the child stopped or stalled; it said "
                    f"{self.text()[-5:]} and {self.error[-3000:]}"
                )
            time.sleep(0.005)

    def stop(self) -> None:
        """SIGKILL the child (if it runs), then collect the rest of its output."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=60)
        self.reader.join(timeout=60)
        self.error = self.process.stderr.read()
