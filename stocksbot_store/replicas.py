"""Reading from PostgreSQL hot standbys: which statement goes where.

``connect(url, replicas="postgresql://host2/db,postgresql://host3/db")`` (or
``$DATABASE_REPLICA_URL``) gives the database a :class:`ReplicaRouter`:

- a read (``SELECT``/``WITH``... without a row lock) run outside a transaction goes
  to a replica, taken in turn among the usable ones;
- a write, and anything inside a transaction (``db.atomic()``, every service write),
  goes to the primary;
- **read-your-writes**: after this process commits a write, its reads stay on the
  primary until a replica has replayed the primary's WAL up to where it was after
  that commit (``pg_current_wal_lsn()`` on the primary, read at the first read after
  the commit, against ``pg_last_wal_replay_lsn()`` on the replica), so a bot never
  reads an older book than it wrote;
- a replica that is down, is not a standby, or lags more than ``replica_max_lag``
  seconds (default 5) is skipped: reads fall back to the primary without an error.
  Its state is measured at most every :data:`CHECK_SECONDS` and shown by
  :func:`replica_status` and :func:`stocksbot_store.stats`.

A read the replica refuses (a function that writes, a query cancelled by recovery)
runs again on the primary. Statements on a replica are counted by the primary's
monitor. Peewee's playhouse has no read-replica support any more (``read_slave``
went in 3.0), hence this module.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import peewee
from peewee import Database, PostgresqlDatabase

from .access import driver_error, extend
from .errors import ConfigurationError, StorageError, first_line
from .monitor import monitor_of, statement_kind
from .urls import mask_url, scrub

log = logging.getLogger("stocksbot_store.replicas")

DEFAULT_MAX_LAG = 5.0
#: How often a usable replica's lag is measured again, and a skipped one retried.
CHECK_SECONDS = 1.0
#: Seconds a connection attempt to a replica may take (unless its URL says otherwise).
CONNECT_TIMEOUT = 2
#: How often, while a read waits for read-your-writes, the replica's replay is re-read.
CATCH_UP_SECONDS = 0.02

_LOCKING = (" FOR UPDATE", " FOR NO KEY UPDATE", " FOR SHARE", " FOR KEY SHARE")
_STATUS_SQL = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
    "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE coalesce(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)


def lsn_number(lsn: str | None) -> int:
    """A PostgreSQL LSN (``'16/B374D848'``) as a number that orders like it (0 for None)."""
    if not lsn:
        return 0
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass(frozen=True)
class ReplicaStatus:
    """A replica as this process last saw it."""

    url: str
    #: ``ok`` (reads go there), ``lagging``, ``down``, ``not a standby`` or ``unchecked``.
    state: str
    lag_seconds: float | None
    checked_at: dt.datetime | None
    reads: int
    error: str | None

    def describe(self) -> str:
        """One line for a status bar: state, lag, reads served, why skipped."""
        lag = "" if self.lag_seconds is None else f", lag {self.lag_seconds:.3f} s"
        why = f" ({self.error})" if self.error else ""
        return f"{self.state}{lag}, {self.reads:,} reads{why}"


class Replica:
    """One standby: its database and what was last measured of it."""

    def __init__(self, db: Database, url: str) -> None:
        self.db = db
        self.url = url
        self.state = "unchecked"
        self.lag: float | None = None
        self.replay_lsn = 0
        self.checked = float("-inf")  # time.monotonic() of the last check
        self.checked_at: dt.datetime | None = None
        self.error: str | None = None
        self.reads = 0
        self.lock = threading.Lock()

    def status(self) -> ReplicaStatus:
        return ReplicaStatus(
            self.url, self.state, self.lag, self.checked_at, self.reads, self.error
        )

    def usable(self, max_lag: float, required_lsn: int) -> bool:
        """Whether a read may go here now (measuring again when it is time)."""
        now = time.monotonic()
        due = now - self.checked >= CHECK_SECONDS
        behind = self.state == "ok" and self.replay_lsn < required_lsn
        if due or (behind and now - self.checked >= CATCH_UP_SECONDS):
            with self.lock:
                if self.checked <= now - CATCH_UP_SECONDS:
                    self.check(max_lag)
        return self.state == "ok" and self.replay_lsn >= required_lsn

    def check(self, max_lag: float) -> None:
        """Measure the replica: in recovery, replayed up to where, how far behind."""
        try:
            in_recovery, replay, lag = self.db.execute_sql(_STATUS_SQL).fetchone()
        except (peewee.DatabaseError, peewee.InterfaceError, StorageError) as e:
            # Any failure, a refused option or role as much as a stopped server: the
            # replica is skipped (its status says why), never the read that asked.
            self.mark_down(e)
            return
        finally:
            self.checked = time.monotonic()
            self.checked_at = dt.datetime.now(dt.timezone.utc)
        self.replay_lsn = lsn_number(replay)
        self.lag = None if lag is None else float(lag)
        if not in_recovery:
            self.state, self.error = "not a standby", "pg_is_in_recovery() is false"
        elif self.lag is not None and self.lag > max_lag:
            self.state = "lagging"
            self.error = f"{self.lag:.1f} s behind, more than replica_max_lag={max_lag:g}"
        else:
            if self.state != "ok":
                log.info("replica %s is usable", self.url)
            self.state, self.error = "ok", None

    def mark_down(self, error: BaseException) -> None:
        """Skip this replica until the next check; drop this thread's connection to it."""
        if self.state != "down":
            log.warning(
                "replica %s skipped, reads go to the primary: %s", self.url, first_line(error)
            )
        self.state, self.error = "down", first_line(error)
        self.checked = time.monotonic()
        self.checked_at = dt.datetime.now(dt.timezone.utc)
        try:
            self.db.close()
        except (peewee.PeeweeException, OSError):
            self.db.dispose()


