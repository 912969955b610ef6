"""``migrate upgrade``/``downgrade`` protect the data: a SQLite file is backed up first
(named in the output; ``--no-backup`` skips it), a bare ``downgrade`` is refused, and a
downgrade that drops tables holding rows says how many and needs ``--yes`` (or a "yes"
typed on a terminal)."""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import pytest
from conftest import fresh_database_url
from every_row import fill_every_kind
from test_convert import canonical

from stocksbot_store import StorageService, connect, init_db, restore
from stocksbot_store.migrate import main
from stocksbot_store.migration.runner import Runner, migrations_directory
from stocksbot_store.migration.safety import rows_dropped
from stocksbot_store.rows import rows_held

#: The shipped migrations in order, and what a downgrade to base prints reverting them.
SHIPPED = sorted(p.stem for p in Path(migrations_directory()).glob("[0-9]*.py"))
REVERTED = f"reverted: {', '.join(reversed(SHIPPED))}\n"


def make_store(url: str) -> None:
    """A store of every kind of row but soft-deleted ones: a downgrade past soft delete
    refuses those (it would bring them back), and these tests are about dropped tables."""
    db = init_db(connect(url))
    fill_every_kind(StorageService(db), soft_deleted=False)
    db.close()


def test_a_bare_downgrade_is_refused(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    make_store(url)
    assert main(["downgrade", "--url", url]) == 2
    err = capsys.readouterr().err
    assert "downgrade needs a target: -1" in err and "base" in err
    db = connect(url)
    assert rows_held(db)["trade"] == 8
    db.close()
    assert not list(tmp_path.glob("*backup*"))


@pytest.mark.parametrize("backend", ["sqlite_file", "postgres"])
def test_dropping_tables_with_rows_needs_yes_and_says_how_many(
    backend, tmp_path, capsys, monkeypatch
):
    with fresh_database_url(backend, tmp_path) as url:
        make_store(url)
        monkeypatch.setattr(sys, "stdin", io.StringIO())  # not a terminal
        assert main(["downgrade", "base", "--url", url]) == 2
        err = capsys.readouterr().err
        # every table the migrations made is counted, the kept P&L figures (0002's) and
        # the audit log (0003's) too
        assert (
            "drops 8 table(s) holding 92 rows: audit_log (42 rows), config (5 rows), "
            "order (7 rows), "
            "pnl_bucket (18 rows), position (4 rows), position_day (6 rows), "
            "strategy (2 rows), trade (8 rows)"
        ) in err
        assert "add --yes" in err
        db = connect(url)
        assert rows_held(db)["order"] == 7  # the dry run changed nothing
        db.close()
        assert main(["downgrade", "base", "--yes", "--url", url]) == 0
        out, err = capsys.readouterr()
        assert "drops 8 table(s) holding 92 rows" in err and REVERTED in out
        db = connect(url, migrate=False)
        assert db.get_tables() == ["schema_migration"]
        db.close()
        if backend == "sqlite_file":
            backup = err.split("backup: ", 1)[1].split(" ", 1)[0]
            restored = f"sqlite:///{tmp_path / 'restored.db'}"
            restore(backup, restored)
            assert canonical(restored)["trade"] and rows_held(connect(restored))["trade"] == 8


def test_a_yes_typed_on_a_terminal_goes_ahead(tmp_path, capsys, monkeypatch):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    make_store(url)

    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    answers = iter(["no", "yes"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    assert main(["downgrade", "base", "--url", url, "--no-backup"]) == 2
    assert "nothing was done" in capsys.readouterr().err
    assert main(["downgrade", "base", "--url", url, "--no-backup"]) == 0
    assert REVERTED in capsys.readouterr().out
    assert not list(tmp_path.glob("*backup*"))


@pytest.mark.parametrize("form", ["sqlite:///{}", "sqlite:///file:{}?mode=rw"])
def test_upgrade_backs_up_a_sqlite_file_first_unless_told_not_to(
    tmp_path, capsys, monkeypatch, form
):
    """Also when a ``file:`` URI names the file."""
    make_store(f"sqlite:///{tmp_path / 'bot.db'}")
    url = form.format(tmp_path / "bot.db")
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name in SHIPPED:
        shutil.copy(Path(migrations_directory()) / f"{name}.py", folder)
    index = f"{len(SHIPPED) + 1:04d}_index"
    (folder / f"{index}.py").write_text(
        "def upgrade(migrator, db):\n"
        "    db.execute_sql('CREATE INDEX trade_fees ON trade (fees)')\n\n\n"
        "def downgrade(migrator, db):\n"
        "    db.execute_sql('DROP INDEX trade_fees')\n"
    )
    args = ["--url", url, "--directory", str(folder)]
    assert main(["upgrade", *args]) == 0
    out, err = capsys.readouterr()
    backup = Path(err.split("backup: ", 1)[1].split(" ", 1)[0])
    assert backup.parent == tmp_path and backup.name.startswith("bot-backup-")
    assert f"applied: {index}" in out
    assert main(["upgrade", *args]) == 0  # nothing pending: no backup
    assert "backup:" not in capsys.readouterr().err
    assert main(["downgrade", "-1", "--no-backup", *args]) == 0  # drops no table: no question
    out, err = capsys.readouterr()
    assert "backup:" not in err and f"reverted: {index}" in out
    assert main(["upgrade", "--no-backup", *args]) == 0
    assert "backup:" not in capsys.readouterr().err
    assert len(list(tmp_path.glob("bot-backup-*.db"))) == 1
    db = connect(url, migrate=False)
    assert rows_dropped(Runner(db, str(folder)), "-1") == {}
    assert rows_dropped(Runner(db, str(folder)), "base")["trade"] == 8
    db.close()
