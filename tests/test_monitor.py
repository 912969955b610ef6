"""Monitoring: statements counted by kind, slow ones logged with masked parameters, and
the figures of ``stats(db)`` in text, JSON and the Prometheus exposition format, also
through ``stocksbot-stats``."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import subprocess
import sys

import peewee
import pytest
from conftest import fresh_pg_database

from stocksbot_store import (
    ConfigurationError,
    StorageError,
    StorageService,
    connect,
    format_prometheus,
    format_text,
    init_db,
    stats,
)
from stocksbot_store.database import connect as open_database
from stocksbot_store.database import describe
from stocksbot_store.metrics import main
from stocksbot_store.monitor import mask_params, monitor_of, statement_kind

PASSWORD = "Mon1tor-S3cret"
#: What the ``stocksbot-stats`` console script runs.
STATS_COMMAND = [sys.executable, "-c", "from stocksbot_store.metrics import run; run()"]


#: When the fills of :func:`book` happened.
FILLED_AT = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.timezone.utc)


def book(storage: StorageService) -> None:
    """A strategy, an order and two fills of it, in one quarter hour of one day (so the
    P&L buckets and position days they make are the same however fast the test runs)."""
    storage.create_strategy("momentum")
    order = storage.create_order("AAPL", "buy", "limit", "10", "100", strategy="momentum")
    storage.record_trade(order.id, "AAPL", "buy", "4", "100", executed_at=FILLED_AT)
    storage.record_trade(order.id, "AAPL", "buy", "6", "101", executed_at=FILLED_AT)


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ('SELECT "t1"."id" FROM "order" AS "t1"', "read"),
        ("  with x as (select 1) select * from x", "read"),
        ("PRAGMA data_version", "read"),
        ("INSERT INTO trade (order_id, symbol) VALUES (?, ?)", "fill"),
        ('INSERT INTO "trade" ("order_id") VALUES (%s)', "fill"),
        ('INSERT INTO "trades_archive" ("x") VALUES (1)', "write"),
        ('UPDATE "position" SET "quantity" = ?', "write"),
        ('DELETE FROM "config"', "write"),
        ('CREATE TABLE "x" ("id" INTEGER)', "other"),
        ('SAVEPOINT "s1";', "other"),
    ],
)
def test_statement_kinds(sql, kind):
    assert statement_kind(sql) == kind


def test_fills_reads_and_writes_are_counted(storage):
    monitor = monitor_of(storage.db)
    before = monitor.figures()
    book(storage)
    after = monitor.figures()
    assert after["fill"].count - before["fill"].count == 2
    assert after["write"].count > before["write"].count
    assert after["read"].count > before["read"].count
    assert after["fill"].seconds > 0 and after["fill"].max_seconds > 0
    assert all(f.slow == 0 for f in after.values())  # no threshold set


def test_a_failing_statement_counts_as_an_error(db):
    monitor = monitor_of(db)
    before = monitor.figures()["read"].errors
    with pytest.raises(peewee.DatabaseError):
        db.execute_sql("SELECT * FROM no_such_table")
    assert monitor.figures()["read"].errors == before + 1


def test_a_fill_statement_that_fails_is_counted_and_rolled_back(storage, db):
    """Every statement of a fill reaches the hooks, a failing one as an error, whichever
    way the fill path runs it; the fill raises the store's error and leaves nothing."""
    storage.create_strategy("s")
    order = storage.create_order("FAIL", "buy", "market", 5, strategy="s")
    storage.record_trade(order.id, "FAIL", "buy", 1, 10)
    db.execute_sql("DROP TABLE position_day")  # the kept figures' second statement fails
    monitor = monitor_of(db)
    before = monitor.figures()
    with pytest.raises(StorageError):
        storage.record_trade(order.id, "FAIL", "buy", 1, 10)
    after = monitor.figures()
    # (PostgreSQL's pipeline reports every statement of the failed round trip.)
    assert after["write"].errors > before["write"].errors
    assert after["fill"].count == before["fill"].count + 1  # the trade's insert ran
    assert storage.get_order(order.id).filled_quantity == 1


