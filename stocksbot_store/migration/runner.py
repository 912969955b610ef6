"""The migration runner: playhouse.migrations with a lock and safe SQLite rebuilds.

Numbered files (``migrations/0001_initial.py``, shipped as the package
``stocksbot_store.migrations``) define ``upgrade(migrator, db)`` and
``downgrade(migrator, db)`` on a ``playhouse.migrate.SchemaMigrator``; the
``schema_migration`` table records which are applied. :class:`Runner` extends
``playhouse.migrations.Runner`` with:

* **a lock**, so two ``upgrade`` runs at once apply each migration once: a session
  advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` around each migration on SQLite
  (the history is re-read inside the lock, so the second run skips what the first
  applied);
* **patience on SQLite**: every step of a run that can meet another connection's lock
  (connecting, reading the history, creating its table, the backup, each migration's
  ``BEGIN IMMEDIATE``) waits for it, however short the URL's busy timeout, for up to
  :data:`SQLITE_LOCK_WAIT` seconds (:meth:`Runner.retry_busy`);
* **one transaction per migration**, history row included: a migration that fails
  leaves schema and data as they were, and :class:`MigrationError` names it and
  says why;
* **SQLite rebuilds that keep data**: foreign keys are switched off (outside the
  transaction, the only place SQLite allows it) while a migration runs, so dropping
  a rebuilt parent table cannot cascade into its children, and
  ``PRAGMA foreign_key_check`` must come back clean before the migration commits;
* alembic's targets: ``head``, ``base``, ``-N``, a name or its number.

How the store meets it: :func:`ensure_schema` (called by
:func:`stocksbot_store.store.open_store`, which is ``stocksbot_store.connect``) brings a
brand-new empty database to head, under the same lock, and refuses one that is
behind or was migrated by a newer version of the package;
:func:`stamp_new_database` (called by ``init_db``) records a schema made from the
models as being at head. Nothing below this module's layer calls either: opening a
database (:func:`stocksbot_store.database.connect`) never touches its schema.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import peewee
from peewee import CharField, Database, Model
from playhouse import migrations as pw_migrations

from ..backends import backend_of, describe, prepare_database, read_transaction
from ..errors import (
    DRIVER_ERRORS,
    Fault,
    MigrationError,
    SchemaError,
    StorageError,
    fault_of,
    translate_path_errors,
)
from ..fields import UTCDateTimeField, utcnow
from ..legacy import refuse_legacy, refuse_unversioned

HISTORY_TABLE = "schema_migration"
#: Key of the PostgreSQL advisory lock held while migrations run.
LOCK_KEY = 0x53544B424D4947  # "STKBMIG"
#: How long an SQLite run waits for another one before it gives up, in seconds.
SQLITE_LOCK_WAIT = 600
#: Pause between two tries of a step that found the SQLite file busy, in seconds (a
#: busy timeout of 0 would otherwise spin).
SQLITE_RETRY_PAUSE = 0.05
WAITING = "waiting for another migration run to finish ..."
COMMAND = "python -m stocksbot_store.migrate"

Echo = Callable[[str], None]
T = TypeVar("T")


def migrations_directory() -> str:
    """Where the migration files are: ``$STOCKSBOT_MIGRATIONS``, else the shipped package."""
    configured = os.environ.get("STOCKSBOT_MIGRATIONS")
    if configured:
        return configured
    package = importlib.import_module("stocksbot_store.migrations")
    assert package.__file__ is not None  # a regular package, not a namespace one
    return os.path.dirname(os.path.abspath(package.__file__))


def _quiet(_: str) -> None:
    pass


class Runner(pw_migrations.Runner):
    """playhouse's runner with a lock, UTC history, alembic targets and safe SQLite runs."""

    def __init__(self, db: Database, directory: str | None = None, echo: Echo = _quiet) -> None:
        prepare_database(db)
        super().__init__(db, directory or migrations_directory(), table_name=HISTORY_TABLE)
        self.echo = echo

        class History(Model):
            name = CharField(unique=True)
            applied = UTCDateTimeField(default=utcnow)

            class Meta:
                database = db
                table_name = HISTORY_TABLE

        self.History = History

    # -- what there is ------------------------------------------------------------------

    def create(self, name: str = "", body: str | None = None) -> str:
        """Write the next numbered migration file into the migrations folder; its path.

        A folder that cannot be written (a file on its path, a name too long for the
        file system) is a :class:`MigrationError` naming it and the fix."""
        with translate_path_errors("a migration file into", self.directory, MigrationError):
            return str(super().create(name, body))

    def revisions(self) -> list[str]:
        """Every migration file's name, in order."""
        return [m.name for m in self.migrations()]

    def status(self) -> list[pw_migrations.Migration]:
        """Files and history merged, in order (playhouse's), waiting out a busy SQLite file."""
        return self.retry_busy(super().status)

    def applied_names(self) -> list[str]:
        """Applied migrations in order; ones without a file (from a newer package) last."""
        return [m.name for m in self.status() if m.applied]

    def current(self) -> str | None:
        """The last applied revision, or None at base."""
        applied = set(self.applied_names())
        known = [name for name in self.revisions() if name in applied]
        return known[-1] if known else None

    def unknown(self) -> list[str]:
        """Applied revisions this package has no file for."""
        return [m.name for m in self.status() if m.applied and m.path is None]

    def pending(self) -> list[str]:
        """Revisions not applied yet."""
        applied = set(self.applied_names())
        return [name for name in self.revisions() if name not in applied]

    def resolve(self, revision: str) -> str | None:
        """The file name ``revision`` means (``head``, ``base``, a name or its number)."""
        names = self.revisions()
        if revision == "head":
            return names[-1] if names else None
        if revision == "base":
            return None
        for name in names:
            if revision in (name, name.split("_", 1)[0]) or (
                revision.isdigit() and int(name.split("_", 1)[0]) == int(revision)
            ):
                return name
        raise MigrationError(f"unknown revision {revision!r}; `{COMMAND} history` lists them")

    def _refuse_unknown(self) -> None:
        unknown = self.unknown()
        if unknown:
            raise SchemaError(
                f"{describe(self.database)} has revision(s) {', '.join(unknown)} that this "
                "version of stocksbot-store does not know: it was migrated by a newer version; "
                "upgrade the package instead of using this one"
            )

    # -- moving ---------------------------------------------------------------------------

    def upgrade(self, target: str = "head") -> list[str]:
        """Apply pending migrations up to and including ``target``; return their names."""
        with self._session(), self._lock():
            return self._upgrade_locked(target)

    def _upgrade_locked(self, target: str) -> list[str]:
        self._refuse_unknown()
        self.retry_busy(lambda: refuse_legacy(self.database))
        last = self.resolve(target)
        names = self.revisions()
        plan = [] if last is None else names[: names.index(last) + 1]
        # A write on a new database (a no-op read once the table is there): another
        # run's migration may hold the lock it needs.
        self.retry_busy(lambda: self.History.create_table(safe=True))
        return [n for n in plan if n in self.pending() and self._run_one(n, "upgrade")]

    def downgrade(self, target: str = "-1") -> list[str]:
        """Revert ``-N`` migrations, or all after ``REV``, or all (``base``)."""
        with self._session(), self._lock():
            self._refuse_unknown()
            done = set(self.applied_names())
            applied = [n for n in self.revisions() if n in done]
            if target.startswith("-") and target[1:].isdigit():
                plan = list(reversed(applied))[: int(target[1:])]
            else:
                keep = self.resolve(target)
                if keep is not None and keep not in applied:
                    raise MigrationError(f"{keep} is not applied; nothing to downgrade to")
                plan = list(reversed(applied[applied.index(keep) + 1 :] if keep else applied))
            return [n for n in plan if self._run_one(n, "downgrade")]

    def stamp(self, target: str = "head") -> list[str]:
        """Record migrations up to ``target`` as applied without running them."""
        with self._session(), self._lock(), self._transaction():
            refuse_legacy(self.database)
            self.History.create_table(safe=True)
            last = self.resolve(target)
            names = self.revisions()
            plan = [] if last is None else names[: names.index(last) + 1]
            done = set(self.applied_names())
            stamped = [n for n in plan if n not in done]
            for name in stamped:
                self.History.create(name=name)
            return stamped

    def _run_one(self, name: str, direction: str) -> bool:
        """Run one migration in its own transaction; False if another run did it first."""
        migration = next(m for m in self.migrations() if m.name == name)
        try:
            module = migration.load()
        except Exception as e:
            raise MigrationError(
                f"migration {name} cannot be loaded from {migration.path}: {type(e).__name__}: {e}"
            ) from e
        if getattr(module, "atomic", True) is False:
            raise MigrationError(
                f"migration {name} sets atomic = False; this runner runs every migration in "
                "one transaction so that a failure leaves nothing half-done: remove the flag"
            )
        alias = {"upgrade": "up", "downgrade": "down"}[direction]
        function = getattr(module, direction, None) or getattr(module, alias, None)
        if function is None:
            raise MigrationError(f"migration {name} defines no {direction}(migrator, db)")
        db = self.database
        started = time.monotonic()
        self.echo(f"{direction} {name} ...")
        with self._foreign_keys_off(), self._transaction():
            applied = name in set(self.applied_names())
            if applied == (direction == "upgrade"):
                self.echo(f"{name}: already done by another run")
                return False
            try:
                function(self.migrator, db)
                self._check_foreign_keys(name)
            except MigrationError:
                raise
            except Exception as e:
                raise MigrationError(
                    f"migration {name} failed ({direction}): {str(e).strip() or type(e).__name__}"
                    "; it was rolled back: schema and data are as they were before it"
                ) from e
            if direction == "upgrade":
                self.History.create(name=name)
            else:
                self.History.delete().where(self.History.name == name).execute()
        self.echo(f"{direction} {name} done in {time.monotonic() - started:.2f} s")
        return True

    def _check_foreign_keys(self, name: str) -> None:
        if backend_of(self.database) != "sqlite":
            return
        broken = self.database.execute_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            sample = ", ".join(f"{row[0]} rowid {row[1]} -> {row[2]}" for row in broken[:5])
            raise MigrationError(
                f"migration {name} failed: it leaves {len(broken)} row(s) whose foreign key "
                f"points nowhere ({sample}); it was rolled back"
            )

    # -- locking and connections ------------------------------------------------------------

    def retry_busy(self, step: Callable[[], T]) -> T:
        """``step()``, tried again while another connection holds the SQLite file's lock.

        SQLite gives up on a lock after the URL's busy timeout (``?timeout=``, 30 s by
        default) with SQLITE_BUSY or SQLITE_LOCKED; the holder may be another migration
        run or a bot's long transaction, so a run waits longer: it says once that it
        waits, then tries ``step`` again until it works or :data:`SQLITE_LOCK_WAIT`
        seconds have passed. Any other error, every error on PostgreSQL (whose runs
        wait on the advisory lock instead) and one inside a transaction (which a retry
        cannot restart) is raised at once. ``step`` must be safe to run again: a
        statement outside a transaction, or the ``BEGIN`` of one.
        """
        db = self.database
        if backend_of(db) != "sqlite" or db.in_transaction():
            return step()
        deadline = time.monotonic() + SQLITE_LOCK_WAIT
        said = False
        while True:
            try:
                return step()
            except DRIVER_ERRORS + (StorageError,) as e:
                # The store's databases report a BEGIN or a connection that timed out on
                # the lock as DatabaseUnavailableError, raised from the driver's error.
                if fault_of(e) is not Fault.RETRYABLE or time.monotonic() > deadline:
                    raise
            if not said:
                self.echo(WAITING)
                said = True
            time.sleep(SQLITE_RETRY_PAUSE)

    @contextmanager
    def _session(self) -> Iterator[None]:
        if not os.path.isdir(self.directory):
            raise MigrationError(
                f"no migrations folder at {self.directory}; point STOCKSBOT_MIGRATIONS or "
                "--directory at the folder of numbered migration files"
            )
        db = self.database
        if db.in_transaction():
            raise MigrationError("run migrations outside a transaction")
        opened = db.is_closed()
        if opened:
            self.retry_busy(db.connect)
        try:
            yield
        finally:
            if opened:
                db.close()

    @contextmanager
    def _lock(self) -> Iterator[None]:
        db = self.database
        if backend_of(db) != "postgres":
            yield  # SQLite: each migration's BEGIN IMMEDIATE is the lock
            return
        got = db.execute_sql("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]
        if not got:
            self.echo(WAITING)
            db.execute_sql("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            yield
        finally:
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))

    @contextmanager
    def _foreign_keys_off(self) -> Iterator[None]:
        db = self.database
        if backend_of(db) != "sqlite":
            yield
            return
        enabled = self.retry_busy(lambda: db.pragma("foreign_keys"))
        self.retry_busy(lambda: db.pragma("foreign_keys", 0))
        try:
            yield
        finally:
            self.retry_busy(lambda: db.pragma("foreign_keys", enabled))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        db = self.database
        if backend_of(db) != "sqlite":
            with db.atomic():
                yield
            return

        def begin() -> peewee._atomic:
            txn = db.atomic("IMMEDIATE")
            txn.__enter__()
            return txn

        txn = self.retry_busy(begin)
        try:
            yield
        except BaseException:
            txn.__exit__(*sys.exc_info())
            raise
        txn.__exit__(None, None, None)


