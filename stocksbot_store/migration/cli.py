"""The migration command line: ``python -m stocksbot_store.migrate ...``.

The commands use alembic's words: ``upgrade [head|REV]``, ``downgrade [-1|-N|REV|base]``,
``history``, ``current``, ``revision -m "..." [--autogenerate]``, plus ``check``
(exit 1 on drift or pending migrations), ``stamp`` and ``adopt`` (converts the old
storage module's database in place, see :mod:`stocksbot_store.adopt`). Each takes ``--url`` (else
``DATABASE_URL``, else the SQLite default). Exit codes: 0 ok, 1 drift or pending,
2 usage or failure, with a message on stderr and no traceback. The work is done by
the modules beside this one: :mod:`~stocksbot_store.migration.runner` (applying),
:mod:`~stocksbot_store.migration.drift` (comparing), :mod:`~stocksbot_store.migration.render`
(writing migrations) and :mod:`~stocksbot_store.migration.safety` (backups, what a
downgrade drops). ``python -m stocksbot_store.migrate`` and ``stocksbot-migrate`` run
:func:`main`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

import peewee
from peewee import Model
from playhouse import migrations as pw_migrations

from ..adopt import DESCRIPTION, add_arguments, command
from ..database import connect
from ..errors import StorageError
from ..urls import ArgumentParser, database_url, scrub
from .drift import compare
from .render import render
from .runner import COMMAND, MigrationError, Runner
from .safety import backup_before, rows_dropped

TEMPLATE = '''"""{message}"""


def upgrade(migrator, db):
    # from stocksbot_store.fields import ExactDecimalField
    # migrator.migrate(migrator.add_column("order", "stop_price", ExactDecimalField(null=True)))
    pass


def downgrade(migrator, db):
    # migrator.migrate(migrator.drop_column("order", "stop_price"))
    pass
'''


def load_models(spec: str) -> list[type[Model]]:
    """Models named by ``module:ATTR`` (a list of models) or ``module`` (its ``MODELS``)."""
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise MigrationError(f"cannot import models module {module_name!r}: {e}") from None
    models = getattr(module, attr or "MODELS", None)
    if models is None:
        raise MigrationError(f"{module_name} has no {attr or 'MODELS'}; use --models module:ATTR")
    return list(models)


def _echo(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _backup_first(runner: Runner, args: argparse.Namespace) -> None:
    """Back up a SQLite file before its schema changes, unless told not to (waiting, as
    every step of a run does, for another connection that holds the file's lock)."""
    if not args.no_backup:
        path = runner.retry_busy(lambda: backup_before(runner.database))
        if path:
            _echo(f"backup: {path} (restore it with `stocksbot-restore {path} --url URL`)")


def _cmd_upgrade(runner: Runner, args: argparse.Namespace) -> int:
    if runner.pending():
        _backup_first(runner, args)
    done = runner.upgrade(args.revision)
    print(f"applied: {', '.join(done)}" if done else "nothing to upgrade")
    print(f"current: {runner.current() or 'base'}")
    return 0


def _cmd_downgrade(runner: Runner, args: argparse.Namespace) -> int:
    if args.revision is None:
        raise MigrationError(
            "downgrade needs a target: -1 (the last migration), -N, a "
            "revision, or base (every table, with its data); "
            f"`{COMMAND} history` lists the revisions"
        )
    # A dry run in a transaction it rolls back: wait out another connection's lock as
    # every step of a run does (inside its transaction SQLite would not wait).
    dropped = runner.retry_busy(lambda: rows_dropped(runner, args.revision))
    if dropped:
        listed = ", ".join(f"{table} ({n:,} rows)" for table, n in dropped.items())
        warning = (
            f"downgrade to {args.revision} drops {len(dropped)} table(s) holding "
            f"{sum(dropped.values()):,} rows: {listed}"
        )
        if not args.yes:
            if not sys.stdin.isatty():
                raise MigrationError(f"{warning}; nothing was done: add --yes to go ahead")
            answer = input(f"{warning}.\nType yes to go ahead: ")
            if answer.strip().lower() != "yes":
                _echo("nothing was done")
                return 2
        _echo(warning)
    _backup_first(runner, args)
    done = runner.downgrade(args.revision)
    print(f"reverted: {', '.join(done)}" if done else "nothing to downgrade")
    print(f"current: {runner.current() or 'base'}")
    return 0


def _cmd_stamp(runner: Runner, args: argparse.Namespace) -> int:
    done = runner.stamp(args.revision)
    print(f"stamped: {', '.join(done)}" if done else "nothing to stamp")
    return 0


def _cmd_current(runner: Runner, args: argparse.Namespace) -> int:
    current = runner.current()
    names = runner.revisions()
    if current is None:
        print("base (no migration applied)")
    else:
        print(f"{current}{' (head)' if names and current == names[-1] else ''}")
    for name in runner.unknown():
        print(f"{name} (unknown to this version: applied by a newer one)")
    return 0


def _cmd_history(runner: Runner, args: argparse.Namespace) -> int:
    current, names = runner.current(), runner.revisions()
    for migration in runner.status():
        marks = []
        if migration.name == current:
            marks.append("current")
        if names and migration.name == names[-1]:
            marks.append("head")
        if migration.path is None:
            marks.append("no file: applied by a newer version")
        if migration.applied:
            when = migration.applied.strftime("%Y-%m-%d %H:%M:%S UTC")
            line = f"[x] {migration.name}  applied {when}"
        else:
            line = f"[ ] {migration.name}  pending"
        print(line + (f"  ({', '.join(marks)})" if marks else ""))
    return 0


def _cmd_check(runner: Runner, args: argparse.Namespace) -> int:
    runner._refuse_unknown()
    pending = runner.pending()
    drift = compare(runner.database, load_models(args.models))
    for name in pending:
        print(f"pending migration {name}")
    for line in drift.lines():
        print(f"drift: {line}")
    if pending or drift:
        print(
            f"run `{COMMAND} upgrade head`"
            if pending
            else f'write a migration: `{COMMAND} revision --autogenerate -m "..."`'
        )
        return 1
    print(f"ok: at {runner.current() or 'base'}, the schema matches the models")
    return 0


def _cmd_revision(runner: Runner, args: argparse.Namespace) -> int:
    if not args.autogenerate:
        print(runner.create(args.message, body=TEMPLATE.format(message=args.message)))
        return 0
    runner._refuse_unknown()
    if runner.pending():
        raise MigrationError(
            f"the database is behind ({', '.join(runner.pending())}); "
            f"run `{COMMAND} upgrade head` before autogenerating"
        )
    drift = compare(runner.database, load_models(args.models))
    if not drift:
        print("no changes: the schema matches the models; nothing written")
        return 0
    print(runner.create(args.message, body=render(drift, args.message, runner.database)))
    return 0


def _cmd_adopt(runner: Runner, args: argparse.Namespace) -> int:
    return command(runner.database, args, sys.stdout, sys.stderr)


_READ_ONLY = (_cmd_current, _cmd_history, _cmd_check)


def _parser() -> argparse.ArgumentParser:
    # The store's ArgumentParser: a usage error that quotes a URL masks its password.
    common = ArgumentParser(add_help=False)
    common.add_argument(
        "--url", help="database URL (default: $DATABASE_URL, else sqlite:///./stocksbot.db)"
    )
    common.add_argument(
        "--directory",
        help="folder of migration files (default: "
        "$STOCKSBOT_MIGRATIONS, else the migrations shipped with the package)",
    )
    models = ArgumentParser(add_help=False)
    models.add_argument(
        "--models",
        default="stocksbot_store.models:MODELS",
        help="models to compare with, module:ATTR (default: %(default)s)",
    )

    parser = ArgumentParser(
        prog="python -m stocksbot_store.migrate",
        description="Create and migrate the stocksbot-store database (SQLite or PostgreSQL). "
        "Exit codes: 0 ok, 1 drift or pending migrations (check), 2 error.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser(
        "upgrade",
        parents=[common],
        help="apply pending migrations",
        description="Apply pending migrations up to REVISION (default head), "
        "each in its own transaction, under a lock.",
    )
    p.add_argument("revision", nargs="?", default="head", help="head, a name or its number")
    p.add_argument(
        "--no-backup",
        action="store_true",
        help="do not back up a SQLite file first (by default a copy is written "
        "beside it and named in the output)",
    )
    p.set_defaults(func=_cmd_upgrade)
    p = sub.add_parser(
        "downgrade",
        parents=[common],
        help="revert migrations",
        description="Revert the last N migrations (-N), everything after "
        "REVISION, or everything (base). The target is required. "
        "A downgrade that drops tables holding rows says how many "
        "and asks first (--yes for scripts); a SQLite file is "
        "backed up first.",
    )
    p.add_argument("revision", nargs="?", help="-1, -N, a revision, or base")
    p.add_argument("--yes", action="store_true", help="drop tables that hold rows without asking")
    p.add_argument("--no-backup", action="store_true", help="do not back up a SQLite file first")
    p.set_defaults(func=_cmd_downgrade)
    p = sub.add_parser(
        "history",
        parents=[common],
        help="list every migration and its state",
        description="Every migration, applied (with when) or pending.",
    )
    p.set_defaults(func=_cmd_history)
    p = sub.add_parser(
        "current",
        parents=[common],
        help="show the database's revision",
        description="The revision the database is at.",
    )
    p.set_defaults(func=_cmd_current)
    p = sub.add_parser(
        "check",
        parents=[common, models],
        help="exit 1 on drift or pending",
        description="Compare the models with the database (tables, columns, "
        "types, NULL, server defaults, indexes) and list pending "
        "migrations; exit 1 if there is anything.",
    )
    p.set_defaults(func=_cmd_check)
    p = sub.add_parser(
        "revision",
        parents=[common, models],
        help="write a new migration file",
        description="Write the next numbered migration file; with "
        "--autogenerate, fill it from the drift between the models "
        "and the database (which must be at head).",
    )
    p.add_argument("-m", "--message", required=True, help="what the migration does")
    p.add_argument("--autogenerate", action="store_true", help="fill it from the drift")
    p.set_defaults(func=_cmd_revision)
    p = sub.add_parser(
        "stamp",
        parents=[common],
        help="record migrations as applied",
        description="Record migrations up to REVISION (default head) as applied "
        "without running them, for a database whose schema is "
        "already there.",
    )
    p.add_argument("revision", nargs="?", default="head")
    p.set_defaults(func=_cmd_stamp)
    p = sub.add_parser(
        "adopt",
        parents=[common],
        help="convert the old storage module's database in place",
        description=DESCRIPTION,
    )
    add_arguments(p)
    p.set_defaults(func=_cmd_adopt)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit code (0 ok, 1 drift/pending, 2 error)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    db = None
    url = database_url(args.url)
    try:
        # The commands that only look open the database read-only: they create no file
        # and no table, whatever the URL points at.
        db = connect(url, read_only=args.func in _READ_ONLY)
        runner = Runner(db, args.directory, echo=_echo)
        return args.func(runner, args)
    except (
        StorageError,
        pw_migrations.MigrationError,
        peewee.PeeweeException,
        OSError,
        ValueError,
    ) as e:
        print(f"error: {scrub(str(e), url)}", file=sys.stderr)
        return 2
    except Exception as e:  # an entry point shows every failure as a message, not a traceback
        print(f"error: {type(e).__name__}: {scrub(str(e), url)}", file=sys.stderr)
        return 2
    finally:
        if db is not None and not db.is_closed():
            db.close()


def run() -> None:
    """Console-script entry point (``stocksbot-migrate``)."""
    sys.exit(main())


__all__ = ["main", "run"]


if __name__ == "__main__":
    run()
