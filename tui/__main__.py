"""``stocksbot-dashboard`` / ``python -m stocksbot_tui``: start the dashboard.

Errors (a bad URL, say) go to stderr with exit status 2 and no traceback; once
running, database trouble is shown in the status line instead. A SQLite file that
does not exist is refused (a typo in the path would otherwise watch a new, empty
store) unless ``--create`` says to create it.
"""

from __future__ import annotations

import argparse
import os
import sys

from .data import (
    DEFAULT_URL,
    ArgumentParser,
    DashboardSource,
    StorageError,
    create_store,
    database_url,
    sqlite_url_file_path,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (its usage errors mask a password they quote)."""
    parser = ArgumentParser(
        prog="stocksbot-dashboard",
        description="Terminal dashboard of a stocksbot store: positions, orders, strategies "
        "and trades, live. Read-only except for the confirmed operator actions "
        "(halt/resume trading, activate/deactivate a strategy).",
    )
    parser.add_argument(
        "--url",
        metavar="URL",
        default=None,
        help="database to watch, e.g. sqlite:///./stocksbot.db or "
        f"postgresql://user@host/db (default: $DATABASE_URL, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--refresh",
        metavar="SECONDS",
        type=_positive_float,
        default=1.0,
        help="how often to check the database for changes (default: 1); an unchanged "
        "database costs next to nothing to check",
    )
    parser.add_argument(
        "--create",
        action="store_true",
        help="create the SQLite file, with a new empty store, if it does not exist "
        "(without it, a path that does not exist is refused)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="ignore --url: create a temporary SQLite store with a seeded history and run a "
        "simulated bot that keeps trading on it while you watch",
    )
    parser.add_argument(
        "--screenshot",
        metavar="FILE.svg",
        default=None,
        help="save an SVG screenshot after the first refresh and exit (the README's image "
        "is made with --demo --screenshot docs/dashboard.svg)",
    )
    return parser.parse_args(argv)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the dashboard; the exit status."""
    args = parse_args(argv)
    try:
        if not args.demo:
            missing = missing_sqlite_file(database_url(args.url))
            if missing is not None and not args.create:
                print(
                    f"stocksbot-dashboard: the SQLite database {missing!r} does not exist; "
                    "check the path, or pass --create to create a new store there",
                    file=sys.stderr,
                )
                return 2
            if missing is not None:
                create_store(database_url(args.url))
        from .app import DashboardApp

        if args.demo:
            from .demo import Demo

            with Demo() as demo:
                return _run(
                    DashboardApp(DashboardSource(demo.url), refresh_seconds=args.refresh),
                    args.screenshot,
                )
        return _run(
            DashboardApp(DashboardSource(args.url), refresh_seconds=args.refresh), args.screenshot
        )
    except StorageError as e:
        print(f"stocksbot-dashboard: {e}", file=sys.stderr)
        return 2


def missing_sqlite_file(url: str) -> str | None:
    """The path of the SQLite file ``url`` names if that file does not exist; None for
    an existing file, a database in memory, or another backend (a URL it cannot parse
    is left for ``connect`` to refuse). A ``file:`` URI names its file as a path does."""
    try:
        path = sqlite_url_file_path(url)
    except ValueError:
        return None
    if path is None or os.path.exists(path):
        return None
    return path


def _run(app, screenshot: str | None) -> int:
    if screenshot is None:
        app.run()
        return 0
    from .headless import save_screenshot

    save_screenshot(app, screenshot)
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
