"""Migrations: the runner, its commands' output, and how connect()/init_db meet it.

Every test runs on SQLite in memory, a SQLite file and PostgreSQL. Tests that need
migrations beyond the shipped ones copy these into a temporary folder and add their
own, numbered from 0900 so that they come after them.
"""

from __future__ import annotations

import shutil
import sqlite3
import textwrap
from pathlib import Path

import pytest

from stocksbot_store import SchemaError, StorageService, connect, init_db
from stocksbot_store.backends import backend_of
from stocksbot_store.migrate import MigrationError, Runner, main, migrations_directory
from stocksbot_store.migration import runner as runner_module
from stocksbot_store.migration.drift import compare
from stocksbot_store.models import MODELS

TABLES = ["config", "order", "position", "strategy", "trade"]
#: The shipped migrations, in order, and the last of them.
SHIPPED = sorted(p.stem for p in Path(migrations_directory()).glob("[0-9]*.py"))
HEAD = SHIPPED[-1]

# 0902 adds a column to a parent table (a rebuild on SQLite when reverted) and
# 0903 makes a child-table column nullable (a rebuild on SQLite both ways).
MIGRATION_0002 = """
from peewee import TextField


def upgrade(migrator, db):
    migrator.migrate(migrator.add_column("strategy", "notes", TextField(null=True)))
    migrator.migrate(migrator.add_index("strategy", ("notes",), name="strategy_notes"))


def downgrade(migrator, db):
    migrator.migrate(migrator.drop_index("strategy", "strategy_notes"))
    migrator.migrate(migrator.drop_column("strategy", "notes", legacy=True)
                     if hasattr(db, "pragma") else migrator.drop_column("strategy", "notes"))
"""
MIGRATION_0003 = """
def upgrade(migrator, db):
    migrator.migrate(migrator.drop_not_null("trade", "symbol", legacy=True)
                     if hasattr(db, "pragma") else migrator.drop_not_null("trade", "symbol"))


def downgrade(migrator, db):
    migrator.migrate(migrator.add_not_null("trade", "symbol", legacy=True)
                     if hasattr(db, "pragma") else migrator.add_not_null("trade", "symbol"))
"""
BROKEN = """
from peewee import TextField


def upgrade(migrator, db):
    migrator.migrate(migrator.add_column("order", "memo", TextField(null=True)))
    db.execute_sql("UPDATE \\"order\\" SET \\"memo\\" = 'half done'")
    raise RuntimeError("the broker API changed")


def downgrade(migrator, db):
    pass
"""


