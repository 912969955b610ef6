"""The five data commands: installed, explained by --help, progress on stderr."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from stocksbot_store import commands

ROOT = Path(__file__).resolve().parent.parent
MAINS = {
    "stocksbot-backup": commands.backup_main,
    "stocksbot-restore": commands.restore_main,
    "stocksbot-export": commands.export_main,
    "stocksbot-import": commands.import_main,
    "stocksbot-convert": commands.convert_main,
}


def test_every_command_is_a_console_script_and_in_the_readme():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    readme = (ROOT / "README.md").read_text()
    for name in MAINS:
        module, function = scripts[name].split(":")
        assert module == "stocksbot_store.commands"
        assert getattr(commands, function)
        assert f"{name} " in readme


@pytest.mark.parametrize("name", list(MAINS))
def test_help_explains_and_exits_0(name, capsys):
    with pytest.raises(SystemExit) as done:
        MAINS[name](["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    assert out.startswith(f"usage: {name}") and "Exit status: 0" in out
    assert "--progress" in out


def test_progress_redraws_on_a_terminal_and_steps_by_ten_percent_elsewhere():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    plain = io.StringIO()
    hidden = commands.ProgressBar("copying", plain)
    hidden("trade", 5, 10)
    assert plain.getvalue() == ""  # not a terminal, not asked for
    forced = commands.ProgressBar("copying", plain, force=True)
    for done in range(0, 101, 5):
        forced("trade", done, 100)
    lines = plain.getvalue().splitlines()
    assert len(lines) == 11 and lines[-1] == "copying trade: 100% (100/100)"
    terminal = Terminal()
    bar = commands.ProgressBar("copying", terminal)
    bar("trade", 50, 100)
    bar("trade", 100, 100)
    assert terminal.getvalue() == (
        "\rcopying trade:  50% (50/100)\rcopying trade: 100% (100/100)\n"
    )


def test_the_installed_command_runs(tmp_path):
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "stocksbot-backup"),
            "--url",
            f"sqlite:///{tmp_path / 'missing.db'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "no such file" in done.stderr
    assert "Traceback" not in done.stderr


def test_export_opens_the_store_read_only(tmp_path, capsys, monkeypatch):
    import sqlite3

    from stocksbot_store import ReadOnlyError, StorageService, connect, init_db

    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"
    db = connect(url)
    init_db(db)
    StorageService(db).create_strategy("momentum")
    db.close()
    opened = []

    def spy(*args, **kwargs):
        opened.append(connect(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(commands, "connect", spy)
    bot = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        bot.execute("BEGIN IMMEDIATE")  # the write lock, held as a bot mid-write holds it
        bot.execute("UPDATE strategy SET description = 'mid-write'")
        out = tmp_path / "exported"
        assert commands.export_main(["--url", url, "--out", str(out), "--no-progress"]) == 0
        assert "strategy 1" in capsys.readouterr().out
        bot.execute("UPDATE strategy SET description = 'written'")
        bot.execute("COMMIT")
    finally:
        bot.close()
    # The connection it read through (mode=ro) refuses any write: it can never take
    # the write lock from the bot.
    with pytest.raises(ReadOnlyError):
        opened[0].execute_sql("UPDATE strategy SET description = 'exported'")
    opened[0].close()
