"""Monitoring, pooling and read replicas under the faults a live bot meets.

Each test names what holds and under which fault: a PostgreSQL session the server ends
while idle, between calls or in the middle of one (``pg_terminate_backend`` from another
connection), a replica that is unreachable (a closed port) or misconfigured, a caller's
own decimal context, odd statement parameters, hostile names in the figures, and a
password in any shape of URL. Every rejection is a :class:`StorageError` (or, on the
command line, exit 2 with the reason on stderr), nothing is half-applied, a possible
commit is never retried, and no output shows a password.
"""

from __future__ import annotations

import dataclasses
import decimal
import logging
import threading
import traceback
from collections.abc import Iterator
from decimal import Decimal
from urllib.parse import quote

import peewee
import pytest
from conftest import _admin_dsn, store_on
from test_monitor import parse_prometheus
from test_ops_faults import CLOSED_PORT, end_sessions, hostile_context, run_cli
from test_reconnect import end_sessions_of
from test_replicas import PATIENT_LAG, on_replica, replica_url_of, require_replica, wait_for
from test_secrets import HALVES, SHAPES

from stocksbot_store import (
    CommitUnknownError,
    ConfigurationError,
    DatabaseUnavailableError,
    StorageError,
    StorageService,
    connect,
    format_prometheus,
    format_text,
    init_db,
    stats,
)
from stocksbot_store.check import check_ledger
from stocksbot_store.database import connect as open_database
from stocksbot_store.metrics import Standby, format_json
from stocksbot_store.metrics import main as stats_main
from stocksbot_store.replicas import ReplicaStatus, lsn_number

SECRET = "Zq9/secret@pw"
#: The password as a URL holds it.
QUOTED = quote(SECRET, safe="")


def assert_no_half(text: str, where: str) -> None:
    for half in HALVES:
        assert half not in text, f"the password leaked in {where}: {text[:400]!r}"


