"""The store's rows in canonical form: read in one snapshot, checked, written, compared.

Backups, archives and conversions all move rows through one form, so a row read
from SQLite and the same row read from PostgreSQL are the same bytes:

* integers as JSON numbers, booleans as ``true``/``false``;
* exact decimals as fixed-point text with :data:`~stocksbot_store.fields.SCALE`
  places (``"150.1000000000"``), times as UTC ISO text
  (``"2026-01-05 14:30:00.000000+00:00"``), the text SQLite stores them as and
  PostgreSQL parses back exactly;
* every other column (names, enums, JSON config) as its stored text.

One canonical row is one JSON array on one line (:func:`encode_row`); the
sha256 of a table's lines in id order is its digest, what an archive records
and what a conversion compares on both sides.

The tables are every model of :data:`stocksbot_store.models.MODELS` plus the
migration history, described from the models themselves (:func:`store_tables`),
so a table added to the models is carried without a change here. Reading is
keyset-paged (:data:`BATCH` rows a query) inside one snapshot
(:func:`~stocksbot_store.backends.read_transaction`): memory stays flat at any size.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from json.encoder import (  # type: ignore[attr-defined]  # CPython's, not in typeshed
    c_make_encoder,
    encode_basestring,
)
from typing import Any

from peewee import (
    AutoField,
    BooleanField,
    Database,
    ForeignKeyField,
    IntegerField,
    Model,
)

from .database import backend_of, describe
from .errors import StorageError
from .fields import (
    DERIVED_DIGITS,
    SCALE,
    EnumField,
    ExactDecimalField,
    JSONTextField,
    UTCDateTimeField,
    datetime_text,
    decimal_text,
    to_utc,
)
from .migration.runner import HISTORY_TABLE, Runner
from .models import MODELS

#: Rows read per query, and per batch handed on.
BATCH = 5_000

# Any figure the store keeps: below 10**DERIVED_DIGITS, with SCALE places.
_DECIMAL_TEXT = rf"-?\d{{1,{DERIVED_DIGITS}}}\.\d{{{SCALE}}}"
_TIME_TEXT = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00:00"
_DECIMAL = re.compile(_DECIMAL_TEXT)
_TIME = re.compile(_TIME_TEXT)
#: A whole column of canonical values joined by newlines, checked in one match.
_COLUMN = {
    "decimal": re.compile(f"{_DECIMAL_TEXT}(?:\n{_DECIMAL_TEXT})*"),
    "time": re.compile(f"{_TIME_TEXT}(?:\n{_TIME_TEXT})*"),
}

#: ``progress(table, done, total)``: ``done`` of ``total`` rows of ``table`` moved.
Progress = Callable[[str, int, int], None]

_ENCODER = c_make_encoder and c_make_encoder(
    None, None, encode_basestring, None, ":", ",", False, False, False
)


def encode_row(row: Sequence[Any]) -> str:
    """One canonical row as its line of JSON (without the newline)."""
    if _ENCODER is None:  # an interpreter without the C accelerator
        return json.dumps(row, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return "".join(_ENCODER(row, 0))


def encode_rows(rows: Sequence[Sequence[Any]]) -> bytes:
    """Canonical rows as their lines, each ending in a newline, in UTF-8.

    The batch is encoded as one JSON array and split between rows, at C speed; when
    some text value itself holds the row separator ``],[`` (so the split would be
    ambiguous) each row is encoded on its own."""
    if not rows:
        return b""
    if _ENCODER is not None:
        text = "".join(_ENCODER(rows, 0))
        if text.count("],[") == len(rows) - 1:
            return (text[1:-1].replace("],[", "]\n[") + "\n").encode()
    return "".join([encode_row(r) + "\n" for r in rows]).encode()


class VerificationError(StorageError):
    """A copy does not match its source (rows, checksum or ledger); it was not kept."""


@dataclass(frozen=True)
class Table:
    """One table as the canonical form sees it: its columns and what each holds."""

    name: str
    columns: tuple[str, ...]
    #: Per column: int, bool, decimal, time, enum, json or text.
    kinds: tuple[str, ...]
    nullable: tuple[bool, ...]
    #: Allowed values of each enum column (empty for other kinds).
    choices: tuple[frozenset[str], ...]
    #: Column that keyset paging orders by.
    key: str = "id"
    #: Column that ``since`` filters on, if the table has a time of its own.
    time_column: str | None = None

    def sql_columns(self, columns: Iterable[str] | None = None) -> str:
        return ", ".join(f'"{c}"' for c in (columns or self.columns))


def _kind(field: Any) -> str:
    if isinstance(field, BooleanField):
        return "bool"
    if isinstance(field, (AutoField, IntegerField, ForeignKeyField)):
        return "int"
    if isinstance(field, ExactDecimalField):
        return "decimal"
    if isinstance(field, UTCDateTimeField):
        return "time"
    if isinstance(field, EnumField):
        return "enum"
    if isinstance(field, JSONTextField):
        return "json"
    return "text"


def describe_model(model: type[Model]) -> Table:
    """The :class:`Table` of a model, from its fields."""
    fields = model._meta.sorted_fields
    names = {f.column_name for f in fields}
    time_column = next((c for c in ("executed_at", "updated_at", "created_at") if c in names), None)
    return Table(
        name=model._meta.table_name,
        columns=tuple(f.column_name for f in fields),
        kinds=tuple(_kind(f) for f in fields),
        nullable=tuple(bool(f.null) and not f.primary_key for f in fields),
        choices=tuple(
            frozenset(m.value for m in f.enum_class) if isinstance(f, EnumField) else frozenset()
            for f in fields
        ),
        time_column=time_column,
    )


def restrict(table: Table, columns: Iterable[str]) -> Table:
    """``table`` seen through ``columns`` only (those of an archive from an older schema)."""
    index = [table.columns.index(c) for c in columns]
    return Table(
        table.name,
        tuple(table.columns[i] for i in index),
        tuple(table.kinds[i] for i in index),
        tuple(table.nullable[i] for i in index),
        tuple(table.choices[i] for i in index),
        table.key,
        table.time_column,
    )


def kept_models() -> list[type[Model]]:
    """Every model whose rows a copy carries: the store's, then the tables ``migrate
    adopt`` keeps its report in (present only in an adopted database)."""
    from .adopt_report import REPORT_MODELS

    return [*MODELS, *REPORT_MODELS]


def store_tables(db: Database) -> list[Table]:
    """Every table a copy of the store carries: the models in dependency order, the
    adoption report's, then the migration history."""
    return [*(describe_model(m) for m in kept_models()), describe_model(Runner(db).History)]


def table_names() -> set[str]:
    """Names of every table a copy carries."""
    return {m._meta.table_name for m in kept_models()} | {HISTORY_TABLE}


def create_missing_tables(db: Database, names: Iterable[str]) -> None:
    """Create the tables among ``names`` that migrations do not make (the adoption
    report's) and ``db`` lacks, so a copy of an adopted store keeps its report."""
    present = set(db.get_tables())
    models = [
        m for m in kept_models() if m not in MODELS and m._meta.table_name in set(names) - present
    ]
    if models:
        with db.bind_ctx(models):
            db.create_tables(models)


# -- reading -----------------------------------------------------------------------------


def _canonical_decimal(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is str and _DECIMAL.fullmatch(value):
        return value
    try:
        return decimal_text(value if isinstance(value, Decimal) else Decimal(str(value)))
    except InvalidOperation:
        raise StorageError(f"{value!r} is stored where a decimal belongs") from None


def _canonical_time(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is str and len(value) == 32 and value.endswith("+00:00"):
        return value
    if isinstance(value, dt.datetime) and value.utcoffset() == dt.timedelta(0):
        return value.replace(tzinfo=dt.timezone.utc).isoformat(" ", "microseconds")
    return datetime_text(to_utc(value))


def _canonical_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


_CANONICAL = {"decimal": _canonical_decimal, "time": _canonical_time, "bool": _canonical_bool}


def _select(db: Database, table: Table) -> str:
    """The column list; PostgreSQL is asked for decimals and times as canonical text."""
    if backend_of(db) != "postgres":
        return table.sql_columns()
    parts = []
    for column, kind in zip(table.columns, table.kinds, strict=True):
        if kind == "decimal":
            parts.append(f'"{column}"::text')
        elif kind == "time":
            parts.append(
                f"""to_char("{column}" AT TIME ZONE 'UTC', """
                """'YYYY-MM-DD HH24:MI:SS.US"+00:00"')"""
            )
        else:
            parts.append(f'"{column}"')
    return ", ".join(parts)


def _page_sql(
    db: Database, table: Table, select: str, since: dt.datetime | None, batch: int
) -> tuple[str, list[Any]]:
    """One keyset page of ``table``: the statement (its first parameter is the last key
    read) and the parameters after it."""
    mark = db.param
    where, params = "", []
    if since is not None and table.time_column:
        value = since if backend_of(db) == "postgres" else datetime_text(to_utc(since))
        where, params = f' AND "{table.time_column}" >= {mark}', [value]
    sql = (
        f'SELECT {select} FROM "{table.name}" WHERE "{table.key}" > {mark}{where} '
        f'ORDER BY "{table.key}" LIMIT {int(batch)}'
    )
    return sql, params


def _canonical_column(values: Sequence[Any], kind: str) -> bool:
    """Whether a column of a batch is canonical already (one regex match for the whole
    batch: the values as the store writes them always are)."""
    present = [v for v in values if v is not None] if None in values else values
    if not present:
        return True
    try:
        joined = "\n".join(present)
    except TypeError:
        return False
    return joined.count("\n") == len(present) - 1 and _COLUMN[kind].fullmatch(joined) is not None


def canonical_batches(
    db: Database,
    table: Table,
    since: dt.datetime | None = None,
    batch: int = BATCH,
    after: Any = None,
) -> Iterator[list[Sequence[Any]]]:
    """The rows of ``table`` in canonical form, in key order, ``batch`` at a time
    (each row a tuple or a list).

    Call it inside :func:`~stocksbot_store.backends.read_transaction` for a consistent
    copy of several tables.
    ``since`` keeps the rows whose :attr:`Table.time_column` is at or after it;
    ``after`` starts after that key.
    """
    kinds = [(i, k) for i, k in enumerate(table.kinds) if k in _CANONICAL]
    key_index = table.columns.index(table.key)
    sql, params = _page_sql(db, table, _select(db, table), since, batch)
    last: Any = after if after is not None else -1 if table.key == "id" else ""
    while True:
        rows = db.execute_sql(sql, [last, *params]).fetchall()
        if not rows:
            return
        last = rows[-1][key_index]
        yield _canonical_rows(rows, kinds)


def _canonical_rows(rows: list[Any], kinds: list[tuple[int, str]]) -> list[Sequence[Any]]:
    """A fetched batch in canonical form (converted only where it is not already)."""
    columns = list(zip(*rows, strict=True))
    converters = [
        (i, _CANONICAL[k]) for i, k in kinds if k == "bool" or not _canonical_column(columns[i], k)
    ]
    if not converters:
        return rows
    out: list[Sequence[Any]] = []
    for row in rows:
        row = list(row)
        for i, convert in converters:
            row[i] = convert(row[i])
        out.append(row)
    return out


def canonical_lines(
    db: Database, table: Table, since: dt.datetime | None = None, batch: int = BATCH
) -> Iterator[tuple[int, bytes]]:
    """The canonical lines of ``table`` (what :func:`encode_rows` makes of
    :func:`canonical_batches`), as ``(rows, bytes)`` a batch at a time.

    The database builds the lines (SQLite's ``json_array``, PostgreSQL's ``to_json``
    and text casts) when its JSON is the same text as ours (checked once per
    process), and each batch is checked to be
    canonical by one regex match; a batch with any value that is not (a decimal
    stored as ``"0"``, a boolean stored as 2) falls back to :func:`canonical_batches`.
    Either way the bytes are the same.
    """
    line = _line_sql(db, table)
    if line is None:
        for rows in canonical_batches(db, table, since, batch):
            yield len(rows), encode_rows(rows)
        return
    sql, params = _page_sql(db, table, f'{line}, "{table.key}"', since, batch)
    pattern = _lines_pattern(table)
    last: Any = -1 if table.key == "id" else ""
    while True:
        rows = db.execute_sql(sql, [last, *params]).fetchall()
        if not rows:
            return
        text = "\n".join([row[0] for row in rows]) + "\n"
        if pattern.fullmatch(text) and text.count("\n") == len(rows):
            yield len(rows), text.encode()
        else:  # some value is not stored in canonical form: convert this batch in Python
            fixed = next(canonical_batches(db, table, since, batch, after=last))
            yield len(fixed), encode_rows(fixed)
        last = rows[-1][1]


#: Per backend and server version: whether the database writes JSON text as we do.
_JSON_AGREES: dict[tuple[str, str], bool] = {}
_PROBE = ["".join(map(chr, range(1, 0x80))) + "\u00e9\u2028\U0001f600", ""]


def _line_sql(db: Database, table: Table) -> str | None:
    """SQL that makes each row's canonical line in the database itself (one string to
    fetch per row instead of a value per column), or None where the database's JSON
    text differs from ours (checked once per backend version with a probe string)."""
    backend = backend_of(db)
    if backend == "sqlite":
        import sqlite3

        key, parts = (
            (backend, sqlite3.sqlite_version),
            [_sqlite_json(c, k) for c, k in zip(table.columns, table.kinds, strict=True)],
        )
        probe_sql = "SELECT json_array(?, ?)"
        line = f"json_array({', '.join(parts)})"
    else:
        key = (backend, str(db.server_version) if hasattr(db, "server_version") else "")
        parts = [_postgres_json(c, k) for c, k in zip(table.columns, table.kinds, strict=True)]
        probe_sql = "SELECT '[' || to_json(%s::text)::text || ',' || to_json(%s::text)::text || ']'"
        line = "'[' || " + " || ',' || ".join(parts) + " || ']'"
    if key not in _JSON_AGREES:
        try:
            with db.atomic():
                made = db.execute_sql(probe_sql, _PROBE).fetchone()[0]
        except Exception:  # a build without JSON functions
            made = None
        _JSON_AGREES[key] = made == encode_row(_PROBE)
    return line if _JSON_AGREES[key] else None


def _postgres_json(column: str, kind: str) -> str:
    """A PostgreSQL expression for the canonical JSON text of a column's value."""
    c = f'"{column}"'
    if kind == "int":
        return f"COALESCE({c}::text, 'null')"
    if kind == "bool":
        return f"CASE WHEN {c} THEN 'true' WHEN NOT {c} THEN 'false' ELSE 'null' END"
    if kind == "decimal":
        return f"""COALESCE('"' || {c}::text || '"', 'null')"""
    if kind == "time":
        return (
            f"""COALESCE('"' || to_char({c} AT TIME ZONE 'UTC', """
            f"""'YYYY-MM-DD HH24:MI:SS.US"+00:00"') || '"', 'null')"""
        )
    return f"COALESCE(to_json({c})::text, 'null')"


_STRING_TEXT = r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"'  # the loop unrolled: runs of plain text at once
_VALUE_TEXT = {
    "int": r"-?\d+",
    "bool": "true|false",
    "decimal": f'"{_DECIMAL_TEXT}"',
    "time": f'"{_TIME_TEXT}"',
    "enum": _STRING_TEXT,
    "json": _STRING_TEXT,
    "text": _STRING_TEXT,
}


def _lines_pattern(table: Table) -> re.Pattern[str]:
    """A regex that matches a batch of the table's canonical lines and nothing else:
    each value of the right kind (or null where the column allows it)."""
    values = [
        f"(?:{_VALUE_TEXT[k]}|null)" if n else f"(?:{_VALUE_TEXT[k]})"
        for k, n in zip(table.kinds, table.nullable, strict=True)
    ]
    line = r"\[" + ",".join(values) + r"\]\n"
    return re.compile(f"(?:{line})+")


def _sqlite_json(column: str, kind: str) -> str:
    """The ``json_array`` argument for a column (booleans become true/false)."""
    if kind == "bool":
        return f"""CASE "{column}" WHEN 1 THEN json('true') WHEN 0 THEN json('false') END"""
    return f'"{column}"'


def count_rows(db: Database, table: str) -> int:
    """How many rows ``table`` holds."""
    return db.execute_sql(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]


def digest(db: Database, table: Table) -> tuple[int, str]:
    """Row count and sha256 of the canonical lines of ``table`` in ``db``."""
    sha, count = hashlib.sha256(), 0
    for rows, lines in canonical_lines(db, table):
        sha.update(lines)
        count += rows
    return count, sha.hexdigest()


# -- checking rows from outside ---------------------------------------------------------------


def check_value(table: Table, index: int, value: Any) -> str | None:
    """Why ``value`` cannot be column ``index`` of ``table`` in canonical form, or None."""
    if value is None:
        return None if table.nullable[index] else "is null; the column requires a value"
    kind = table.kinds[index]
    if kind == "int":
        ok = type(value) is int
    elif kind == "bool":
        ok = type(value) is bool
    elif type(value) is not str:
        ok = False
    elif kind == "decimal":
        ok = _DECIMAL.fullmatch(value) is not None
    elif kind == "time":
        ok = _TIME.fullmatch(value) is not None and _parses_time(value)
    elif kind == "enum":
        ok = value in table.choices[index]
    elif kind == "json":
        ok = _parses_json(value)
    else:
        ok = True
    if ok:
        return None
    expected = {
        "int": "an integer",
        "bool": "true or false",
        "decimal": f"a decimal with {SCALE} places and at most {DERIVED_DIGITS} "
        'digits before the point ("150.1000000000")',
        "time": 'a UTC time ("2026-01-05 14:30:00.000000+00:00")',
        "enum": "one of " + ", ".join(sorted(table.choices[index])),
        "json": "JSON text",
        "text": "text",
    }[kind]
    return f"is {json.dumps(value)[:60]}, not {expected}"


def _parses_time(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _parses_json(value: str) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


# -- writing -----------------------------------------------------------------------------------


def write_rows(
    db: Database, table: Table, columns: tuple[str, ...], batches: Iterable[list[Sequence[Any]]]
) -> None:
    """Insert canonical rows into ``table`` (``COPY`` on PostgreSQL, ``executemany`` on
    SQLite), in the caller's transaction. Canonical values are what both backends take
    as parameters: decimal and time text, booleans, integers."""
    names = ", ".join(f'"{c}"' for c in columns)
    cursor = db.cursor()
    if backend_of(db) == "postgres" and hasattr(cursor, "copy"):
        with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for rows in batches:
                for row in rows:
                    copy.write_row(row)
        return
    marks = ", ".join([db.param] * len(columns))
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})'
    for rows in batches:
        cursor.executemany(sql, rows)


def set_sequences(db: Database, tables: Iterable[Table]) -> None:
    """On PostgreSQL, move each table's id sequence past its highest id (rows were
    written with their ids, which does not advance the sequence)."""
    if backend_of(db) != "postgres":
        return
    present = set(db.get_tables())
    for table in tables:
        if table.key != "id" or table.name not in present:
            continue
        db.execute_sql(
            f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), "
            f'COALESCE(MAX("id"), 0) + 1, false) FROM "{table.name}"'
        )


def rows_held(db: Database) -> dict[str, int]:
    """Rows in each store table that exists in ``db`` (the history not counted)."""
    present = set(db.get_tables())
    return {
        m._meta.table_name: count_rows(db, m._meta.table_name)
        for m in MODELS
        if m._meta.table_name in present
    }


def require_empty(db: Database) -> None:
    """Refuse a target that holds any row: a copy goes into an empty database only."""
    held = {name: n for name, n in rows_held(db).items() if n}
    if held:
        listed = ", ".join(f"{name} {n:,}" for name, n in held.items())
        raise StorageError(
            f"{describe(db)} is not empty ({listed} rows): a copy goes into an empty or new "
            "database only, so nothing was written; create a new database and use its URL"
        )