class ReplicaRouter:
    """Picks where each read of one primary goes (see the module docstring)."""

    def __init__(
        self, primary: Database, replicas: Sequence[Replica], max_lag: float = DEFAULT_MAX_LAG
    ) -> None:
        self.primary = primary
        self.replicas = list(replicas)
        self.max_lag = max_lag
        self.required_lsn = 0
        # Commits this process made, and how many of them required_lsn covers.
        self.commits = 0
        self.pinned = 0
        self._turn = itertools.count()
        self._count_lock = threading.Lock()
        self._pin_lock = threading.Lock()

    def note_write(self) -> None:
        """This process committed something: the next read pins the primary's LSN."""
        with self._count_lock:
            self.commits += 1

    def replica_for_read(self, execute_on_primary: Any) -> Replica | None:
        """A usable replica that has replayed this process's writes, or None."""
        if self.pinned != self.commits:
            # Under a lock, so that a thread whose own commit another thread is pinning
            # waits for that pin instead of reading with the older one. Commits never
            # wait for it (they count under their own lock).
            with self._pin_lock:
                seen = self.commits
                if self.pinned < seen:
                    lsn = execute_on_primary("SELECT pg_current_wal_lsn()::text").fetchone()[0]
                    self.required_lsn = max(self.required_lsn, lsn_number(lsn))
                    self.pinned = seen
        count = len(self.replicas)
        start = next(self._turn)
        for i in range(count):
            replica = self.replicas[(start + i) % count]
            if replica.usable(self.max_lag, self.required_lsn):
                return replica
        return None

    def status(self) -> tuple[ReplicaStatus, ...]:
        """Each replica's state, as last measured."""
        return tuple(r.status() for r in self.replicas)

    def close(self) -> None:
        """Close this thread's connection to every replica."""
        for replica in self.replicas:
            try:
                replica.db.close()
            except (peewee.PeeweeException, OSError):
                replica.db.dispose()


def replicated(base: type) -> type:
    """Extension for the primary's database class: sends reads to its router's replicas."""

    class Replicated(base):
        replica_router: ReplicaRouter

        def execute_sql(self, sql: str, params: Any = None) -> Any:
            router = self.replica_router
            if self.transaction_depth() != 0:
                return super().execute_sql(sql, params)
            if statement_kind(sql) != "read" or any(word in sql for word in _LOCKING):
                try:
                    return super().execute_sql(sql, params)
                finally:  # also when the outcome is unknown: it may have committed
                    router.note_write()
            replica = router.replica_for_read(super().execute_sql)
            if replica is not None:
                try:
                    cursor = replica.db.execute_sql(sql, params)
                except (peewee.DatabaseError, peewee.InterfaceError, StorageError) as e:
                    if _connection_lost(e):
                        replica.mark_down(e)
                else:
                    replica.reads += 1
                    return cursor
            return super().execute_sql(sql, params)

        def commit(self) -> Any:
            try:
                return super().commit()
            finally:
                # Also after a CommitUnknownError: the transaction may be stored, and the
                # reads that check whether it was must see it if it was.
                self.replica_router.note_write()

        def close(self) -> bool:
            closed = super().close()
            self.replica_router.close()
            return closed

        def replica_status(self) -> tuple[ReplicaStatus, ...]:
            """Each replica's state, as last measured (for a status line)."""
            return self.replica_router.status()

        def replica_for_snapshot(self) -> Replica | None:
            """See :func:`snapshot_replica`."""
            return self.replica_router.replica_for_read(super().execute_sql)

    return Replicated


