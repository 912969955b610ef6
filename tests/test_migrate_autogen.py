"""Autogenerate: a changed model gives a migration that applies and leaves no drift.

Version 1 of a small test schema is created from a generated ``0001``; version 2
adds a column (NOT NULL without a default, so existing rows need a value), adds a
nullable one, drops one, makes a column NOT NULL, widens a type, changes a server
default and adds an index. The generated ``0002`` must apply to tables with rows,
leave ``check`` clean and keep the rows, on every backend.
"""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

from peewee import SQL, CharField, ForeignKeyField, IntegerField, Model, TextField

from stocksbot_store import StorageService, connect
from stocksbot_store.fields import ExactDecimalField, UTCDateTimeField, utcnow
from stocksbot_store.migration.drift import compare
from stocksbot_store.migration.render import render
from stocksbot_store.migration.runner import Runner, migrations_directory


class Item(Model):
    code = CharField(max_length=10)
    qty = IntegerField(null=True)
    old = TextField(null=True)
    price = ExactDecimalField(default=Decimal("1.5"))
    status = CharField(max_length=8, constraints=[SQL("DEFAULT 'new'")])
    created = UTCDateTimeField(default=utcnow)

    class Meta:
        table_name = "item"


class Tag(Model):
    item = ForeignKeyField(Item, on_delete="CASCADE")
    label = CharField(max_length=20)

    class Meta:
        table_name = "tag"


class Item2(Model):
    code = CharField(max_length=40, index=True)  # wider type, new index
    qty = IntegerField()  # NULL -> NOT NULL, no default: existing NULLs get a value
    price = ExactDecimalField(default=Decimal("1.5"))
    status = CharField(max_length=8, constraints=[SQL("DEFAULT 'open'")])  # default changed
    created = UTCDateTimeField(default=utcnow)
    note = TextField()  # new NOT NULL column without a default
    stop_price = ExactDecimalField(null=True)  # new nullable column
    # "old" dropped

    class Meta:
        table_name = "item"


class Tag2(Model):
    item = ForeignKeyField(Item2, on_delete="CASCADE")
    label = CharField(max_length=20)
    origin = ForeignKeyField(Item2, null=True, backref="origin_of")  # new foreign-key column

    class Meta:
        table_name = "tag"


class Memo(Model):  # a new table that refers to an existing one
    item = ForeignKeyField(Item2, null=True, on_delete="SET NULL")
    text = TextField()

    class Meta:
        table_name = "memo"


V1, V2 = [Item, Tag], [Item2, Tag2, Memo]


def write(folder: Path, runner: Runner, message: str, models) -> Path:
    drift = compare(runner.database, models)
    assert drift, "nothing to generate"
    return Path(runner.create(message, body=render(drift, message, runner.database)))


def test_generated_migration_applies_and_leaves_no_drift(db_url, tmp_path):
    db = connect(db_url, migrate=False)
    folder = tmp_path / "migrations"
    runner = Runner(db, str(folder))
    first = write(folder, runner, "test schema", V1)
    assert runner.upgrade() == [first.stem]
    assert not compare(db, V1)

    with db.bind_ctx(V1):
        item = Item.create(code="A1", old="gone", qty=None)
        Item.create(code="B2", qty=7)
        Tag.create(item=item, label="red")

    second = write(folder, runner, "item v2", V2)
    source = second.read_text()
    compile(source, str(second), "exec")
    assert "Renames cannot be detected" in source
    assert "REVIEW item.note" in source and "REVIEW item.qty" in source
    assert runner.upgrade() == [second.stem]
    assert not compare(db, V2), str(compare(db, V2))

    with db.bind_ctx(V2):
        rows = {i.code: i for i in Item2.select()}
        assert set(rows) == {"A1", "B2"}
        assert rows["A1"].qty == 0 and rows["B2"].qty == 7
        assert rows["A1"].note == "" and rows["A1"].stop_price is None
        assert rows["A1"].price == Decimal("1.5")
        assert [t.label for t in Tag2.select()] == ["red"]
        wide = Item2.create(code="C" * 40, qty=1, note="wide")  # the widened type holds it
        Memo.create(item=wide, text="refers to an existing table")
        Tag2.update(origin=wide).execute()
    status = db.execute_sql(
        'INSERT INTO "item" ("code", "qty", "price", "created", "note") '
        "VALUES ('D', 1, '1', '2026-01-01 00:00:00+00:00', 'x') "
        'RETURNING "status"'
    ).fetchone()[0]
    assert status == "open"

    assert runner.downgrade("-1") == [second.stem]
    assert [c.name for c in db.get_columns("item")].count("old") == 1
    assert db.execute_sql('SELECT COUNT(*) FROM "tag"').fetchone()[0] == 1
    db.close()


def test_sqlite_column_change_keeps_child_rows_and_indexes(tmp_path):
    """Changing a column of a parent table rebuilds it; its children must survive."""
    db = connect(f"sqlite:///{tmp_path / 'rebuild.db'}")
    storage = StorageService(db)
    strategy = storage.create_strategy("s1")
    order = storage.create_order("AAPL", "buy", "market", "5", strategy=strategy.id)
    storage.record_trade(order.id, "AAPL", "buy", "5", "10")
    indexes = sorted(i.sql for t in ("strategy", "order") for i in db.get_indexes(t))
    folder = tmp_path / "migrations"
    folder.mkdir()
    for shipped in Path(migrations_directory()).glob("[0-9]*.py"):
        shutil.copy(shipped, folder)
    (folder / "0902_wider.py").write_text(
        "from peewee import CharField\n"
        "from stocksbot_store.migration.ops import alter_type\n\n\n"
        "def upgrade(migrator, db):\n"
        "    alter_type(migrator, db, 'strategy', 'name', CharField(max_length=300, unique=True))\n"
        "    alter_type(migrator, db, 'order', 'symbol', CharField(max_length=100))\n\n\n"
        "def downgrade(migrator, db):\n"
        "    pass\n"
    )
    runner = Runner(db, str(folder))
    assert runner.upgrade() == ["0902_wider"]
    assert db.execute_sql('SELECT "strategy_id" FROM "order"').fetchall() == [(strategy.id,)]
    assert db.execute_sql('SELECT "order_id" FROM "trade"').fetchall() == [(order.id,)]
    assert sorted(i.sql for t in ("strategy", "order") for i in db.get_indexes(t)) == indexes
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    db.close()
