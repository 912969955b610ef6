"""The migration command line, run as real processes where it matters.

Two ``upgrade`` processes at once must apply each migration once; exit codes are 0
(ok), 1 (drift or pending, for ``check``) and 2 (usage or failure, a message on
stderr and no traceback); a package installed by pip (not editable) finds the
migrations it ships.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import fresh_pg_database, pip_install_copy

from stocksbot_store import connect
from stocksbot_store.migrate import Runner, main, migrations_directory

REPO = Path(__file__).resolve().parent.parent

SLOW = """
import os
import time


def upgrade(migrator, db):
    db.execute_sql('CREATE TABLE IF NOT EXISTS "run_log" ("name" VARCHAR(40))')
    db.execute_sql("INSERT INTO \\"run_log\\" VALUES ('{name}')")
    open({running!r}, "w").close()
    # Held, with the migration lock, until the test has seen the other run wait for it.
    deadline = time.monotonic() + 120
    while not os.path.exists({release!r}):
        if time.monotonic() > deadline:
            raise RuntimeError("the test never let this migration finish")
        time.sleep(0.01)


def downgrade(migrator, db):
    pass
"""


def folder_with(tmp_path: Path, names: list[str]) -> str:
    """A migrations folder: the shipped first one, then ``names``, each of which, once
    inside its transaction, creates ``tmp_path / "<name>.running"`` and holds the lock
    until the file ``tmp_path / "release"`` exists."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    shutil.copy(Path(migrations_directory()) / "0001_initial.py", folder)
    release = str(tmp_path / "release")
    for name in names:
        running = str(tmp_path / f"{name}.running")
        (folder / f"{name}.py").write_text(
            textwrap.dedent(SLOW.format(name=name, release=release, running=running))
        )
    return str(folder)


class Watched:
    """A background ``migrate`` process whose stderr is read as it comes."""

    def __init__(self, *args: str) -> None:
        self.process = migrate(*args, background=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)

    def said(self, words: str) -> bool:
        return any(words in line for line in self.lines)

    def finish(self) -> tuple[int, str, str]:
        code = self.process.wait(timeout=120)
        self.reader.join(30)
        return code, self.process.stdout.read(), "".join(self.lines)


def wait_until(condition, what: str, seconds: float = 120) -> None:
    """Poll for a state (never a fixed sleep); fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def migrate(*args: str, cwd: Path | None = None, env: dict | None = None, background: bool = False):
    command = [sys.executable, "-m", "stocksbot_store.migrate", *args]
    if background:
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env
        )
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_two_concurrent_upgrades_apply_each_migration_once(file_db_url, tmp_path):
    """The second run waits for the first (it says so) and then skips what it applied.

    States, not times: the second run starts once the first is inside its slow
    migration, and that migration goes on only once the second says it waits. On
    SQLite the second run's busy timeout is a tenth of a second, so every step of it
    that meets the first run's lock gives up on it at once and must wait its turn."""
    folder = folder_with(tmp_path, ["0002_slow", "0003_slower"])
    first = Watched("upgrade", "--url", file_db_url, "--directory", folder)
    wait_until(
        lambda: (tmp_path / "0002_slow.running").exists() or first.process.poll() is not None,
        "the first run inside 0002_slow",
    )
    short = file_db_url + ("?timeout=0.1" if file_db_url.startswith("sqlite") else "")
    second = Watched("upgrade", "--url", short, "--directory", folder)
    waiting = "waiting for another migration run"
    # Neither run can end before the release unless it failed: stop waiting then.
    wait_until(
        lambda: second.said(waiting) or second.process.poll() is not None,
        "the second run waiting for the first",
    )
    (tmp_path / "release").touch()
    results = [first.finish(), second.finish()]
    assert [code for code, _, _ in results] == [0, 0], results
    assert waiting in results[1][2], results
    db = connect(file_db_url, migrate=False)
    assert sorted(db.execute_sql('SELECT "name" FROM "run_log"').fetchall()) == [
        ("0002_slow",),
        ("0003_slower",),
    ]
    assert sorted(r[0] for r in db.execute_sql('SELECT "name" FROM "schema_migration"')) == [
        "0001_initial",
        "0002_slow",
        "0003_slower",
    ]
    applied_by = [
        out.count("applied:") and out.split("applied: ")[1].split("\n")[0] for _, out, _ in results
    ]
    assert applied_by[0].startswith("0001_initial, 0002_slow"), applied_by
    assert sorted(", ".join(a for a in applied_by if a).split(", ")) == [
        "0001_initial",
        "0002_slow",
        "0003_slower",
    ]
    db.close()


