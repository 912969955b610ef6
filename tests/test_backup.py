"""stocksbot-backup and stocksbot-restore.

A backup taken while another process records fills as fast as it can: the writer
sees no error and keeps going, the backup passes the ledger check and holds every
fill the writer reported before it began. A backup restores into an empty SQLite
file or PostgreSQL database with every row; a damaged one is refused.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
from pathlib import Path
from urllib.parse import quote

import pytest
from children import Child
from conftest import fresh_pg_database
from every_row import fill_every_kind
from test_convert import canonical, make_store

import stocksbot_store.backups as backup_module
from stocksbot_store import (
    Fill,
    ReadOnlyError,
    StorageService,
    backup,
    connect,
    init_db,
    restore,
)
from stocksbot_store.backups import BackupError, default_backup_path
from stocksbot_store.commands import backup_main, restore_main
from stocksbot_store.database import SQLITE_PRAGMAS
from stocksbot_store.errors import StorageError

WRITER = Path(__file__).parent / "procs" / "fill_loop.py"


class Writer(Child):
    """tests/procs/fill_loop.py in its own process; its reported trade ids, as they come."""

    def __init__(self, url: str) -> None:
        super().__init__([WRITER, url, "bk", "7"])

    def ids(self, lines: list[tuple[float, str]]) -> set[int]:
        return {
            int(x) for _, line in lines if line.startswith(("T ", "B ")) for x in line.split()[1:]
        }


def seed_history(url: str, orders: int = 600) -> None:
    """Some history first, so the copy takes many steps while the writer writes."""
    db = init_db(connect(url))
    storage = StorageService(db)
    fills = []
    for k in range(orders):
        side = "buy" if k % 3 else "sell"
        order = storage.create_order("SEED", side, "market", 2)
        fills.append(Fill(order.id, "SEED", side, 2, 100 + k % 7, "0.01"))
    storage.record_trades(fills)
    db.close()


def test_backup_while_another_process_records_fills(store_url, tmp_path, monkeypatch):
    seed_history(store_url)
    monkeypatch.setattr(backup_module, "STEP_PAGES", 4)  # many steps, writes between them
    writer = Writer(store_url)
    try:
        writer.wait_for(30)
        before = list(writer.lines)
        db = connect(store_url)
        target = tmp_path / ("copy.db" if store_url.startswith("sqlite") else "copy")
        steps = []
        report = backup(db, str(target), progress=lambda *a: steps.append(a))
        during = [t for t, _ in writer.lines if t >= before[-1][0]]
        db.close()
        writer.wait_for(len(writer.lines) + 30)  # and it keeps going afterwards
    finally:
        writer.stop()
    assert writer.process.returncode == -signal.SIGKILL, f"the writer failed:\n{writer.error}"
    assert writer.error == ""
    gaps = [b - a for a, b in zip(during, during[1:], strict=False)]
    assert max(gaps, default=0) < SQLITE_PRAGMAS["busy_timeout"] / 1000
    assert report.ok, report.summary()
    assert report.ledger.trades >= 600 and len(steps) > 3
    if store_url.startswith("sqlite"):
        copy = connect(f"sqlite:///{target}", migrate=False)
        stored = {r[0] for r in copy.execute_sql("SELECT id FROM trade")}
        copy.close()
    else:
        stored = {json.loads(line)[0] for line in (target / "trade.jsonl").open()}
    missing = writer.ids(before) - stored
    assert not missing, f"fills reported before the backup began are missing: {missing}"


def test_a_sqlite_backup_is_verified_private_and_restores_anywhere(tmp_path):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    make_store(url)
    db = connect(url)
    report = backup(db)
    db.close()
    path = Path(report.path)
    assert path.parent == tmp_path and path.name.startswith("bot-backup-")
    assert report.ok and report.integrity == "ok" and report.rows["trade"] == 8
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Path(report.checksum_file).read_text() == f"{report.sha256}  {path.name}\n"
    restored = f"sqlite:///{tmp_path / 'restored.db'}"
    assert restore(str(path), restored).ledger.ok
    assert canonical(restored) == canonical(url)
    with fresh_pg_database() as pg_url:
        restore(str(path), pg_url)
        assert canonical(pg_url) == canonical(url)
        with pytest.raises(StorageError, match="not empty"):
            restore(str(path), pg_url)


def test_a_damaged_backup_is_refused_and_nothing_is_written(tmp_path):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    make_store(url)
    db = connect(url)
    report = backup(db, str(tmp_path / "b.db"))
    db.close()
    data = bytearray((tmp_path / "b.db").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / "b.db").write_bytes(bytes(data))
    target = tmp_path / "target.db"
    with pytest.raises(BackupError, match=r"sha256 is \w+, .*/b\.db\.sha256 says"):
        restore(report.path, f"sqlite:///{target}")
    assert not target.exists()
    assert restore_main([report.path, "--url", f"sqlite:///{target}"]) == 2
    assert not target.exists()
    os.remove(report.checksum_file)  # no checksum to compare: the file itself is checked
    (tmp_path / "b.db").write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(BackupError, match="damaged"):
        restore(report.path, f"sqlite:///{target}")
    assert not target.exists()
    with pytest.raises(BackupError, match="neither a SQLite backup nor an archive"):
        restore(__file__, f"sqlite:///{target}")


def test_a_backup_of_books_that_disagree_is_kept_and_reported(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    make_store(url)
    db = connect(url)
    db.execute_sql("UPDATE strategy SET total_trades = 99 WHERE name = 'momentum'")
    db.close()
    assert backup_main(["--url", url, "--to", str(tmp_path / "kept.db")]) == 1
    out = capsys.readouterr().out
    assert "ledger has 1 violation(s)" in out and "verified: FAILED" in out
    assert (tmp_path / "kept.db").exists()


def test_backup_and_restore_commands(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    make_store(url)
    assert backup_main(["--url", url]) == 0
    out = capsys.readouterr().out
    path = out.split("backup: ", 1)[1].split("\n", 1)[0]
    for expected in (
        "size: ",
        "rows: strategy 4, position 4, order 8, trade 8, config 6",
        "integrity: ok",
        "ledger OK",
        "verified: OK",
    ):
        assert expected in out
    assert backup_main(["--url", url, "--to", path]) == 2
    assert "already exists" in capsys.readouterr().err
    assert backup_main(["--url", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
    with fresh_pg_database() as pg_url:
        assert restore_main([path, "--url", pg_url]) == 0
        assert "ledger OK" in capsys.readouterr().out
        archive = tmp_path / "pg-archive"
        assert backup_main(["--url", pg_url, "--to", str(archive)]) == 0
        assert "verified: OK" in capsys.readouterr().out
    back = f"sqlite:///{tmp_path / 'back.db'}"
    assert restore_main([str(archive), "--url", back]) == 0
    assert canonical(back) == canonical(url)


def test_the_report_names_the_backup_the_user_gets(tmp_path, capsys):
    """The copy is verified as ``<target>.partial`` and then renamed: every line of the
    report, the ledger's included, names the target."""
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    make_store(url)
    target = tmp_path / "b.db"
    assert backup_main(["--url", url, "--to", str(target)]) == 0
    out = capsys.readouterr().out
    assert f"ledger OK: sqlite:///{target}: " in out
    assert ".partial" not in out
    db = connect(url)
    report = backup(db, str(tmp_path / "c.db"))
    db.close()
    assert report.ledger is not None and report.ledger.database == f"sqlite:///{tmp_path / 'c.db'}"
    assert report.path == str(tmp_path / "c.db")


