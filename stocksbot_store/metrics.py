"""The figures an operator watches: ``stats(db)`` and the ``stocksbot-stats`` command.

:func:`stats` gathers, for one database:

- the statements this process ran on it since it was opened, by kind (fills, reads,
  writes, other), with their time, errors and slow ones (:mod:`stocksbot_store.monitor`);
- its size, and on SQLite the size of its write-ahead log and the WAL's checkpoint
  sequence number (it goes up each time a checkpoint lets the log start over);
- on PostgreSQL, the connections to it and to the server, and each standby as the
  primary sees it (state, replay lag, bytes behind);
- the read replicas this process routes reads to, and their state
  (:func:`stocksbot_store.replicas.replica_status`);
- the rows of each of the store's tables (every model in ``MODELS``, so a table the
  store adds, such as an audit log, is counted once it is a model): the live rows,
  and apart from them the soft-deleted rows of the tables that have them
  (:mod:`stocksbot_store.softdelete`).

It is cheap enough for a status line refreshed every few seconds: a fixed handful of
statements whatever the number of tables (the schema in one, every table's rows in
one), and on PostgreSQL the primary's figures are read in a read-only transaction
that ends with a rollback, so, with read replicas, taking stats never counts as a
write of this process (:func:`stocksbot_store.backends.read_transaction`).

:func:`format_text`, :func:`format_json` and :func:`format_prometheus` render them;
the Prometheus text follows the exposition format (``# HELP``/``# TYPE``, counters
ending in ``_total``, seconds and bytes, escaped label values), so a bot can serve
``format_prometheus(stats(db))`` on its metrics endpoint. The command line tool
reports on a database from outside the bot, so its statement figures are its own few.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import struct
import sys
from dataclasses import dataclass, field
from typing import Any

from peewee import Database, PeeweeException

from .backends import read_transaction
from .database import backend_of, connect, database_url, describe, scrub
from .errors import StorageError, first_line, translate_errors
from .models import MODELS, SOFT_DELETE_MODELS
from .monitor import KINDS, StatementFigures, monitor_of
from .replicas import ReplicaStatus, replica_status
from .urls import ArgumentParser

WAL_MAGIC = (0x377F0682, 0x377F0683)


@dataclass(frozen=True)
class Standby:
    """A streaming standby as the primary sees it (``pg_stat_replication``)."""

    name: str
    address: str | None
    state: str
    replay_lag_seconds: float | None
    bytes_behind: int | None


@dataclass(frozen=True)
class StoreStats:
    """One reading of a database's figures; None where a figure does not apply."""

    backend: str
    database: str
    collected_at: dt.datetime
    monitored_since: dt.datetime | None
    statements: dict[str, StatementFigures]
    database_bytes: int | None
    wal_bytes: int | None
    wal_checkpoint_sequence: int | None
    connections: int | None
    server_connections: int | None
    max_connections: int | None
    standbys: tuple[Standby, ...]
    replicas: tuple[ReplicaStatus, ...]
    #: Rows of each table that are not soft-deleted.
    table_rows: dict[str, int]
    #: Soft-deleted rows of each table that has them (``stocksbot-purge`` removes them).
    deleted_rows: dict[str, int] = field(default_factory=dict)


def stats(db: Database) -> StoreStats:
    """Read ``db``'s figures now (see the module docstring); read-only.

    A failure to read them (a session the server ended in the middle, a database that
    cannot be reached) is a :class:`StorageError`; the next call reads them afresh.
    """
    monitor = monitor_of(db)
    backend = backend_of(db)
    with translate_errors(f"reading the figures of {describe(db)}"):
        figures = _sqlite_figures(db) if backend == "sqlite" else _postgres_figures(db)
        rows = _table_rows(db)
    return StoreStats(
        backend=backend,
        database=describe(db),
        collected_at=dt.datetime.now(dt.timezone.utc),
        monitored_since=monitor.started_at if monitor else None,
        statements=monitor.figures() if monitor else {},
        replicas=replica_status(db),
        table_rows=rows["table_rows"],
        deleted_rows=rows["deleted_rows"],
        **figures,
    )


