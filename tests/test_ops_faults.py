"""Soft delete, restore, purge and the audit log under the faults a live bot meets.

Each test names what holds and under which fault: a PostgreSQL session the server
ends between calls or in the middle of one, a caller's own decimal context, two
connections racing for the same row or key, bad input to ``stocksbot-purge`` and
``stocksbot-audit``, and a password in any shape of URL while the server is down.
Every rejection is a :class:`StorageError` (or, on a command line, exit 2 with the
reason and its fix on stderr), nothing is half-applied, and no password is shown.
"""

from __future__ import annotations

import datetime as dt
import decimal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import _admin_dsn, dump_tables, store_on

from stocksbot_store import (
    DatabaseUnavailableError,
    DeletedError,
    DuplicateError,
    NotFoundError,
    StorageError,
    StorageService,
    connect,
)
from stocksbot_store.audit_cli import main as audit_main
from stocksbot_store.fields import utcnow
from stocksbot_store.models import Config, Order, Position, Strategy
from stocksbot_store.purge import main as purge_main
from stocksbot_store.purge import purge

#: A port nothing listens on: the server is "down".
CLOSED_PORT = 1


def backdate(db, days: float) -> None:
    """Move every deletion ``days`` days into the past."""
    then = utcnow() - dt.timedelta(days=days)
    for model in (Order, Position, Strategy, Config):
        with db.bind_ctx([model]):
            model.update(deleted_at=then).where(model.deleted_at.is_null(False)).execute()


@pytest.fixture
def sqlite_store(request, tmp_path) -> Iterator[str]:
    """The URL of a SQLite file store with a few audit rows (for the command lines)."""
    with store_on("sqlite_file", request, tmp_path) as url:
        db = connect(url)
        storage = StorageService(db, actor="bot-eu-1")
        storage.create_strategy("momentum")
        storage.delete_strategy("momentum")
        db.close()
        yield url


