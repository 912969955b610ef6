"""Read replicas, against a real streaming standby of the test server, and read-only opening.

The standby is the cluster ``.ci/pg-replica`` makes on 127.0.0.1:5433
(``STOCKSBOT_TEST_PG_REPLICA`` overrides). Without it the ``replica`` tests skip with the
command that starts it, except under ``CI=true``, where they fail. Which server
answered a read is proven by ``pg_is_in_recovery()`` on the connection that ran it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import fresh_pg_database, require_postgres
from every_row import fill_every_kind

from stocksbot_store import (
    ConfigurationError,
    ReadOnlyError,
    StorageService,
    backup,
    check_ledger,
    connect,
    export_archive,
    format_prometheus,
    init_db,
    realized_report,
    replica_status,
    stats,
)
from stocksbot_store.conversion import copy_database
from stocksbot_store.database import write_transaction
from stocksbot_store.replicas import lsn_number

REPLICA_ADMIN_URL = os.environ.get(
    "STOCKSBOT_TEST_PG_REPLICA", "postgresql://postgres@127.0.0.1:5433/postgres"
)
SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "pg-replica"
IN_RECOVERY = "SELECT pg_is_in_recovery()"
#: The test server is shared with other heavy writers, so its standby can fall seconds
#: behind; the tests that are not about lag allow it, and wait long enough for it.
PATIENT_LAG = 300


def _replica_problem() -> str | None:
    import psycopg

    try:
        with psycopg.connect(REPLICA_ADMIN_URL, connect_timeout=3, autocommit=True) as conn:
            if not conn.execute(IN_RECOVERY).fetchone()[0]:
                return f"{REPLICA_ADMIN_URL} is not a standby (pg_is_in_recovery() is false)"
    except psycopg.Error as e:
        return f"no PostgreSQL standby at {REPLICA_ADMIN_URL}: {str(e).strip()[:200]}"
    return None


def require_replica() -> None:
    """Skip (or, under CI=true, fail) when the standby is not there."""
    require_postgres()
    problem = _replica_problem()
    if problem is None:
        return
    message = f"{problem}; start it with {SCRIPT.relative_to(SCRIPT.parent.parent)}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true needs the standby: {message}", pytrace=False)
    pytest.skip(message)


def wait_for(condition: Callable[[], object], what: str, seconds: float = 180) -> object:
    """Poll ``condition`` until it is true (the standby replays asynchronously)."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def replica_url_of(url: str) -> str:
    """The standby's URL for the primary database at ``url``."""
    return REPLICA_ADMIN_URL.rsplit("/", 1)[0] + "/" + url.rsplit("/", 1)[1]


def on_replica(db) -> bool:
    """Whether a read outside a transaction ran on a standby."""
    return db.execute_sql(IN_RECOVERY).fetchone()[0]


@pytest.fixture
def urls() -> Iterator[tuple[str, str]]:
    """(primary URL, replica URL) of a fresh store the standby has replayed."""
    require_replica()
    with fresh_pg_database() as url:
        db = connect(url)
        init_db(db)
        db.close()
        replica = connect(replica_url_of(url), migrate=False)
        wait_for(lambda: _has_tables(replica), "the standby to replay the new store")
        replica.close()
        yield url, replica_url_of(url)


def _has_tables(db) -> bool:
    try:
        return "trade" in db.get_tables()
    except Exception:  # the database itself may not be there yet
        if not db.is_closed():
            db.close()
        return False


@pytest.fixture
def replicated(urls):
    db = connect(urls[0], replica_url=urls[1], replica_max_lag=PATIENT_LAG)
    yield db
    db.close()


@pytest.fixture
def restart_replica():
    """Stop the standby in the test; it is started again whatever happens."""
    yield lambda: _script("--stop")
    _script()


def _script(*args: str) -> None:
    subprocess.run([str(SCRIPT), *args], check=True, capture_output=True, timeout=300)


# -- routing -------------------------------------------------------------------------


@pytest.mark.replica
def test_reads_go_to_the_replica_and_writes_to_the_primary(replicated):
    storage = StorageService(replicated)
    wait_for(lambda: on_replica(replicated), "a read on the replica")
    # A write: the standby would refuse it.
    strategy = storage.create_strategy("momentum", is_active=True)
    assert strategy.id
    with write_transaction(replicated):
        assert on_replica(replicated) is False  # a read inside a write transaction
    with replicated.atomic():
        assert on_replica(replicated) is False
    wait_for(lambda: on_replica(replicated), "the replica to replay the write")
    reads = replica_status(replicated)[0].reads
    assert [s.name for s in storage.get_active_strategies()] == ["momentum"]
    assert replica_status(replicated)[0].reads > reads
    (status,) = replicated.replica_status()
    assert status.state == "ok" and status.lag_seconds is not None


