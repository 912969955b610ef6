"""``stocksbot-audit``: read a store's audit log from the command line.

Opens the database read-only (a SQLite file with ``mode=ro``, as ``stocksbot-check``
does), so it is safe to run beside the bot; prints the newest rows first, as text
for people or JSON for scripts. See :mod:`stocksbot_store.audit` for what a row says.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from peewee import PeeweeException

from .audit import MAX_LIMIT, TABLES, AuditEntry, get_audit_log
from .check import open_read_only
from .database import database_url, scrub
from .errors import StorageError, first_line
from .urls import ArgumentParser

PROG = "stocksbot-audit"


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``stocksbot-audit``."""
    parser = ArgumentParser(
        prog=PROG,
        description="Show a stocksbot store's audit log, newest first: who changed which "
        "order, trade, position, strategy or setting, when, and each changed "
        "field's value before and after. Opens the database read-only (a "
        "SQLite file with mode=ro), so it is safe to run while the bot trades.",
        epilog="Examples: `stocksbot-audit --table orders --id 42` (one order's history); "
        "`stocksbot-audit --since 2026-11-25T00:00Z --actor bot-eu-1`; "
        "`stocksbot-audit --limit 100 --before-id 5071` (the page after the one "
        "ending at row 5071). Exit status: 0 rows printed (or none matched); 2 the "
        "log could not be read (bad URL or argument, unreachable database, a store "
        "not migrated to the audit log; the reason is on stderr).",
    )
    parser.add_argument(
        "--url",
        metavar="URL",
        help="database URL, e.g. sqlite:///stocksbot.db or "
        "postgresql://user:password@host/db (default: $DATABASE_URL, "
        "else sqlite:///./stocksbot.db)",
    )
    parser.add_argument(
        "--table", choices=sorted(TABLES.values()), help="only changes to this table"
    )
    parser.add_argument(
        "--id",
        type=int,
        metavar="ROW_ID",
        dest="row_id",
        help="only changes to the row with this id (needs --table)",
    )
    parser.add_argument(
        "--since",
        metavar="TIME",
        help="only changes at or after TIME, ISO-8601 "
        "(2026-11-25 or 2026-11-25T14:30:00+00:00; no zone means UTC)",
    )
    parser.add_argument(
        "--actor", help="only changes written by this actor (e.g. bot-eu-1 or user@host:pid)"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=100,
        metavar="N",
        help=f"at most N rows (default 100, at most {MAX_LIMIT:,})",
    )
    parser.add_argument(
        "--before-id",
        type=int,
        metavar="ID",
        help="only rows older than audit row ID: the next page",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text for people (default), json for scripts (a list of rows)",
    )
    return parser


def format_text(entries: list[AuditEntry]) -> str:
    """One block per row: id, time, actor, table and row, action, then each change."""
    if not entries:
        return "no audit rows match"
    lines = []
    for e in entries:
        row = "" if e.row_id is None else f" {e.row_id}"
        lines.append(
            f"#{e.id}  {e.at.isoformat(timespec='seconds')}  {e.actor}  {e.table}{row}  {e.action}"
        )
        lines += [
            f"    {name}: {_shown(before)} -> {_shown(after)}"
            for name, (before, after) in e.changes.items()
        ]
    return "\n".join(lines)


def _shown(v: Any) -> str:
    return "null" if v is None else json.dumps(v) if not isinstance(v, str) else v


def main(argv: list[str] | None = None) -> int:
    """Print the audit rows the arguments select; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.row_id is not None and args.table is None:
        parser.error("--id needs --table: ids repeat across tables")
    url = database_url(args.url)
    try:
        db = open_read_only(url)
        try:
            entries = get_audit_log(
                db, args.table, args.row_id, args.since, args.limit, args.actor, args.before_id
            )
        finally:
            if not db.is_closed():
                db.close()
    except (StorageError, PeeweeException, OSError) as e:
        message = str(e) if isinstance(e, StorageError) else first_line(e)
        print(f"{PROG}: error: {scrub(message, url)}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps([e.to_dict() for e in entries], indent=2))
    else:
        print(format_text(entries))
    return 0


def run() -> None:
    """Console-script entry point: ``sys.exit(main())``."""
    sys.exit(main())


if __name__ == "__main__":
    run()
