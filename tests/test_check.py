"""The ledger check finds every kind of damage, on every backend, and its CLI says so.

Each test builds a small, clean history through the service, checks that the check
passes, then damages one derived figure with raw SQL (as a bug or a hand edit
would) and checks that exactly that is reported.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from conftest import fresh_pg_database

from stocksbot_store import StorageService, connect, init_db
from stocksbot_store.check import check_ledger, main, open_read_only
from stocksbot_store.database import backend_of
from stocksbot_store.errors import CorruptRowError, ReadOnlyError, SchemaError


def execute(db, sql: str, params: tuple = ()) -> None:
    """Run raw SQL written with ``?`` placeholders on either backend."""
    if backend_of(db) == "postgres":
        sql = sql.replace("?", "%s")
    db.execute_sql(sql, params)


def history(storage: StorageService) -> None:
    """Opens, adds, partial fills, a flip, a close, a cancel and hand adjustments."""
    storage.create_strategy("trend")
    storage.create_strategy("idle")
    o1 = storage.create_order("AAPL", "buy", "limit", 3, price=11, strategy="trend")
    storage.record_trade(o1.id, "AAPL", "buy", 1, 10, commission="0.5", external_id="t1")
    storage.record_trade(o1.id, "AAPL", "buy", 2, 11, fees="0.1", external_id="t2")
    o2 = storage.create_order("AAPL", "sell", "market", 5, strategy="trend")
    storage.record_trade(o2.id, "AAPL", "sell", 5, 12)  # closes 3, flips to short 2
    o3 = storage.create_order("AAPL", "buy", "market", 2)
    storage.record_trade(o3.id, "AAPL", "buy", 2, "9.5")  # closes the short
    o4 = storage.create_order("MSFT", "sell", "limit", 10, price=300, strategy="trend")
    storage.record_trade(o4.id, "MSFT", "sell", 4, 301)
    storage.cancel_order(o4.id)
    storage.create_order("TSLA", "buy", "market", 1)  # never filled
    storage.create_position("NVDA", "long", 7, "100.25")
    position = storage.get_position_by_symbol("NVDA")
    storage.update_position_quantity(position.id, 4)


@pytest.fixture
def booked(storage):
    history(storage)
    return storage


def damaged(db, *statements: tuple[str, tuple]):
    """The check's report with ``statements`` applied, then rolled back."""
    with db.atomic() as transaction:
        for sql, params in statements:
            execute(db, sql, params)
        report = check_ledger(db)
        transaction.rollback()
    return report


def kinds(report) -> list[tuple[str, str]]:
    return sorted((v.kind, v.subject) for v in report.violations)


def test_a_clean_history_passes(booked):
    report = check_ledger(booked.db)
    assert report.ok, report.format()
    assert (report.trades, report.orders, report.strategies) == (7, 5, 2)
    assert report.positions == 4  # AAPL long and short (both closed), MSFT, NVDA
    assert "ledger OK" in report.summary()


def test_an_empty_store_passes(db):
    report = check_ledger(db)
    assert report.ok and report.trades == 0


def test_small_batches_page_through_everything(booked, monkeypatch):
    """Keyset paging: with 2 rows a batch every row is still read exactly once."""
    import stocksbot_store.check as check

    monkeypatch.setattr(check, "BATCH", 2)
    seen = []
    report = check_ledger(booked.db, progress=lambda phase, done, total: seen.append(phase))
    assert report.ok, report.format()
    assert report.trades == 7 and report.orders == 5
    assert seen.count("trades") == 4 and seen.count("orders") == 3
    execute(booked.db, 'UPDATE "order" SET filled_quantity = ? WHERE id = ?', ("2", 4))
    assert kinds(check_ledger(booked.db)) == [("order", "order 4")]


