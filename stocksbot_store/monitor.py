"""Counting and timing every statement a database runs, and logging the slow ones.

:func:`attach_monitor` puts a :class:`StatementMonitor` in Peewee's query hooks
(``db.query_hooks``, called after each ``execute_sql`` with the statement, its
parameters and its duration); :func:`connect` does it for every database it
opens. The monitor keeps, per kind of statement, how many ran, how long they
took, how many failed and how many were slow; :func:`stocksbot_store.stats`
reads them.

Kinds are told from the first words of the statement, which costs a slice and a
``startswith``, because the fill path runs several statements per fill:

- ``fill``: the ``INSERT`` of a trade, so one per fill recorded by ``record_trade``;
- ``read``: ``SELECT``, ``WITH``, ``PRAGMA``, ``SHOW``, ``EXPLAIN``, ``VALUES``;
- ``write``: ``INSERT``, ``UPDATE``, ``DELETE``, ``REPLACE``, ``COPY``;
- ``other``: everything else (schema changes, savepoints, ``LISTEN``...).

Statements that bypass ``execute_sql`` are not seen: ``BEGIN``/``COMMIT`` and the
batched statements of ``record_trades`` go straight to the driver's cursor. A SQLite
fill's statements skip ``execute_sql``'s layers but are reported to the hooks as it
would (:class:`HookedCursor`).

A statement slower than ``slow_ms`` (``connect(..., slow_ms=50)`` or
``SQL_SLOW_MS=50``) is logged at WARNING through the logger
``stocksbot_store.slow`` with its time and :func:`mask_params` of its parameters.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from peewee import Database, QueryEvent
from peewee import __exception_wrapper__ as driver_errors  # type: ignore[attr-defined]

from .errors import ConfigurationError

slow_log = logging.getLogger("stocksbot_store.slow")
#: Peewee's logger, which echoes every statement at DEBUG (``SQL_ECHO``).
peewee_log = logging.getLogger("peewee")

KINDS = ("fill", "read", "write", "other")

_READ_WORDS = ("SELECT", "WITH", "PRAGMA", "SHOW", "EXPLAIN", "VALUES")
_FILL_WORDS = ("INSERT INTO TRADE ", 'INSERT INTO "TRADE"')
_WRITE_WORDS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "COPY")

#: Tables whose string values are never logged: config values may hold credentials, and
#: the audit log's row of a config change holds the value before and after.
SECRET_TABLES = ("config", "audit_log")
#: Values shown as they are; any other (a list, a JSON wrapper) only by its type, since
#: its text could hold a password in a form (escaped, nested) no check would find.
SHOWN_TYPES = (int, float, Decimal, dt.date, dt.time, dt.timedelta, uuid.UUID, type(None))
#: How much of a string parameter a log line shows, and how many parameters.
MAX_TEXT = 32
MAX_PARAMS = 20
#: Statement texts whose kind a monitor remembers (the store runs a few dozen texts over
#: and over; any beyond these are told apart again each time).
KINDS_KEPT = 512


def statement_kind(sql: str) -> str:
    """``"fill"``, ``"read"``, ``"write"`` or ``"other"``: what ``sql`` does (see module)."""
    head = sql[:24].lstrip().upper()
    if head.startswith(_READ_WORDS):
        return "read"
    if head.startswith(_FILL_WORDS):
        return "fill"
    if head.startswith(_WRITE_WORDS):
        return "write"
    return "other"


@dataclass(frozen=True)
class StatementFigures:
    """What the statements of one kind did since the monitor started."""

    count: int
    seconds: float
    max_seconds: float
    errors: int
    slow: int


class StatementMonitor:
    """A Peewee query hook that counts, times and logs the statements of one database.

    Thread-safe: every thread's statements go to the same figures under one lock
    (an uncontended lock costs well under a microsecond, a statement tens of them).
    """

    def __init__(self, slow_ms: float | None = None, secrets: Sequence[str] = ()) -> None:
        self.slow_seconds = None if slow_ms is None else slow_ms / 1000
        self.secrets = tuple(s for s in secrets if s)
        self.started_at = dt.datetime.now(dt.timezone.utc)
        self._lock = threading.Lock()
        # kind -> [count, seconds, max_seconds, errors, slow]
        self._figures: dict[str, list[Any]] = {kind: [0, 0.0, 0.0, 0, 0] for kind in KINDS}
        #: sql -> its kind, for the texts seen first (a look-up by a string's cached hash
        #: instead of a slice, an upper-casing and three prefix tests per statement).
        self._kinds: dict[str, str] = {}

    def __call__(self, event: QueryEvent) -> None:
        sql, duration = event.sql, event.duration
        kind = self._kinds.get(sql)
        if kind is None:
            kind = statement_kind(sql)
            if len(self._kinds) < KINDS_KEPT:
                self._kinds[sql] = kind
        slow = self.slow_seconds is not None and duration >= self.slow_seconds
        with self._lock:
            figures = self._figures[kind]
            figures[0] += 1
            figures[1] += duration
            if duration > figures[2]:
                figures[2] = duration
            if event.exception is not None:
                figures[3] += 1
            if slow:
                figures[4] += 1
        if slow:
            slow_log.warning(
                "slow %s statement: %.1f ms: %s %s",
                kind,
                duration * 1000,
                _shorten(sql, 2000),
                mask_params(sql, event.params, self.secrets),
            )

    def figures(self) -> dict[str, StatementFigures]:
        """A consistent copy of the figures, by kind."""
        with self._lock:
            return {kind: StatementFigures(*values) for kind, values in self._figures.items()}


class HookedCursor:
    """Runs statements on one cursor of a connection the caller holds (inside its
    transaction), each reported to the database's query hooks and logged for
    ``SQL_ECHO`` as ``execute_sql`` does, a driver error raised as peewee's. For a
    transaction of many small statements, as a SQLite fill is: ``execute_sql`` asks
    for the connection, opens a cursor and enters the error wrapper for each, which
    costs as much as a statement's work in SQLite."""

    __slots__ = ("db", "cursor", "hooks", "echo")

    def __init__(self, db: Database, conn: Any) -> None:
        self.db = db
        self.cursor = conn.cursor()
        self.hooks = db.query_hooks
        #: Whether peewee's logger echoes statements (``SQL_ECHO``), as it was when the
        #: caller's transaction began.
        self.echo = peewee_log.isEnabledFor(logging.DEBUG)

    def execute(self, sql: str, params: Sequence = ()) -> Any:
        """Run ``sql`` with ``params``; the cursor, holding its rows (read them before
        the next statement)."""
        if self.echo:
            self.db._log_query(sql, params)  # type: ignore[attr-defined]
        hooks = self.hooks
        if not hooks:
            try:
                return self.cursor.execute(sql, params)
            except Exception:
                with driver_errors:
                    raise
        start = time.perf_counter()
        try:
            cursor = self.cursor.execute(sql, params)
        except Exception as e:
            event = QueryEvent(sql, params, time.perf_counter() - start, e)
            for hook in hooks:
                hook(event)
            with driver_errors:
                raise
        event = QueryEvent(sql, params, time.perf_counter() - start, None)
        for hook in hooks:
            hook(event)
        return cursor