def migrations_folder(tmp_path: Path, **extra: str) -> str:
    """A copy of the shipped migrations plus ``extra`` (file name -> source)."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name in SHIPPED:
        shutil.copy(Path(migrations_directory()) / f"{name}.py", folder)
    for name, source in extra.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return str(folder)


def fill_every_table(db) -> StorageService:
    storage = StorageService(db)
    strategy = storage.create_strategy("momentum", "trend", {"window": 20}, "test")
    order = storage.create_order(
        "AAPL", "buy", "limit", "10", price="150.25", strategy=strategy.id, external_id="o-1"
    )
    storage.record_trade(order.id, "AAPL", "buy", "4", "150.25", commission="1", external_id="t-1")
    storage.create_position("MSFT", "long", "3", "300")
    storage.set_config_value("trading_enabled", True)
    return storage


def snapshot(db) -> dict[str, list[tuple]]:
    """Every row of every store table, as the database returns them."""
    return {
        table: db.execute_sql(f'SELECT * FROM "{table}" ORDER BY "id"').fetchall()
        for table in TABLES
    }


def schema_of(db) -> dict[str, object]:
    """Columns (name, type, null) and indexes (name, columns, unique) of every store table."""
    return {
        table: (
            [(c.name, c.data_type, c.null) for c in db.get_columns(table)],
            sorted((i.name, tuple(i.columns), i.unique) for i in db.get_indexes(table)),
        )
        for table in TABLES
    }


@pytest.fixture
def bare(db_url):
    """A connected database on each backend that connect() has not migrated."""
    database = connect(db_url, migrate=False)
    yield database
    database.close()


def test_connect_brings_a_new_database_to_head(db_url):
    db = connect(db_url)
    runner = Runner(db)
    assert runner.revisions()[0] == "0001_initial"
    assert runner.current() == runner.revisions()[-1]
    assert not compare(db, MODELS)
    assert set(TABLES) <= set(db.get_tables())
    db.close()


def test_init_db_and_upgrade_head_give_the_same_schema(tmp_path, backend):
    from conftest import fresh_database_url

    with (
        fresh_database_url(backend, tmp_path) as first,
        fresh_database_url(backend, tmp_path) as second,
    ):
        by_init = init_db(connect(first, migrate=False))
        by_upgrade = connect(second, migrate=False)
        Runner(by_upgrade).upgrade("head")
        for db in (by_init, by_upgrade):
            assert not compare(db, MODELS)
            assert Runner(db).current() == Runner(db).revisions()[-1]  # init_db stamped it
            assert (
                main(["check", "--url", first if db is by_init else second]) == 0
                or backend == "sqlite_memory"
            )  # a memory database is not shared with main()
        assert schema_of(by_init) == schema_of(by_upgrade)
        if backend == "postgres":
            triggers = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1"
            assert (
                by_init.execute_sql(triggers).fetchall()
                == by_upgrade.execute_sql(triggers).fetchall()
                != []
            )
        by_init.close()
        by_upgrade.close()


def test_round_trip_keeps_every_row(bare, tmp_path):
    runner = Runner(
        bare,
        migrations_folder(tmp_path, **{"0902_notes": MIGRATION_0002, "0903_pnl": MIGRATION_0003}),
    )
    assert runner.upgrade(HEAD) == SHIPPED
    fill_every_table(bare)
    before = snapshot(bare)
    indexes_before = schema_of(bare)
    assert all(before[table] for table in TABLES)

    assert runner.upgrade() == ["0902_notes", "0903_pnl"]
    assert runner.downgrade(HEAD) == ["0903_pnl", "0902_notes"]
    assert snapshot(bare) == before
    assert schema_of(bare) == indexes_before
    assert runner.upgrade("head") == ["0902_notes", "0903_pnl"]
    assert runner.downgrade("-1") == ["0903_pnl"]
    assert runner.current() == "0902_notes"
    assert runner.upgrade() == ["0903_pnl"]
    after = snapshot(bare)
    assert {t: len(rows) for t, rows in after.items()} == {t: len(r) for t, r in before.items()}
    assert after["order"] == before["order"]

    assert runner.downgrade("base") == ["0903_pnl", "0902_notes", *reversed(SHIPPED)]
    assert [t for t in bare.get_tables() if t != "schema_migration"] == []
    assert runner.upgrade() == [*SHIPPED, "0902_notes", "0903_pnl"]
    assert runner.downgrade(HEAD) == ["0903_pnl", "0902_notes"]
    assert not compare(bare, MODELS)


def test_a_failing_migration_changes_nothing_and_says_why(bare, tmp_path):
    runner = Runner(bare, migrations_folder(tmp_path, **{"0902_broken": BROKEN}))
    runner.upgrade(HEAD)
    fill_every_table(bare)
    before, schema_before = snapshot(bare), schema_of(bare)
    with pytest.raises(MigrationError) as error:
        runner.upgrade()
    assert "0902_broken" in str(error.value)
    assert "the broker API changed" in str(error.value)
    assert "rolled back" in str(error.value)
    assert snapshot(bare) == before
    assert schema_of(bare) == schema_before
    assert runner.current() == HEAD
    assert runner.pending() == ["0902_broken"]


def test_history_and_current_output(file_db_url, tmp_path, capsys):
    folder = migrations_folder(tmp_path, **{"0902_notes": MIGRATION_0002})
    args = ["--url", file_db_url, "--directory", folder]
    if file_db_url.startswith("sqlite"):  # `current` reads what exists; it creates no file
        assert main(["current", *args]) == 2
        assert "no SQLite database at" in capsys.readouterr().err
        Path(file_db_url.split(":///", 1)[1]).touch()
    assert main(["current", *args]) == 0
    assert capsys.readouterr().out == "base (no migration applied)\n"
    assert main(["upgrade", HEAD, *args]) == 0
    assert capsys.readouterr().out == f"applied: {', '.join(SHIPPED)}\ncurrent: {HEAD}\n"
    assert main(["current", *args]) == 0
    assert capsys.readouterr().out == f"{HEAD}\n"
    assert main(["history", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[x] 0001_initial  applied 20")
    assert lines[len(SHIPPED) - 1].endswith(" UTC  (current)")
    assert lines[len(SHIPPED)] == "[ ] 0902_notes  pending  (head)"
    assert main(["upgrade", *args]) == 0
    capsys.readouterr()
    assert main(["current", *args]) == 0
    assert capsys.readouterr().out == "0902_notes (head)\n"
    assert main(["downgrade", "-1", *args]) == 0
    assert capsys.readouterr().out == f"reverted: 0902_notes\ncurrent: {HEAD}\n"


def test_connect_refuses_a_database_that_is_behind(file_db_url, tmp_path, monkeypatch):
    db = connect(file_db_url)
    db.close()
    folder = migrations_folder(tmp_path, **{"0902_notes": MIGRATION_0002})
    monkeypatch.setenv("STOCKSBOT_MIGRATIONS", folder)
    with pytest.raises(SchemaError, match=r"behind.*0902_notes.*migrate upgrade head"):
        connect(file_db_url)
    assert Runner(connect(file_db_url, migrate=False)).pending() == ["0902_notes"]


def test_connect_refuses_a_database_from_a_newer_version(file_db_url, tmp_path):
    folder = migrations_folder(tmp_path, **{"0902_notes": MIGRATION_0002})
    newer = connect(file_db_url, migrate=False)
    Runner(newer, folder).upgrade()
    newer.close()
    with pytest.raises(SchemaError, match="0902_notes.*newer version"):
        connect(file_db_url)
    assert main(["upgrade", "--url", file_db_url]) == 2
    assert main(["check", "--url", file_db_url]) == 2


def test_connect_refuses_tables_without_history(file_db_url):
    db = connect(file_db_url, migrate=False)
    with db.bind_ctx(MODELS):
        db.create_tables(MODELS)
    db.close()
    with pytest.raises(SchemaError, match="stamp head"):
        connect(file_db_url)
    assert main(["stamp", "--url", file_db_url]) == 0
    connect(file_db_url).close()


def test_an_existing_database_costs_connect_one_query(file_db_url, caplog):
    import logging

    connect(file_db_url).close()
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        caplog.clear()  # records of the first connect() if the logger was already verbose
        connect(file_db_url).close()
    statements = [r for r in caplog.records if r.name == "peewee"]
    assert len(statements) == 1, [r.getMessage() for r in statements]


def test_unknown_revision_names_the_fix(bare):
    with pytest.raises(MigrationError, match="unknown revision '9'.*history"):
        Runner(bare).upgrade("9")


DANGLING = """
def upgrade(migrator, db):
    db.execute_sql('DELETE FROM "strategy"')  # orders still point at it