ORDER_DAMAGE = [
    ("filled_quantity", "2", "filled_quantity is 2; its 2 trade(s) sum to 3"),
    ("avg_fill_price", "10.5", "avg_fill_price is 10.5; its trades average 10.6666666667"),
    ("status", "partially_filled", "status is partially_filled with 3 of 3 filled"),
]


def test_order_figures_are_checked(booked):
    for column, value, message in ORDER_DAMAGE:
        report = damaged(booked.db, (f'UPDATE "order" SET {column} = ? WHERE id = ?', (value, 1)))
        assert kinds(report) == [("order", "order 1")], column
        assert message in str(report.violations[0])
    assert check_ledger(booked.db).ok


def test_a_filled_status_without_fills_is_reported(booked):
    execute(booked.db, 'UPDATE "order" SET status = ? WHERE symbol = ?', ("filled", "TSLA"))
    report = check_ledger(booked.db)
    assert [v.kind for v in report.violations] == ["order"]
    assert "expected cancelled or open or pending or rejected" in report.format()


POSITION_DAMAGE = [
    ("quantity", "5"),
    ("avg_entry_price", "100.26"),
    ("realized_pnl", "1"),
    ("commission", "0.01"),
    ("fees", "2"),
    ("side", "short"),
    ("cost_basis", "1"),
]


def test_open_position_figures_are_checked(booked):
    for column, value in POSITION_DAMAGE:
        report = damaged(
            booked.db,
            (
                f"UPDATE position SET {column} = ? WHERE symbol = ? AND is_open = ?",
                (value, "NVDA", True),
            ),
        )
        assert kinds(report) == [("position", "position NVDA")], column
        assert f"{column} of position" in str(report.violations[0])


def test_a_lost_or_closed_position_is_reported(booked):
    execute(booked.db, "UPDATE position SET is_open = ? WHERE symbol = ?", (False, "MSFT"))
    report = check_ledger(booked.db)
    assert "none is open, but its trades leave short 4 open" in report.format()
    execute(booked.db, "DELETE FROM position WHERE symbol = ?", ("MSFT",))
    assert "0 position row(s) stored; its trades open 1" in check_ledger(booked.db).format()


def test_a_position_without_trades_is_reported(booked):
    execute(
        booked.db,
        "INSERT INTO position (symbol, side, quantity, avg_entry_price, "
        "cost_basis, realized_pnl, commission, fees, is_open, created_at, updated_at, "
        "opened_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            "GHOST",
            "long",
            "1",
            "1",
            "1",
            "0",
            "0",
            "0",
            True,
            "2026-01-01 00:00:00+00:00",
            "2026-01-01 00:00:00+00:00",
            "2026-01-01 00:00:00+00:00",
        ),
    )
    report = check_ledger(booked.db)
    assert "trades leave nothing open" in report.format()
    assert "1 position row(s) stored; its trades open 0" in report.format()


@pytest.mark.sqlite_only
def test_two_open_positions_in_a_symbol_are_reported(booked):
    """The unique index forbids it; a database that lost the index must still be caught."""
    execute(booked.db, "DROP INDEX position_one_open_per_symbol")
    execute(booked.db, "UPDATE position SET is_open = ? WHERE symbol = ?", (True, "AAPL"))
    assert "open positions (ids" in check_ledger(booked.db).format()


STRATEGY_DAMAGE = [
    ("total_trades", 9),
    ("winning_trades", 0),
    ("total_pnl", "0"),
    ("gross_loss", "1"),
    ("commission", "0"),
    ("pnl_peak", "100"),
    ("max_drawdown", "0.5"),
    ("win_rate", "0.5"),
    ("last_trade_at", None),
]


def test_strategy_figures_are_checked(booked):
    for column, value in STRATEGY_DAMAGE:
        report = damaged(
            booked.db, (f"UPDATE strategy SET {column} = ? WHERE name = ?", (value, "trend"))
        )
        assert kinds(report) == [("strategy", "strategy 1 'trend'")], column
        assert f"{column} is" in str(report.violations[0])