@pytest.mark.replica
def test_a_row_locking_read_goes_to_the_primary(replicated):
    wait_for(lambda: on_replica(replicated), "a read on the replica")
    rows = replicated.execute_sql("SELECT pg_is_in_recovery() FROM strategy FOR UPDATE").fetchall()
    assert rows == []  # the standby would have refused FOR UPDATE


@pytest.mark.replica
def test_read_your_writes_under_a_writer_loop(replicated, urls):
    """Every read right after a commit sees it, though the standby replays it later."""
    storage = StorageService(replicated)
    storage.create_strategy("loop", is_active=True)
    replica = connect(urls[1], migrate=False)
    primary = connect(urls[0], migrate=False)
    lags, replica_reads, stale = [], 0, 0
    for i in range(60):
        order = storage.create_order("AAPL", "buy", "limit", "1", "100", strategy="loop")
        before = replica_status(replicated)[0].reads
        assert storage.get_recent_orders(limit=1)[0].id == order.id, f"round {i}"
        replica_reads += replica_status(replicated)[0].reads - before
        # What a reader without read-your-writes would have seen: the standby, now.
        stale += (
            replica.execute_sql(
                'SELECT count(*) FROM "order" WHERE id = %s', (order.id,)
            ).fetchone()[0]
            == 0
        )
        # The replay lag of this commit, as seen from here.
        target = lsn_number(primary.execute_sql("SELECT pg_current_wal_lsn()::text").fetchone()[0])
        start = time.perf_counter()
        wait_for(
            lambda t=target: (
                lsn_number(
                    replica.execute_sql("SELECT pg_last_wal_replay_lsn()::text").fetchone()[0]
                )
                >= t
            ),
            "replay",
        )
        lags.append(time.perf_counter() - start)
        if i % 2:  # half the rounds read again once the standby has the write
            assert storage.get_recent_orders(limit=1)[0].id == order.id
    replica.close()
    primary.close()
    lags.sort()
    print(
        f"\nreplay lag after a commit: median {statistics.median(lags) * 1000:.1f} ms, "
        f"max {lags[-1] * 1000:.1f} ms over {len(lags)} commits; {stale} of them not yet "
        f"on the standby when read; {replica_reads} of the reads right after a commit "
        "went to the standby"
    )
    assert replica_status(replicated)[0].reads > 0


@pytest.mark.replica
def test_read_your_writes_across_threads(replicated):
    """Threads of one process share the guarantee: each reads back what it just wrote
    while the others write too."""
    storage = StorageService(replicated)
    storage.create_strategy("threads", is_active=True)
    misses: list[str] = []

    def writer(n: int) -> None:
        try:
            for i in range(25):
                order = storage.create_order("MSFT", "buy", "limit", "1", "10", strategy="threads")
                if storage.orders.get_by_id(order.id) is None:
                    misses.append(f"thread {n} round {i}")
        finally:
            replicated.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert misses == []
    assert len(storage.get_recent_orders(limit=100)) == 75


@pytest.mark.replica
def test_a_stopped_replica_falls_back_to_the_primary_without_errors(replicated, restart_replica):
    storage = StorageService(replicated)
    storage.create_strategy("s", is_active=True)
    wait_for(lambda: on_replica(replicated), "a read on the replica")
    errors: list[BaseException] = []
    stop = threading.Event()
    reads = [0]

    def reader() -> None:
        db = replicated
        try:
            while not stop.is_set():
                assert [s.name for s in StorageService(db).get_active_strategies()] == ["s"]
                reads[0] += 1
        except BaseException as e:  # reported below
            errors.append(e)
        finally:
            db.close()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    wait_for(lambda: reads[0] > 5, "reads before the stop")
    restart_replica()  # stop it under the reader's feet
    at_stop = reads[0]
    wait_for(lambda: reads[0] > at_stop + 20, "reads after the stop")
    stop.set()
    thread.join(60)
    assert errors == []
    wait_for(
        lambda: replica_status(replicated)[0].state == "down" or on_replica(replicated) is False,
        "the replica to be skipped",
    )
    assert on_replica(replicated) is False  # reads on the primary now
    assert replica_status(replicated)[0].state == "down"
    assert "down" in stats(replicated).replicas[0].describe()
    _script()  # start it again: reads come back to it
    wait_for(lambda: on_replica(replicated), "reads back on the replica")


