"""Python's cyclic garbage collector paused while a batch of fills is in memory.

A batch builds tens of thousands of objects that live until it returns (checked
fills, rows, states, the trades it gives back). Each time enough of them survive,
CPython runs a full collection, which walks every object of the process, not only
the batch's: measured on a bare bench process, a quarter of the bulk path's time
(about one full collection per 5,000 fills, and more in a bigger process). Those
objects hold no reference cycles the batch leaves behind: when it returns, they are
freed by reference counting, so pausing the collector for the batch's duration
skips that work instead of postponing it.

The pause is for the whole process, so it is kept short (one batch, a fraction of a
second for thousands of fills), counted (concurrent and nested batches share it; the
collector runs again when the last one ends) and never turns on a collector that
was off when the first one began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_paused = 0  # batches running with the collector paused
_was_enabled = False  # whether the first of them found it on


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cyclic garbage collector off (see the module docstring)."""
    global _paused, _was_enabled
    with _lock:
        if not _paused:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if not _paused and _was_enabled:
                gc.enable()
