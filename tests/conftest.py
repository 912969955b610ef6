"""Fixtures shared by every test: the same test runs on each backend.

``db`` is a fresh, empty store (tables created with ``init_db``) on SQLite in
memory, a SQLite file and a throwaway PostgreSQL database; ``db_url`` is the URL
of such a database before anything is created in it. PostgreSQL is reached at
``STOCKSBOT_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``).
Without a server the PostgreSQL cases skip with a message, except under
``CI=true``, where a missing server fails them.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import pytest

from stocksbot_store import StorageService, connect, init_db

PG_ADMIN_URL = os.environ.get("STOCKSBOT_TEST_PG",
                              "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite_memory", "sqlite_file", "postgres"]
FILE_BACKENDS = ["sqlite_file", "postgres"]


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
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true needs PostgreSQL: {problem}", pytrace=False)
    pytest.skip(problem)


@contextmanager
def fresh_pg_database(prefix: str = "stocksbot_test") -> Iterator[str]:
    """Create an empty PostgreSQL database; yield its URL; drop it afterwards."""
    require_postgres()
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


@pytest.fixture
def db(db_url):
    """A fresh store on each backend, tables created with ``init_db``."""
    database = connect(db_url)
    init_db(database)
    yield database
    database.close()


@pytest.fixture
def storage(db) -> StorageService:
    """A StorageService on the fresh store."""
    return StorageService(db)


def dump_tables(database) -> dict[str, list[tuple]]:
    """Every row of every store table, to compare a database before and after."""
    from stocksbot_store.models import MODELS

    dump = {}
    for model in MODELS:
        table = model._meta.table_name
        cursor = database.execute_sql(f'SELECT * FROM "{table}" ORDER BY id')
        dump[table] = [tuple(row) for row in cursor.fetchall()]
    return dump