def test_every_kind_of_row_survives_a_postgres_backup(tmp_path):
    with fresh_pg_database() as pg_url:
        db = init_db(connect(pg_url))
        fill_every_kind(StorageService(db))
        report = backup(db, str(tmp_path / "archive"))
        db.close()
        assert report.ok and report.rows["config"] == 6
        restored = f"sqlite:///{tmp_path / 'restored.db'}"
        restore(report.path, restored)
        assert canonical(restored) == canonical(pg_url)


# -- the source is only read ----------------------------------------------------------


@pytest.fixture
def opened(monkeypatch):
    """The databases stocksbot-backup opens, as it opened them (the real ``connect``)."""
    import stocksbot_store.commands as commands

    seen = []

    def recording_connect(url, **options):
        db = commands_connect(url, **options)
        seen.append(db)
        return db

    commands_connect = commands.connect
    monkeypatch.setattr(commands, "connect", recording_connect)
    return seen


def test_the_backup_command_opens_the_source_read_only(tmp_path, opened):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    make_store(url)
    assert backup_main(["--url", url, "--to", str(tmp_path / "copy.db")]) == 0
    (db,) = opened
    with db.connection_context():  # closed by the command; the same database again
        assert db.execute_sql("SELECT count(*) FROM strategy").fetchone()[0] == 4
        with pytest.raises(ReadOnlyError):
            db.execute_sql("UPDATE strategy SET name = name")


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_a_backup_while_the_bot_holds_the_write_lock(tmp_path, capsys, journal_mode):
    path = tmp_path / "bot.db"
    db = init_db(connect(f"sqlite:///{path}", pragmas={"journal_mode": journal_mode}))
    StorageService(db).create_strategy("momentum")
    db.close()
    bot = sqlite3.connect(path, isolation_level=None)
    try:
        bot.execute("BEGIN IMMEDIATE")  # the bot mid-write: the write lock is taken
        bot.execute("UPDATE strategy SET name = 'uncommitted'")
        # A short busy timeout: a backup that needed the write lock fails at once.
        url = f"sqlite:///{path}?timeout=0.2"
        assert backup_main(["--url", url, "--to", str(tmp_path / "copy.db")]) == 0
        assert "rows: strategy 1" in capsys.readouterr().out
        bot.execute("ROLLBACK")
    finally:
        bot.close()
    copy = connect(f"sqlite:///{tmp_path / 'copy.db'}", read_only=True)
    assert copy.execute_sql("SELECT name FROM strategy").fetchall() == [("momentum",)]
    copy.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes any file whatever its mode")
