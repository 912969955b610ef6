"""A dashboard-like process for startup time and peak memory.

``python -m bench.probe URL REFRESHES`` imports the dashboard (its app module
when there is one, else its data source), connects, refreshes ``REFRESHES``
times with a change forced each time, and prints one JSON line: seconds from
interpreter start to the first refresh done, and the peak resident set size.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time


def _process_age() -> float:
    """Seconds since this process started (from /proc, so imports are counted)."""
    with open("/proc/self/stat") as stat:
        start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as uptime:
        up = float(uptime.read().split()[0])
    return up - start_ticks / __import__("os").sysconf("SC_CLK_TCK")


def _peak_rss_kb() -> int:
    """This process's peak resident set (VmHWM). Not ``ru_maxrss``: that one keeps
    the high-water mark of the parent that forked this interpreter."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str]) -> int:
    url, refreshes = argv[0], int(argv[1])
    loaded = []
    for module in ("stocksbot_tui.app", "stocksbot_tui.data"):
        try:
            importlib.import_module(module)
            loaded.append(module)
        except ImportError:
            pass
    from stocksbot_store import connect

    from .refresh import dashboard_refresh_source

    wall = time.perf_counter()
    source = dashboard_refresh_source(connect(url))
    source.refresh()
    first = time.perf_counter() - wall
    startup = _process_age()
    for _ in range(refreshes):
        if hasattr(source, "source"):
            source.source.refresh(force=True)
        else:
            source.refresh()
    source.close()
    rss_kb = _peak_rss_kb()
    print(
        json.dumps(
            {
                "startup_s": startup,
                "first_refresh_s": first,
                "peak_rss_mb": rss_kb / 1024,
                "modules": loaded,
                "source": source.name,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