def mask_params(sql: str, params: Any, secrets: Sequence[str] = ()) -> str:
    """``params`` as a line safe to log: never a password, never a config value, nothing long.

    Every string value of a statement on a :data:`SECRET_TABLES` table is ``'***'``
    (the store cannot tell an API key from a label), so is any value equal to one of
    ``secrets`` (the database password); other strings are cut to :data:`MAX_TEXT`
    characters, bytes are shown by size, and past :data:`MAX_PARAMS` values only
    their number is given. Numbers, decimals and times are shown as they are; any
    other value (a list, a JSON wrapper) only by its type and size.
    """
    values = list(params or ())
    secret_table = _names_secret_table(sql)
    shown: list[str] = []
    for value in values[:MAX_PARAMS]:
        if isinstance(value, (bytes, bytearray, memoryview)):
            shown.append(f"<{len(value)} bytes>")
        elif isinstance(value, str):
            if secret_table or value in secrets or any(s in value for s in secrets):
                shown.append("'***'")
            elif len(value) > MAX_TEXT:
                shown.append(repr(value[:MAX_TEXT]) + f"...({len(value)} chars)")
            else:
                shown.append(repr(value))
        elif isinstance(value, SHOWN_TYPES):
            shown.append(_shorten(str(value), MAX_TEXT))
        else:
            size = f" of {len(value)}" if hasattr(value, "__len__") else ""
            shown.append(f"<{type(value).__name__}{size}>")
    if len(values) > MAX_PARAMS:
        shown.append(f"...({len(values) - MAX_PARAMS} more)")
    return "[" + ", ".join(shown) + "]"


def _names_secret_table(sql: str) -> bool:
    lowered = sql.lower()
    return any(
        f'"{t}"' in lowered or f" {t} " in lowered or lowered.endswith(f" {t}")
        for t in SECRET_TABLES
    )


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} chars)"


def slow_ms_setting(value: float | str | None = None) -> float | None:
    """The slow-statement threshold in ms: ``value``, else ``$SQL_SLOW_MS``, else None."""
    if value is None:
        value = os.environ.get("SQL_SLOW_MS", "").strip() or None
    if value is None:
        return None
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"slow_ms / SQL_SLOW_MS must be a number of milliseconds, not {value!r}"
        ) from None
    if threshold < 0:
        raise ConfigurationError(f"slow_ms / SQL_SLOW_MS must be >= 0, not {value!r}")
    return threshold


def attach_monitor(db: Database, slow_ms: float | str | None = None) -> StatementMonitor:
    """Start counting ``db``'s statements (and logging the slow ones); idempotent.

    ``slow_ms`` defaults to ``$SQL_SLOW_MS``; unset, nothing is logged. Calling it
    again on a monitored database changes the threshold and keeps the figures.
    """
    threshold = slow_ms_setting(slow_ms)
    monitor = monitor_of(db)
    if monitor is None:
        # The password as the driver gets it, and every form of it the URL holds
        # (percent-encoded, its pieces), as connect() found them.
        password = db.connect_params.get("password")
        secrets = (password or "", *getattr(db, "stocksbot_secrets", ()))
        monitor = StatementMonitor(threshold, secrets=secrets)
        db.query_hooks.append(monitor)
    else:
        monitor.slow_seconds = None if threshold is None else threshold / 1000
    return monitor


def monitor_of(db: Database) -> StatementMonitor | None:
    """The monitor :func:`attach_monitor` put on ``db``, or None."""
    for hook in getattr(db, "query_hooks", ()):
        if isinstance(hook, StatementMonitor):
            return hook
    return None
