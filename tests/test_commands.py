"""The data commands: installed, explained by --help, progress on stderr."""

from __future__ import annotations

import io
import subprocess
import sys
from decimal import Decimal
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
    "stocksbot-import-fills": commands.import_fills_main,
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


# -- stocksbot-import-fills ----------------------------------------------------------------


def _order(url: str, quantity: int = 100) -> int:
    from stocksbot_store import StorageService, open_store

    db = open_store(url, create=False)
    try:
        return StorageService(db).create_order("IMP", "buy", "market", quantity).id
    finally:
        db.close()


def _book(url: str) -> tuple:
    from stocksbot_store import StorageService, check_ledger, open_store

    db = open_store(url, create=False)
    try:
        storage = StorageService(db)
        position = storage.get_position_by_symbol("IMP")
        trades = storage.get_recent_trades(limit=1000)
        assert check_ledger(db).ok
        return (
            None if position is None else (position.quantity, position.avg_entry_price),
            sorted((t.external_id, t.quantity, t.price, t.commission) for t in trades),
        )
    finally:
        db.close()


def test_import_fills_records_a_json_lines_file_exactly_and_again_changes_nothing(
    store_url, tmp_path, capsys
):
    order_id = _order(store_url)
    path = tmp_path / "fills.jsonl"
    lines = [
        f'{{"order_id": {order_id}, "symbol": "IMP", "side": "buy", "quantity": 1, '
        f'"price": 12345678.123456789, "commission": "0.01", "external_id": "j{i}", '
        f'"executed_at": "2026-11-20T10:00:0{i}Z"}}'
        for i in range(7)
    ]
    path.write_text("\n".join(lines[:4]) + "\n\n" + "\n".join(lines[4:]) + "\n")
    argv = [str(path), "--url", store_url, "--batch-size", "3", "--progress"]
    assert commands.import_fills_main(argv) == 0
    out, err = capsys.readouterr()
    assert "7 fills in 3 batches (7 new trades" in out
    assert err.splitlines()[-1] == "importing fills: 100% (7/7)"
    first = _book(store_url)
    # A JSON number is read as the exact decimal it spells, not through a float.
    assert first[0] == (Decimal(7), Decimal("12345678.1234567890"))
    assert commands.import_fills_main(argv[:3]) == 0  # the same file again
    assert "7 fills in 1 batch (0 new trades, 7 re-sent)" in capsys.readouterr().out
    assert _book(store_url) == first


def test_import_fills_names_the_csv_line_of_a_refused_fill_and_what_was_stored(
    store_url, tmp_path, capsys
):
    order_id = _order(store_url, quantity=5)
    rows = [f"{order_id},IMP,buy,1,10,,c{i}" for i in range(4)]
    rows.insert(2, f'{order_id},IMP,"sell",1,10,,bad')
    path = tmp_path / "fills.csv"
    # As a spreadsheet saves it: a byte-order mark first.
    path.write_text(
        "\ufefforder_id,symbol,side,quantity,price,commission,external_id\n" + "\n".join(rows)
    )
    assert commands.import_fills_main([str(path), "--url", store_url, "--batch-size", "2"]) == 2
    err = capsys.readouterr().err
    assert "fills.csv line 4: import stopped: fill 2 " in err
    assert "2 fills in 1 batch (2 new trades" in err and "Traceback" not in err
    assert _book(store_url)[0] == (Decimal(2), Decimal(10))


def test_import_fills_stops_at_a_line_that_is_not_json_after_the_batches_before_it(
    store_url, tmp_path, capsys
):
    order_id = _order(store_url)
    fill = f'{{"order_id": {order_id}, "symbol": "IMP", "side": "buy", "quantity": 1, "price": 5'
    path = tmp_path / "fills.jsonl"
    path.write_text("\n".join([fill + "}", fill + "}", fill + "}", fill]) + "\n")
    assert commands.import_fills_main([str(path), "--url", store_url, "--batch-size", "2"]) == 2
    err = capsys.readouterr().err
    assert "line 4 is not JSON" in err and "stored before it: 2 fills in 1 batch" in err
    assert _book(store_url)[0] == (Decimal(2), Decimal(5))


def test_import_fills_never_shows_the_password(tmp_path, capsys):
    path = tmp_path / "fills.jsonl"
    path.write_text("{}\n")
    url = "postgresql://bot:s3cr3t-pw@127.0.0.1:1/nothing"
    assert commands.import_fills_main([str(path), "--url", url]) == 2
    err = capsys.readouterr().err
    assert "s3cr3t-pw" not in err and "cannot connect" in err