def downgrade(migrator, db):
    pass
"""


@pytest.mark.sqlite_only
def test_sqlite_foreign_key_check_rolls_back_a_migration_that_breaks_references(bare, tmp_path):
    runner = Runner(bare, migrations_folder(tmp_path, **{"0902_dangling": DANGLING}))
    runner.upgrade(HEAD)
    fill_every_table(bare)
    before = snapshot(bare)
    with pytest.raises(MigrationError, match=r"0902_dangling.*foreign key points nowhere"):
        runner.upgrade()
    assert snapshot(bare) == before
    assert bare.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1


def test_a_non_atomic_migration_is_refused(bare, tmp_path):
    source = "atomic = False\n\n\ndef upgrade(migrator, db):\n    pass\n"
    runner = Runner(bare, migrations_folder(tmp_path, **{"0902_loose": source}))
    with pytest.raises(MigrationError, match="0902_loose sets atomic = False"):
        runner.upgrade()
    assert runner.current() == HEAD


def test_a_run_waits_out_a_busy_sqlite_file_and_raises_anything_else_at_once(bare, monkeypatch):
    """Every step of a run goes through retry_busy: SQLITE_BUSY is tried again (saying
    once that it waits); any other error, a busy step inside a transaction (a retry
    cannot restart it) and every error on PostgreSQL (whose runs wait on the advisory
    lock instead) are raised on the first try."""
    monkeypatch.setattr(runner_module, "SQLITE_RETRY_PAUSE", 0)
    said: list[str] = []
    runner = Runner(bare, echo=said.append)
    tries: list[str] = []

    def failing(message: str, times: int):
        def step() -> str:
            tries.append(message)
            if len(tries) <= times:
                raise sqlite3.OperationalError(message)
            return "done"

        tries.clear()
        return step

    if backend_of(bare) == "sqlite":
        assert runner.retry_busy(failing("database is locked", 2)) == "done"
        assert (len(tries), said) == (3, [runner_module.WAITING])
    else:
        with pytest.raises(sqlite3.OperationalError):
            runner.retry_busy(failing("database is locked", 2))
        assert len(tries) == 1
    with bare.atomic(), pytest.raises(sqlite3.OperationalError, match="locked"):
        runner.retry_busy(failing("database is locked", 2))
    assert len(tries) == 1
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        runner.retry_busy(failing("no such table: x", 2))
    assert len(tries) == 1


@pytest.mark.postgres_only
def test_pooled_postgres_is_migrated_and_the_lock_released(db_url):
    pooled = db_url.replace("postgresql://", "postgresql+pool://") + "?max_connections=2"
    db = connect(pooled)
    assert Runner(db).current() == HEAD
    locks = (
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    assert db.execute_sql(locks).fetchone()[0] == 0
    connect(pooled).close()  # at head: opens fine
    db.close_all()


SLOW_MIGRATION = """
import os
import time