@pytest.mark.replica
def test_a_lagging_replica_is_skipped(urls):
    db = connect(urls[0], replica_url=urls[1], replica_max_lag=3)
    storage = StorageService(db)
    wait_for(lambda: on_replica(db), "a read on the replica")
    standby = connect(REPLICA_ADMIN_URL, migrate=False)
    standby.execute_sql("SELECT pg_wal_replay_pause()")
    try:
        other = connect(urls[0], migrate=False)  # a write by another process: no pinning
        other.execute_sql(
            "INSERT INTO config (key, value, value_type, created_at, "
            "updated_at) VALUES ('k', 'v', 'string', now(), now())"
        )
        other.close()
        wait_for(
            lambda: (
                replica_status(db)[0].state == "lagging"
                or (on_replica(db) is False and replica_status(db)[0].state == "lagging")
            ),
            "the lag to pass replica_max_lag",
        )
        assert on_replica(db) is False
        assert storage.get_config_value("k") == "v"
        assert "replica_max_lag=3" in replica_status(db)[0].error
    finally:
        standby.execute_sql("SELECT pg_wal_replay_resume()")
        standby.close()
    db.close()


@pytest.mark.replica
def test_stats_show_replicas_and_standbys(replicated):
    wait_for(lambda: on_replica(replicated), "a read on the replica")
    s = stats(replicated)
    assert s.replicas[0].state == "ok"
    assert ":5433/" in s.replicas[0].url
    assert any(sb.state == "streaming" for sb in s.standbys)
    text = format_prometheus(s)
    assert 'stocksbot_store_replica_up{replica="' in text
    assert "stocksbot_store_standby_replay_lag_seconds" in text


@pytest.mark.replica
def test_stats_leave_the_next_read_on_the_replica(replicated, urls):
    """stats reads the primary's figures in a read-only transaction that ends with a
    rollback: it is no write, so reads stay on the replica (read-your-writes would
    otherwise send them to the primary until the replica replays past it)."""
    wait_for(lambda: on_replica(replicated), "a read on the replica")
    # A write the replica has not replayed yet is likely: were stats taken for a write,
    # the next read would have to wait for it on the primary.
    bot = connect(urls[0], replicas=())
    StorageService(bot).create_strategy("elsewhere", is_active=True)
    bot.close()
    router = replicated.replica_router
    commits = router.commits
    for _ in range(3):
        s = stats(replicated)
        assert s.connections and s.connections >= 1  # the primary's figures, still
        assert on_replica(replicated) is True
    assert router.commits == commits


@pytest.mark.replica
def test_opening_a_store_is_no_write(urls):
    """Opening looks at the schema (the migration history) in a read transaction that
    ends with a rollback: a process that has only opened the store reads the replica."""
    db = connect(urls[0], replica_url=urls[1], replica_max_lag=PATIENT_LAG)
    assert db.replica_router.commits == 0
    db.close()


def _run_read_only_tool(db, tool: str, tmp_path: Path) -> None:
    if tool == "check":
        assert check_ledger(db).ok
    elif tool == "export":
        assert export_archive(db, str(tmp_path / "archive"), check=True).ledger.ok
    elif tool == "backup":
        assert backup(db, str(tmp_path / "backup")).ok
    elif tool == "realized":
        assert list(realized_report(db, "fifo"))
    else:  # convert: copy_database is what stocksbot-convert runs on the source
        assert copy_database(db, f"sqlite:///{tmp_path / 'copy.db'}").ledger.ok


@pytest.mark.replica
@pytest.mark.parametrize("tool", ["check", "export", "backup", "realized", "convert"])
def test_read_only_tools_leave_the_next_read_on_the_replica(replicated, urls, tool, tmp_path):
    """The ledger check, an export (and a PostgreSQL backup, which is one), the realized
    report and a conversion's source read in one transaction that ends with a rollback:
    it is no write of this process, so its next reads stay on the replica."""
    bot = connect(urls[0], replicas=())
    fill_every_kind(StorageService(bot))
    bot.close()
    wait_for(lambda: on_replica(replicated), "a read on the replica")
    # A write the replica has likely not replayed yet: were the tool's transaction taken
    # for a write, the next read would have to wait for it on the primary.
    bot = connect(urls[0], replicas=())
    StorageService(bot).create_strategy("elsewhere", is_active=True)
    bot.close()
    router = replicated.replica_router
    commits = router.commits
    _run_read_only_tool(replicated, tool, tmp_path)
    assert router.commits == commits
    assert on_replica(replicated) is True


@pytest.mark.replica
def test_database_replica_url_from_the_environment(urls, monkeypatch):
    monkeypatch.setenv("DATABASE_REPLICA_URL", f"{urls[1]}, {urls[1]}")
    db = connect(urls[0], replica_max_lag=PATIENT_LAG)
    assert len(replica_status(db)) == 2
    wait_for(lambda: on_replica(db), "a read on the replica")
    db.close()


