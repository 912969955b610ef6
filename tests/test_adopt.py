"""``migrate adopt``: the old storage module's databases, refused as they are and
converted in place, on SQLite (memory and file) and PostgreSQL.

The old databases are built with SQLAlchemy from the old module's schema facts
(:mod:`legacy_schema`), with its users' habits: local-time stamps, orders without
fill state, positions kept by hand with float math or opened with no trade,
orphan trades and duplicate external ids.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
import zoneinfo
from decimal import Decimal

import pytest
from conftest import fresh_database_url
from legacy_schema import OLD_REVISION, OldBot, create_old_schema, old_engine

from stocksbot_store import StorageService, connect
from stocksbot_store.adopt import AdoptionError, adopt
from stocksbot_store.check import check_ledger
from stocksbot_store.check import main as check_main
from stocksbot_store.errors import SchemaError
from stocksbot_store.migrate import ensure_schema, main
from stocksbot_store.models import MODELS, Order, Position, Strategy, Trade

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
UTC = dt.timezone.utc
OLD_TABLES = ["alembic_version", "config", "orders", "positions", "strategies", "trades"]


class OldDatabase:
    """An old module's database: its URL, a peewee handle on it and the old bot."""

    def __init__(self, url: str, backend: str) -> None:
        self.url, self.backend = url, backend
        self.db = connect(url, migrate=False)
        self.engine = old_engine(self.db if backend == "sqlite_memory" else url)
        create_old_schema(self.engine)
        self.bot = OldBot(self.engine, NEW_YORK)

    def dump(self) -> dict[str, list[tuple]]:
        """Every row of every table, to tell whether anything changed."""
        found = {}
        for table in sorted(self.db.get_tables()):
            rows = self.db.execute_sql(f'SELECT * FROM "{table}"').fetchall()
            found[table] = sorted(map(repr, rows))
        return found

    def close(self) -> None:
        self.engine.dispose()
        self.db.close()


@pytest.fixture
def old(backend, tmp_path):
    with fresh_database_url(backend, tmp_path) as url:
        database = OldDatabase(url, backend)
        yield database
        database.close()


@pytest.fixture
def old_file(file_backend, tmp_path):
    with fresh_database_url(file_backend, tmp_path) as url:
        database = OldDatabase(url, file_backend)
        yield database
        database.close()


def fill_history(bot: OldBot) -> dict[str, int]:
    """A small history written with the old module's habits."""
    ids = {}
    ids["momentum"] = bot.strategy("momentum", config={"lookback": 20}, is_active=True)
    ids["gone"] = 77  # a strategy deleted long ago; orders still name it
    # Orders without fill state, trades stamped with New York local time.
    ids["buy"] = bot.order(
        "AAPL", "BUY", 10.0, 150.1, strategy_id=ids["momentum"], external_id="B-1"
    )
    ids["t1"] = bot.record_trade(
        ids["buy"],
        "AAPL",
        "BUY",
        6.0,
        150.1,
        external_id="F-1",
        executed_at=dt.datetime(2026, 1, 5, 9, 30),
        commission=0.5,
    )
    ids["t2"] = bot.record_trade(
        ids["buy"],
        "AAPL",
        "BUY",
        4.0,
        150.2,
        external_id="F-2",
        executed_at=dt.datetime(2026, 1, 5, 9, 31),
    )
    ids["sell"] = bot.order(
        "AAPL", "SELL", 4.0, 151.0, strategy_id=ids["momentum"], status="PARTIALLY_FILLED"
    )
    ids["t3"] = bot.record_trade(
        ids["sell"],
        "AAPL",
        "SELL",
        4.0,
        151.0,
        type="CLOSE",
        realized_pnl=3.5599999999999454,
        executed_at=dt.datetime(2026, 7, 1, 15, 0),
    )
    # A trade whose order is gone, and a duplicate broker id.
    ids["orphan"] = bot.record_trade(4242, "MSFT", "BUY", 2.0, 300.0, external_id="F-9")
    ids["dup"] = bot.record_trade(None, "MSFT", "BUY", 1.0, 301.0, external_id="F-9")
    ids["ghost_order"] = bot.order(
        "TSLA",
        "BUY",
        3.0,
        200.0,
        strategy_id=ids["gone"],
        status="FILLED",
        filled_quantity=3.0,
        avg_fill_price=200.0,
    )
    # Positions kept by hand with float math, one opened with no trade at all.
    qty = 0.1 + 0.2  # 0.30000000000000004
    ids["aapl_pos"] = bot.position("AAPL", "LONG", 6.0, 150.14, realized_pnl=3.56)
    ids["nvda_pos"] = bot.position("NVDA", "SHORT", qty, 500.0)
    bot.position("IBM", "LONG", 1.0, 100.0, is_open=False, realized_pnl=5.0)
    bot.config("trading_enabled", "true", "bool")
    bot.config("max_positions", "5", "int")
    return ids


