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
from conftest import dump_tables, store_on
from test_reconnect import end_sessions_of

from stocksbot_store import (
    DatabaseUnavailableError,
    DeletedError,
    DuplicateError,
    NotFoundError,
    StorageError,
    StorageService,
    connect,
)
from stocksbot_store.audit import AuditWriter
from stocksbot_store.audit_cli import main as audit_main
from stocksbot_store.fields import utcnow
from stocksbot_store.models import Config, Order, Position, Strategy
from stocksbot_store.new_orders import NewOrders
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
    ("postgresql://bot:Zq9-secret-pw@[::1/stocks", "Zq9-secret-pw"),
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


# -- a PostgreSQL session the server ends ---------------------------------------------------


def end_sessions(db) -> int:
    """End every session of ``db``'s PostgreSQL database (as a failover or an admin
    would); returns how many."""
    return end_sessions_of(db.database)


def soft_deleted_rows(storage: StorageService) -> dict[str, int]:
    """A deleted order, strategy, config row and closed position; ids by kind."""
    strategy = storage.create_strategy("momentum")
    order = storage.create_order(
        "AAPL", "buy", "limit", 2, price="150.1234567891", external_id="b-1"
    )
    storage.set_config_value("max_orders", 5, "int")
    position = storage.create_position("MSFT", "long", "1.5", "300.0000000001")
    storage.positions.close_position(position.id)
    storage.delete_order(order.id)
    storage.delete_strategy(strategy.id)
    storage.delete_config("max_orders")
    storage.delete_position(position.id)
    return {"order": order.id, "strategy": strategy.id, "position": position.id}


@pytest.mark.postgres_only
def test_delete_restore_purge_and_audit_work_after_the_server_ends_the_session(db):
    storage = StorageService(db, actor="bot-eu-1")
    ids = soft_deleted_rows(storage)
    calls: list[Callable[[], Any]] = [
        lambda: storage.restore_order(ids["order"]),
        lambda: storage.delete_order(ids["order"]),
        lambda: storage.restore_strategy(ids["strategy"]),
        lambda: storage.delete_strategy(ids["strategy"]),
        lambda: storage.restore_config("max_orders"),
        lambda: storage.delete_config("max_orders"),
        lambda: storage.restore_position(ids["position"]),
        lambda: storage.orders.get_deleted(),
        lambda: storage.get_audit_log(table="orders", row_id=ids["order"]),
        lambda: purge(db, 0, dry_run=True),
        lambda: storage.delete_position(ids["position"]),
        lambda: purge(db, 0, backup=False),
    ]
    for call in calls:
        assert end_sessions(db) == 1
        call()
    assert storage.orders.get_by_id(ids["order"], include_deleted=True) is None  # purged
    assert [e.action for e in storage.get_audit_log(table="orders", row_id=ids["order"])][:3] == [
        "purge",
        "delete",
        "restore",
    ]


class EndedMidway(Exception):
    """Raised where the test needs to know the fault came from the store, not the hook."""


@pytest.mark.postgres_only
@pytest.mark.parametrize("operation", ["delete", "restore", "purge"])
def test_a_session_ended_in_the_middle_leaves_nothing_half_done(db, monkeypatch, operation):
    storage = StorageService(db, actor="bot-eu-1")
    ids = soft_deleted_rows(storage)
    backdate(db, 2)
    if operation == "delete":
        storage.restore_strategy(ids["strategy"])
    before = dump_tables(db)

    def end_then(original):
        def run(*args, **kwargs):
            end_sessions(db)  # the row is locked and read; the write is next
            return original(*args, **kwargs)

        return run

    repositories = type(storage.strategies)
    if operation == "delete":
        monkeypatch.setattr(repositories, "check_delete", end_then(repositories.check_delete))
        call = lambda: storage.delete_strategy(ids["strategy"])  # noqa: E731
    elif operation == "restore":
        monkeypatch.setattr(repositories, "_check_key_free", end_then(repositories._check_key_free))
        call = lambda: storage.restore_strategy(ids["strategy"])  # noqa: E731
    else:
        import stocksbot_store.purge as purging

        writer = purging.AuditWriter
        monkeypatch.setattr(
            purging, "AuditWriter", type("W", (writer,), {"write": end_then(writer.write)})
        )
        call = lambda: purge(db, 1, backup=False)  # noqa: E731
    with pytest.raises(DatabaseUnavailableError, match="lost"):
        call()
    monkeypatch.undo()
    assert dump_tables(db) == before  # nothing of it stored, audit rows included
    call()  # the next call works on a new session
    assert dump_tables(db) != before