# -- configuration (no standby needed: replicas are reached on first read) --------


def test_a_replica_of_another_database_is_refused():
    with pytest.raises(ConfigurationError, match="serves database 'other'"):
        connect(
            "postgresql://postgres@127.0.0.1:5432/mine",
            replica_url="postgresql://postgres@127.0.0.1:5433/other",
            migrate=False,
        )


def test_the_environment_replica_only_applies_to_its_database(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_REPLICA_URL", "postgresql://postgres@127.0.0.1:5433/other")
    db = connect("postgresql://postgres@127.0.0.1:5432/mine", migrate=False)
    assert replica_status(db) == ()
    sqlite = connect(f"sqlite:///{tmp_path / 's.db'}")
    assert replica_status(sqlite) == ()
    sqlite.close()


def test_replicas_need_postgresql(tmp_path):
    with pytest.raises(ConfigurationError, match="need PostgreSQL"):
        connect(f"sqlite:///{tmp_path / 's.db'}", replicas=["postgresql://h/db"])


def test_bad_replica_options():
    with pytest.raises(ConfigurationError, match="not both"):
        connect("postgresql://h/db", replicas="postgresql://a/db", replica_url="postgresql://b/db")
    with pytest.raises(ConfigurationError, match="replica_max_lag"):
        connect(
            "postgresql://h/db",
            replica_url="postgresql://a/db",
            replica_max_lag="soon",
            migrate=False,
        )


# -- read-only opening ---------------------------------------------------------------


@pytest.fixture
def bot_store(file_db_url):
    """A store another process (the bot) writes to; its URL."""
    db = connect(file_db_url)
    init_db(db)
    StorageService(db).create_strategy("bot", is_active=True)
    db.close()
    return file_db_url


def test_a_read_only_database_reads_and_refuses_writes(bot_store):
    db = connect(bot_store, read_only=True, migrate=False)
    storage = StorageService(db)
    assert [s.name for s in storage.get_active_strategies()] == ["bot"]
    with pytest.raises(ReadOnlyError, match=r"opened read-only \(read_only=True\)"):
        storage.create_strategy("dashboard", is_active=True)
    with pytest.raises(ReadOnlyError):
        storage.set_config_value("trading_enabled", "false", "bool")
    db.close()
    bot = connect(bot_store)
    assert [s.name for s in StorageService(bot).get_active_strategies()] == ["bot"]
    bot.close()


def test_a_read_only_reader_never_holds_the_write_lock(bot_store):
    """While a read-only reader sits in a read transaction, and after its write was
    refused, the bot writes at once (a SQLite write lock would make it wait)."""
    reader = connect(bot_store, read_only=True, migrate=False)
    bot = (
        connect(bot_store, pragmas={"busy_timeout": 0})
        if bot_store.startswith("sqlite")
        else connect(bot_store)
    )
    with reader.atomic():
        reader.execute_sql("SELECT count(*) FROM strategy").fetchone()
        with pytest.raises(ReadOnlyError):
            reader.execute_sql("DELETE FROM strategy")
        StorageService(bot).create_strategy("while-reading", is_active=True)
    assert {s.name for s in StorageService(reader).get_active_strategies()} == {
        "bot",
        "while-reading",
    }
    reader.close()
    bot.close()


def test_read_only_needs_an_existing_sqlite_file(tmp_path):
    with pytest.raises(ConfigurationError, match="no such file"):
        connect(f"sqlite:///{tmp_path / 'missing.db'}", read_only=True)
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(ConfigurationError, match="needs a SQLite file"):
        connect("sqlite:///:memory:", read_only=True)


@pytest.mark.parametrize("uri", ["file:{}", "file://{}", "file://localhost{}"])
def test_read_only_opens_the_file_a_uri_names(tmp_path, uri):
    path = str(tmp_path / "bot.db")
    db = init_db(connect(f"sqlite:///{path}"))
    StorageService(db).create_strategy("bot", is_active=True)
    db.close()
    for url in (f"sqlite:///{uri.format(path)}", f"sqlite:///{uri.format(path)}?mode=rw"):
        db = connect(url, read_only=True, migrate=False)
        assert [s.name for s in StorageService(db).get_active_strategies()] == ["bot"]
        with pytest.raises(ReadOnlyError):
            StorageService(db).create_strategy("dashboard", is_active=True)
        db.close()
    with pytest.raises(ConfigurationError, match="no such file"):
        connect(f"sqlite:///{uri.format(path + '.missing')}", read_only=True)
    with pytest.raises(ConfigurationError, match="needs a SQLite file"):
        connect("sqlite:///file:/stocksbot?vfs=memdb", read_only=True)
