"""connect(): URLs, SQLite settings, in-memory sharing, masking, SQL echo; and that
opening is not migrating (database.connect only connects, open_store adds the schema)."""

from __future__ import annotations

import logging
import os
import stat
import threading

import pytest
from conftest import fresh_database_url, fresh_pg_database

import stocksbot_store
from stocksbot_store import (
    MODELS,
    ConfigurationError,
    DatabaseWriteError,
    SchemaError,
    StorageService,
    connect,
    database,
    init_db,
    mask_url,
    open_store,
)
from stocksbot_store.check import main as check_main
from stocksbot_store.database import describe
from stocksbot_store.metrics import main as stats_main
from stocksbot_store.migration.cli import main as migrate_main
from stocksbot_store.migration.runner import Runner
from stocksbot_tui.data import DashboardSource


def test_memory_database_is_one_database_for_every_thread():
    db = connect("sqlite:///:memory:")
    init_db(db)
    StorageService(db).create_strategy("main-thread")
    seen = []

    def read():
        seen.append([s.name for s in StorageService(db).strategies.get_all()])
        db.close()

    worker = threading.Thread(target=read)
    worker.start()
    worker.join()
    assert seen == [["main-thread"]]
    # each connect() is its own
    assert database.connect("sqlite:///:memory:").get_tables() == []