# -- a caller's own decimal context ---------------------------------------------------------


def hostile_context() -> decimal.Context:
    """Three digits, and every rounding trapped: any arithmetic of the store run in the
    caller's context raises or rounds."""
    return decimal.Context(
        prec=3, rounding=decimal.ROUND_DOWN, traps=[decimal.Inexact, decimal.Rounded]
    )


def test_delete_restore_purge_and_audit_are_exact_in_a_callers_decimal_context(db):
    storage = StorageService(db, actor="bot-eu-1")
    with decimal.localcontext(hostile_context()) as caller:
        ids = soft_deleted_rows(storage)
        storage.restore_order(ids["order"])
        storage.restore_position(ids["position"])
        storage.delete_order(ids["order"])
        backdate(db, 2)
        dry = purge(db, 1, dry_run=True)
        done = purge(db, 1, backup=False)
        history = storage.get_audit_log(table="orders", row_id=ids["order"])
        position = storage.get_deleted(Position)
        assert caller.prec == 3 and not caller.flags[decimal.Inexact]
    assert dry.removed == done.removed == {"order": 1, "strategy": 1, "config": 1, "position": 0}
    assert position == [] and storage.positions.get_by_id(ids["position"]).quantity == 0
    [purged] = [e for e in history if e.action == "purge"]
    assert purged.changes["price"] == ["150.1234567891", None]
    assert purged.changes["quantity"] == ["2.0000000000", None]
    opened = storage.get_audit_log(table="positions", row_id=ids["position"])[-1]
    assert opened.changes["avg_entry_price"][1] == "300.0000000001"
    assert opened.changes["quantity"][1] == "1.5000000000"


def test_the_audit_command_prints_exact_figures_in_a_callers_decimal_context(sqlite_store, capsys):
    db = connect(sqlite_store)
    StorageService(db).create_order(
        "AAPL", "buy", "limit", "0.0000000001", price="99999.9999999999"
    )
    db.close()
    with decimal.localcontext(hostile_context()):
        status, out, _ = run_cli(
            audit_main, ["--url", sqlite_store, "--table", "orders", "--format", "json"], capsys
        )
    assert status == 0
    assert '"99999.9999999999"' in out and '"0.0000000001"' in out


# -- two connections racing for the same row or key ---------------------------------------


class Racer(threading.Thread):
    """Runs ``work(storage)`` on a connection of its own; keeps what it returned or the
    error it raised."""

    def __init__(self, url: str, work: Callable[[StorageService], Any]) -> None:
        super().__init__(daemon=True)
        self.url, self.work = url, work
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        db = connect(self.url)
        try:
            self.result = self.work(StorageService(db, actor="racer"))
        except BaseException as e:  # kept for the test to look at
            self.error = e
        finally:
            db.close()


def while_holding(
    target: Any,
    name: str,
    racer: Racer,
    monkeypatch,
    when: Callable[..., bool] = lambda *args: True,
) -> None:
    """Make ``target.name`` (the first call ``when(*args)`` accepts) start ``racer`` and
    give it a moment to run (or, where the first writer holds the lock, to queue behind
    it) before going on."""
    original = getattr(target, name)

    def run(*args, **kwargs):
        if racer.ident is None and when(*args):
            racer.start()
            racer.join(timeout=1)  # joins at once unless the racer waits for our lock
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, run)