def run_cli(main: Callable[[list[str]], int], argv: list[str], capsys) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of a command run in this process (argparse's own
    errors exit through SystemExit)."""
    try:
        status = main(argv)
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


# -- bad input to the command lines -------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "fix"),
    [
        ("-1", "0 or more"),
        ("nan", "0 or more"),
        ("inf", "0 or more"),
        ("1e308", "at most"),
        ("1000000", "at most"),
        ("ninety", "number of days"),
        ("", "number of days"),
    ],
)
def test_purge_refuses_a_bad_age_with_exit_2_and_the_fix(sqlite_store, capsys, days, fix):
    before = dump_tables(connect(sqlite_store))
    status, out, err = run_cli(
        purge_main, ["--url", sqlite_store, f"--older-than={days}", "--no-backup"], capsys
    )
    assert status == 2
    assert fix in err and "Traceback" not in out + err
    assert dump_tables(connect(sqlite_store)) == before


def test_purge_takes_the_largest_age_it_allows(sqlite_store, capsys):
    status, out, _ = run_cli(purge_main, ["--url", sqlite_store, "--older-than=36500"], capsys)
    assert status == 0 and "total: removed 0 row(s)" in out


@pytest.mark.parametrize(
    ("argv", "fix"),
    [
        (["--table", "orders", "--id", "abc"], "invalid int value"),
        (["--table", "orders", "--id", "-1"], "positive"),
        (["--table", "orders", "--id", "0"], "positive"),
        (["--table", "orders", "--id", str(2**64)], "64-bit"),
        (["--id", "5"], "needs --table"),
        (["--table", "trade"], "choose from"),
        (["--since", "last tuesday"], "2026-11-25"),
        (["--since", "2026-13-40"], "2026-11-25"),
        (["--since", "0001-01-01T00:00:00+05:00"], "years 1-9999"),
        (["--limit", "0"], "from 1 to"),
        (["--before-id", str(2**70)], "64-bit"),
    ],
)
def test_audit_refuses_bad_arguments_with_exit_2_and_the_fix(sqlite_store, capsys, argv, fix):
    status, out, err = run_cli(audit_main, ["--url", sqlite_store, *argv], capsys)
    assert status == 2
    assert fix in err and "Traceback" not in out + err and out == ""


def test_audit_reads_a_time_without_a_zone_as_utc(sqlite_store, capsys):
    today = utcnow().strftime("%Y-%m-%d")
    shown = {}
    for since in (f"{today}T00:00", f"{today}T00:00+00:00", f"{today}T01:00+01:00", today):
        status, out, _ = run_cli(audit_main, ["--url", sqlite_store, "--since", since], capsys)
        assert status == 0
        shown[since] = out
    assert len(set(shown.values())) == 1
    assert "strategies 1  delete" in shown[today]
    tomorrow = (utcnow() + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    status, out, _ = run_cli(audit_main, ["--url", sqlite_store, "--since", tomorrow], capsys)
    assert (status, out.strip()) == (0, "no audit rows match")


# -- passwords, whatever the URL's shape, while the server is down ------------------------

PASSWORD_URLS = [
    # (URL, the password as it must never be shown)
    (f"postgresql://bot:Zq9-secret-pw@127.0.0.1:{CLOSED_PORT}/stocks", "Zq9-secret-pw"),
    (f"postgresql+pool://bot:Zq9-secret-pw@127.0.0.1:{CLOSED_PORT}/stocks", "Zq9-secret-pw"),
    (f"postgres://bot:Zq9%2Fsec%40ret@127.0.0.1:{CLOSED_PORT}/stocks", "Zq9/sec@ret"),
    (f"postgresql://bot:Zq9/sec#ret?pw@127.0.0.1:{CLOSED_PORT}/stocks", "Zq9/sec#ret?pw"),
    (f"postgresql://bot:Zq9 sec:ret@127.0.0.1:{CLOSED_PORT}/stocks", "Zq9 sec:ret"),
    (f"postgresql://bot@127.0.0.1:{CLOSED_PORT}/stocks?password=Zq9-secret-pw", "Zq9-secret-pw"),
    (
        f"postgresql://bot@127.0.0.1:{CLOSED_PORT}/stocks?sslmode=disable&PassWord=Zq9%26secret",
        "Zq9&secret",
    ),
    (f"postgresql://bot:Zq9-secret-pw@127.0.0.1:{CLOSED_PORT}", "Zq9-secret-pw"),
    (f"postgresql://bot:Zq9-secret-pw@[::1/stocks", "Zq9-secret-pw"),
]
COMMANDS = [
    (purge_main, ["--older-than", "30"]),
    (purge_main, ["--older-than", "30", "--dry-run"]),
    (audit_main, ["--table", "orders", "--id", "1"]),
]


def shown_forms(password: str) -> list[str]:
    """The password as written and its pieces between URL delimiters of 4+ characters."""
    pieces = [password, password.replace("/", "%2F").replace("@", "%40")]
    for delimiter in "/?#@:& ":
        pieces += [p for p in password.split(delimiter) if len(p) >= 4]
    return pieces


@pytest.mark.parametrize(("url", "password"), PASSWORD_URLS)
@pytest.mark.parametrize(("main", "argv"), COMMANDS, ids=["purge", "purge-dry", "audit"])
def test_no_password_is_shown_when_the_server_is_unreachable(
    capsys, monkeypatch, url, password, main, argv
):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    status, out, err = run_cli(main, ["--url", url, *argv], capsys)
    assert status == 2 and err and "Traceback" not in err
    assert not [p for p in shown_forms(password) if p in out + err], err
    monkeypatch.setenv("DATABASE_URL", url)  # the same from the environment
    status, out, err = run_cli(main, argv, capsys)
    assert status == 2 and not [p for p in shown_forms(password) if p in out + err], err


@pytest.mark.parametrize(("main", "argv"), COMMANDS, ids=["purge", "purge-dry", "audit"])
@pytest.mark.parametrize("misplaced", ["positional", "misspelt", "as-a-value"])
def test_no_password_is_shown_when_the_url_is_given_in_the_wrong_place(
    capsys, main, argv, misplaced
):
    url = f"postgresql://bot:Zq9-secret-pw@127.0.0.1:{CLOSED_PORT}/stocks"
    if misplaced == "positional":
        argv = [*argv, url]
    elif misplaced == "misspelt":
        argv = [*argv, "--ulr", url]
    else:  # the URL where a number belongs
        argv = ["--older-than", url] if main is purge_main else ["--limit", url]
    status, out, err = run_cli(main, argv, capsys)
    assert status == 2 and "error:" in err
    assert "Zq9-secret-pw" not in out + err, err