def test_a_backup_of_a_file_this_process_cannot_write(tmp_path, capsys):
    path = tmp_path / "bot.db"
    make_store(f"sqlite:///{path}")
    path.chmod(0o444)
    try:
        assert backup_main(["--url", f"sqlite:///{path}", "--to", str(tmp_path / "c.db")]) == 0
    finally:
        path.chmod(0o600)
    assert "verified: OK" in capsys.readouterr().out


def test_two_backups_of_a_file_in_the_same_second_take_different_names(tmp_path, monkeypatch):
    """Two migration runs back up one file at once: the one that finds its name taken
    by the other's unfinished copy takes the next name instead of failing."""
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    make_store(url)
    monkeypatch.setattr(backup_module, "_stamp", lambda: "20260101T000000Z")
    chosen = backup_module.default_backup_path

    def taken_meanwhile(db):
        path = chosen(db)
        if not (tmp_path / "bot-backup-20260101T000000Z.db.partial").exists():
            Path(f"{path}.partial").touch()  # the other run begins its copy under it
        return path

    monkeypatch.setattr(backup_module, "default_backup_path", taken_meanwhile)
    db = connect(url)
    report = backup(db)
    db.close()
    assert Path(report.path).name == "bot-backup-20260101T000000Z-2.db" and report.ok


def test_the_default_backup_path_is_beside_the_file_a_uri_names(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "srv dir"
    folder.mkdir()
    path = folder / "bot.db"
    make_store(f"sqlite:///{path}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    uri = f"file:{quote(str(path))}"
    for db in (
        connect(f"sqlite:///{path}", read_only=True),  # opened as file:...?mode=ro
        connect(f"sqlite:///{uri}?mode=ro", create=False),
        connect(f"sqlite:///{uri}", read_only=True),
    ):
        default = Path(default_backup_path(db))
        assert default.parent == folder and default.name.startswith("bot-backup-"), default
        db.close()
    assert backup_main(["--url", f"sqlite:///{uri}"]) == 0
    written = Path(capsys.readouterr().out.split("backup: ", 1)[1].split("\n", 1)[0])
    assert written.parent == folder and written.exists()
    assert list(elsewhere.iterdir()) == []


def test_a_backup_path_that_cannot_be_written_is_refused_with_the_fix(tmp_path):
    """A folder that does not exist, or a name another backup is writing, is a
    StorageError naming the path (it was a raw FileNotFoundError / FileExistsError),
    and no file is left behind."""
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    make_store(url)
    db = connect(url)
    try:
        missing = tmp_path / "no such folder" / "copy.db"
        with pytest.raises(StorageError, match="choose a path in a folder that exists"):
            backup(db, str(missing))
        busy = tmp_path / "copy.db"
        Path(f"{busy}.partial").touch()  # another backup's copy under that name
        with pytest.raises(StorageError, match=r"copy\.db\.partial exists: another backup"):
            backup(db, str(busy))
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("copy")) == [
            "copy.db.partial"
        ]
    finally:
        db.close()