KEYS = {
    # kind: (make the row and return its id, take its key with a new live row, count live)
    "strategy name": (
        lambda s: s.create_strategy("momentum").id,
        lambda s: s.create_strategy("momentum"),
        lambda s: len([x for x in s.strategies.get_all() if x.name == "momentum"]),
    ),
    "config key": (
        lambda s: s.config.create("max_orders", "5").id,
        lambda s: s.config.create("max_orders", "7"),
        lambda s: len([x for x in s.config.get_all() if x.key == "max_orders"]),
    ),
    "order broker id": (
        lambda s: s.create_order("AAPL", "buy", "market", 1, external_id="b-1").id,
        lambda s: s.create_order("AAPL", "buy", "market", 2, external_id="b-1"),
        lambda s: len([x for x in s.get_recent_orders(limit=None) if x.external_id == "b-1"]),
    ),
}
RESTORE = {
    "strategy name": lambda s, i: s.restore_strategy(i),
    "config key": lambda s, i: s.restore_config(i),
    "order broker id": lambda s, i: s.restore_order(i),
}
DELETE = {
    "strategy name": lambda s, i: s.delete_strategy(i),
    "config key": lambda s, i: s.config.delete(i),
    "order broker id": lambda s, i: s.delete_order(i),
}


@pytest.mark.parametrize("kind", list(KEYS))
@pytest.mark.parametrize("first", ["restore", "new row"])
def test_restore_and_a_new_row_racing_for_a_key_leave_one_live_row(
    store_url, monkeypatch, kind, first
):
    make, take, live_count = KEYS[kind]
    db = connect(store_url)
    storage = StorageService(db, actor="bot-eu-1")
    row_id = make(storage)
    DELETE[kind](storage, row_id)
    repository = type(storage.strategies).__mro__[1]  # Repository: the check before the write
    if first == "restore":  # the new row comes after the key was found free
        racer = Racer(store_url, take)
        while_holding(repository, "_check_key_free", racer, monkeypatch)
        mine: Callable[[], Any] = lambda: RESTORE[kind](storage, row_id)  # noqa: E731
    else:  # the restore reads while the new row is being written
        racer = Racer(store_url, lambda s: RESTORE[kind](s, row_id))
        # After the row's INSERT, in its transaction: where its audit row is written.
        if kind == "order broker id":
            while_holding(NewOrders, "_write_audit", racer, monkeypatch)
        else:
            while_holding(AuditWriter, "row", racer, monkeypatch)
        mine = lambda: take(storage)  # noqa: E731
    try:
        mine()
        my_error = None
    except StorageError as e:
        my_error = e
    racer.join()
    errors = [e for e in (my_error, racer.error) if e is not None]
    assert len(errors) == 1 and isinstance(errors[0], DuplicateError), errors
    if "restored" in str(errors[0]) or "updating" in str(errors[0]):  # the restore lost
        assert "is taken by" in str(errors[0]) and "first" in str(errors[0])  # names the fix
    assert live_count(storage) == 1
    db.close()