def _sqlite_figures(db: Database) -> dict[str, Any]:
    pages = db.execute_sql("PRAGMA page_count").fetchone()[0]
    page_size = db.execute_sql("PRAGMA page_size").fetchone()[0]
    path = next(
        (row[2] for row in db.execute_sql("PRAGMA database_list").fetchall() if row[1] == "main"),
        "",
    )
    wal_bytes = sequence = None
    if path and os.path.exists(path + "-wal"):
        wal_bytes = os.path.getsize(path + "-wal")
        sequence = _wal_checkpoint_sequence(path + "-wal")
    return dict(
        database_bytes=pages * page_size,
        wal_bytes=wal_bytes,
        wal_checkpoint_sequence=sequence,
        connections=None,
        server_connections=None,
        max_connections=None,
        standbys=(),
    )


def _wal_checkpoint_sequence(wal_path: str) -> int | None:
    """The checkpoint sequence number in a WAL file's header (bytes 12-15, big-endian)."""
    try:
        with open(wal_path, "rb") as f:
            header = f.read(16)
    except OSError:
        return None
    if len(header) < 16:
        return None
    magic, _version, _page_size, sequence = struct.unpack(">IIII", header)
    return sequence if magic in WAL_MAGIC else None


def _postgres_figures(db: Database) -> dict[str, Any]:
    # Connections and standbys are the primary's: a transaction keeps these reads there.
    # A read-only one, ended by a rollback: a commit would count as this process's write
    # and send its next reads to the primary until a replica had replayed past it.
    with read_transaction(db):
        size = db.execute_sql("SELECT pg_database_size(current_database())").fetchone()[0]
        here, everywhere, limit, in_recovery = db.execute_sql(
            "SELECT count(*) FILTER (WHERE datname = current_database()), count(*), "
            "current_setting('max_connections')::int, pg_is_in_recovery() "
            "FROM pg_stat_activity WHERE backend_type = 'client backend'"
        ).fetchone()
        standbys = (
            ()
            if in_recovery
            else tuple(
                Standby(
                    name,
                    None if address is None else str(address),
                    state,
                    None if lag is None else float(lag),
                    None if behind is None else int(behind),
                )
                for name, address, state, lag, behind in db.execute_sql(
                    "SELECT application_name, client_addr, state, "
                    "EXTRACT(EPOCH FROM replay_lag), "
                    "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) "
                    "FROM pg_stat_replication ORDER BY application_name"
                ).fetchall()
            )
        )
    return dict(
        database_bytes=int(size),
        wal_bytes=None,
        wal_checkpoint_sequence=None,
        connections=int(here),
        server_connections=int(everywhere),
        max_connections=int(limit),
        standbys=standbys,
    )


#: The column whose value marks a soft-deleted row (:mod:`stocksbot_store.softdelete`).
DELETED_AT = "deleted_at"

# The tables of the connection's schema, each with whether it has a DELETED_AT column:
# the whole introspection in one statement (SQLite's table-valued pragma_table_info,
# PostgreSQL's catalogue), where Peewee's get_tables/get_columns take one per table.
_SCHEMA_SQL = {
    "sqlite": (
        "SELECT m.name, EXISTS (SELECT 1 FROM pragma_table_info(m.name) AS c "
        "WHERE c.name = {p}) FROM sqlite_master AS m WHERE m.type = 'table'"
    ),
    "postgres": (
        "SELECT c.relname, EXISTS (SELECT 1 FROM pg_attribute AS a WHERE a.attrelid = c.oid "
        "AND a.attname = {p} AND a.attnum > 0 AND NOT a.attisdropped) "
        "FROM pg_class AS c WHERE c.relnamespace = current_schema()::regnamespace "
        "AND c.relkind IN ('r', 'p')"
    ),
}


