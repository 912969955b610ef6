"""How the live database differs from the models: the drift ``check`` reports.

:func:`compare` starts from ``playhouse.schema_diff.diff_models`` (tables to
create, columns to add or drop, indexes to add or drop) and adds what it does not
look at, for every column that the models and the database both have:

* the column **type**, compared through the backend's mapping of the store's
  custom types (``EXACT_DECIMAL`` is ``TEXT`` on SQLite and ``NUMERIC`` on
  PostgreSQL, see :data:`stocksbot_store.fields.FIELD_TYPES`), so an
  ``ExactDecimalField`` matches a ``numeric`` column and a ``TEXT`` one alike;
* **NULL** or NOT NULL;
* the **server default**: a ``DEFAULT`` the model declares with
  ``constraints=[SQL("DEFAULT ...")]``. A Python-side ``default=`` is applied by
  Peewee when it inserts a row and is not part of the schema, so it is not
  compared (it is used to fill existing rows when a NOT NULL column is added).

A renamed table or column looks like a drop plus an add: no differ can tell them
apart, so a generated migration says so and a person decides.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from peewee import SQL, Database, Field, Model
from playhouse.schema_diff import IndexDiff, SchemaDiff, diff_models

#: Type names as each backend reports them, spelled the way Peewee's DDL spells them.
_TYPE_ALIASES = {
    "character varying": "varchar",
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "double precision": "real",
    "float": "real",
    "double": "real",
    "int": "integer",
    "int4": "integer",
    "int8": "bigint",
    "bool": "boolean",
    "character": "char",
}


@dataclass(frozen=True)
class ColumnChange:
    """One column whose type, NULL-ness or server default differs from its field."""

    field: Field
    kind: str  # "type", "null" or "default"
    database: str | bool | None  # what the database has
    model: str | bool | None  # what the model wants

    @property
    def table(self) -> str:
        return self.field.model._meta.table_name

    @property
    def column(self) -> str:
        return self.field.column_name

    def __str__(self) -> str:
        if self.kind == "null":
            wanted = "NULL" if self.model else "NOT NULL"
            return f"alter column {self.table}.{self.column}: make it {wanted}"
        return (
            f"alter column {self.table}.{self.column}: {self.kind} "
            f"{self.database!r} -> {self.model!r}"
        )


@dataclass
class Drift:
    """Every difference between the models and the database (falsy when none)."""

    diff: SchemaDiff
    changes: list[ColumnChange] = field(default_factory=list)
    models: list[type[Model]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.diff) or bool(self.changes)

    def lines(self) -> list[str]:
        """One human-readable line per difference."""
        text = str(self.diff) if self.diff else ""
        return [line for line in text.splitlines() if line] + [str(c) for c in self.changes]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def compare(db: Database, models: Sequence[type[Model]]) -> Drift:
    """The drift between ``models`` and the schema of ``db`` (see the module docstring)."""
    diff = diff_models(db, list(models))
    created = set(diff.create_tables)
    changes: list[ColumnChange] = []
    for model in models:
        if model in created:
            continue
        columns = {c.name: c for c in db.get_columns(model._meta.table_name)}
        for fld in model._meta.sorted_fields:
            column = columns.get(fld.column_name)
            if column is None or fld.primary_key:
                continue
            wanted_type = expected_type(db, fld)
            if normalize_type(column.full_type or column.data_type) != wanted_type:
                changes.append(ColumnChange(fld, "type", column.full_type, wanted_type))
            if bool(column.null) != bool(fld.null):
                changes.append(ColumnChange(fld, "null", bool(column.null), bool(fld.null)))
            have, want = normalize_default(column.default), server_default(fld)
            if have != want:
                changes.append(ColumnChange(fld, "default", have, want))
    return Drift(diff, changes, list(models))


def expected_type(db: Database, fld: Field) -> str:
    """The normalized column type ``fld`` gets on ``db`` (custom types mapped)."""
    ctx = db.get_sql_context()
    sql, _ = ctx.sql(fld.ddl_datatype(ctx)).query()
    return normalize_type(sql)


def normalize_type(name: str) -> str:
    """A type name in one spelling: lower case, aliases resolved, no blanks."""
    text = re.sub(r"\s+", " ", name.strip().lower())
    base, _, rest = text.partition("(")
    base = _TYPE_ALIASES.get(base.strip(), base.strip())
    return base + ("(" + rest.replace(" ", "") if rest else "")


def server_default(fld: Field) -> str | None:
    """The ``DEFAULT`` text a field declares in its constraints, normalized, or None."""
    for constraint in fld.constraints or ():
        if isinstance(constraint, SQL):
            match = re.match(r"\s*default\s+(.+)$", constraint.sql, re.I | re.S)
            if match:
                return normalize_default(match.group(1))
    return None


def normalize_default(text: str | None) -> str | None:
    """A reflected default in one spelling: PostgreSQL casts and parentheses removed."""
    if text is None:
        return None
    value = text.strip()
    while value.startswith("(") and value.endswith(")"):
        value = value[1:-1].strip()
    value = re.sub(r"(::[\w ]+(\(\d+(,\d+)?\))?)+$", "", value).strip()
    if value.lower() == "null":
        return None
    return value


def model_index(model: type[Model], name: str) -> Any:  # a peewee Index
    """The ``Index`` object of ``model`` called ``name`` (a partial index), or None."""
    for index in model._meta.fields_to_index():
        if getattr(index, "_name", None) == name:
            return index
    return None


def database_index_sql(db: Database, diff: IndexDiff) -> str | None:
    """The ``CREATE INDEX`` statement the database holds for a dropped index."""
    for index in db.get_indexes(diff.table):
        if index.name == diff.name:
            return index.sql
    return None
