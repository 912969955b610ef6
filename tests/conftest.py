"""Fixtures shared by every test: the same test runs on each backend.

``db`` is an empty store (the schema ``connect()`` and ``init_db`` create, no rows) on
SQLite in memory, a SQLite file and PostgreSQL; ``db_url`` is the URL of a database
before anything is created in it. PostgreSQL is reached at ``STOCKSBOT_TEST_PG``
(default ``postgresql://postgres@127.0.0.1:5432/postgres``). Without a server the
PostgreSQL cases skip with a message, except under ``CI=true``, where a missing server
fails them.

Making a store costs far more than most tests (about a second on PostgreSQL: a new
database and every migration), so ``db`` makes each kind once per session and hands
out copies: on PostgreSQL one database whose rows are deleted after each test (see
:class:`SharedPgStore`), on SQLite a copy of a store made once. ``db_url`` and
``file_db_url`` stay a new empty database per test, for the tests that create the
schema themselves (migrations, several processes, other tools).

Tests marked ``slow`` (soak, crash, long benchmarks) run under ``CI=true``, with
``--run-slow`` or with ``STOCKSBOT_SLOW=1``, and are skipped otherwise. Tests that
draw random values take the ``rng`` fixture: its seed is printed (pytest shows it with
a failure) and ``STOCKSBOT_SEED=<seed>`` replays it.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pytest

from stocksbot_store import StorageService, connect, init_db

PG_ADMIN_URL = os.environ.get("STOCKSBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
#: How the names of the PostgreSQL databases the tests make begin (runs sharing a server
#: can keep theirs apart with ``STOCKSBOT_TEST_PG_PREFIX``).
PG_PREFIX = os.environ.get("STOCKSBOT_TEST_PG_PREFIX", "stocksbot_test")
BACKENDS = ["sqlite_memory", "sqlite_file", "postgres"]
FILE_BACKENDS = ["sqlite_file", "postgres"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


# -- slow tests and random seeds ---------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="run the tests marked slow (soak, crash, long benchmarks); "
        "CI=true or STOCKSBOT_SLOW=1 do the same",
    )


def run_slow(config: pytest.Config) -> bool:
    """Whether the ``slow`` tests run: under CI, or when asked for."""
    return (
        in_ci()
        or config.getoption("--run-slow")
        or os.environ.get("STOCKSBOT_SLOW", "") not in ("", "0")
    )


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("replica"):
            # Some of them pause or stop the one standby: under pytest-xdist they run
            # one after the other on one worker (``--dist loadgroup``).
            item.add_marker(pytest.mark.xdist_group("standby"))
    if run_slow(config):
        return
    skip = pytest.mark.skip(
        reason="slow test: runs under CI=true, with --run-slow or with STOCKSBOT_SLOW=1"
    )
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """A ``random.Random`` for the test, seeded from ``STOCKSBOT_SEED`` or afresh; the seed
    is printed (shown with a failure) and kept in the test's report properties."""
    seed = int(os.environ.get("STOCKSBOT_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"random seed {seed} (replay: STOCKSBOT_SEED={seed})")
    request.node.user_properties.append(("random_seed", seed))
    return random.Random(seed)


# -- PostgreSQL --------------------------------------------------------------------------


@cache
def _pg_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None if it can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        with psycopg.connect(_admin_dsn(), connect_timeout=3):
            return None
    except psycopg.Error as e:
        return f"no PostgreSQL server at {PG_ADMIN_URL}: {str(e).strip()[:200]}"


def _admin_dsn() -> str:
    return PG_ADMIN_URL.replace("postgresql+pool://", "postgresql://")


def require_postgres() -> None:
    """Skip (or, under CI=true, fail) the calling test when PostgreSQL is unreachable."""
    problem = _pg_problem()
    if problem is None:
        return
    if in_ci():
        pytest.fail(f"CI=true needs PostgreSQL: {problem}", pytrace=False)
    pytest.skip(problem)


def _pg_url(name: str) -> str:
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


def _dsn(url: str) -> str:
    return url.replace("postgresql+pool://", "postgresql://")


def _create_pg_database(prefix: str) -> str:
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_pg_database(prefix: str = PG_PREFIX) -> Iterator[str]:
    """Create an empty PostgreSQL database; yield its URL; drop it afterwards."""
    require_postgres()
    name = _create_pg_database(prefix)
    try:
        yield _pg_url(name)
    finally:
        _drop_pg_database(name)


# Everything a test could change in a store's database besides the rows of its tables,
# as one line per object: the schema, what is stored with it, and the rows of the tables
# that are not emptied between tests (the migration history).
_CATALOGUE = """
WITH ns AS (
    SELECT oid, nspname, nspacl FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema')
      AND nspname NOT LIKE 'pg\\_toast%%' AND nspname NOT LIKE 'pg\\_temp%%')
SELECT concat_ws(' ', 'schema', nspname, nspacl::text) FROM ns
UNION ALL
SELECT concat_ws(' ', 'relation', ns.nspname, c.relname, c.relkind, c.relacl::text)
FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
UNION ALL
SELECT concat_ws(' ', 'column', a.attrelid::regclass::text, a.attname,
                 format_type(a.atttypid, a.atttypmod), a.attnotnull::text,
                 pg_get_expr(d.adbin, d.adrelid))
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns ON ns.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT concat_ws(' ', 'constraint', conrelid::regclass::text, conname,
                 pg_get_constraintdef(con.oid))
FROM pg_constraint con JOIN ns ON ns.oid = con.connamespace
UNION ALL
SELECT concat_ws(' ', 'index', pg_get_indexdef(i.indexrelid))
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN ns ON ns.oid = c.relnamespace
UNION ALL
SELECT concat_ws(' ', 'trigger', tgenabled::text, pg_get_triggerdef(oid))
FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT concat_ws(' ', 'function', p.oid::regprocedure::text, md5(p.prosrc))
FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
UNION ALL
SELECT concat_ws(' ', 'type', t.oid::regtype::text, t.typtype::text)
FROM pg_type t JOIN ns ON ns.oid = t.typnamespace WHERE t.typtype IN ('e', 'd', 'r', 'm')
UNION ALL
SELECT concat_ws(' ', 'extension', extname, extversion) FROM pg_extension
UNION ALL
SELECT concat_ws(' ', 'setting', setrole::text, setconfig::text) FROM pg_db_role_setting
WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
UNION ALL
SELECT concat_ws(' ', 'prepared', gid) FROM pg_prepared_xacts
WHERE database = current_database()
"""


class SharedPgStore:
    """One PostgreSQL database with the store's schema for every test of the session that
    asks for ``db`` on PostgreSQL; after each test its rows are deleted and its sequences
    restarted, so ids start at 1 again.

    Which tables are emptied comes from the catalogue when the database is made: every
    table that has no rows then (all of the models' tables, whatever migrations add);
    the ones that have rows (the migration history) keep them. After each test the
    catalogue (:data:`_CATALOGUE`) and those kept rows are compared with how the database
    was made; a test that changed them (dropped a table, added a trigger, restamped the
    history, ``ALTER DATABASE``) gets the database dropped, and the next test a new one.
    Connections a test left open to the database are ended first, as ``DROP DATABASE
    ... WITH (FORCE)`` ended them before.
    """

    def __init__(self) -> None:
        self.name: str | None = None
        self.emptied: list[str] = []  # quoted table names, deleted after each test
        self.kept: list[str] = []  # the tables with rows when it was made
        self.sequences: list[int] = []  # oids of the sequences those tables own
        self.fingerprint: list[str] = []
        self.kept_rows = ""
        self.tests = 0
        self.made = 0

    @property
    def url(self) -> str:
        assert self.name is not None
        return _pg_url(self.name)

    def take(self) -> str:
        """The URL of the shared database, made if there is none."""
        require_postgres()
        if self.name is None:
            self._make()
        self.tests += 1
        return self.url

    def give_back(self) -> None:
        """Empty the database for the next test, or drop it if the test changed more than
        rows (or emptying it failed: the next test gets a new one either way)."""
        import psycopg

        try:
            with psycopg.connect(_dsn(self.url), autocommit=True) as conn:
                self._end_other_connections(conn)
                if self._state(conn) != (self.fingerprint, self.kept_rows):
                    raise LookupError("the test changed the schema")
                self._empty(conn)
        except (psycopg.Error, LookupError):
            self.close()

    def close(self) -> None:
        if self.name is not None:
            name, self.name = self.name, None
            _drop_pg_database(name)

    def _make(self) -> None:
        import psycopg

        name = _create_pg_database(f"{PG_PREFIX}_shared_{os.getpid()}")
        self.name = name
        database = connect(self.url)
        init_db(database)
        database.close()
        with psycopg.connect(_dsn(self.url), autocommit=True) as conn:
            tables = conn.execute(
                "SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN "
                "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%' "
                "ORDER BY 2"
            ).fetchall()
            emptied, kept = [], []
            for oid, table in tables:
                has_rows = conn.execute(f"SELECT EXISTS (SELECT FROM {table})").fetchone()[0]
                (kept if has_rows else emptied).append((oid, table))
            self.emptied = [table for _, table in emptied]
            self.kept = [table for _, table in kept]
            self.sequences = [
                row[0]
                for row in conn.execute(
                    "SELECT d.objid FROM pg_depend d JOIN pg_class s ON s.oid = d.objid "
                    "WHERE s.relkind = 'S' AND d.refobjid = ANY(%s) AND d.deptype IN ('a', 'i')",
                    ([oid for oid, _ in emptied],),
                )
            ]
            self.fingerprint, self.kept_rows = self._state(conn)
        self.made += 1

    def _state(self, conn) -> tuple[list[str], str]:
        catalogue = sorted(row[0] for row in conn.execute(_CATALOGUE))
        kept = "\n".join(
            conn.execute(
                f"SELECT coalesce(string_agg(t::text, ',' ORDER BY t::text), '') FROM {table} AS t"
            ).fetchone()[0]
            for table in self.kept
        )
        return catalogue, kept

    @staticmethod
    def _end_other_connections(conn) -> None:
        others = [
            row[0]
            for row in conn.execute(
                "SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
            if row[0]
        ]
        deadline = time.monotonic() + 30
        while (
            others
            and conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            ).fetchone()[0]
        ):
            if time.monotonic() > deadline:
                raise LookupError("connections left by the test did not end")
            time.sleep(0.01)

    def _empty(self, conn) -> None:
        import psycopg

        deletes = "; ".join(f"DELETE FROM {table}" for table in self.emptied)
        try:
            with conn.transaction():
                # Without firing triggers: neither foreign keys (so the order of the
                # deletes does not matter) nor the store's change notifications.
                conn.execute("SET LOCAL session_replication_role = replica")
                conn.execute(deletes)
        except psycopg.errors.InsufficientPrivilege:  # not a superuser: slower, same result
            conn.execute(f"TRUNCATE {', '.join(self.emptied)} RESTART IDENTITY CASCADE")
        conn.execute(
            "SELECT setval(seqrelid, seqstart, false) FROM pg_sequence WHERE seqrelid = ANY(%s)",
            (self.sequences,),
        )


SHARED_PG = pytest.StashKey[SharedPgStore]()


@pytest.fixture(scope="session")
def shared_pg_store(pytestconfig) -> Iterator[SharedPgStore]:
    """The session's PostgreSQL store (made on first use, dropped at the end)."""
    store = pytestconfig.stash[SHARED_PG] = SharedPgStore()
    yield store
    store.close()


# -- SQLite ------------------------------------------------------------------------------


class SqliteTemplates:
    """A store made once per session for each SQLite backend; ``db`` gets copies."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.file: Path | None = None
        self.memory = None

    def file_copy(self, path: Path) -> str:
        """Copy the template store to ``path`` (mode 0600, as the store makes files);
        its URL."""
        if self.file is None:
            template = self.folder / "template.db"
            database = connect(f"sqlite:///{template}")
            init_db(database)
            database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            database.close()
            self.file = template
        shutil.copyfile(self.file, path)
        os.chmod(path, 0o600)
        return f"sqlite:///{path}"

    def memory_copy(self):
        """A new in-memory store holding a copy of the template (SQLite's backup API
        writes the shared in-memory database every connection of it sees)."""
        if self.memory is None:
            self.memory = init_db(connect("sqlite:///:memory:"))
        database = connect("sqlite:///:memory:", migrate=False)
        self.memory.stocksbot_memory_keeper.backup(database.stocksbot_memory_keeper)
        return database

    def close(self) -> None:
        if self.memory is not None:
            self.memory.close()


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory) -> Iterator[SqliteTemplates]:
    templates = SqliteTemplates(tmp_path_factory.mktemp("templates"))
    yield templates
    templates.close()


# -- backends and stores -----------------------------------------------------------------


@contextmanager
def fresh_database_url(backend: str, tmp_path) -> Iterator[str]:
    """The URL of a new, empty database of ``backend``."""
    if backend == "sqlite_memory":
        yield "sqlite:///:memory:"
    elif backend == "sqlite_file":
        yield f"sqlite:///{tmp_path / f'store-{uuid.uuid4().hex[:8]}.db'}"
    elif backend == "postgres":
        with fresh_pg_database() as url:
            yield url
    else:
        raise ValueError(backend)


@pytest.fixture(autouse=True)
def restore_peewee_logger() -> Iterator[None]:
    """Undo what SQL_ECHO=true did to the ``peewee`` logger, so one test's echo does not
    slow down and flood every later test."""
    logger = logging.getLogger("peewee")
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The backend a test runs on; marks ``postgres_only``/``sqlite_only`` narrow it."""
    if request.node.get_closest_marker("postgres_only") and request.param != "postgres":
        pytest.skip("PostgreSQL-only test")
    if request.node.get_closest_marker("sqlite_only") and request.param == "postgres":
        pytest.skip("SQLite-only test")
    return request.param


@pytest.fixture(params=FILE_BACKENDS)
def file_backend(request) -> str:
    """A backend that other processes can open too (a SQLite file or PostgreSQL)."""
    return request.param


@pytest.fixture
def db_url(backend, tmp_path) -> Iterator[str]:
    """URL of an empty database on ``backend``."""
    with fresh_database_url(backend, tmp_path) as url:
        yield url


@pytest.fixture
def file_db_url(file_backend, tmp_path) -> Iterator[str]:
    """URL of an empty database that several processes can share."""
    with fresh_database_url(file_backend, tmp_path) as url:
        yield url


@contextmanager
def store_on(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store (schema, no rows) on ``backend``, ready-made: the
    session's shared PostgreSQL database (emptied again afterwards) or a copy of the
    session's SQLite file."""
    if backend == "postgres":
        shared = request.getfixturevalue("shared_pg_store")
        url = shared.take()
        try:
            yield url
        finally:
            shared.give_back()
    elif backend == "sqlite_file":
        templates = request.getfixturevalue("sqlite_templates")
        yield templates.file_copy(tmp_path / f"store-{uuid.uuid4().hex[:8]}.db")
    else:
        raise ValueError(f"{backend} has no URL other processes can open")


@pytest.fixture
def store_url(file_backend, request, tmp_path) -> Iterator[str]:
    """URL of an empty store (schema, no rows) that several processes can share; cheaper
    than ``file_db_url`` plus ``init_db`` for a test that does not watch the schema made."""
    with store_on(file_backend, request, tmp_path) as url:
        yield url


@pytest.fixture
def db(backend, request, tmp_path):
    """An empty store on each backend: the schema ``connect()`` and ``init_db`` make, no
    rows, ids starting at 1. A test that also asks for ``db_url`` gets the database at
    that URL (made for it alone), so both name the same database."""
    if "db_url" in request.fixturenames:
        database = connect(request.getfixturevalue("db_url"))
        init_db(database)
        yield database
        database.close()
    elif backend == "sqlite_memory":
        database = request.getfixturevalue("sqlite_templates").memory_copy()
        yield database
        database.close()
    else:
        with store_on(backend, request, tmp_path) as url:
            database = connect(url)
            try:
                yield database
            finally:
                database.close()


@pytest.fixture
def storage(db) -> StorageService:
    """A StorageService on the fresh store."""
    return StorageService(db)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    shared = config.stash.get(SHARED_PG, None)
    if shared is not None and shared.tests:
        terminalreporter.write_line(
            f"PostgreSQL store: {shared.tests} tests shared {shared.made} database(s)"
        )


def pip_install_copy(tmp_path) -> Path:
    """``pip install`` (not editable, offline) of a copy of the source into a folder of
    its own; returns the folder, for ``PYTHONPATH``."""
    repo = Path(__file__).resolve().parent.parent
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, source)
    for name in ("stocksbot_store", "migrations", "tui"):
        shutil.copytree(
            repo / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.db")
        )
    target = tmp_path / "site"
    # Offline: the build backend is the one the test extra installs (setuptools, wheel).
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-input",
            "--no-index",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    return target


def dump_tables(database) -> dict[str, list[tuple]]:
    """Every row of every store table, to compare a database before and after."""
    from stocksbot_store.models import MODELS

    dump = {}
    for model in MODELS:
        table = model._meta.table_name
        cursor = database.execute_sql(f'SELECT * FROM "{table}" ORDER BY id')
        dump[table] = [tuple(row) for row in cursor.fetchall()]
    return dump
