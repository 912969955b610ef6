"""Paths the file system refuses, even to root: a file where a folder should be, a name
longer than the file system allows, a folder under /proc or /sys, a folder where a file
should be.

Every function that writes a file refuses such a path with a StorageError that names the
path and what to do, leaves nothing behind (no ``.partial`` file or folder), and every
command line exits 2 with that one line on stderr and no traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_convert import make_store

import stocksbot_store.realized as realized_module
from stocksbot_store import (
    ConfigurationError,
    MigrationError,
    PathError,
    backup,
    connect,
    export_archive,
)
from stocksbot_store.commands import backup_main, convert_main, export_main, restore_main
from stocksbot_store.migration.cli import main as migrate_main
from stocksbot_store.migration.runner import Runner
from stocksbot_store.realized import write_realized_report
from stocksbot_tui.__main__ import main as dashboard_main

#: Each fault: the path it gives, from a folder holding the file ``notes.txt``.
FAULTS: dict[str, Callable[[Path], str]] = {
    "a file on the path": lambda folder: str(folder / "notes.txt" / "out"),
    "a name too long": lambda folder: str(folder / ("n" * 300)),
    "a folder of /proc": lambda folder: "/proc/self/stocksbot-out",
    "a folder of /sys": lambda folder: "/sys/stocksbot-out",
}


@pytest.fixture(params=list(FAULTS))
def refused(request, tmp_path) -> Iterator[str]:
    """A path the file system refuses; afterwards, nothing new is left beside it."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "notes.txt").write_text("kept as it is\n")
    yield FAULTS[request.param](folder)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert (folder / "notes.txt").read_text() == "kept as it is\n"


def names_the_path_and_the_fix(path: str) -> str:
    """A ``match`` for a message that names ``path`` (up to the first 60 characters) and
    says what to choose instead."""
    return rf"cannot write .*{re.escape(path[:60])}.*: choose"


#: What writes files or folders from an open store, at the path it is given.
WRITERS: dict[str, Callable[..., object]] = {
    "export_archive": export_archive,
    "backup": backup,
    "write_realized_report": write_realized_report,
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_refused_path_is_a_path_error(store_url, refused, writer):
    db = connect(store_url)
    try:
        with pytest.raises(PathError, match=names_the_path_and_the_fix(refused)):
            WRITERS[writer](db, refused)
    finally:
        db.close()


def test_a_realized_report_into_a_file_is_a_path_error(store_url, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("kept as it is\n")
    db = connect(store_url)
    try:
        with pytest.raises(PathError, match="notes.txt: File exists; .*choose a new path"):
            write_realized_report(db, str(notes))
    finally:
        db.close()
    assert notes.read_text() == "kept as it is\n"


def test_a_realized_report_that_fails_halfway_keeps_the_last_one_whole(tmp_path, monkeypatch):
    """The report is renamed into place when whole: a failure while it is written
    leaves the report of the last run as it was, and no ``.partial`` file."""
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    make_store(url)
    out = tmp_path / "reports"
    db = connect(url)
    try:
        rows_path, years_path, count = write_realized_report(db, str(out))
        assert count > 0
        before = {p.name: p.read_text() for p in out.iterdir()}
        whole = realized_module.realized_report

        def failing(*args, **kwargs):
            rows = whole(*args, **kwargs)
            yield next(iter(rows))
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(realized_module, "realized_report", failing)
        with pytest.raises(PathError, match="disk is full"):
            write_realized_report(db, str(out))
    finally:
        db.close()
    assert {p.name: p.read_text() for p in out.iterdir()} == before


def test_a_sqlite_database_at_a_refused_path_is_a_configuration_error(refused):
    with pytest.raises(ConfigurationError, match=names_the_path_and_the_fix(refused)):
        connect(f"sqlite:///{refused}")


@pytest.mark.parametrize("read_only", [False, True])
def test_a_sqlite_url_that_names_a_folder_says_so(tmp_path, read_only):
    """SQLite itself says only "disk I/O error" (read-only) or "unable to open"."""
    with pytest.raises(ConfigurationError, match="is a folder, not a SQLite database file"):
        connect(f"sqlite:///{tmp_path}", read_only=read_only)


@pytest.mark.parametrize("held", [b"x", b"my notes\n", b"\x00" * 5, b"SQLite format 2\x00"])
@pytest.mark.parametrize("read_only", [False, True])
def test_a_file_that_is_no_database_is_refused_and_left_as_it_was(tmp_path, held, read_only):
    """SQLite took a file of a few bytes for an empty database and wrote a store over
    it; a file that is not empty and does not start as a SQLite database is refused."""
    note = tmp_path / "notes.txt"
    note.write_bytes(held)
    with pytest.raises(ConfigurationError, match="is not a SQLite database .* left as it was"):
        connect(f"sqlite:///{note}", read_only=read_only)
    with pytest.raises(ConfigurationError, match="is not a SQLite database"):
        connect(f"sqlite:///file:{note}?mode=rw")
    assert note.read_bytes() == held
    empty = tmp_path / "empty.db"  # an empty file is a new database, as SQLite has it
    empty.touch()
    if not read_only:
        connect(f"sqlite:///{empty}").close()
        assert empty.read_bytes().startswith(b"SQLite format 3\x00")


def test_a_migration_file_into_a_refused_folder_is_a_migration_error(tmp_path, refused):
    db = connect(f"sqlite:///{tmp_path / 'bot.db'}")
    try:
        with pytest.raises(MigrationError, match=names_the_path_and_the_fix(refused)):
            Runner(db, refused).create("add a column")
    finally:
        db.close()


def one_line_naming(capsys, path: str) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "Errno" not in err and ".partial" not in err, err
    assert re.search(names_the_path_and_the_fix(path), err), err
    return err


def test_every_command_line_refuses_a_refused_path_in_one_line(tmp_path, refused, capsys):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    make_store(url)
    commands = [
        (export_main, ["--url", url, "--out", refused]),
        (export_main, ["--url", url, "--report", "realized", "--out", refused]),
        (backup_main, ["--url", url, "--to", refused]),
        (convert_main, ["--from", url, "--to", f"sqlite:///{refused}"]),
        (restore_main, [str(tmp_path / "bot.db"), "--url", f"sqlite:///{refused}"]),
        (migrate_main, ["revision", "-m", "x", "--url", url, "--directory", refused]),
    ]
    for main, argv in commands:
        assert main(argv) == 2, argv
        one_line_naming(capsys, refused)
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]


def test_a_dashboard_screenshot_to_a_refused_path_is_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("kept as it is\n")
    shot = str(tmp_path / "notes.txt" / "dashboard.svg")
    assert dashboard_main(["--demo", "--screenshot", shot]) == 2
    assert one_line_naming(capsys, shot).startswith("stocksbot-dashboard: cannot write")