def test_sqlite_settings(tmp_path):
    db = connect(f"sqlite:///{tmp_path / 'p.db'}")
    pragma = lambda name: db.execute_sql(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
    assert pragma("journal_mode") == "wal"
    assert pragma("foreign_keys") == 1
    assert pragma("busy_timeout") == 30000
    assert pragma("synchronous") == 1  # NORMAL


def test_sqlite_settings_can_be_overridden(tmp_path):
    db = connect(f"sqlite:///{tmp_path / 'p.db'}", pragmas={"synchronous": "full"})
    assert db.execute_sql("PRAGMA synchronous").fetchone()[0] == 2


def test_the_urls_timeout_is_how_long_a_sqlite_write_waits(tmp_path):
    """``?timeout=`` (seconds) sets the busy timeout; pragmas= still wins over it."""
    path = tmp_path / "t.db"

    def busy(db):
        return db.execute_sql("PRAGMA busy_timeout").fetchone()[0]

    assert busy(connect(f"sqlite:///{path}")) == 30_000
    assert busy(connect(f"sqlite:///{path}?timeout=0.25")) == 250
    assert busy(connect(f"sqlite:///{path}", timeout=2)) == 2_000
    assert busy(connect(f"sqlite:///{path}?timeout=1", pragmas={"busy_timeout": 5})) == 5
    for bad in ("soon", "-1", "nan"):
        with pytest.raises(ConfigurationError, match="not a number of seconds"):
            connect(f"sqlite:///{path}?timeout={bad}")
    with pytest.raises(ConfigurationError, match="pragmas cannot be given in the URL"):
        connect(f"sqlite:///{path}?pragmas=x")


def test_a_file_uri_keeps_its_sqlite_parameters(tmp_path):
    """``sqlite:///file:/path?mode=ro`` opens the file read-only, as ``?mode=ro`` on a
    plain path does: the URL parser splits the query off a file: URI, and mode=ro was
    lost, so the database was writable."""
    path = tmp_path / "u.db"
    init_db(connect(f"sqlite:///{path}"))
    for url in (f"sqlite:///file:{path}?mode=ro", f"sqlite:///{path}?mode=ro"):
        db = connect(url)
        with pytest.raises(DatabaseWriteError, match="read-only"):
            StorageService(db).create_strategy("refused")
        db.close()
    missing = tmp_path / "missing.db"
    with pytest.raises(ConfigurationError, match="no SQLite database at"):
        connect(f"sqlite:///file:{missing}", create=False)  # it used to create the file
    assert not missing.exists()
    db = connect(f"sqlite:///file:{path}?mode=rw&cache=private")
    assert StorageService(db).create_strategy("written").name == "written"
    assert connect(f"sqlite:///{path}").execute_sql("SELECT count(*) FROM strategy").fetchone() == (
        1,
    )


def test_a_new_sqlite_file_is_private(tmp_path):
    path = tmp_path / "private.db"
    db = connect(f"sqlite:///{path}")
    init_db(db)
    db.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_pooled_postgres_url():
    with fresh_pg_database() as url:
        db = connect(url.replace("postgresql://", "postgresql+pool://") + "?max_connections=4")
        init_db(db)
        assert db._max_connections == 4
        assert StorageService(db).create_strategy("pooled").id == 1
        db.close_all()


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("mongodb://localhost/x", "unsupported database URL scheme"),
        ("postgresql://localhost", "names no database"),
        ("sqlite:////no/such/folder/x.db", "does not exist"),
    ],
)
def test_bad_urls_say_what_to_do(url, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        connect(url)


def test_passwords_are_masked():
    url = "postgresql://bot:s3cr3t-pw@localhost:5432/stocksbot"
    assert mask_url(url) == "postgresql://bot:***@localhost:5432/stocksbot"
    assert "s3cr3t" not in describe(database.connect(url))  # nothing to reach
    assert mask_url("sqlite:///./x.db") == "sqlite:///./x.db"


def test_sql_echo_logs_statements(db_url, monkeypatch, caplog, capsys):
    monkeypatch.setenv("SQL_ECHO", "true")
    db = connect(db_url)
    init_db(db)
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        StorageService(db).create_strategy("echoed")
    assert any(
        "INSERT INTO" in r.getMessage() and "echoed" in r.getMessage() for r in caplog.records
    )
    assert "SQL ('INSERT INTO" in capsys.readouterr().err  # echoed to stderr
    db.close()


# -- connect() only connects; the store's connect is open_store -----------------------------


def test_connect_only_connects_and_the_store_connect_creates(db_url):
    """``stocksbot_store.database.connect`` leaves a brand-new database as it is;
    ``stocksbot_store.connect`` (open_store) gives it the schema at head."""
    db = database.connect(db_url)
    assert db.get_tables() == []
    db.close()
    assert stocksbot_store.connect is stocksbot_store.open_store is open_store
    store = stocksbot_store.connect(db_url)
    assert {m._meta.table_name for m in MODELS} <= set(store.get_tables())
    assert Runner(store).pending() == []
    store.close()


def test_connect_refuses_migrate_and_names_open_store():
    with pytest.raises(TypeError, match="open_store"):
        database.connect("sqlite:///:memory:", migrate=False)


def test_open_store_without_create_refuses_an_empty_database_and_writes_nothing(file_db_url):
    db = database.connect(file_db_url)  # creates the SQLite file, nothing in it
    db.close()
    with pytest.raises(SchemaError, match="is empty.*stocksbot_store.migrate upgrade"):
        open_store(file_db_url, create=False)
    db = database.connect(file_db_url, read_only=True)
    assert db.get_tables() == []
    db.close()


def test_read_only_tools_leave_an_empty_database_empty(file_backend, tmp_path, capsys):
    """stocksbot-check, stocksbot-stats and the migrate commands that only look, on an
    empty SQLite file and an empty PostgreSQL database: no table and no byte written."""
    with fresh_database_url(file_backend, tmp_path) as url:
        path = tmp_path / "empty.db"
        if file_backend == "sqlite_file":
            path.touch()
            url = f"sqlite:///{path}"
        assert check_main(["--url", url]) == 2
        assert "is empty" in capsys.readouterr().err
        assert stats_main(["--url", url]) == 0
        assert "no store tables" in capsys.readouterr().out
        assert migrate_main(["current", "--url", url]) == 0
        assert migrate_main(["history", "--url", url]) == 0
        assert migrate_main(["check", "--url", url]) == 1  # pending and drift, nothing done
        capsys.readouterr()
        if file_backend == "sqlite_file":
            assert path.stat().st_size == 0
            assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]
        db = database.connect(url, read_only=True)
        assert db.get_tables() == []
        db.close()


def test_the_dashboard_gives_an_empty_database_its_schema_as_a_bot_does(file_backend, tmp_path):
    """The dashboard is no read-only tool: it writes (its operator actions), and its
    first refresh gives an empty database the store's schema through that writable
    connection (docs/dashboard.md), its reads staying on the read-only one."""
    with fresh_database_url(file_backend, tmp_path) as url:
        if file_backend == "sqlite_file":
            path = tmp_path / "empty.db"
            path.touch()
            url = f"sqlite:///{path}"
        dashboard = DashboardSource(url)
        try:
            assert dashboard.refresh(force=True).trading_enabled
        finally:
            dashboard.close()
        db = database.connect(url, read_only=True)
        try:
            assert Runner(db).pending() == []
        finally:
            db.close()
