"""One data-movement job in a fresh interpreter, for its peak memory.

``python -m bench.movement_probe backup|export|convert SOURCE_URL TARGET`` runs
:func:`stocksbot_store.backup` (TARGET a file), :func:`stocksbot_store.export_archive`
(TARGET a new folder) or :func:`stocksbot_store.convert` (TARGET a database URL) and
prints one JSON line: seconds taken and the peak resident set size in MB.
"""

from __future__ import annotations

import json
import sys
import time

from .probe import _peak_rss_kb


def main(argv: list[str]) -> int:
    action, source, target = argv
    from stocksbot_store import backup, connect, convert, export_archive

    start = time.perf_counter()
    if action == "convert":
        convert(source, target)
    else:
        db = connect(source)
        if action == "backup":
            backup(db, target)
        else:
            export_archive(db, target)
        db.close()
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_mb": _peak_rss_kb() / 1024}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
