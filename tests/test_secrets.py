"""Secrets: a password in DATABASE_URL never shows in what the package logs (SQL echo
included), raises, prints or reprs; a SQLite file the store creates is 0600.

PostgreSQL here trusts local connections, so a role with a password connects
whatever the password; the tests that need a refused connection point at closed
ports and absent databases on 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import traceback
import uuid
from urllib.parse import quote

import pytest
from conftest import PG_ADMIN_URL, fresh_pg_database, require_postgres

from stocksbot_store import StorageError, StorageService, connect, init_db, mask_url
from stocksbot_store.check import check_ledger, main
from stocksbot_store.database import describe

PASSWORD = "Sup3r-S3cret_p@ss:w/rd%21"
#: Every form the password could leak in: as given, URL-quoted, and its distinctive core.
FORMS = (PASSWORD, quote(PASSWORD, safe=""), "Sup3r-S3cret")


def url_with_password(url: str, user: str) -> str:
    """``url`` (postgresql://postgres@host:port/db) as ``user`` with :data:`PASSWORD`."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{quote(PASSWORD, safe='')}@{rest.split('@', 1)[1]}"


def assert_clean(text: str, where: str) -> None:
    for form in FORMS:
        assert form not in text, f"the password leaked in {where}: {text[:500]!r}"


@pytest.fixture
def secret_url():
    """A fresh database and a role with a password that owns it; the role's URL."""
    require_postgres()
    import psycopg

    role = f"stocksbot_secret_{uuid.uuid4().hex[:8]}"
    admin_dsn = PG_ADMIN_URL.replace("postgresql+pool://", "postgresql://")
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(
            f"CREATE ROLE {role} LOGIN PASSWORD %s".replace(
                "%s", "'" + PASSWORD.replace("'", "''") + "'"
            )
        )
    try:
        with fresh_pg_database() as url:
            with psycopg.connect(
                admin_dsn.rsplit("/", 1)[0] + "/" + url.rsplit("/", 1)[1], autocommit=True
            ) as admin:
                admin.execute(f"GRANT ALL ON SCHEMA public TO {role}")
            yield url_with_password(url, role)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture
def everything_logged(monkeypatch):
    """Turn on SQL echo and collect every log record of every logger, formatted."""
    monkeypatch.setenv("SQL_ECHO", "true")
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Collect(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield records
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_the_url_is_masked_everywhere_it_is_shown():
    url = f"postgresql://bot:{quote(PASSWORD, safe='')}@127.0.0.1:5432/trading"
    assert mask_url(url) == "postgresql://bot:***@127.0.0.1:5432/trading"
    assert (
        mask_url("postgresql+pool://bot:pw@h/db?max_connections=5")
        == "postgresql+pool://bot:***@h/db?max_connections=5"
    )
    assert mask_url("postgresql://bot@h/db") == "postgresql://bot@h/db"
    assert_clean(mask_url(url), "mask_url")


def test_nothing_logged_raised_or_shown_holds_the_password(secret_url, everything_logged, capfd):
    db = connect(secret_url)
    init_db(db)
    storage = StorageService(db)
    storage.create_strategy("s")
    order = storage.create_order("AAPL", "buy", "market", 2, strategy="s")
    storage.record_trade(order.id, "AAPL", "buy", 2, 10, external_id="x1")
    errors = []
    for bad in (
        lambda: storage.create_strategy("s"),
        lambda: storage.record_trade(order.id, "AAPL", "buy", 5, 10),
        lambda: storage.record_trade(order.id, "AAPL", "buy", 1, 11, external_id="x1"),
    ):
        with pytest.raises(StorageError) as caught:
            bad()
        errors.append(caught.value)
    report = check_ledger(db)
    assert report.ok
    shown = [
        describe(db),
        repr(db),
        str(db),
        report.format(),
        repr(storage),
        *map(repr, storage.get_open_positions()),
        *map(repr, storage.get_recent_orders()),
    ]
    db.close()

    assert any("INSERT INTO" in line for line in everything_logged), "SQL echo logged nothing"
    out, err = capfd.readouterr()  # (the echo's own stderr output is checked in a child below)
    for i, error in enumerate(errors):
        assert_clean("".join(traceback.format_exception(error)), f"error {i}")
    assert_clean("\n".join(everything_logged), "the log")
    assert_clean(out + err, "stdout/stderr")
    assert_clean("\n".join(shown), "what the package shows")
    assert describe(db).startswith("postgresql://stocksbot_secret_") and ":***@" in describe(db)


@pytest.mark.parametrize("where", ["closed port", "other loopback address", "no database"])
def test_a_failed_connection_does_not_leak_it(where, everything_logged, capfd):
    require_postgres()
    host_port, database = {
        "closed port": ("127.0.0.1:1", "postgres"),
        "other loopback address": ("127.0.0.2:5", "postgres"),
        "no database": ("127.0.0.1:5432", f"absent_{uuid.uuid4().hex[:8]}"),
    }[where]
    url = f"postgresql://bot:{quote(PASSWORD, safe='')}@{host_port}/{database}"
    with pytest.raises(Exception) as caught:
        db = connect(url)
        StorageService(db).get_open_positions()
    assert isinstance(caught.value, StorageError) or "Operational" in type(caught.value).__name__
    assert_clean("".join(traceback.format_exception(caught.value)), "the error and its causes")
    assert_clean(repr(caught.value), "repr of the error")
    out, err = capfd.readouterr()
    assert_clean(out + err + "\n".join(everything_logged), "output and log")


def test_the_check_command_never_prints_it(secret_url, capfd, monkeypatch):
    monkeypatch.setenv("SQL_ECHO", "true")
    db = connect(secret_url)
    init_db(db)
    db.close()
    assert main(["--url", secret_url, "--progress"]) == 0
    bad_port = secret_url.replace(":5432/", ":1/")
    assert main(["--url", bad_port]) == 2
    out, err = capfd.readouterr()
    assert "ledger OK: postgresql://stocksbot_secret_" in out and ":***@" in out
    assert "stocksbot-check: error:" in err
    assert_clean(out + err, "the check command's output")
    for url, status in ((secret_url, 0), (bad_port, 2)):
        done = subprocess.run(
            [sys.executable, "-m", "stocksbot_store.check"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "DATABASE_URL": url, "SQL_ECHO": "true"},
        )
        assert done.returncode == status and "Traceback" not in done.stderr
        assert_clean(done.stdout + done.stderr, "the check command run by DATABASE_URL")
        if status == 0:
            assert " SQL ('SELECT" in done.stderr, "SQL echo printed nothing"


def test_a_sqlite_file_the_store_creates_is_owner_only(tmp_path):
    previous = os.umask(0o022)  # a permissive umask: the store must not rely on it
    try:
        path = tmp_path / "private.db"
        db = connect(f"sqlite:///{path}")
        init_db(db)
        storage = StorageService(db)
        order = storage.create_order("AAPL", "buy", "market", 1)
        storage.record_trade(order.id, "AAPL", "buy", 1, 10)
        made = [p for p in tmp_path.iterdir() if p.name.startswith("private.db")]
        assert {p.name for p in made} >= {"private.db", "private.db-wal"}
        for file in made:
            mode = stat.S_IMODE(file.stat().st_mode)
            assert mode == 0o600, f"{file.name} is {oct(mode)}"
        db.close()
    finally:
        os.umask(previous)


def test_an_existing_sqlite_file_keeps_its_mode(tmp_path):
    """The store makes new files private; it does not change files it did not create."""
    path = tmp_path / "shared.db"
    path.touch()
    path.chmod(0o640)
    db = connect(f"sqlite:///{path}")
    init_db(db)
    db.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


# -- every shape of URL ---------------------------------------------------------------------

#: Two distinctive halves: a password cut anywhere still leaks one of them.
HALVES = ("Sup3rX", "S3cretY")
SHAPES = {
    "user:pass": "postgresql://bot:Sup3rX-S3cretY@127.0.0.1:1/db",
    "user:pass percent-encoded": "postgresql://bot:Sup3rX%23%2F%3F%40%3AS3cretY@127.0.0.1:1/db",
    "unencoded #": "postgresql://bot:Sup3rX#S3cretY@127.0.0.1:1/db",
    "unencoded /": "postgresql://bot:Sup3rX/S3cretY@127.0.0.1:1/db",
    "unencoded ?": "postgresql://bot:Sup3rX?S3cretY@127.0.0.1:1/db",
    "unencoded @": "postgresql://bot:Sup3rX@S3cretY@127.0.0.1:1/db",
    "unencoded :": "postgresql://bot:Sup3rX:S3cretY@127.0.0.1:1/db",
    "odd user": "postgresql://b%40t.o:Sup3rX%25S3cretY@127.0.0.1:1/db",
    "all at once": "postgresql://bot:Sup3rX#/?@:S3cretY@127.0.0.1:1/db?sslmode=disable",
    "query password": "postgresql://bot@127.0.0.1:1/db?password=Sup3rX-S3cretY",
    "query PASSWORD": "postgresql://bot@127.0.0.1:1/db?sslmode=disable&PASSWORD=Sup3rX-S3cretY",
    "query passwd": "postgresql://bot@127.0.0.1:1/db?passwd=Sup3rX-S3cretY",
    "query sslpassword": "postgresql://bot@127.0.0.1:1/db?sslpassword=Sup3rX-S3cretY",
    "query key encoded": "postgresql://bot@127.0.0.1:1/db?pass%77ord=Sup3rX-S3cretY",
    "query value encoded": "postgresql://bot@127.0.0.1:1/db?password=Sup3rX%2DS3cretY",
    "query value with # and &": "postgresql://bot@127.0.0.1:1/db?password=Sup3rX#S3cretY",
    "pooled": "postgresql+pool://bot:Sup3rX-S3cretY@127.0.0.1:1/db?max_connections=2",
    "unparseable bracket": "postgresql://bot:Sup3rX[S3cretY@127.0.0.1:1/db",
    "unparseable host": "postgresql://bot:Sup3rX-S3cretY@[::1/db",
    "bad port": "postgresql://bot:Sup3rX-S3cretY@127.0.0.1:port/db",
    "no //": "postgresql:bot:Sup3rX-S3cretY@127.0.0.1:1/db",
    "sqlite password option": "sqlite:///./absent-dir-xyz/x.db?password=Sup3rX-S3cretY",
}


def assert_no_half(text: str, where: str) -> None:
    for half in HALVES:
        assert half not in text, f"the password leaked in {where}: {text[:400]!r}"


@pytest.mark.parametrize("url", SHAPES.values(), ids=SHAPES.keys())
def test_no_output_holds_the_password_whatever_the_url_shape(url, everything_logged, capfd):
    assert_no_half(mask_url(url), "mask_url")
    shown = []
    try:
        db = connect(url, migrate=False)
    except StorageError as e:
        shown.append("".join(traceback.format_exception(e)))
    else:
        shown += [describe(db), repr(db)]
        with pytest.raises(StorageError) as caught:
            StorageService(db).get_open_positions()
        shown.append("".join(traceback.format_exception(caught.value)))
    with pytest.raises(StorageError) as caught:
        connect(url)
    shown.append("".join(traceback.format_exception(caught.value)))
    assert main(["--url", url]) == 2
    from stocksbot_store.migrate import main as migrate_main

    assert migrate_main(["current", "--url", url]) == 2
    assert migrate_main(["upgrade", "--url", url]) == 2
    out, err = capfd.readouterr()
    assert "error" in err
    for i, text in enumerate([*shown, out, err, "\n".join(everything_logged)]):
        assert_no_half(text, f"output {i}")


# -- every command's own argument errors ----------------------------------------------------

#: A URL put where a command does not take one, as a hurried operator types it.
MISUSES = {
    "positional": lambda url: [url],
    "misspelt --url": lambda url: ["--ulr", url],
    "a URL for a number": lambda url: ["--url", url, "--limit", url, "--refresh", url],
}


def console_scripts() -> dict[str, str]:
    """The ``[project.scripts]`` of pyproject.toml: every command a user can type."""
    from pathlib import Path

    import tomllib

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    return tomllib.loads(pyproject.read_text())["project"]["scripts"]


@pytest.mark.parametrize("misuse", MISUSES.values(), ids=MISUSES.keys())
@pytest.mark.parametrize("command", sorted(console_scripts()))
def test_no_command_echoes_the_password_in_its_usage_errors(
    command, misuse, monkeypatch, capfd, tmp_path
):
    """argparse quotes the offending argument in its error; each command masks it."""
    import importlib

    if command == "stocksbot-dashboard" and misuse is MISUSES["positional"]:
        pytest.skip("the dashboard has no positional argument check to reach without a screen")
    module, _, function = console_scripts()[command].partition(":")
    entry = getattr(importlib.import_module(module), function)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for url in (SHAPES["user:pass"], SHAPES["all at once"], SHAPES["query password"]):
        monkeypatch.setattr(sys, "argv", [command, *misuse(url)])
        with pytest.raises(SystemExit):
            entry()
        out, err = capfd.readouterr()
        assert_no_half(out + err, f"{command} {misuse(url)[:2]}")