def test_a_trade_that_disagrees_with_the_replay_is_reported(booked):
    execute(booked.db, "UPDATE trade SET realized_pnl = ? WHERE external_id = ?", ("1", "t2"))
    execute(booked.db, "UPDATE trade SET type = ? WHERE external_id = ?", ("adjustment", "t1"))
    report = check_ledger(booked.db)
    assert kinds(report) == [("trade", "trade 1"), ("trade", "trade 2")]


def test_a_changed_trade_shows_in_everything_derived_from_it(booked):
    execute(booked.db, "UPDATE trade SET quantity = ? WHERE external_id = ?", ("1.5", "t2"))
    found = {v.kind for v in check_ledger(booked.db).violations}
    assert {"order", "strategy", "trade"} <= found


def test_a_trade_of_another_symbol_on_an_order_is_reported(booked):
    execute(booked.db, "UPDATE trade SET order_id = ? WHERE symbol = ?", (1, "MSFT"))
    assert "trade 5 is sell MSFT" in check_ledger(booked.db).format()


def test_broken_foreign_keys_are_reported(booked):
    db = booked.db
    if backend_of(db) == "postgres":
        execute(db, "SET session_replication_role = replica")  # FK triggers off
    else:
        execute(db, "PRAGMA foreign_keys = OFF")
    execute(db, 'DELETE FROM "order" WHERE symbol = ?', ("MSFT",))
    execute(db, "UPDATE trade SET strategy_id = ? WHERE symbol = ?", (77, "NVDA"))
    report = check_ledger(db)
    text = report.format()
    assert "order_id = 4, but order 4 does not exist" in text
    assert "strategy_id = 77, but strategy 77 does not exist" in text
    if backend_of(db) == "sqlite":
        assert "foreign_key_check: refers to a missing order row" in text


def test_missing_tables_are_a_schema_error(db):
    execute(db, "DROP TABLE trade")
    with pytest.raises(SchemaError, match="no trade table"):
        check_ledger(db)


def test_a_null_where_the_schema_forbids_it_is_an_error_naming_the_row(booked):
    """A trade table rebuilt by hand (CREATE TABLE AS keeps no NOT NULL) can hold a NULL
    quantity: the check stops with the row and column, not with a TypeError."""
    db = booked.db
    execute(db, "CREATE TABLE loose AS SELECT * FROM trade")
    execute(db, "DROP TABLE trade")
    execute(db, "ALTER TABLE loose RENAME TO trade")
    execute(db, "UPDATE trade SET quantity = NULL WHERE id = ?", (5,))
    with pytest.raises(CorruptRowError, match="^trade 5: quantity is NULL, but the store's"):
        check_ledger(db)


# -- the command line ----------------------------------------------------------------


@pytest.fixture
def file_store(store_url):
    db = connect(store_url)
    yield store_url, StorageService(db)
    db.close()


