"""connect(): URLs, SQLite settings, in-memory sharing, masking, SQL echo."""

from __future__ import annotations

import logging
import os
import stat
import threading

import pytest
from conftest import fresh_pg_database

from stocksbot_store import ConfigurationError, StorageService, connect, init_db, mask_url
from stocksbot_store.database import describe


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
    assert connect("sqlite:///:memory:", migrate=False).get_tables() == []


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


@pytest.mark.parametrize("url, fragment", [
    ("mongodb://localhost/x", "unsupported database URL scheme"),
    ("postgresql://localhost", "names no database"),
    ("sqlite:////no/such/folder/x.db", "does not exist"),
])
def test_bad_urls_say_what_to_do(url, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        connect(url)


def test_passwords_are_masked():
    url = "postgresql://bot:s3cr3t-pw@localhost:5432/stocksbot"
    assert mask_url(url) == "postgresql://bot:***@localhost:5432/stocksbot"
    assert "s3cr3t" not in describe(connect(url, migrate=False))  # nothing to reach
    assert mask_url("sqlite:///./x.db") == "sqlite:///./x.db"


def test_sql_echo_logs_statements(db_url, monkeypatch, caplog, capsys):
    monkeypatch.setenv("SQL_ECHO", "true")
    db = connect(db_url)
    init_db(db)
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        StorageService(db).create_strategy("echoed")
    assert any("INSERT INTO" in r.getMessage() and "echoed" in r.getMessage()
               for r in caplog.records)
    assert "SQL ('INSERT INTO" in capsys.readouterr().err  # echoed to stderr
    db.close()
