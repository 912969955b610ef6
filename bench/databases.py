"""Fresh databases for a run: SQLite files in a temporary folder and throwaway
PostgreSQL databases that are dropped afterwards. Only loopback servers are used.

The PostgreSQL server is ``STOCKSBOT_BENCH_PG`` (else ``STOCKSBOT_TEST_PG``, else
``postgresql://postgres@127.0.0.1:5432/postgres``); the bench creates and drops
databases on it, so the user needs ``CREATEDB``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

PG_ADMIN_URL = (
    os.environ.get("STOCKSBOT_BENCH_PG")
    or os.environ.get("STOCKSBOT_TEST_PG")
    or "postgresql://postgres@127.0.0.1:5432/postgres"
)
LOOPBACK = ("127.0.0.1", "localhost", "::1", "")


class BenchSetupError(Exception):
    """The bench cannot run as asked (no server, a non-loopback URL...)."""


def _admin_dsn() -> str:
    host = urlparse(PG_ADMIN_URL).hostname or ""
    if host not in LOOPBACK:
        raise BenchSetupError(
            f"the bench only talks to loopback servers, not {host!r}; "
            "set STOCKSBOT_BENCH_PG=postgresql://user@127.0.0.1/postgres"
        )
    return PG_ADMIN_URL.replace("postgresql+pool://", "postgresql://")


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None if it can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed: pip install -e '.[postgres]'"
    try:
        with psycopg.connect(_admin_dsn(), connect_timeout=3):
            return None
    except psycopg.Error as e:
        return f"no PostgreSQL server at {PG_ADMIN_URL}: {str(e).strip()[:200]}"


@contextmanager
def fresh_database(backend: str, folder: str) -> Iterator[str]:
    """The URL of a new, empty database on ``backend``; dropped (PostgreSQL) on exit."""
    name = f"stocksbot_bench_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        yield f"sqlite:///{os.path.join(folder, name + '.db')}"
        return
    import psycopg

    with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(_admin_dsn(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def raw_connect(backend: str, url: str):
    """A bare driver connection to ``url`` for the floor."""
    from .floor import connect_postgres, connect_sqlite

    if backend == "sqlite":
        return connect_sqlite(url.split(":///", 1)[1])
    return connect_postgres(url)