@pytest.fixture
def slow_records(caplog):
    caplog.set_level(logging.WARNING, logger="stocksbot_store.slow")
    return lambda: [r for r in caplog.records if r.name == "stocksbot_store.slow"]


def test_slow_statements_are_logged_with_time_and_masked_parameters(db_url, slow_records):
    db = connect(db_url, slow_ms=0)
    init_db(db)
    storage = StorageService(db)
    storage.set_config_value("broker_api_key", "k3y-that-must-not-leak")
    book(storage)
    lines = [r.getMessage() for r in slow_records()]
    assert any(
        line.startswith("slow fill statement: ") and " ms: INSERT INTO" in line for line in lines
    )
    assert not any("k3y-that-must-not-leak" in line for line in lines)
    assert any("config" in line and "'***'" in line for line in lines)
    assert any("'AAPL'" in line for line in lines)  # other values are shown
    assert monitor_of(db).figures()["fill"].slow == 2
    db.close()


def test_sql_slow_ms_sets_the_threshold(db_url, slow_records, monkeypatch):
    monkeypatch.setenv("SQL_SLOW_MS", "0")
    db = connect(db_url)
    db.execute_sql("SELECT 1")
    assert any("SELECT 1" in r.getMessage() for r in slow_records())
    db.close()


def test_nothing_is_logged_without_a_threshold(db_url, slow_records, monkeypatch):
    monkeypatch.delenv("SQL_SLOW_MS", raising=False)
    db = connect(db_url)
    db.execute_sql("SELECT 1")
    assert slow_records() == []
    db.close()


@pytest.mark.parametrize("value", ["fast", "-1"])
def test_a_bad_threshold_is_a_configuration_error(value):
    with pytest.raises(ConfigurationError, match="SQL_SLOW_MS"):
        connect("sqlite:///:memory:", slow_ms=value)


def test_masked_parameters():
    long = "x" * 100
    shown = mask_params(
        "UPDATE order SET note = ? WHERE id = ?",
        [long, 7, b"\x00" * 9, PASSWORD + "!", None],
        secrets=[PASSWORD],
    )
    assert "x" * 32 + "'...(100 chars)" in shown
    assert "<9 bytes>" in shown and "7" in shown and "None" in shown
    assert PASSWORD not in shown
    assert mask_params('SELECT * FROM "config" WHERE key = ?', ["api_secret"]) == "['***']"
    many = mask_params("INSERT INTO x VALUES (?)", list(range(25)))
    assert many.endswith("...(5 more)]")


def test_the_database_password_is_never_logged(slow_records):
    with fresh_pg_database() as url:
        secret = url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")
        db = connect(secret, slow_ms=0)
        db.execute_sql("SELECT %s, %s", (PASSWORD, "fine"))
        lines = [r.getMessage() for r in slow_records()]
        assert any("'fine'" in line for line in lines)
        assert not any(PASSWORD in line for line in lines)
        db.close()


# -- stats ---------------------------------------------------------------------------


def test_stats_figures(storage):
    book(storage)
    s = stats(storage.db)
    # Every table of the store is listed; one strategy's fills of one symbol in one
    # quarter hour keep three P&L buckets (the symbol's quarter, every symbol's
    # quarter, the symbol's day) and one position day.
    assert s.table_rows == {
        "strategy": 1,
        "position": 1,
        "order": 1,
        "trade": 2,
        "config": 0,
        "pnl_bucket": 3,
        "position_day": 1,
        "mark": 0,
        "mark_close": 0,
        "reconcile_run": 0,
        "audit_log": 10,
    }
    assert s.database_bytes > 0
    assert s.statements["fill"].count == 2
    assert s.database == describe(storage.db)
    if s.backend == "postgres":
        assert s.connections >= 1 and s.max_connections >= s.server_connections >= 1
        assert s.wal_bytes is None
    else:
        assert s.connections is None
    text = format_text(s)
    assert "trade 2" in text and "fill" in text