def test_cli_exit_0_on_a_clean_store(file_store, capsys):
    url, storage = file_store
    history(storage)
    assert main(["--url", url]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ledger OK:") and "7 trades, 5 orders" in out
    assert err == ""


def test_cli_checks_a_sqlite_file_while_the_bot_holds_its_write_lock(tmp_path, capsys):
    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"
    db = connect(url)
    init_db(db)
    history(StorageService(db))
    db.close()
    bot = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        bot.execute("BEGIN IMMEDIATE")  # the write lock, held as a bot mid-write holds it
        bot.execute("UPDATE strategy SET description = 'mid-write'")
        assert main(["--url", url]) == 0
        out, err = capsys.readouterr()
        assert out.startswith("ledger OK:") and err == ""
        # Its connection cannot write at all: a write is refused at once, not queued
        # behind the bot's lock.
        checker = open_read_only(url)
        with pytest.raises(ReadOnlyError):
            checker.execute_sql("UPDATE strategy SET description = 'checked'")
        checker.close()
        # The check took no lock and left none: the bot writes on and commits.
        bot.execute("UPDATE strategy SET description = 'written'")
        bot.execute("COMMIT")
    finally:
        bot.close()


def test_cli_exit_1_lists_every_violation(file_store, capsys):
    url, storage = file_store
    history(storage)
    execute(storage.db, 'UPDATE "order" SET filled_quantity = ?', ("0.5",))
    assert main(["--url", url]) == 1
    out, _ = capsys.readouterr()
    assert "ledger has 5 violation(s)" in out
    assert "\norder (5):\n  order 1: filled_quantity is 0.5; its 2 trade(s) sum to 3" in out


def test_cli_reads_database_url(file_store, capsys, monkeypatch):
    url, _ = file_store
    monkeypatch.setenv("DATABASE_URL", url)
    assert main([]) == 0
    assert "ledger OK" in capsys.readouterr().out


def test_cli_progress(file_store, capsys):
    url, storage = file_store
    history(storage)
    assert main(["--url", url, "--progress"]) == 0
    err = capsys.readouterr().err
    assert "checking trades: 100% (7/7 ids)" in err
    assert "checking orders: 100% (5/5 ids)" in err
    assert main(["--url", url, "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "url,message",
    [
        ("mysql://x@127.0.0.1/db", "unsupported database URL scheme"),
        ("postgresql://nobody:hunter2-secret@127.0.0.1:1/nodb", "stocksbot-check: error:"),
    ],
)
def test_cli_exit_2_when_it_cannot_check(url, message, capsys):
    assert main(["--url", url]) == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err
    assert "hunter2" not in err and "Traceback" not in err


def test_cli_exit_2_for_a_missing_file_without_creating_it(tmp_path, capsys):
    path = tmp_path / "absent.db"
    assert main(["--url", f"sqlite:///{path}"]) == 2
    err = capsys.readouterr().err
    assert "no SQLite database at" in err and "absent.db" in err
    assert not path.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_cli_exit_2_for_an_empty_sqlite_file_and_leaves_it_empty(tmp_path, capsys):
    """Read-only means read-only: an empty file gets no schema, not even a WAL header."""
    path = tmp_path / "empty.db"
    path.touch()
    assert main(["--url", f"sqlite:///{path}"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "is empty" in err and "stocksbot_store.migrate upgrade" in err
    assert path.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


def test_cli_exit_2_for_an_empty_postgres_database_and_creates_no_table(capsys):
    with fresh_pg_database() as url:
        assert main(["--url", url]) == 2
        out, err = capsys.readouterr()
        assert out == "" and "is empty" in err and "stocksbot_store.migrate upgrade" in err
        db = connect(url, migrate=False)
        assert db.get_tables() == []
        db.close()


def test_cli_exit_2_for_a_database_that_is_not_a_store(file_db_url, capsys):
    """A database holding something else: the check refuses it and names the fix."""
    db = connect(file_db_url)
    init_db(db)
    for table in ("trade", "position", "strategy", "order", "config"):
        execute(
            db,
            f'DROP TABLE "{table}" CASCADE'
            if backend_of(db) == "postgres"
            else f'DROP TABLE "{table}"',
        )
    execute(db, "CREATE TABLE unrelated (id INTEGER)")
    db.close()
    assert main(["--url", file_db_url]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "stocksbot_store.migrate" in err.replace(
        "stocksbot-migrate", "stocksbot_store.migrate"
    )


def test_cli_as_a_module_help_and_usage_errors():
    """The real entry point: --help explains, a bad option is exit 2, never a traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "stocksbot_store.check", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert "--url URL" in done.stdout and "Exit status: 0" in done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "stocksbot_store.check", "--bogus"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stocksbot_store.check",
            "--url",
            "postgresql://u:pw-XYZZY@127.0.0.1:1/db",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "pw-XYZZY" not in done.stderr + done.stdout