def _schema(db: Database) -> dict[str, bool]:
    """The tables ``db`` has, each with whether it has a ``deleted_at`` column.

    Read on every call, in one statement, rather than cached: knowing that a cache is
    still right would itself take a statement each time (SQLite's ``schema_version``;
    PostgreSQL keeps no such number, and the migration history misses tables made
    outside it), and a cache kept for the process would go wrong when a migration
    or a test changes the schema under a long-lived database object (a counting
    statement naming a table or column that has gone fails). One catalogue read
    costs what such a check costs and is never out of date.
    """
    sql = _SCHEMA_SQL[backend_of(db)].format(p=db.param)
    return {name: bool(soft) for name, soft in db.execute_sql(sql, (DELETED_AT,)).fetchall()}


def _table_rows(db: Database) -> dict[str, dict[str, int]]:
    """``table_rows`` (live rows) and ``deleted_rows`` (soft-deleted ones) in two
    statements whatever the number of tables: the schema (:func:`_schema`), then every
    count at once; a table whose schema has no ``deleted_at`` yet has none deleted."""
    schema = _schema(db)
    tables = [m._meta.table_name for m in MODELS if m._meta.table_name in schema]
    if not tables:
        return {"table_rows": {}, "deleted_rows": {}}
    soft = [m._meta.table_name for m in SOFT_DELETE_MODELS if schema.get(m._meta.table_name, False)]
    deleted = {t: f"SUM(CASE WHEN {DELETED_AT} IS NULL THEN 0 ELSE 1 END)" for t in soft}
    sql = " UNION ALL ".join(
        f"SELECT '{t}', count(*), {deleted.get(t, '0')} FROM \"{t}\"" for t in tables
    )
    rows = db.execute_sql(sql).fetchall()
    return {
        "table_rows": {t: int(n) - int(d or 0) for t, n, d in rows},
        "deleted_rows": {t: int(d or 0) for t, _, d in rows if t in soft},
    }


# -- rendering -----------------------------------------------------------------------


def format_text(s: StoreStats) -> str:
    """The figures as lines for people."""
    lines = [f"database: {s.database} ({s.backend})", f"size: {format_bytes(s.database_bytes)}"]
    if s.backend == "sqlite":
        wal = "none" if s.wal_bytes is None else format_bytes(s.wal_bytes)
        sequence = "-" if s.wal_checkpoint_sequence is None else s.wal_checkpoint_sequence
        lines.append(f"wal: {wal}, checkpoint sequence {sequence}")
    else:
        lines.append(
            f"connections: {s.connections} to this database, "
            f"{s.server_connections} of {s.max_connections} on the server"
        )
        for sb in s.standbys:
            lag = "-" if sb.replay_lag_seconds is None else f"{sb.replay_lag_seconds:.3f} s"
            lines.append(
                f"standby {sb.name or '?'} ({sb.address or 'local'}): {sb.state}, "
                f"replay lag {lag}, {format_bytes(sb.bytes_behind)} behind"
            )
    for r in s.replicas:
        lines.append(f"replica {r.url}: {r.describe()}")
    rows = ", ".join(f"{table} {count:,}" for table, count in s.table_rows.items())
    lines.append(f"rows: {rows or 'no store tables'}")
    if any(s.deleted_rows.values()):
        lines.append(
            "soft-deleted rows: "
            + ", ".join(f"{table} {count:,}" for table, count in s.deleted_rows.items())
        )
    if s.monitored_since is not None:
        lines.append(f"statements since {s.monitored_since:%Y-%m-%d %H:%M:%S} UTC:")
        for kind in KINDS:
            f = s.statements[kind]
            mean = f.seconds / f.count * 1000 if f.count else 0.0
            lines.append(
                f"  {kind:<5} {f.count:>9,}  {f.seconds:9.3f} s  mean {mean:.3f} ms"
                f"  max {f.max_seconds * 1000:.3f} ms  slow {f.slow}"
                f"  errors {f.errors}"
            )
    return "\n".join(lines)


