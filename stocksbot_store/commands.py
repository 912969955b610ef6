"""The command lines of backup, restore, export, import, convert and importing fills.

Each is thin: it parses its arguments, calls the library function
(:func:`stocksbot_store.backups.backup`, :func:`~stocksbot_store.backups.restore`,
:func:`~stocksbot_store.archive.export_archive`,
:func:`~stocksbot_store.archive.import_archive`,
:func:`~stocksbot_store.conversion.convert`,
:meth:`~stocksbot_store.StorageService.import_trades`,
:func:`~stocksbot_store.realized.write_realized_report`) and prints what it did.
Exit status, as for ``stocksbot-check``: 0 done and verified; 1 done but the
verification failed (nothing was kept, except a backup whose books already
disagreed, which is kept and reported); 2 it could not run (bad argument or URL,
unreachable database, a target that is not empty, a damaged archive), with the
reason on stderr, no traceback and never a password. Progress goes to stderr, on a
terminal only unless ``--progress`` asks for it.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, TextIO

from peewee import PeeweeException

from .database import connect, database_url, mask_url, require_sqlite_file, scrub
from .errors import ImportStoppedError, StorageError, ValidationError, first_line
from .fields import utcnow
from .rows import VerificationError
from .urls import ArgumentParser

URL_HELP = (
    "database URL, e.g. sqlite:///stocksbot.db or postgresql://user:password@host/db "
    "(default: $DATABASE_URL, else sqlite:///./stocksbot.db)"
)
BACKUP_PATH_HELP = (
    "default: beside a SQLite file as NAME-backup-YYYYmmddTHHMMSSZ.db; for "
    "PostgreSQL the folder stocksbot-backup-DB-YYYYmmddTHHMMSSZ here"
)
EXIT_HELP = (
    "Exit status: 0 done and verified; 1 the verification failed; 2 it could not run "
    "(the reason is on stderr)."
)


class ProgressBar:
    """``verb table: 45% (done/total)`` on stderr: redrawn in place on a terminal, every
    10 % elsewhere; shown on a terminal, or anywhere when ``force``d."""

    def __init__(self, verb: str, stream: TextIO | None = None, force: bool = False) -> None:
        self.verb = verb
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.enabled = force or self.tty
        self.shown: dict[str, int] = {}

    def __call__(self, what: str, done: int, total: int) -> None:
        if not self.enabled or not total:
            return
        percent = min(100, done * 100 // total)
        line = f"{self.verb} {what}: {percent:3d}% ({done:,}/{total:,})"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done >= total else ""))
        elif percent // 10 > self.shown.get(what, -1):
            self.shown[what] = percent // 10
            self.stream.write(line + "\n")
        self.stream.flush()


def _progress_options(parser: argparse.ArgumentParser) -> None:
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument(
        "--progress",
        action="store_true",
        help="show progress on stderr even when it is not a terminal",
    )
    shown.add_argument("--no-progress", action="store_true", help="never show progress")


def _bar(args: argparse.Namespace, verb: str) -> ProgressBar | None:
    return None if args.no_progress else ProgressBar(verb, force=args.progress)


def _run(prog: str, urls: list[str | None], body: Callable[[], int]) -> int:
    """Run ``body``; turn every failure into a message on stderr and an exit status."""
    try:
        return body()
    except VerificationError as e:
        _error(prog, str(e), urls)
        return 1
    except (StorageError, PeeweeException, OSError, ValueError) as e:
        message = str(e) if isinstance(e, StorageError) else first_line(e)
        _error(prog, message, urls)
        return 2
    except KeyboardInterrupt:
        _error(prog, "interrupted; nothing was kept", urls)
        return 2


def _error(prog: str, message: str, urls: list[str | None]) -> None:
    for url in urls:
        if url:
            message = scrub(message, url)
    print(f"{prog}: error: {message}", file=sys.stderr)


def _open_read_only(url: str) -> Any:
    """Connect to a store that must already exist, for reading only: a SQLite file is
    opened ``mode=ro`` and so can never take the write lock from the bot."""
    return connect(url, read_only=True)


# -- stocksbot-backup ----------------------------------------------------------------------


def backup_main(argv: list[str] | None = None) -> int:
    """``stocksbot-backup``: an online, verified backup."""
    parser = ArgumentParser(
        prog="stocksbot-backup",
        description="Take a consistent backup of a stocksbot store while the bot keeps "
        "writing. SQLite: a copy of the file (SQLite's online backup API) beside "
        "the database, named with the UTC time, checked with integrity_check and "
        "the ledger check, its sha256 written next to it. PostgreSQL: the "
        "portable archive (see stocksbot-export) taken in one snapshot, checked "
        "the same way. Opens the database read-only (a SQLite file with mode=ro), "
        "so it never waits for or holds the bot's write lock. Prints where it "
        "went, its size, the row counts and the verification.",
        epilog=EXIT_HELP + " Schedule it with cron or a systemd timer, e.g. "
        "'0 * * * * stocksbot-backup --url sqlite:////srv/bot/stocksbot.db'.",
    )
    parser.add_argument("--url", metavar="URL", help=URL_HELP)
    parser.add_argument("--to", metavar="PATH", help=f"where to write it ({BACKUP_PATH_HELP})")
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the integrity and ledger checks of the copy"
    )
    _progress_options(parser)
    args = parser.parse_args(argv)
    url = database_url(args.url)

    def body() -> int:
        from .backups import backup

        # A backup only reads: a SQLite file opened mode=ro never takes the bot's write
        # lock and can never be changed by it; PostgreSQL sessions are read-only.
        db = _open_read_only(url)
        try:
            report = backup(db, args.to, verify=not args.no_verify, progress=_bar(args, "copying"))
        finally:
            db.close()
        print(report.summary())
        return 0 if report.ok else 1

    return _run(parser.prog, [url, args.to], body)


# -- stocksbot-restore and stocksbot-import ----------------------------------------------------


def _load_command(
    prog: str,
    description: str,
    what: str,
    help_text: str,
    verb: str,
    load: Callable[[str, str, Any], Any],
    argv: list[str] | None,
) -> int:
    """A command that loads SOURCE into the empty database at --url and reports it."""
    parser = ArgumentParser(prog=prog, description=description, epilog=EXIT_HELP)
    parser.add_argument("source", metavar=what, help=help_text)
    parser.add_argument(
        "--url", metavar="URL", help="the database to load into; " + URL_HELP.split(", ", 1)[1]
    )
    _progress_options(parser)
    args = parser.parse_args(argv)
    url = database_url(args.url)

    def body() -> int:
        report = load(args.source, url, _bar(args, verb))
        print(f"{verb.replace('ing', 'ed')} {args.source} into {mask_url(url)}")
        print(report.summary())
        return 0

    return _run(prog, [url, args.source], body)  # a URL given as SOURCE is masked too


def restore_main(argv: list[str] | None = None) -> int:
    """``stocksbot-restore``: a backup or archive into an empty database."""
    from .backups import restore

    return _load_command(
        "stocksbot-restore",
        "Restore a backup (a SQLite backup file or an archive folder) into an empty or new "
        "database, SQLite or PostgreSQL. A database that holds any row is refused. The copy "
        "is verified before it is kept (row counts, sha256 of every table, the ledger check); "
        "a damaged or truncated backup is refused with the position of the damage, and "
        "nothing is written.",
        "BACKUP",
        "a backup file or archive folder",
        "restoring",
        restore,
        argv,
    )


def import_main(argv: list[str] | None = None) -> int:
    """``stocksbot-import``: a JSON-lines archive into an empty database."""
    from .archive import import_archive

    return _load_command(
        "stocksbot-import",
        "Load a complete JSON-lines archive (from stocksbot-export or stocksbot-backup) into "
        "an empty or new database. The archive is checked against its manifest first and "
        "every value as it is read; one from a newer schema is refused, one from an older "
        "schema is migrated. Verified before it is kept; on any problem nothing is written.",
        "ARCHIVE",
        "the archive folder",
        "importing",
        import_archive,
        argv,
    )


# -- stocksbot-export ---------------------------------------------------------------------------


def _date(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def export_main(argv: list[str] | None = None) -> int:
    """``stocksbot-export``: the portable archive, or the realized P&L report."""
    parser = ArgumentParser(
        prog="stocksbot-export",
        description="Write a stocksbot store to a portable archive folder: every table, every "
        "column, ids kept, exact decimals as text, UTC ISO times, the schema "
        "revision and a manifest with each file's sha256 and row count; read in "
        "one snapshot while the bot keeps writing. JSON lines (full fidelity, "
        "what stocksbot-import reads) or CSV (one file per table with a header "
        "row, for spreadsheets). With --report realized it writes the realized "
        "P&L report for an accountant instead.",
        epilog=EXIT_HELP,
    )
    parser.add_argument("--url", metavar="URL", help=URL_HELP)
    parser.add_argument(
        "--format",
        choices=("jsonl", "csv"),
        default="jsonl",
        help="file format (default: %(default)s)",
    )
    parser.add_argument(
        "--tables",
        nargs="+",
        metavar="TABLE",
        help="only these tables (the archive is then partial: not importable)",
    )
    parser.add_argument(
        "--since",
        type=_date,
        metavar="DATE",
        help="only rows from DATE on (UTC; trades by execution time, other "
        "tables by last change; the archive is then partial)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="a new folder to write (default: stocksbot-export-UTCTIME here; "
        "for --report, the current folder)",
    )
    parser.add_argument(
        "--report",
        choices=("realized",),
        help="realized: one CSV row per closing trade (symbol, quantity, "
        "opened, closed, proceeds, cost basis, gross and net P&L, fees) "
        "and a yearly summary per symbol",
    )
    parser.add_argument(
        "--method",
        choices=("average", "fifo"),
        default="average",
        help="for --report: average cost (the store's books, default) or "
        "FIFO lots; every row names its method",
    )
    _progress_options(parser)
    args = parser.parse_args(argv)
    url = database_url(args.url)

    def body() -> int:
        db = _open_read_only(url)
        try:
            if args.report:
                from .realized import write_realized_report

                rows_path, years_path, count = write_realized_report(
                    db, args.out or ".", args.method, _bar(args, "reading")
                )
                print(f"realized ({args.method}): {count:,} closing trades in {rows_path}")
                print(f"yearly summary: {years_path}")
                return 0
            from .archive import export_archive

            out = args.out or f"stocksbot-export-{utcnow().strftime('%Y%m%dT%H%M%SZ')}"
            report = export_archive(
                db, out, args.format, args.tables, args.since, _bar(args, "exporting")
            )
        finally:
            db.close()
        counts = ", ".join(f"{name} {n:,}" for name, n in report.rows.items())
        print(f"archive: {os.path.abspath(report.path)} ({args.format}, {report.size:,} bytes)")
        print(f"rows: {counts}")
        print(f"schema revision: {report.manifest['revision']}")
        return 0

    return _run(parser.prog, [url, args.out], body)


# -- stocksbot-convert --------------------------------------------------------------------------


def convert_main(argv: list[str] | None = None) -> int:
    """``stocksbot-convert``: SQLite to PostgreSQL and back."""
    parser = ArgumentParser(
        prog="stocksbot-convert",
        description="Copy a stocksbot store to another database: SQLite to PostgreSQL or "
        "back. The target must be empty or new; every table is copied with its "
        "ids, PostgreSQL sequences are set past the highest id, and the copy is "
        "verified before it is kept: row counts and a sha256 of every table's "
        "rows equal on both sides, and the ledger check passes on the target. "
        "Any difference fails loudly, naming the table.",
        epilog=EXIT_HELP + " Example: stocksbot-convert --from sqlite:///stocksbot.db "
        "--to postgresql://bot@localhost/stocksbot",
    )
    parser.add_argument(
        "--from", dest="source", required=True, metavar="URL", help="the store to copy"
    )
    parser.add_argument(
        "--to", dest="target", required=True, metavar="URL", help="an empty or new database"
    )
    _progress_options(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        from .conversion import convert

        if args.source.startswith("sqlite"):
            require_sqlite_file(args.source)
        report = convert(args.source, args.target, _bar(args, "copying"))
        print(f"converted {mask_url(args.source)} to {mask_url(args.target)}")
        print(report.summary())
        return 0

    return _run(parser.prog, [args.source, args.target], body)


# -- stocksbot-import-fills ---------------------------------------------------------------------

FILLS_EXIT_HELP = (
    "Exit status: 0 every fill imported; 2 it stopped (a fill refused, a line that cannot be "
    "read, the database unreachable): the reason, the line, and what the batches before it "
    "stored are on stderr."
)


class FillFile:
    """The fills of a JSON-lines or CSV file, read one line at a time.

    JSON lines: one object per line with the fields of :class:`~stocksbot_store.Fill`,
    numbers exact (read as decimals). CSV: a header row naming those fields; an empty
    cell is a field not given (a byte-order mark, as spreadsheets write, is skipped).
    ``-`` reads JSON lines from stdin. ``line_of(index)`` gives the line of a recent
    fill (the last ``keep`` read), for error messages."""

    def __init__(self, path: str, keep: int) -> None:
        self.path = path
        #: The file's name in messages.
        self.name = "stdin" if path == "-" else path
        self.csv = path.lower().endswith(".csv")
        self.lines: deque[tuple[int, int]] = deque(maxlen=keep)

    def count(self) -> int | None:
        """How many fills the file holds (a quick pass over its lines); None for stdin."""
        if self.path == "-":
            return None
        with open(self.path, encoding="utf-8-sig", newline="") as f:
            if self.csv:
                return max(0, sum(1 for _ in csv.reader(f)) - 1)
            return sum(1 for line in f if line.strip())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.path == "-":
            yield from self._json(sys.stdin)
            return
        with open(self.path, encoding="utf-8-sig", newline="") as f:
            yield from self._csv(f) if self.csv else self._json(f)

    def line_of(self, index: int) -> int | None:
        return next((line for i, line in self.lines if i == index), None)

    def _json(self, f: TextIO) -> Iterator[dict[str, Any]]:
        index = 0
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                fill = json.loads(line, parse_float=Decimal)
            except ValueError as e:
                raise ValidationError(self.name, f"line {number} is not JSON: {e}") from e
            if not isinstance(fill, dict):
                raise ValidationError(self.name, f"line {number} is not a JSON object")
            self.lines.append((index, number))
            index += 1
            yield fill

    def _csv(self, f: TextIO) -> Iterator[dict[str, Any]]:
        reader = csv.DictReader(f)
        for index, row in enumerate(reader):
            self.lines.append((index, reader.line_num))
            fill: dict[str, Any] = {k: v for k, v in row.items() if v not in ("", None)}
            order_id = fill.get("order_id")
            if isinstance(order_id, str) and order_id.strip().isdigit():
                fill["order_id"] = int(order_id)
            yield fill


def import_fills_main(argv: list[str] | None = None) -> int:
    """``stocksbot-import-fills``: a broker's fills from a file, with full accounting."""
    from .fills.importer import BATCH_SIZE, FILL_KEYS, ImportSummary
    from .service import StorageService
    from .store import open_store

    parser = ArgumentParser(
        prog="stocksbot-import-fills",
        description="Record the fills of a JSON-lines or CSV file (fields: "
        + ", ".join(FILL_KEYS)
        + ") as record_trades does, in batches, each its own transaction, reading the file "
        "as it goes: memory stays one batch's at any size. Their orders must exist. Fills "
        "whose external_id is stored already change nothing, so the same file can be "
        "imported again after a stop.",
        epilog=FILLS_EXIT_HELP,
    )
    parser.add_argument("file", metavar="FILE", help="a .jsonl/.json or .csv file; - for stdin")
    parser.add_argument("--url", metavar="URL", help=URL_HELP)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=BATCH_SIZE,
        metavar="N",
        help=f"fills per transaction (default {BATCH_SIZE:,})",
    )
    _progress_options(parser)
    args = parser.parse_args(argv)
    url = database_url(args.url)
    source = FillFile(args.file, keep=2 * max(1, args.batch_size))

    def body() -> int:
        db = open_store(url, create=False)
        bar = _bar(args, "importing")
        total = source.count() if bar is not None and bar.enabled else None
        stored = [ImportSummary()]

        def progress(summary: ImportSummary) -> None:
            stored[0] = summary
            if bar is not None and total:
                bar("fills", summary.fills, total)

        try:
            summary = StorageService(db).import_trades(
                source, batch_size=args.batch_size, progress=progress
            )
        except ImportStoppedError as e:
            line = None if e.index is None else source.line_of(e.index)
            where = f"{source.name} line {line}: " if line is not None else ""
            raise type(e)(where + str(e), e.stored, e.index, e.error) from e.error
        except ValidationError as e:
            if e.field != source.name:
                raise
            # A line that cannot be read: the batches before it are stored.
            unread = str(e)[len(e.field) + 2 :]
            raise ValidationError(
                source.name, f"{unread}; stored before it: {stored[0].describe()}"
            ) from e
        finally:
            db.close()
        print(f"imported {args.file} into {mask_url(url)}: {summary.describe()}")
        return 0

    return _run(parser.prog, [url], body)


def _entry(main: Callable[[], int]) -> Callable[[], None]:
    def run() -> None:
        sys.exit(main())

    return run


run_backup = _entry(backup_main)
run_restore = _entry(restore_main)
run_export = _entry(export_main)
run_import = _entry(import_main)
run_convert = _entry(convert_main)
run_import_fills = _entry(import_fills_main)