#: The most statements a stats call runs, whatever the number of tables: SQLite's three
#: pragmas, PostgreSQL's size, connections and standbys (its read transaction's modes go
#: with the BEGIN); then the schema and the row counts, one statement each.
STATS_STATEMENTS = {"sqlite": 5, "postgres": 5}


def test_stats_run_a_few_statements_whatever_the_tables(storage):
    """The dashboard's health line reads stats at every refresh: the statements must not
    grow with the store's tables (the schema is read in one statement, not one or two a
    table), and the figures stay exact."""
    book(storage)
    gone = storage.create_order("MSFT", "buy", "market", "1")
    storage.delete_order(gone.id)
    db = storage.db
    monitor = monitor_of(db)

    def statements() -> int:
        return sum(f.count for f in monitor.figures().values())

    first = stats(db)
    before = statements()
    second = stats(db)
    assert statements() - before <= STATS_STATEMENTS[second.backend]
    for s in (first, second):
        assert s.table_rows["order"] == 1 and s.deleted_rows["order"] == 1
        assert s.table_rows["trade"] == 2 and "trade" not in s.deleted_rows
        assert s.deleted_rows["strategy"] == 0 and s.deleted_rows["config"] == 0
    assert (second.table_rows, second.deleted_rows) == (first.table_rows, first.deleted_rows)


def test_stats_follow_a_schema_that_changes_under_them(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'store.db'}")  # connects, creates nothing
    assert stats(db).table_rows == {}
    init_db(db)
    s = stats(db)
    assert s.table_rows["trade"] == 0 and s.deleted_rows["order"] == 0
    db.close()


def test_stats_show_the_sqlite_wal(tmp_path):
    db = connect(f"sqlite:///{tmp_path / 'store.db'}")
    init_db(db)
    book(StorageService(db))
    s = stats(db)
    assert s.wal_bytes > 0
    assert s.wal_checkpoint_sequence is not None
    db.close()