def format_json(s: StoreStats) -> str:
    """The figures as one JSON object (times ISO 8601 UTC)."""
    data = dataclasses.asdict(s)
    return json.dumps(data, indent=2, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def format_prometheus(s: StoreStats, prefix: str = "stocksbot_store") -> str:
    """The figures in the Prometheus text exposition format (version 0.0.4)."""
    out: list[str] = []

    def family(
        name: str, kind: str, help_text: str, samples: list[tuple[str, dict[str, str], float]]
    ) -> None:
        out.append(f"# HELP {prefix}_{name} {_escape_help(help_text)}")
        out.append(f"# TYPE {prefix}_{name} {kind}")
        for suffix, labels, value in samples:
            out.append(f"{prefix}_{name}{suffix}{_labels(labels)} {_number(value)}")

    base = {"database": s.database, "backend": s.backend}
    family(
        "info",
        "gauge",
        "The database these figures are about (value is always 1).",
        [("", base, 1)],
    )
    if s.statements:
        family(
            "statements_total",
            "counter",
            "Statements run by this process, by kind.",
            [("", {"kind": k}, f.count) for k, f in s.statements.items()],
        )
        family(
            "statement_duration_seconds",
            "summary",
            "Time spent running statements, by kind.",
            [
                sample
                for k, f in s.statements.items()
                for sample in (("_sum", {"kind": k}, f.seconds), ("_count", {"kind": k}, f.count))
            ],
        )
        family(
            "statement_errors_total",
            "counter",
            "Statements that raised, by kind.",
            [("", {"kind": k}, f.errors) for k, f in s.statements.items()],
        )
        family(
            "slow_statements_total",
            "counter",
            "Statements slower than the slow_ms threshold, by kind.",
            [("", {"kind": k}, f.slow) for k, f in s.statements.items()],
        )
    if s.database_bytes is not None:
        family(
            "database_size_bytes", "gauge", "Size of the database.", [("", {}, s.database_bytes)]
        )
    if s.wal_bytes is not None:
        family(
            "wal_size_bytes",
            "gauge",
            "Size of the SQLite write-ahead log file.",
            [("", {}, s.wal_bytes)],
        )
    if s.wal_checkpoint_sequence is not None:
        family(
            "wal_checkpoint_sequence",
            "gauge",
            "Checkpoint sequence number in the SQLite WAL header.",
            [("", {}, s.wal_checkpoint_sequence)],
        )
    if s.connections is not None:
        family(
            "connections",
            "gauge",
            "Client connections to this database.",
            [("", {}, s.connections)],
        )
        family(
            "server_connections",
            "gauge",
            "Client connections to the whole server.",
            [("", {}, s.server_connections or 0)],
        )
        family(
            "server_max_connections",
            "gauge",
            "The server's max_connections setting.",
            [("", {}, s.max_connections or 0)],
        )
    if s.standbys:
        standbys = list(zip(_standby_labels(s.standbys), s.standbys, strict=True))
        family(
            "standby_replay_lag_seconds",
            "gauge",
            "Replay lag of each streaming standby, as the primary sees it.",
            [("", {"standby": name}, sb.replay_lag_seconds or 0.0) for name, sb in standbys],
        )
        family(
            "standby_behind_bytes",
            "gauge",
            "WAL the standby has not replayed yet, as the primary sees it.",
            [("", {"standby": name}, sb.bytes_behind or 0) for name, sb in standbys],
        )
    if s.replicas:
        family(
            "replica_up",
            "gauge",
            "1 if this process reads from the replica, 0 if it skips it.",
            [
                ("", {"replica": r.url, "state": r.state}, 1 if r.state == "ok" else 0)
                for r in s.replicas
            ],
        )
        family(
            "replica_lag_seconds",
            "gauge",
            "Replay lag of each read replica at its last check (NaN if unknown).",
            [
                ("", {"replica": r.url}, float("nan") if r.lag_seconds is None else r.lag_seconds)
                for r in s.replicas
            ],
        )
        family(
            "replica_reads_total",
            "counter",
            "Reads this process sent to each replica.",
            [("", {"replica": r.url}, r.reads) for r in s.replicas],
        )
    family(
        "table_rows",
        "gauge",
        "Rows in each of the store's tables (not soft-deleted).",
        [("", {"table": t}, n) for t, n in s.table_rows.items()],
    )
    if s.deleted_rows:
        family(
            "deleted_rows",
            "gauge",
            "Soft-deleted rows in each table that has them.",
            [("", {"table": t}, n) for t, n in s.deleted_rows.items()],
        )
    return "\n".join(out) + "\n"


def _standby_labels(standbys: tuple[Standby, ...]) -> list[str]:
    """A label per standby, different for each: its name, with its address where
    standbys share a name (every standby that keeps the default application_name is a
    ``walreceiver``), and a number where they share both. Prometheus rejects a page
    that repeats a series."""
    names = [sb.name for sb in standbys]
    labels = [
        name if names.count(name) == 1 else f"{name} ({sb.address or 'local'})"
        for name, sb in zip(names, standbys, strict=True)
    ]
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if labels.count(label) == 1 else f"{label} #{seen[label]}")
    return unique


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if value != value:
        return "NaN"
    return repr(float(value))