# -- how the store meets migrations -----------------------------------------------------------


def ensure_schema(db: Database, *, create: bool = True) -> None:
    """Bring a brand-new empty database to head; refuse one that is behind or newer.

    One query on a database that is at head. Anything else is looked at again under
    the migration lock (the PostgreSQL advisory lock; on SQLite one ``BEGIN
    IMMEDIATE`` transaction around the look and the whole creation), so processes
    that start together on a new database wait for the one creating it and then find
    it at head, instead of seeing it half made. With ``create=False`` an empty
    database raises :class:`SchemaError` (naming the command that creates it) and
    nothing is written. Called by :func:`stocksbot_store.store.open_store`.
    """
    runner = Runner(db)
    opened = db.is_closed()
    if opened:
        runner.retry_busy(db.connect)
    try:
        known = runner.revisions()
        if runner.retry_busy(lambda: _applied(db)) == set(known):
            return
        with _creation_lock(runner, create):
            applied = _applied(db)
            if not applied:
                tables = [t for t in db.get_tables() if t != HISTORY_TABLE]
                if tables:
                    refuse_unversioned(db, tables)
                if not create:
                    raise SchemaError(
                        f"{describe(db)} is empty: it has no stocksbot store yet; create one "
                        f"with `{COMMAND} upgrade --url ...`"
                    )
                runner._upgrade_locked("head")
                return
            if applied - set(known):
                runner._refuse_unknown()
            pending = [n for n in known if n not in applied]
            if pending:
                raise SchemaError(
                    f"{describe(db)} is behind: {len(pending)} migration(s) pending "
                    f"({', '.join(pending)}); run `{COMMAND} upgrade head`"
                )
    finally:
        if opened and not db.is_closed():
            db.close()