def replica_status(db: Database) -> tuple[ReplicaStatus, ...]:
    """The state of ``db``'s read replicas; empty when it has none."""
    router = getattr(db, "replica_router", None)
    return router.status() if router is not None else ()


def note_commit(db: Database) -> None:
    """``db`` committed, or may have, a transaction it did not end with ``commit()`` (the
    fill path sends its ``COMMIT`` in one round trip with its writes): its next reads keep
    to what this process wrote, as after any commit. Nothing when ``db`` has no replicas."""
    router = getattr(db, "replica_router", None)
    if router is not None:
        router.note_write()


def snapshot_replica(db: Database) -> Replica | None:
    """The replica a whole read-only transaction of ``db`` may run on, on the replica's
    own connection (``replica.db``), so that every read of it sees one snapshot: a
    usable replica that has replayed this process's writes. None (read ``db`` itself)
    when there is none, ``db`` has no replicas or is inside a transaction already."""
    if getattr(db, "replica_router", None) is None or db.in_transaction():
        return None
    replica = db.replica_for_snapshot()  # type: ignore[attr-defined]  # Replicated's
    if replica is not None:
        replica.reads += 1
    return replica


def attach_replicas(
    db: Database,
    urls: Sequence[str],
    max_lag: float | str | None = None,
    from_environment: bool = False,
    *,
    open_replica: Callable[..., Database],
) -> Database:
    """Route ``db``'s reads to the standbys at ``urls`` (see the module docstring).

    The replicas must serve the same database as ``db``. A mismatch is a
    :class:`ConfigurationError`, except for ``$DATABASE_REPLICA_URL``
    (``from_environment``), which only applies to connections to its database:
    another database (a test's, a tool's) is opened without replicas.
    ``open_replica(url, **options)`` opens each standby (``connect`` passes itself).
    """
    if not isinstance(db, PostgresqlDatabase):
        if from_environment:
            return db
        raise ConfigurationError(
            "read replicas need PostgreSQL; a SQLite file has none "
            "(open it with read_only=True for read-only tools)"
        )
    try:
        lag = DEFAULT_MAX_LAG if max_lag is None else float(max_lag)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"replica_max_lag must be a number of seconds, not {max_lag!r}"
        ) from None
    replicas = []
    for url in urls:
        name = _database_name(url)
        if name is None:
            raise ConfigurationError(
                f"bad replica URL {mask_url(url)}: it cannot be parsed; write it as "
                "postgresql://user:password@host:port/dbname, with any / ? # @ : or % in "
                "the password percent-encoded (e.g. %2F for /)"
            )
        if name != db.database:
            # Scrubbed: in a URL whose password holds an unencoded / (bot:pa/ss@host/db)
            # the name read is part of the password.
            shown = scrub(name, url)
            if from_environment:
                log.debug("DATABASE_REPLICA_URL serves %r, not %r: no replica", shown, db.database)
                return db
            raise ConfigurationError(
                f"replica {mask_url(url)} serves database {shown!r} but the primary is "
                f"{db.database!r}; a streaming standby has the primary's databases, so "
                "give the same database name (and percent-encode any / in the password)"
            )
        # A standby that stops answering must not hang the reads: bound the connect.
        timeout: dict[str, Any] = (
            {} if "connect_timeout" in url else {"connect_timeout": CONNECT_TIMEOUT}
        )
        replica_db = open_replica(url, **timeout)
        monitor = monitor_of(db)
        replica_db.query_hooks[:] = [monitor] if monitor else []
        replicas.append(Replica(replica_db, mask_url(url)))
    extend(db, replicated)
    db.replica_router = ReplicaRouter(db, replicas, lag)  # type: ignore[attr-defined]
    return db


def _database_name(url: str) -> str | None:
    """The database ``url`` names, as ``connect`` reads it; None if it cannot be parsed."""
    if "://" not in url:
        return None
    try:
        return urlparse(url).path.lstrip("/").split("?")[0]
    except ValueError:  # an unclosed [ in the host part
        return None


def _connection_lost(error: BaseException) -> bool:
    """Whether an error means the replica cannot be used (vs. this one statement): a
    broken connection, or one that cannot be opened (a StorageError from connecting)."""
    if isinstance(error, (peewee.InterfaceError, StorageError)):
        return True
    original = driver_error(error)
    sqlstate = getattr(original, "sqlstate", None)
    # No SQLSTATE: the connection failed or broke. 08 connection, 57P shutdown, 53 out
    # of resources, 28 authentication, 3D no such database (not replayed yet).
    return sqlstate is None or sqlstate.startswith(("08", "57P", "53", "28", "3D"))