def format_bytes(value: int | None) -> str:
    """``value`` bytes for people: ``96.0 KiB``; ``-`` for None."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{value} B"


# -- command line --------------------------------------------------------------------

FORMATS = {"text": format_text, "json": format_json, "prometheus": format_prometheus}


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``stocksbot-stats``."""
    parser = ArgumentParser(
        prog="stocksbot-stats",
        description="Show a stocksbot store's figures: size, SQLite WAL size and checkpoint "
        "sequence, PostgreSQL connections and standby replication lag, read "
        "replicas, and rows per table. Opens the database read-only (a SQLite "
        "file with mode=ro), so it is safe to run while the bot trades.",
        epilog="Statement counts and timings are those of the process that opened the "
        "database; here that is this command's own few reads. A bot shows its own "
        "with stocksbot_store.stats(db), e.g. format_prometheus(stats(db)) on its "
        "metrics endpoint. Exit status: 0 figures printed; 2 they could not be read "
        "(bad URL, unreachable database, missing file; the reason is on stderr).",
    )
    parser.add_argument(
        "--url",
        metavar="URL",
        help="database URL, e.g. sqlite:///stocksbot.db or "
        "postgresql://user:password@host/db (default: $DATABASE_URL, "
        "else sqlite:///./stocksbot.db); $DATABASE_REPLICA_URL adds "
        "read replicas",
    )
    parser.add_argument(
        "--format",
        choices=sorted(FORMATS),
        default="text",
        help="text for people (default), json for scripts, prometheus for "
        "the Prometheus text exposition format",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Print the figures of the database at ``--url``; returns the exit status."""
    args = build_parser().parse_args(argv)
    url = database_url(args.url)
    try:
        db = connect(url, read_only=True)
        try:
            figures = stats(db)
        finally:
            if not db.is_closed():
                db.close()
    except (StorageError, PeeweeException, OSError) as e:
        message = str(e) if isinstance(e, StorageError) else first_line(e)
        print(f"stocksbot-stats: error: {scrub(message, url)}", file=sys.stderr)
        return 2
    print(FORMATS[args.format](figures), end="" if args.format == "prometheus" else "\n")
    return 0


def run() -> None:
    """Console-script entry point: ``sys.exit(main())``."""
    sys.exit(main())


if __name__ == "__main__":
    run()