def _applied(db: Database) -> set[str]:
    """The names in the history table; none when there is no such table."""
    # Inside a transaction, a savepoint: a missing table must not abort the caller's
    # transaction on PostgreSQL. Outside, a read transaction, ending with a rollback:
    # a commit would count as a write with read replicas, and every process opening a
    # store would send its first reads to the primary.
    try:
        with db.atomic() if db.in_transaction() else read_transaction(db):
            rows = db.execute_sql(f'SELECT "name" FROM "{HISTORY_TABLE}"').fetchall()
    except peewee.DatabaseError as e:
        if fault_of(e) is not Fault.MISSING_TABLE:
            raise
        return set()
    return {row[0] for row in rows}


@contextmanager
def _creation_lock(runner: Runner, create: bool) -> Iterator[None]:
    """The migration lock, held while ``ensure_schema`` looks again and creates.

    On SQLite a look that may create is one ``BEGIN IMMEDIATE`` transaction (the
    migrations inside it run as savepoints); a look that may not is a read
    transaction, one consistent snapshot, taking no write lock.
    """
    db = runner.database
    if backend_of(db) == "postgres":
        with runner._lock():
            yield
    elif create:
        with runner._foreign_keys_off(), runner._transaction():
            yield
    else:
        with db.atomic():
            yield


def stamp_new_database(db: Database) -> None:
    """Record every migration as applied if ``db`` has no history (``init_db``'s step)."""
    runner = Runner(db)
    if not runner.History.table_exists() or not runner.History.select().exists():
        runner.History.create_table(safe=True)
        for name in runner.revisions():
            runner.History.get_or_create(name=name)