def every_output(s) -> str:
    """The figures in every form the store shows them."""
    return "\n".join([format_text(s), format_json(s), format_prometheus(s), repr(s)])


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """Every log record of every logger, formatted, down to DEBUG."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Collect(logging.DEBUG)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def book(storage: StorageService) -> int:
    """A strategy, an order of 10 with a fill of 4, and a deleted strategy; the order id."""
    storage.create_strategy("momentum")
    order = storage.create_order(
        "AAPL", "buy", "limit", "10", "100.1234567891", strategy="momentum"
    )
    storage.record_trade(order.id, "AAPL", "buy", "4", "100.1234567891")
    storage.create_strategy("old")
    storage.delete_strategy("old")
    return order.id


def trade_count(db) -> int:
    return db.execute_sql("SELECT count(*) FROM trade").fetchone()[0]


# -- stats -----------------------------------------------------------------------------------


@pytest.mark.postgres_only
def test_stats_read_after_the_server_ended_the_session(db):
    book(StorageService(db))
    expected = stats(db)
    assert end_sessions(db) == 1
    after = stats(db)
    assert after.table_rows == expected.table_rows
    assert (
        after.deleted_rows
        == expected.deleted_rows
        == {
            "strategy": 1,
            "position": 0,
            "order": 0,
            "config": 0,
        }
    )


@pytest.mark.postgres_only
def test_stats_whose_session_ends_midway_raise_a_storage_error_then_work(db, monkeypatch):
    from stocksbot_store import metrics

    book(StorageService(db))
    expected = stats(db)
    original = metrics.read_transaction

    def ended_inside(database):
        transaction = original(database)

        class Ending:
            def __enter__(self):
                transaction.__enter__()
                database.execute_sql("SELECT 1")  # the snapshot is taken
                end_sessions(database)

            def __exit__(self, *exc):
                return transaction.__exit__(*exc)

        return Ending()

    monkeypatch.setattr(metrics, "read_transaction", ended_inside)
    with pytest.raises(DatabaseUnavailableError):
        stats(db)
    monkeypatch.setattr(metrics, "read_transaction", original)
    assert not db.in_transaction()
    assert stats(db).table_rows == expected.table_rows


def test_stats_are_exact_and_raise_nothing_in_a_callers_decimal_context(db):
    book(StorageService(db))
    expected = stats(db)
    with decimal.localcontext(hostile_context()):
        s = stats(db)
        shown = [format_text(s), format_json(s), format_prometheus(s)]
    assert s.table_rows == expected.table_rows and s.deleted_rows == expected.deleted_rows
    assert s.database_bytes == expected.database_bytes
    assert "trade 1" in shown[0]


# -- the Prometheus text ----------------------------------------------------------------------

HOSTILE_NAMES = ['we"ird', "back\\slash", "new\nline", 'all"\\\n"', "", "sp ace"]


def test_prometheus_text_stays_well_formed_with_hostile_names(db):
    s = stats(db)
    hostile = dataclasses.replace(
        s,
        database='postgresql://bot:***@h/"db\\\n',
        table_rows={name: i for i, name in enumerate(HOSTILE_NAMES)},
        deleted_rows={name: 1 for name in HOSTILE_NAMES},
        standbys=tuple(Standby(name, None, "streaming", 0.5, 10) for name in HOSTILE_NAMES),
        replicas=tuple(
            ReplicaStatus(f"postgresql://h/{name}", "down", None, None, 0, "why\n")
            for name in HOSTILE_NAMES
        ),
    )
    families = parse_prometheus(format_prometheus(hostile))
    rows = {x.labels["table"]: x.value for x in families["stocksbot_store_table_rows"].samples}
    assert rows == {name: i for i, name in enumerate(HOSTILE_NAMES)}
    (info,) = families["stocksbot_store_info"].samples
    assert info.labels["database"] == hostile.database


def test_prometheus_text_has_one_series_per_standby_though_standbys_share_a_name(db):
    """Standbys that keep the default application_name all show as ``walreceiver`` in
    pg_stat_replication; a repeated series would make Prometheus reject the whole page."""
    s = dataclasses.replace(
        stats(db),
        standbys=(
            Standby("walreceiver", "10.0.0.2", "streaming", 0.1, 0),
            Standby("walreceiver", "10.0.0.3", "streaming", 0.2, 64),
            Standby("walreceiver", "10.0.0.3", "catchup", None, None),
        ),
    )
    text = format_prometheus(s)
    families = parse_prometheus(text)
    for name in ("standby_replay_lag_seconds", "standby_behind_bytes"):
        samples = families[f"stocksbot_store_{name}"].samples
        assert len(samples) == 3
        assert len({tuple(sorted(x.labels.items())) for x in samples}) == 3, text


# -- no password, whatever the URL's shape -----------------------------------------------------


def replica_shapes(database: str) -> dict[str, str]:
    """test_secrets' URL shapes, naming ``database`` (so that they are taken as replicas)."""
    return {
        shape: url.replace("/db", f"/{database}", 1)
        for shape, url in SHAPES.items()
        if "/db" in url
    }


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_no_password_from_a_replica_url_shows_in_stats_status_errors_or_logs(
    request, tmp_path, shape, logged, capsys, monkeypatch
):
    with store_on("postgres", request, tmp_path) as url:
        primary_name = url.rsplit("/", 1)[1]
        replica = replica_shapes(primary_name).get(shape, SHAPES[shape])
        shown = []
        try:
            db = open_database(url, replica_url=replica)
        except StorageError as e:
            shown.append("".join(traceback.format_exception(e)))
        else:
            try:
                shown.append(repr(StorageService(db).get_open_positions()))
                s = stats(db)
                shown += [every_output(s), repr(db.replica_status())]
            except StorageError as e:
                shown.append("".join(traceback.format_exception(e)))
            finally:
                db.close()
        monkeypatch.setenv("DATABASE_REPLICA_URL", replica)
        for form in ("text", "json", "prometheus"):
            status, out, err = run_cli(stats_main, ["--url", url, "--format", form], capsys)
            assert status == 0 or (status == 2 and "Traceback" not in err), err
            shown += [out, err]
    for i, text in enumerate([*shown, "\n".join(logged)]):
        assert_no_half(text, f"output {i}")


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_stats_command_exits_2_without_the_password_whatever_the_url_shape(
    shape, capsys, monkeypatch
):
    monkeypatch.delenv("DATABASE_REPLICA_URL", raising=False)
    status, out, err = run_cli(
        stats_main, ["--url", SHAPES[shape], "--format", "prometheus"], capsys
    )
    assert status == 2 and err.startswith("stocksbot-stats: error: ") and "Traceback" not in err
    assert_no_half(out + err, "stocksbot-stats")


# -- the slow-statement log ------------------------------------------------------------------


@pytest.fixture
def slow_lines(caplog):
    caplog.set_level(logging.WARNING, logger="stocksbot_store.slow")
    return lambda: "\n".join(
        r.getMessage() for r in caplog.records if r.name == "stocksbot_store.slow"
    )