def parse_prometheus(text: str) -> dict:
    """Families by name, parsed with the reference parser; checks the conventions too."""
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(text)}
    helps = [line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")]
    types = [line.split()[2:] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(helps) == len(types) == len(families)
    for name, kind in types:  # counters are named for their samples, which end in _total
        assert name.endswith("_total") == (kind == "counter"), name
    for family in families.values():
        assert family.documentation, family.name
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name == family.name + "_total"
            assert isinstance(sample.value, (int, float))
    return families


def test_prometheus_text_follows_the_exposition_format(storage):
    book(storage)
    text = format_prometheus(stats(storage.db))
    assert text.endswith("\n")
    families = parse_prometheus(text)
    fills = {s.labels["kind"]: s.value for s in families["stocksbot_store_statements"].samples}
    assert families["stocksbot_store_statements"].type == "counter"
    assert fills["fill"] == 2
    duration = families["stocksbot_store_statement_duration_seconds"]
    assert duration.type == "summary"
    assert {s.name for s in duration.samples} == {
        "stocksbot_store_statement_duration_seconds_sum",
        "stocksbot_store_statement_duration_seconds_count",
    }
    rows = {s.labels["table"]: s.value for s in families["stocksbot_store_table_rows"].samples}
    assert rows["trade"] == 2
    assert families["stocksbot_store_database_size_bytes"].samples[0].value > 0


def test_prometheus_label_values_are_escaped(tmp_path):
    folder = tmp_path / 'we"ird\\name'
    folder.mkdir()
    db = connect(f"sqlite:///{folder / 'store.db'}")
    init_db(db)
    families = parse_prometheus(format_prometheus(stats(db)))
    (info,) = families["stocksbot_store_info"].samples
    assert info.labels["database"] == describe(db)
    assert '"' in info.labels["database"] and "\\" in info.labels["database"]
    db.close()


# -- stocksbot-stats -----------------------------------------------------------------


@pytest.fixture
def file_store(store_url):
    db = connect(store_url)
    book(StorageService(db))
    db.close()
    return store_url


def test_cli_text(file_store, capsys):
    assert main(["--url", file_store]) == 0
    out = capsys.readouterr().out
    assert "rows: strategy 1, position 1, order 1, trade 2, config 0" in out


def test_cli_json_and_prometheus(file_store, capsys, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", file_store)
    assert main(["--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["table_rows"]["trade"] == 2
    assert main(["--format", "prometheus"]) == 0
    families = parse_prometheus(capsys.readouterr().out)
    size = families["stocksbot_store_database_size_bytes"].samples[0].value
    assert size == data["database_bytes"] and not math.isnan(size)


def test_cli_help_explains_the_formats():
    result = subprocess.run([*STATS_COMMAND, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    for word in ("--format", "prometheus", "json", "read-only", "Exit status"):
        assert word in result.stdout


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/stocksbot",
        "sqlite:///{tmp}/missing.db",
        "mysql://x/y",
    ],
)
def test_cli_exit_2_without_traceback_or_password(url, tmp_path):
    url = url.replace("{tmp}", str(tmp_path))
    result = subprocess.run(
        [*STATS_COMMAND, "--url", url], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("stocksbot-stats: error: ")
    assert "Traceback" not in result.stderr and PASSWORD not in result.stderr
    assert not (tmp_path / "missing.db").exists()


# -- the dashboard's health line -----------------------------------------------------


def test_health_line_text(storage):
    from stocksbot_tui.data import read_health
    from stocksbot_tui.widgets.health_line import health_text

    book(storage)
    line = str(health_text(read_health(storage.db)))
    assert line.startswith("HEALTH size ")
    assert "fills 2 (" in line and "reads " in line and "writes " in line
    if storage.db.__class__.__name__.endswith("PostgresqlDatabase"):
        assert "connections " in line


def test_health_line_widget(tmp_path):
    import asyncio

    from textual.app import App

    from stocksbot_tui.data import read_health
    from stocksbot_tui.widgets.health_line import HealthLine

    db = connect(f"sqlite:///{tmp_path / 'store.db'}")
    init_db(db)
    book(StorageService(db))

    class Shell(App):
        def compose(self):
            yield HealthLine()

    async def run() -> tuple[str, str]:
        async with Shell().run_test() as pilot:
            widget = pilot.app.query_one(HealthLine)
            widget.show(None, "database is locked")
            down = str(widget.render())
            widget.show(read_health(db))
            return down, str(widget.render())

    down, up = asyncio.run(run())
    assert down == "HEALTH unavailable: database is locked"
    assert up.startswith("HEALTH size ") and "wal " in up and "fills 2" in up
    db.close()


def test_reading_the_wal_keeps_the_locks_of_the_process(tmp_path):
    """stats() reads the -wal file's header in the bot's own process. Closing any
    descriptor of a file drops every POSIX lock the process holds on that file, so a
    read of a file SQLite locks would let another process write under a transaction
    of this one. SQLite locks the database and -shm files, never -wal: a write
    transaction open here still keeps another process out after stats() ran."""
    path = tmp_path / "store.db"
    db = connect(f"sqlite:///{path}")
    init_db(db)
    book(StorageService(db))
    reader = connect(f"sqlite:///{path}")
    try_write = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)\n"
        "try:\n"
        "    c.execute('BEGIN IMMEDIATE')\n"
        "except sqlite3.OperationalError as e:\n"
        "    print(e)\n"
        "else:\n"
        "    print('got the write lock')\n"
    )
    try:
        with db.atomic("IMMEDIATE"):
            db.execute_sql("UPDATE strategy SET updated_at = updated_at")
            assert stats(reader).wal_checkpoint_sequence is not None
            out = subprocess.run(
                [sys.executable, "-c", try_write, str(path)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert out.strip() == "database is locked"
    finally:
        reader.close()
        db.close()