@pytest.mark.parametrize("start", ["a store", "an empty WAL file", "an empty file"])
def test_an_upgrade_waits_while_another_connection_holds_the_sqlite_write_lock(start, tmp_path):
    """Past the busy timeout the run says once that it waits and tries again (up to ten
    minutes), instead of failing: the holder may be a bot's long transaction or another
    run. Every step that needs the lock waits: on a store, the migration's own
    transaction; on an empty file, creating the history table, and on one not in WAL
    mode yet, switching it to WAL as it connects."""
    path = tmp_path / "held.db"
    if start == "a store":
        migrate("upgrade", "--url", f"sqlite:///{path}", "--directory", folder_with(tmp_path, []))
    later = tmp_path / "later"
    later.mkdir()
    folder = folder_with(later, ["0002_slow"])
    (later / "release").touch()
    out = run_while_the_write_lock_is_held(
        path,
        ["upgrade", "--url", f"sqlite:///{path}?timeout=0.1", "--directory", folder],
        wal=start == "an empty WAL file",
    )
    assert "0002_slow" in out


def run_while_the_write_lock_is_held(path: Path, args: list[str], wal: bool = False) -> str:
    """Run ``migrate *args`` while another connection holds the write lock of the SQLite
    file at ``path`` (in WAL mode first, with ``wal``), released once the run says it
    waits; the run must then succeed, having said so once. Its stdout."""
    holder = sqlite3.connect(path, isolation_level=None)
    if wal:
        holder.execute("PRAGMA journal_mode = wal")
    holder.execute("BEGIN IMMEDIATE")
    try:
        run = Watched(*args)
        wait_until(
            lambda: run.said("waiting for another") or run.process.poll() is not None,
            "the run waiting",
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    code, out, err = run.finish()
    assert code == 0, err
    assert err.count("waiting for another migration run to finish") == 1, err
    assert "Traceback" not in err
    return out


def test_a_downgrade_waits_while_another_connection_holds_the_sqlite_write_lock(tmp_path):
    """The downgrade's dry run (which counts the rows of the tables it would drop, in a
    transaction it rolls back) waits out the lock as every other step of a run does."""
    folder = Path(folder_with(tmp_path, []))
    (folder / "0002_extra.py").write_text(
        "def upgrade(migrator, db):\n"
        '    db.execute_sql(\'CREATE TABLE "extra" ("id" INTEGER)\')\n'
        "def downgrade(migrator, db):\n"
        "    db.execute_sql('DROP TABLE \"extra\"')\n"
    )
    path = tmp_path / "held.db"
    url = f"sqlite:///{path}"
    assert migrate("upgrade", "--url", url, "--directory", str(folder)).returncode == 0
    out = run_while_the_write_lock_is_held(
        path,
        ["downgrade", "-1", "--yes", "--url", f"{url}?timeout=0.1", "--directory", str(folder)],
    )
    assert "reverted: 0002_extra" in out
    tables = connect(url, migrate=False).get_tables()
    assert "extra" not in tables


def test_exit_codes_and_messages(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    shown = migrate("--help")
    assert shown.returncode == 0
    for command in ("upgrade", "downgrade", "history", "current", "revision", "check"):
        assert command in shown.stdout
    assert "--url" in migrate("upgrade", "--help").stdout

    (tmp_path / "cli.db").touch()  # check reads what exists; it creates nothing
    pending = migrate("check", "--url", url)
    assert pending.returncode == 1
    assert (tmp_path / "cli.db").stat().st_size == 0
    assert "pending migration 0001_initial" in pending.stdout

    assert migrate("upgrade", "--url", url).returncode == 0
    clean = migrate("check", "--url", url)
    head = Runner(connect("sqlite:///:memory:", migrate=False)).revisions()[-1]
    assert (clean.returncode, clean.stdout) == (
        0,
        f"ok: at {head}, the schema matches the models\n",
    )

    for args in (
        ["frobnicate"],
        ["downgrade", "nope", "--url", url],
        ["current", "--url", "mysql://x/y"],
        ["current", "--url", f"sqlite:///{tmp_path / 'missing' / 'x.db'}"],
        ["current", "--url", "postgresql://nobody@127.0.0.1:1/none"],
        ["upgrade", "--url", url, "--directory", str(tmp_path / "nowhere")],
    ):
        failed = migrate(*args)
        assert failed.returncode == 2, args
        assert failed.stderr.strip(), args
        assert "Traceback" not in failed.stderr, failed.stderr


def test_drift_makes_check_exit_1(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'drift.db'}"
    connect(url).close()
    db = connect(url, migrate=False)
    db.execute_sql('ALTER TABLE "strategy" ADD COLUMN "stray" TEXT')
    db.close()
    assert main(["check", "--url", url]) == 1
    assert "drift: drop column strategy.stray" in capsys.readouterr().out


def test_revision_commands_write_files(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'rev.db'}"
    folder = tmp_path / "migrations"
    args = ["--url", url, "--directory", str(folder)]
    assert (
        main(
            [
                "revision",
                "-m",
                "test schema",
                "--autogenerate",
                "--models",
                "test_migrate_autogen:V1",
                *args,
            ]
        )
        == 0
    )
    first = capsys.readouterr().out.strip()
    assert first.endswith("0001_test_schema.py")
    assert main(["upgrade", *args]) == 0
    assert (
        main(
            [
                "revision",
                "-m",
                "same again",
                "--autogenerate",
                "--models",
                "test_migrate_autogen:V1",
                *args,
            ]
        )
        == 0
    )
    assert "no changes" in capsys.readouterr().out
    assert main(["check", "--models", "test_migrate_autogen:V2", *args]) == 1
    assert (
        main(
            [
                "revision",
                "-m",
                "add stop price",
                "--autogenerate",
                "--models",
                "test_migrate_autogen:V2",
                *args,
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip().endswith("0002_add_stop_price.py")
    assert main(["upgrade", *args]) == 0
    assert main(["check", "--models", "test_migrate_autogen:V2", *args]) == 0
    assert main(["revision", "-m", "by hand", *args]) == 0
    written = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert written.name == "0003_by_hand.py"
    assert "def upgrade(migrator, db)" in written.read_text()
    assert main(["upgrade", *args]) == 0
    assert Runner(connect(url, migrate=False), str(folder)).current() == "0003_by_hand"


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "stocksbot-migrate"
    if not script.exists():
        pytest.skip("the package is not installed with its console scripts")
    shown = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "upgrade" in shown.stdout


def test_a_pip_installed_package_finds_its_migrations(tmp_path):
    """``pip install`` (not editable) of a copy of the source, then ``upgrade``."""
    target = pip_install_copy(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("DATABASE_URL", None)
    env.pop("STOCKSBOT_MIGRATIONS", None)
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "from stocksbot_store.migrate import migrations_directory; "
            "print(migrations_directory())",
        ],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=60,
    )
    assert where.stdout.strip().startswith(str(target)), where
    upgraded = migrate("upgrade", cwd=work, env=env)  # the default URL, in this folder
    assert upgraded.returncode == 0, upgraded.stderr
    assert "applied: 0001_initial" in upgraded.stdout
    assert (work / "stocksbot.db").exists()
    assert migrate("check", cwd=work, env=env).returncode == 0


def test_a_migration_that_does_not_load_is_named(tmp_path, capsys):
    folder = Path(folder_with(tmp_path, []))
    (folder / "0002_typo.py").write_text("def upgrade(migrator, db)\n    pass\n")
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    assert main(["upgrade", "--url", url, "--directory", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "migration 0002_typo cannot be loaded" in err and "SyntaxError" in err
    assert "Traceback" not in err
    assert Runner(connect(url, migrate=False), str(folder)).current() == "0001_initial"


@pytest.mark.parametrize("command", ["current", "history", "check"])
def test_read_only_commands_create_no_database_in_an_empty_folder(command, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    done = migrate(command, cwd=tmp_path, env=env)
    assert done.returncode == 2, done
    assert "no SQLite database at" in done.stderr and "stocksbot.db" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_read_only_commands_write_nothing_to_an_empty_postgres_database(capsys):
    with fresh_pg_database() as url:
        assert main(["current", "--url", url]) == 0
        assert main(["history", "--url", url]) == 0
        assert main(["check", "--url", url]) == 1
        assert "pending migration 0001_initial" in capsys.readouterr().out
        db = connect(url, migrate=False)
        assert db.get_tables() == []
        db.close()