def with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://postgres:{quote(password, safe='')}@{rest.split('@', 1)[1]}"


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    "value",
    [
        pytest.param([SECRET, "a"], id="a list holding it"),
        pytest.param((1, f"x{SECRET}y"), id="a tuple holding it"),
        pytest.param({"key": SECRET}, id="a dict holding it"),
        pytest.param(f"u={QUOTED}", id="percent-encoded"),
        pytest.param(f"postgresql://bot:{SECRET}@db/stocks", id="a URL holding it"),
    ],
)
def test_the_slow_log_never_shows_the_password_inside_any_parameter(db, slow_lines, value):
    """The password is sent (trust authentication accepts it); a parameter carrying it
    in any form is masked."""
    url = with_password(_admin_dsn().rsplit("/", 1)[0] + "/" + db.database, SECRET)
    slow = open_database(url, slow_ms=0)
    try:
        slow.execute_sql("SELECT %s::text", (as_sent(value),))
    finally:
        slow.close()
    text = slow_lines()
    assert "SELECT" in text
    for form in (SECRET, QUOTED, "secret"):
        assert form not in text, text


def as_sent(value):
    """A dict or list as psycopg sends it (JSON for a dict)."""
    if isinstance(value, dict):
        from psycopg.types.json import Json

        return Json(value)
    return value


@pytest.mark.parametrize(
    "params",
    [
        pytest.param((b"\x00" * 10,), id="bytes"),
        pytest.param(("x" * 1_000_000,), id="huge text"),
        pytest.param((Decimal("123456789.1234567891"),), id="decimal"),
        pytest.param((None,), id="none"),
        pytest.param(tuple(range(100)), id="many"),
    ],
)
def test_the_slow_log_takes_odd_parameters_in_a_callers_decimal_context(db, slow_lines, params):
    from stocksbot_store.monitor import attach_monitor

    attach_monitor(db, slow_ms=0)
    try:
        marks = ", ".join([db.param] * len(params))
        with decimal.localcontext(hostile_context()):
            db.execute_sql(f"SELECT {marks}", params)
    finally:
        attach_monitor(db, slow_ms=None)
    text = slow_lines()
    assert "SELECT" in text and len(text) < 5_000
    if isinstance(params[0], Decimal):
        assert "123456789.1234567891" in text


def test_the_slow_log_never_shows_a_config_value_not_even_through_its_audit_row(db, slow_lines):
    from stocksbot_store.monitor import attach_monitor

    attach_monitor(db, slow_ms=0)
    try:
        storage = StorageService(db)
        storage.set_config_value("k", "sk-live-AbCdEf123", "string")
        storage.set_config_value("k", "sk-live-XyZ987654", "string")
        storage.get_audit_log(table="config")
    finally:
        attach_monitor(db, slow_ms=None)
    text = slow_lines()
    assert '"config"' in text and '"audit_log"' in text
    assert "sk-live" not in text and "AbCdEf" not in text and "XyZ987" not in text, text


# -- pooling ---------------------------------------------------------------------------------


@pytest.fixture
def pool_url(request, tmp_path) -> Iterator[str]:
    with store_on("postgres", request, tmp_path) as url:
        yield url.replace("postgresql://", "postgresql+pool://", 1)


def fill_pool(db, threads: int) -> None:
    """Have ``threads`` threads each take a connection and give it back: idle in the pool."""

    def work() -> None:
        db.execute_sql("SELECT 1")
        db.close()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)


@pytest.mark.postgres_only
def test_pooled_connections_killed_while_idle_are_replaced_for_reads_writes_and_fills(pool_url):
    db = connect(f"{pool_url}?max_connections=3&timeout=5")
    storage = StorageService(db)
    order_id = book(storage)
    calls = [
        lambda: storage.get_order(order_id),
        lambda: storage.create_order("MSFT", "buy", "limit", "1", "10"),
        lambda: storage.record_trade(order_id, "AAPL", "buy", "1", "100.1234567891"),
        lambda: storage.record_trades(
            [
                {
                    "order_id": order_id,
                    "symbol": "AAPL",
                    "side": "buy",
                    "quantity": "1",
                    "price": "100",
                }
            ]
        ),
        lambda: stats(db),
    ]
    for call in calls:
        db.close()
        fill_pool(db, 3)
        assert end_sessions(db) >= 1
        call()
    assert trade_count(db) == 3
    assert check_ledger(db).violations == []
    db.close()