def table_names(db) -> set[str]:
    return set(db.get_tables())


# -- refusing the old database as it is ---------------------------------------------------


def test_connect_refuses_an_old_database_and_names_adopt(old):
    fill_history(old.bot)
    with pytest.raises(SchemaError, match=r"old SQLAlchemy storage module.*migrate adopt"):
        ensure_schema(old.db)
    if old.backend != "sqlite_memory":
        with pytest.raises(SchemaError, match="migrate adopt"):
            connect(old.url)
    assert "stamp" not in str(pytest.raises(SchemaError, ensure_schema, old.db).value)
    assert "trade" not in table_names(old.db)  # nothing was created beside the old tables


@pytest.mark.parametrize("command", [["upgrade", "head"], ["stamp", "head"]])
def test_upgrade_and_stamp_refuse_an_old_database_with_exit_2(old_file, command, capsys):
    before = old_file.dump()
    assert main([*command, "--url", old_file.url]) == 2
    error = capsys.readouterr().err
    assert "python -m stocksbot_store.migrate adopt" in error and "Traceback" not in error
    assert old_file.dump() == before


def test_foreign_tables_are_refused_without_advice_to_stamp(backend, tmp_path):
    with fresh_database_url(backend, tmp_path) as url:
        db = connect(url, migrate=False)
        db.execute_sql("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        with pytest.raises(SchemaError) as error:
            ensure_schema(db)
        assert "invoices" in str(error.value) and "neither" in str(error.value)
        assert "stamp" not in str(error.value) and "adopt`" not in str(error.value)
        with pytest.raises(AdoptionError, match="neither"):
            adopt(db)
        db.close()


def test_our_own_tables_without_history_still_get_the_stamp_advice(db):
    db.execute_sql('DROP TABLE "schema_migration"')
    with pytest.raises(SchemaError, match="stamp head"):
        ensure_schema(db)


# -- converting -------------------------------------------------------------------------------


def test_adopt_keeps_every_row_and_id_exact_and_in_utc(old):
    ids = fill_history(old.bot)
    report = adopt(old.db, zone="America/New_York")
    assert report.counts["trades -> trade"] == (
        5,
        5 + sum(1 for c in report.changes if c[0] == "adjustment" and c[1] == "trade"),
    )
    ensure_schema(old.db)  # the store accepts it now: at head, no old tables beside
    assert not {"positions", "orders", "trades", "strategies"} & table_names(old.db)
    with old.db.bind_ctx(MODELS):
        t1 = Trade.get_by_id(ids["t1"])
        assert (t1.price, t1.quantity, t1.commission) == (Decimal("150.1"), 6, Decimal("0.5"))
        assert t1.side.value == "buy" and t1.type.value == "open"
        # 09:30 in New York in January is 14:30 UTC; 15:00 in July is 19:00 UTC.
        assert t1.executed_at == dt.datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
        assert Trade.get_by_id(ids["t3"]).executed_at == dt.datetime(2026, 7, 1, 19, 0, tzinfo=UTC)
        buy = Order.get_by_id(ids["buy"])
        assert (buy.status.value, buy.filled_quantity, buy.avg_fill_price) == (
            "filled",
            10,
            Decimal("150.14"),
        )
        assert buy.external_id == "B-1" and buy.strategy_id == ids["momentum"]
        sell = Order.get_by_id(ids["sell"])
        assert sell.status.value == "filled" and sell.filled_quantity == 4
        t3 = Trade.get_by_id(ids["t3"])
        assert t3.realized_pnl == Decimal("3.44") and t3.type.value == "close"
        strategy = Strategy.get_by_id(ids["momentum"])
        assert strategy.config == {"lookback": 20} and strategy.is_active
        assert (strategy.total_trades, strategy.total_pnl, strategy.commission) == (
            3,
            Decimal("3.44"),
            Decimal("0.5"),
        )
    storage = StorageService(old.db)
    assert storage.get_config_value("trading_enabled") == "true"
    assert storage.get_config("max_positions") == 5
    assert check_ledger(old.db).ok, check_ledger(old.db).format()


def test_orphans_and_duplicates_are_kept_and_listed_by_rule(old):
    ids = fill_history(old.bot)
    report = adopt(old.db, zone="UTC")
    changes = {(c[0], c[1], c[2], c[3]): c for c in report.changes}
    assert changes[("orphan", "trade", ids["orphan"], "order_id")][4:6] == ("4242", None)
    assert changes[("duplicate", "trade", ids["dup"], "external_id")][4:6] == ("F-9", None)
    assert changes[("strategy", "order", ids["ghost_order"], "strategy_id")][4] == "77"
    assert changes[("unfilled", "order", ids["ghost_order"], "status")][4:6] == ("filled", "open")
    with old.db.bind_ctx(MODELS):
        orphan = Trade.get_by_id(ids["orphan"])
        assert orphan.order_id is None and orphan.type.value == "adjustment"
        assert orphan.external_id == "F-9"
        assert Trade.get_by_id(ids["dup"]).external_id is None
        assert Order.get_by_id(ids["ghost_order"]).strategy_id is None
    # The report is kept in the database, every change with it.
    kept = old.db.execute_sql(
        "SELECT kind, table_name, row_id, field, old, new FROM adoption_change ORDER BY id"
    ).fetchall()
    assert len(kept) == len(report.changes) + len(report.filled_in)
    assert ("orphan", "trade", ids["orphan"], "order_id", "4242", None) in kept
    summary = old.db.execute_sql("SELECT summary FROM adoption_report").fetchone()[0]
    assert "orphan (1)" in summary and "trades -> trade: 5" in summary
    assert check_ledger(old.db).ok


def test_positions_as_stored_keep_what_the_old_bot_held(old):
    ids = fill_history(old.bot)
    report = adopt(old.db, zone="UTC")  # as-stored is the default
    storage = StorageService(old.db)
    held = {
        p.symbol: (p.side.value, p.quantity, p.avg_entry_price)
        for p in storage.get_open_positions()
    }
    assert held == {"AAPL": ("long", 6, Decimal("150.14")), "NVDA": ("short", Decimal("0.3"), 500)}
    with old.db.bind_ctx(MODELS):
        assert Position.get_by_id(ids["aapl_pos"]).symbol == "AAPL"  # id kept
        adjustments = list(Trade.select().where(Trade.type == "adjustment", Trade.order.is_null()))
    symbols = {t.symbol for t in adjustments}
    assert {"NVDA", "MSFT"} <= symbols  # opened with no trade; trades the bot did not hold
    assert all(c[5] is not None for c in report.changes if c[0] == "adjustment")
    assert check_ledger(old.db).ok


def test_positions_from_trades_replay_the_trades_alone(old):
    fill_history(old.bot)
    adopt(old.db, zone="UTC", positions="from-trades")
    held = {
        p.symbol: (p.side.value, p.quantity) for p in StorageService(old.db).get_open_positions()
    }
    assert held == {"AAPL": ("long", 6), "MSFT": ("long", 3)}
    with old.db.bind_ctx(MODELS):
        assert Trade.select().count() == 5
    assert check_ledger(old.db).ok


def test_dry_run_reports_the_same_and_writes_nothing(old):
    fill_history(old.bot)
    before = old.dump()
    dry = adopt(old.db, zone="UTC", dry_run=True)
    assert old.dump() == before
    assert dry.changes and dry.backup is None
    real = adopt(old.db, zone="UTC")
    assert dry.counts == real.counts
    assert [c[:6] for c in dry.changes] == [c[:6] for c in real.changes]


def test_a_failure_leaves_the_database_exactly_as_it_was(old):
    fill_history(old.bot)
    # The last trade cannot be converted: everything before it has been written when it
    # fails, so a rollback that missed anything would show.
    bad = old.bot.record_trade(None, "AAPL", "SELL", -5.0, 151.0)
    before = old.dump()
    with pytest.raises(AdoptionError, match=rf"trades row {bad}: quantity .*nothing was "):
        adopt(old.db, zone="UTC")
    assert old.dump() == before
    with pytest.raises(SchemaError, match="migrate adopt"):
        ensure_schema(old.db)


@pytest.mark.sqlite_only  # a PostgreSQL enum type cannot hold an unknown name
def test_an_unknown_enum_name_is_a_conversion_failure(old):
    fill_history(old.bot)
    old.bot.execute("UPDATE orders SET status = 'HALTED' WHERE id = 1")
    before = old.dump()
    with pytest.raises(AdoptionError, match="orders row 1: status is 'HALTED'"):
        adopt(old.db, zone="UTC")
    assert old.dump() == before


@pytest.mark.sqlite_only  # a PostgreSQL boolean column holds only booleans
def test_a_strategy_switch_is_adopted_as_it_says_or_refused(old):
    """Python's bool() read the text 'false' (an operator's UPDATE in a SQLite file) as
    on, and the adopted strategy would have traded; spelled switches read as they say,
    and a value that is no switch at all is refused, naming the row."""
    sid = fill_history(old.bot)["momentum"]
    old.bot.execute(f"UPDATE strategies SET is_active = 'maybe' WHERE id = {sid}")
    before = old.dump()
    with pytest.raises(AdoptionError, match=f"strategies row {sid}: is_active is 'maybe'"):
        adopt(old.db, zone="UTC")
    assert old.dump() == before
    old.bot.execute(
        f"UPDATE strategies SET is_active = 'false', is_enabled = 'off' WHERE id = {sid}"
    )
    adopt(old.db, zone="UTC")
    strategy = StorageService(old.db).strategies.get(sid)
    assert (strategy.is_active, strategy.is_enabled) == (False, False)


def test_an_empty_store_schema_beside_the_old_tables_is_replaced(old_file):
    """What `upgrade head` did to old databases before it refused them."""
    fill_history(old_file.bot)
    from stocksbot_store.runner import Runner

    runner = Runner(old_file.db)
    for migration in runner.migrations():  # the schema beside, without the refusal
        migration.load().upgrade(runner.migrator, old_file.db)
    report = adopt(old_file.db, zone="UTC")
    assert any("upgrade" in note for note in report.notes)
    assert check_ledger(old_file.db).ok


# -- the command line ---------------------------------------------------------------------------


def test_cli_backs_up_a_file_named_by_a_file_uri(tmp_path, capsys):
    """``sqlite:///file:/path?mode=rw`` is the file at that path: it is backed up beside
    it before it is adopted, as a plain path would be."""
    path = tmp_path / "old.db"
    old = OldDatabase(f"sqlite:///{path}", "sqlite_file")
    fill_history(old.bot)
    old.close()
    url = f"sqlite:///file:{path}?mode=rw"
    assert main(["adopt", "--url", url, "--assume-timezone", "America/New_York"]) == 0
    out = capsys.readouterr().out
    assert "no backup was made" not in out
    backup = re.search(r"^backup: (.*)$", out, re.M).group(1)
    assert os.path.dirname(backup) == str(tmp_path) and "before-adopt" in backup
    with sqlite3.connect(backup) as copy:  # the old database, before adoption
        assert copy.execute("SELECT COUNT(*) FROM trades").fetchone() == (5,)


def test_a_second_adoption_within_the_same_second_gets_a_backup_of_its_own(
    tmp_path, capsys, monkeypatch
):
    """The backup's name is stamped to the second: a run right after one that failed
    (its backup kept) met the name and stopped with a raw FileExistsError."""
    path = tmp_path / "old.db"
    old = OldDatabase(f"sqlite:///{path}", "sqlite_file")
    fill_history(old.bot)
    old.close()
    at = dt.datetime(2026, 3, 2, 15, 30, tzinfo=dt.timezone.utc)
    monkeypatch.setattr("stocksbot_store.adopt.utcnow", lambda: at)
    taken = tmp_path / "old.before-adopt-20260302T153000Z.db"
    taken.write_text("an earlier run's backup")
    url = f"sqlite:///{path}"
    assert main(["adopt", "--url", url, "--assume-timezone", "UTC"]) == 0
    backup = re.search(r"^backup: (.*)$", capsys.readouterr().out, re.M).group(1)
    assert backup == str(tmp_path / "old.before-adopt-20260302T153000Z-2.db")
    assert taken.read_text() == "an earlier run's backup"


def test_an_adoption_whose_backup_cannot_be_written_stops_before_any_change(tmp_path, capsys):
    """A database whose name leaves no room for the backup's (over 255 bytes with the
    stamp): the adoption stops with one line naming the backup and the fix, the old
    database as it was; it printed a raw "[Errno 36] File name too long"."""
    path = tmp_path / f"{'old' * 80}.db"
    old = OldDatabase(f"sqlite:///{path}", "sqlite_file")
    fill_history(old.bot)
    old.close()
    tables = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    with sqlite3.connect(path) as before:
        old_tables = before.execute(tables).fetchall()
    assert main(["adopt", "--url", f"sqlite:///{path}", "--assume-timezone", "UTC"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Errno" not in err, err
    assert "cannot write the backup before adoption" in err and "choose a shorter" in err
    assert sorted(os.listdir(tmp_path)) == [path.name]
    with sqlite3.connect(path) as after:
        assert after.execute(tables).fetchall() == old_tables


def test_cli_adopts_with_a_named_backup_then_says_it_is_done(old_file, capsys):
    fill_history(old_file.bot)
    url = old_file.url
    assert main(["adopt", "--url", url, "--assume-timezone", "America/New_York"]) == 0
    out = capsys.readouterr().out
    backup = re.search(r"^backup: (.*)$", out, re.M).group(1)
    assert "orphan (1)" in out and "duplicate (1)" in out and "trades -> trade: 5" in out
    if old_file.backend == "sqlite_file":
        assert os.path.exists(backup) and backup != url.split(":///", 1)[1]
        with sqlite3.connect(backup) as copy:  # the old database, whole
            tables = {
                r[0] for r in copy.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            assert set(OLD_TABLES) <= tables
            assert copy.execute("SELECT version_num FROM alembic_version").fetchone() == (
                OLD_REVISION,
            )
            assert copy.execute("SELECT COUNT(*) FROM trades").fetchone() == (5,)
    else:
        assert "stocksbot_legacy" in backup
        rows = old_file.db.execute_sql("SELECT COUNT(*) FROM stocksbot_legacy.trades")
        assert rows.fetchone()[0] == 5
    old_file.db.close()
    assert check_main(["--url", url]) == 0
    assert "ledger OK" in capsys.readouterr().out
    assert main(["adopt", "--url", url]) == 0
    assert "already adopted" in capsys.readouterr().out
    assert main(["upgrade", "--url", url]) == 0  # at head; nothing to do


def test_cli_dry_run_prints_the_report_and_prints_the_local_zone(old_file, capsys):
    fill_history(old_file.bot)
    before = old_file.dump()
    assert main(["adopt", "--url", old_file.url, "--dry-run", "--progress"]) == 0
    captured = capsys.readouterr()
    assert "would adopt (dry run: nothing written)" in captured.out
    assert "this machine's zone" in captured.err and "adopting trades" in captured.err
    assert old_file.dump() == before


def test_cli_help_explains_adopt(capsys):
    assert main(["adopt", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in (
        "--dry-run",
        "--assume-timezone",
        "as-stored",
        "from-trades",
        "backup",
        "stocksbot_legacy",
        OLD_REVISION,
    ):
        assert words in text


def test_cli_refuses_an_unknown_zone_with_exit_2(old_file, capsys):
    fill_history(old_file.bot)
    assert main(["adopt", "--url", old_file.url, "--assume-timezone", "Mars/Olympus"]) == 2
    assert "unknown time zone" in capsys.readouterr().err


# -- afterwards: the dashboard and the old code ---------------------------------------------------


def test_the_dashboard_shows_the_adopted_history(old):
    fill_history(old.bot)
    adopt(old.db, zone="UTC")
    from stocksbot_tui.data import DashboardSource

    snapshot = DashboardSource(old.db).refresh(force=True)
    assert snapshot.trading_enabled
    assert {p.symbol for p in snapshot.positions} == {"AAPL", "NVDA"}
    assert {t.id for t in snapshot.trades} >= {1, 2, 3, 4, 5}
    momentum = next(s for s in snapshot.strategies if s.name == "momentum")
    assert (momentum.trades, momentum.gross_pnl) == (3, Decimal("3.44"))
    assert {o.id for o in snapshot.orders.rows} == {1, 2, 3}


def test_the_old_code_runs_against_the_adopted_database(old):
    fill_history(old.bot)
    adopt(old.db, zone="UTC")
    storage = StorageService(old.db)
    assert {p.symbol for p in storage.get_open_positions()} == {"AAPL", "NVDA"}
    assert len(storage.get_recent_orders(limit=10)) == 3
    order = storage.create_order("MSFT", "buy", "market", 50.0)
    assert order.id == 4  # the sequence continues after the adopted ids
    trade = storage.record_trade(
        order_id=order.id, symbol="MSFT", side="buy", quantity=50.0, price=300.0
    )
    assert trade.id > 5 and trade.price == 300
    storage.set_config_value("trading_enabled", "false", "bool")
    assert storage.get_config_value("trading_enabled") == "false"
    assert storage.get_all_config()["max_positions"] == "5"
    assert check_ledger(old.db).ok, check_ledger(old.db).format()


def test_the_readme_moves_an_old_bot_over_in_two_commands(tmp_path):
    """The README's commands, as written, on an old SQLite file named by DATABASE_URL."""
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Moving an old bot over", 1)[1].split("\n## ", 1)[0]
    commands = re.search(r"```bash\n(.*?)```", section, re.S).group(1).strip().splitlines()
    assert len(commands) == 2 and commands[0].startswith("pip install stocksbot-store")
    url = f"sqlite:///{tmp_path / 'stocksbot.db'}"
    engine = old_engine(url)
    create_old_schema(engine)
    fill_history(OldBot(engine, NEW_YORK))
    engine.dispose()
    env = dict(os.environ, DATABASE_URL=url)
    argv = commands[1].split()
    assert argv[:3] == ["python", "-m", "stocksbot_store.migrate"]
    done = subprocess.run(
        [sys.executable, *argv[1:]],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "backup: " in done.stdout and "adopted: " in done.stdout
    assert check_main(["--url", url]) == 0
