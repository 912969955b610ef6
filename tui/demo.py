"""The ``--demo`` store: a fresh SQLite file with a seeded history and a bot trading on it."""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import tempfile
from pathlib import Path

from stocksbot_store import StorageService, connect, init_db
from stocksbot_store.seed import SimulatedBot, seed_history


class Demo:
    """A temporary store that a :class:`SimulatedBot` keeps writing to.

    Use as a context manager: on exit the bot stops and the folder is removed.
    """

    def __init__(self, orders: int = 300, interval: float = 0.7) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="stocksbot-demo-"))
        self.url = f"sqlite:///{self.folder / 'demo.db'}"
        db = connect(self.url)
        init_db(db)
        # The history ends about now, so the bot's orders follow on from it.
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        seed_history(StorageService(db), orders=orders, end=now)
        db.close()
        self.bot = SimulatedBot(connect(self.url), interval=interval)

    def __enter__(self) -> Demo:
        self.bot.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bot.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.bot.failure is not None:  # said once the dashboard has left the screen
            print(
                f"stocksbot-dashboard: the demo's bot stopped: {self.bot.failure}", file=sys.stderr
            )