@pytest.mark.parametrize("restore_first", [True, False])
def test_purge_and_restore_racing_for_a_row_never_lose_it_half_way(
    store_url, monkeypatch, restore_first
):
    import stocksbot_store.purge as purging

    db = connect(store_url)
    storage = StorageService(db, actor="bot-eu-1")
    strategy = storage.create_strategy("momentum")
    storage.delete_strategy(strategy.id)
    backdate(db, 2)
    racer = Racer(store_url, lambda s: s.restore_strategy(strategy.id))
    if restore_first:  # between purge's count and its removal
        while_holding(purging, "write_transaction", racer, monkeypatch)
    else:  # while purge holds the rows it removes
        rows = lambda writer, entries: bool(entries)  # noqa: E731
        while_holding(AuditWriter, "write", racer, monkeypatch, when=rows)
    report = purge(db, 1, backup=False)
    racer.join()
    kept = storage.strategies.get_by_id(strategy.id)
    if restore_first:
        assert racer.error is None and kept is not None and report.removed["strategy"] == 0
    else:
        assert isinstance(racer.error, NotFoundError) and "does not exist" in str(racer.error)
        assert kept is None and report.removed["strategy"] == 1
    actions = [e.action for e in storage.get_audit_log(table="strategies", row_id=strategy.id)]
    assert actions[0] == ("restore" if restore_first else "purge")
    db.close()


def test_two_deletes_of_one_row_have_one_winner(store_url, monkeypatch):
    db = connect(store_url)
    storage = StorageService(db, actor="bot-eu-1")
    strategy = storage.create_strategy("momentum")
    racer = Racer(store_url, lambda s: s.delete_strategy(strategy.id))
    while_holding(type(storage.strategies), "check_delete", racer, monkeypatch)
    storage.delete_strategy(strategy.id)
    racer.join()
    assert isinstance(racer.error, DeletedError) and "restore" in str(racer.error)
    actions = [e.action for e in storage.get_audit_log(table="strategies", row_id=strategy.id)]
    assert actions == ["delete", "create"]
    db.close()


def test_delete_and_restore_racing_end_as_the_last_one_says(store_url, monkeypatch):
    db = connect(store_url)
    storage = StorageService(db, actor="bot-eu-1")
    strategy = storage.create_strategy("momentum")
    storage.delete_strategy(strategy.id)
    racer = Racer(store_url, lambda s: s.delete_strategy(strategy.id))
    while_holding(type(storage.strategies).__mro__[1], "_check_key_free", racer, monkeypatch)
    storage.restore_strategy(strategy.id)
    racer.join()
    assert racer.error is None or isinstance(racer.error, DeletedError)
    row = storage.strategies.get_by_id(strategy.id, include_deleted=True)
    last = storage.get_audit_log(table="strategies", row_id=strategy.id)[0].action
    assert (row.deleted_at is not None) == (last == "delete")
    db.close()


def test_a_setting_set_while_another_process_restores_it_audits_its_real_before(
    store_url, monkeypatch
):
    """set_config_value found no live row, then another process restored the setting and
    committed: the set updates the restored row, and its audit row's before is what
    that row held (it used to record a create, every before null). On SQLite the set
    holds the write lock from its read on, so the restore waits and then finds its key
    taken."""
    from stocksbot_store.repositories import ConfigRepository

    db = connect(store_url)
    storage = StorageService(db, actor="bot-eu-1")
    row_id = storage.config.create("max_orders", "5").id
    storage.config.delete(row_id)
    racer = Racer(store_url, lambda s: s.restore_config(row_id))
    original = ConfigRepository._by_key_for_update

    def read_then_race(self, key):
        found = original(self, key)
        if racer.ident is None:
            racer.start()
            racer.join(timeout=1)  # joins at once unless it waits for our write lock
        return found

    monkeypatch.setattr(ConfigRepository, "_by_key_for_update", read_then_race)
    storage.set_config_value("max_orders", "9")
    racer.join()
    live = [c for c in storage.config.get_all() if c.key == "max_orders"]
    assert [c.value for c in live] == ["9"]
    [entry] = storage.get_audit_log(table="config", row_id=live[0].id, limit=1)
    assert entry.action == "set"
    if racer.error is None:  # restored first: the set changed the restored row
        assert live[0].id == row_id
        assert entry.changes["value"] == ["5", "9"]
    else:  # the set created a new row first; the restore found its key taken
        assert isinstance(racer.error, DuplicateError)
        assert entry.changes["value"] == [None, "9"] and "key" in entry.changes
    db.close()