def upgrade(migrator, db):
    db.execute_sql('CREATE TABLE "slow_marker" ("id" INTEGER)')
    # A creator that holds the lock until every process has started connecting (a state
    # to reach, not a time to guess), and a moment more for the last to reach the lock.
    arrived, deadline = os.environ["ARRIVALS"], time.monotonic() + 60
    while len(os.listdir(arrived)) < int(os.environ["STARTERS"]):
        assert time.monotonic() < deadline, "the other processes never started"
        time.sleep(0.01)
    time.sleep(0.2)


def downgrade(migrator, db):
    db.execute_sql('DROP TABLE "slow_marker"')
"""

STARTER = """
import os, sys, time
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[2]):  # every process starts connecting at once
    assert time.monotonic() < deadline
    time.sleep(0.005)
from stocksbot_store import StorageError, connect
open(os.path.join(os.environ["ARRIVALS"], str(os.getpid())), "w").close()
try:
    db = connect(sys.argv[1])
    names = db.execute_sql('SELECT "name" FROM "schema_migration" ORDER BY "name"').fetchall()
    print(",".join(n for n, in names))
except StorageError as e:
    print(f"{type(e).__name__}: {e}")
    sys.exit(3)
"""


def test_processes_starting_together_on_a_new_database_agree_on_its_schema(file_db_url, tmp_path):
    """connect() creates a new database under the migration lock: the processes that
    arrive while another creates it wait and find it at head, never half made."""
    import os
    import subprocess
    import sys

    folder = migrations_folder(tmp_path, **{"0900_slow": SLOW_MIGRATION})
    go, arrivals = tmp_path / "go", tmp_path / "arrived"
    arrivals.mkdir()
    env = {**os.environ, "STOCKSBOT_MIGRATIONS": folder, "ARRIVALS": str(arrivals), "STARTERS": "4"}
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, file_db_url, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    go.touch()
    results = [(p.wait(timeout=180), *p.communicate()) for p in starters]
    assert [(code, out.strip()) for code, out, _ in results] == [
        (0, ",".join([*SHIPPED, "0900_slow"]))
    ] * 4, results
    db = connect(file_db_url, migrate=False)
    assert set(TABLES) | {"slow_marker", "schema_migration"} <= set(db.get_tables())
    db.close()