@pytest.mark.postgres_only
@pytest.mark.parametrize("where", ["before the writes", "at commit"])
def test_a_pooled_fill_whose_session_ends_midway_is_reported_never_half_applied_nor_retried(
    pool_url, monkeypatch, where
):
    db = connect(f"{pool_url}?max_connections=2&timeout=5")
    storage = StorageService(db)
    order_id = book(storage)
    before = trade_count(db)
    commits = []
    if where == "at commit":
        original = peewee.Database.commit

        def commit(self):
            commits.append(1)
            end_sessions(db)
            return original(self)

        monkeypatch.setattr(peewee.Database, "commit", commit)
        # A fill sends its COMMIT in the message of its writes, not through commit():
        # the session ends as that message is sent.
        from stocksbot_store.fills import recorder

        send = recorder.send_at_once

        def sending(*args, **kwargs):
            if kwargs.get("commits"):
                commits.append(1)
                end_sessions(db)
            return send(*args, **kwargs)

        monkeypatch.setattr(recorder, "send_at_once", sending)
        expected: type[StorageError] = CommitUnknownError
    else:
        from stocksbot_store.fills import recorder

        recorders = [
            c for c in vars(recorder).values() if isinstance(c, type) and hasattr(c, "_apply_read")
        ]
        for cls in recorders:
            for name in ("_apply_read", "_apply"):
                method = getattr(cls, name)

                def ending(self, *args, _method=method, **kwargs):
                    end_sessions(db)
                    return _method(self, *args, **kwargs)

                monkeypatch.setattr(cls, name, ending)
        expected = DatabaseUnavailableError
    with pytest.raises(expected):
        storage.record_trade(order_id, "AAPL", "buy", "1", "100.1234567891")
    monkeypatch.undo()
    assert len(commits) <= 1  # a commit that may have happened is never sent again
    assert trade_count(db) == before
    assert check_ledger(db).violations == []
    assert storage.get_order(order_id).filled_quantity == Decimal("4")
    db.close()


@pytest.mark.postgres_only
def test_an_exhausted_pool_under_threads_names_its_size(pool_url):
    db = connect(f"{pool_url}?max_connections=2")
    holding = threading.Barrier(3)
    release = threading.Event()

    def hold() -> None:
        db.execute_sql("SELECT 1")
        holding.wait(30)
        release.wait(30)
        db.close()

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for h in holders:
        h.start()
    holding.wait(30)
    errors: list[BaseException] = []

    def third() -> None:
        try:
            StorageService(db).get_open_positions()
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=third)
    t.start()
    t.join(30)
    release.set()
    for h in holders:
        h.join(30)
    (error,) = errors
    assert isinstance(error, DatabaseUnavailableError)
    assert "all 2 connections" in str(error) and "max_connections=" in str(error)
    StorageService(db).get_open_positions()  # a connection came back
    db.close()


@pytest.mark.parametrize("option", ["max_connections=-1", "timeout=-5", "stale_timeout=-1"])
def test_a_negative_pool_option_is_refused_with_the_fix_not_nonsense_advice(option, capsys):
    url = f"postgresql+pool://bot:{QUOTED}@127.0.0.1:{CLOSED_PORT}/stocks?{option}"
    with pytest.raises(ConfigurationError, match="is negative") as caught:
        connect(url)
    assert "secret" not in "".join(traceback.format_exception(caught.value))
    status, out, err = run_cli(stats_main, ["--url", url], capsys)
    assert status == 2 and option.split("=")[0] in err and "secret" not in out + err


# -- replicas --------------------------------------------------------------------------------


@pytest.fixture
def replicated() -> Iterator[tuple]:
    """A fresh store read through the standby: (database, primary URL)."""
    require_replica()
    from conftest import fresh_pg_database

    with fresh_pg_database() as url:
        setup = connect(url)
        init_db(setup)
        setup.close()
        db = open_database(url, replica_url=replica_url_of(url), replica_max_lag=PATIENT_LAG)
        wait_for(lambda: _reads_replica(db), "the standby to have the store")
        try:
            yield db, url
        finally:
            db.close()


def _reads_replica(db) -> bool:
    try:
        return on_replica(db) and "trade" in {
            r[0] for r in db.execute_sql("SELECT tablename FROM pg_tables").fetchall()
        }
    except StorageError:
        return False


def end_replica_sessions(db) -> int:
    """End the sessions ``db``'s replica reads hold on the standby."""
    from test_replicas import REPLICA_ADMIN_URL

    return end_sessions_of(db.database, admin_url=REPLICA_ADMIN_URL)


@pytest.mark.replica
def test_a_replica_session_ended_before_or_during_a_read_costs_no_error(replicated, monkeypatch):
    db, _ = replicated
    storage = StorageService(db)
    assert end_replica_sessions(db) == 1
    assert storage.get_open_positions() == []
    replica = db.replica_router.replicas[0]
    original = replica.db.execute_sql

    def ending(sql, params=None):  # the router chose the replica; its session ends now
        end_replica_sessions(db)
        return original(sql, params)

    monkeypatch.setattr(replica.db, "execute_sql", ending)
    assert storage.get_open_positions() == []
    assert stats(db).table_rows["trade"] == 0
    monkeypatch.undo()
    wait_for(lambda: on_replica(db), "reads back on the replica")


@pytest.mark.replica
def test_stats_report_an_unreachable_replica_as_down_without_an_error(replicated):
    db, url = replicated
    dead = open_database(
        url, replica_url=f"postgresql://postgres:{QUOTED}@127.0.0.1:{CLOSED_PORT}/{db.database}"
    )
    try:
        s = stats(dead)
        (status,) = s.replicas
        assert status.state == "down" and "***" in status.url
        assert "secret" not in every_output(s)
        assert 'stocksbot_store_replica_up{replica="' in format_prometheus(s)
    finally:
        dead.close()


@pytest.mark.replica
def test_a_misconfigured_replica_is_skipped_and_shown_never_raised(replicated):
    """A replica whose options the driver refuses is as unusable as a stopped one: reads
    go to the primary, every time, and its status says why."""
    db, url = replicated
    bad = open_database(url, replica_url=replica_url_of(url) + "?no_such_option=1")
    try:
        storage = StorageService(bad)
        for _ in range(3):
            assert storage.get_open_positions() == []
            bad.replica_router.replicas[0].checked = float("-inf")  # checked again
        (status,) = bad.replica_status()
        assert status.state == "down" and "no_such_option" in (status.error or "")
        assert stats(bad).replicas[0].state == "down"
    finally:
        bad.close()


@pytest.mark.replica
def test_read_your_writes_holds_after_the_primary_session_ends(replicated):
    db, _ = replicated
    storage = StorageService(db)
    storage.create_strategy("first")
    assert end_sessions(db) >= 1
    storage.create_strategy("second")
    assert end_sessions(db) >= 1
    assert [s.name for s in storage.strategies.get_all()] == ["first", "second"]


@pytest.mark.replica
def test_read_your_writes_holds_after_a_commit_of_unknown_outcome(replicated, monkeypatch):
    """A commit whose session ended may have been stored: the reads that follow (the bot
    checking whether it was) must not go to a replica that has not replayed past it."""
    db, url = replicated
    storage = StorageService(db)
    storage.create_strategy("first")
    storage.strategies.get_all()  # pins the first commit
    original = peewee.Database.commit

    def commit(self):
        end_sessions(db)
        return original(self)

    monkeypatch.setattr(peewee.Database, "commit", commit)
    with pytest.raises(CommitUnknownError):
        storage.create_strategy("second")
    monkeypatch.undo()
    primary = connect(url, replicas=())
    after = lsn_number(primary.execute_sql("SELECT pg_current_wal_lsn()::text").fetchone()[0])
    primary.close()
    storage.strategies.get_all()
    assert db.replica_router.required_lsn >= after


def test_a_re_sent_fill_is_answered_from_the_primary_whatever_the_replica_has(
    request, tmp_path, monkeypatch
):
    """Another process recorded the fill; this one's replica has not replayed it yet (a
    store without it stands in for the lagging standby)."""
    from conftest import fresh_pg_database

    from stocksbot_store.replicas import Replica

    with store_on("postgres", request, tmp_path) as url, fresh_pg_database() as stale_url:
        other = connect(url)
        order = StorageService(other).create_order("AAPL", "buy", "limit", "10", "100")
        stored = StorageService(other).record_trade(
            order.id, "AAPL", "buy", "1", "100", external_id="b-1"
        )
        other.close()
        stale = connect(stale_url)  # the schema, none of the rows
        name = url.rsplit("/", 1)[1]
        db = open_database(url, replica_url=f"postgresql://postgres@127.0.0.1:{CLOSED_PORT}/{name}")
        db.replica_router.replicas[0].db = stale
        monkeypatch.setattr(Replica, "usable", lambda self, max_lag, lsn: True)
        try:
            again = StorageService(db).record_trade(
                order.id, "AAPL", "buy", "1", "100", external_id="b-1"
            )
            assert again.id == stored.id
        finally:
            db.close()
            stale.close()
