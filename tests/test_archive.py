"""The portable archive: export, import, and what it refuses.

Round trip SQLite -> archive -> PostgreSQL -> archive -> SQLite keeps every row
byte for byte and the same strategy figures. A damaged or hostile archive
(truncated, an edited checksum, an unknown table, a malformed decimal, a newer
schema revision) is refused with a message that names the problem, and nothing is
written to the target.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import fresh_database_url, fresh_pg_database
from every_row import fill_every_kind
from test_convert import canonical, make_store, stats

from stocksbot_store import connect, export_archive, import_archive
from stocksbot_store.archive import ArchiveError
from stocksbot_store.buckets import AMOUNTS, PARTS, join
from stocksbot_store.check import check_ledger
from stocksbot_store.commands import export_main, import_main
from stocksbot_store.errors import SchemaError, StorageError
from stocksbot_store.models import MODELS, PnlBucket
from stocksbot_store.rows import VerificationError, describe_model, rows_held
from stocksbot_store.runner import HISTORY_TABLE, Runner, migrations_directory

#: The shipped migrations in order; an archive of a new store is at the last of them.
SHIPPED = sorted(p.stem for p in Path(migrations_directory()).glob("[0-9]*.py"))
HEAD = SHIPPED[-1]
#: A complete archive of a store holds every model's table, then the migration history.
TABLE_FILES = [f"{m._meta.table_name}.jsonl" for m in MODELS] + [f"{HISTORY_TABLE}.jsonl"]
#: The tables the first migration makes.
FIRST_TABLES = ["strategy", "position", "order", "trade", "config"]


def export(url: str, out: Path, **options) -> Path:
    db = connect(url)
    try:
        export_archive(db, str(out), **options)
    finally:
        db.close()
    return out


def test_round_trip_sqlite_archive_postgres_archive_sqlite(tmp_path):
    source = f"sqlite:///{tmp_path / 'source.db'}"
    back = f"sqlite:///{tmp_path / 'back.db'}"
    make_store(source)
    first = export(source, tmp_path / "first")
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["revision"] == HEAD and manifest["complete"]
    assert [t["file"] for t in manifest["tables"]] == TABLE_FILES
    with fresh_pg_database() as pg_url:
        report = import_archive(str(first), pg_url)
        assert report.ledger.ok and report.rows["trade"] == 8
        second = export(pg_url, tmp_path / "second")
        pg_stats = stats(pg_url)
    import_archive(str(second), back)
    for name in TABLE_FILES:  # byte for byte, whichever backend wrote it
        if name == "audit_log.jsonl":  # the second holds the first's, then the import's
            assert (second / name).read_bytes().startswith((first / name).read_bytes())
            continue
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert canonical(back) == canonical(source)
    assert stats(back) == stats(source) == pg_stats
    line = (first / "trade.jsonl").read_text().splitlines()[0]
    assert '"100.2500000000"' in line and '"2026-03-02 14:30:00.123456+00:00"' in line


def test_csv_export_has_a_header_and_is_not_imported(tmp_path):
    source = f"sqlite:///{tmp_path / 'source.db'}"
    make_store(source)
    out = export(source, tmp_path / "csv", file_format="csv")
    lines = (out / "config.csv").read_text().splitlines()
    assert lines[0] == (
        "id,key,value,value_type,description,created_at,updated_at,deleted_at,deleted_by"
    )
    assert len(lines) == 7  # five settings and one soft-deleted
    strategy = (out / "strategy.csv").read_text()
    assert '"quotes "" and , commas\nand a newline, ünïcode"' in strategy
    assert ",true,true," in strategy and ",false,true," in strategy
    with pytest.raises(ArchiveError, match="import needs a jsonl archive"):
        import_archive(str(out), f"sqlite:///{tmp_path / 'x.db'}")
    assert not (tmp_path / "x.db").exists()


def test_partial_exports(tmp_path):
    source = f"sqlite:///{tmp_path / 'source.db'}"
    make_store(source)
    only = export(source, tmp_path / "only", tables=["trade", "config"])
    assert sorted(p.name for p in only.iterdir()) == [
        "config.jsonl",
        "manifest.json",
        "trade.jsonl",
    ]
    import datetime as dt

    since = export(
        source, tmp_path / "since", since=dt.datetime(2026, 3, 5, tzinfo=dt.timezone.utc)
    )
    assert len((since / "trade.jsonl").read_text().splitlines()) == 4  # BBB x2, DDD x2
    for partial in (only, since):
        with pytest.raises(ArchiveError, match="part of a store"):
            import_archive(str(partial), f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ArchiveError, match="no table nope"):
        export(source, tmp_path / "bad", tables=["nope"])
    with pytest.raises(ArchiveError, match="not an empty folder"):
        export(source, only)


def _rewrite(folder: Path, name: str, text: str) -> None:
    """Replace a table file and make the manifest agree with it (a careful forger)."""
    (folder / name).write_text(text)
    manifest = json.loads((folder / "manifest.json").read_text())
    data = text.encode()
    for entry in manifest["tables"]:
        if entry["file"] == name:
            entry.update(
                bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                rows=text.count("\n"),
                blocks=[[text.count("\n"), len(data), hashlib.sha256(data).hexdigest()]],
            )
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _truncate(folder: Path) -> None:
    path = folder / "trade.jsonl"
    path.write_bytes(path.read_bytes()[:-40])


def _edit_checksum(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["tables"][3]["sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _flip_a_byte(folder: Path) -> None:
    path = folder / "order.jsonl"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _unknown_table(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    text = '[1,"x"]\n'
    manifest["tables"].append(
        {
            "name": "secrets",
            "file": "secrets.jsonl",
            "columns": ["id", "value"],
            "rows": 1,
            "bytes": len(text),
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "blocks": [[1, len(text), hashlib.sha256(text.encode()).hexdigest()]],
        }
    )
    (folder / "secrets.jsonl").write_text(text)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _malformed_decimal(folder: Path) -> None:
    lines = (folder / "trade.jsonl").read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"105.0000000000"', '"1O5.0000000000"')
    _rewrite(folder, "trade.jsonl", "".join(lines))


def _cut_down(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["tables"] = [t for t in manifest["tables"] if t["name"] != "config"]
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _newer_revision(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["history"].append("9999_from_the_future")
    manifest["revision"] = "9999_from_the_future"
    (folder / "manifest.json").write_text(json.dumps(manifest))


HOSTILE = {
    "truncated": (
        _truncate,
        ArchiveError,
        r"trade.jsonl is truncated: it ends at byte "
        r"[\d,]+, in rows 1-8",
    ),
    "edited checksum": (
        _edit_checksum,
        ArchiveError,
        "trade.jsonl: its sha256 is .* the manifest says 0000",
    ),
    "flipped byte": (
        _flip_a_byte,
        ArchiveError,
        r"order.jsonl is damaged in rows 1-8 "
        r"\(bytes 0-[\d,]+\)",
    ),
    "unknown table": (
        _unknown_table,
        ArchiveError,
        "secrets, which are not part of a stocksbot store",
    ),
    "malformed decimal": (
        _malformed_decimal,
        ArchiveError,
        r"trade.jsonl line 3 \(byte [\d,]+\): price is \"1O5.0000000000\", "
        "not a decimal",
    ),
    "table left out": (_cut_down, ArchiveError, "says it is complete but has no config"),
    "newer revision": (
        _newer_revision,
        SchemaError,
        "9999_from_the_future, newer than this version",
    ),
}


@pytest.mark.parametrize("target", ["sqlite_file", "postgres"])
@pytest.mark.parametrize("damage", list(HOSTILE))
def test_a_hostile_archive_is_refused_and_nothing_is_written(damage, target, tmp_path):
    source = f"sqlite:///{tmp_path / 'source.db'}"
    make_store(source)
    folder = export(source, tmp_path / "archive")
    change, error, message = HOSTILE[damage]
    change(folder)
    with fresh_database_url(target, tmp_path) as url:
        with pytest.raises(error, match=message):
            import_archive(str(folder), url)
        if target == "sqlite_file":
            assert not Path(url.split(":///", 1)[1]).exists()
        else:
            db = connect(url, migrate=False)
            assert set(rows_held(db).values()) <= {0}
            db.close()


def test_an_archive_from_an_older_schema_is_migrated(tmp_path, monkeypatch):
    source = f"sqlite:///{tmp_path / 'source.db'}"
    make_store(source)
    folder = export(source, tmp_path / "archive")
    newer = tmp_path / "migrations"
    newer.mkdir()
    for name in SHIPPED:
        shutil.copy(Path(migrations_directory()) / f"{name}.py", newer)
    index = f"{len(SHIPPED) + 1:04d}_trade_price_index"
    (newer / f"{index}.py").write_text(
        "def upgrade(migrator, db):\n"
        "    db.execute_sql('CREATE INDEX trade_price ON trade (price)')\n\n\n"
        "def downgrade(migrator, db):\n"
        "    db.execute_sql('DROP INDEX trade_price')\n"
    )
    monkeypatch.setenv("STOCKSBOT_MIGRATIONS", str(newer))
    target = f"sqlite:///{tmp_path / 'target.db'}"
    report = import_archive(str(folder), target)
    assert report.upgraded == [index]
    db = connect(target)
    names = [r[0] for r in db.execute_sql("SELECT name FROM schema_migration ORDER BY id")]
    db.close()
    assert names == [*SHIPPED, index]
    assert canonical(target)["trade"] == canonical(source)["trade"]


def test_import_refuses_a_store_with_rows(tmp_path):
    source = f"sqlite:///{tmp_path / 'source.db'}"
    make_store(source)
    folder = export(source, tmp_path / "archive")
    with pytest.raises(StorageError, match="not empty"):
        import_archive(str(folder), source)


def test_export_and_import_commands(tmp_path, capsys):
    source = f"sqlite:///{tmp_path / 'source.db'}"
    make_store(source)
    out = tmp_path / "exported"
    assert export_main(["--url", source, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"archive: {out} (jsonl" in printed and "trade 8" in printed
    assert f"schema revision: {HEAD}" in printed
    target = f"sqlite:///{tmp_path / 'imported.db'}"
    assert import_main([str(out), "--url", target]) == 0
    assert "ledger OK" in capsys.readouterr().out
    assert import_main([str(out), "--url", target]) == 2
    assert "not empty" in capsys.readouterr().err
    assert import_main([str(tmp_path), "--url", target]) == 2
    assert "has no manifest.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        export_main(["--url", source, "--since", "yesterday"])
    assert bad.value.code == 2 and "is not a date" in capsys.readouterr().err


def test_every_kind_of_row_is_in_the_fixture(tmp_path):
    """The copy tests are only as good as their store: it has every kind of row."""
    db = connect(f"sqlite:///{tmp_path / 'kinds.db'}")
    from stocksbot_store import StorageService, init_db

    init_db(db)
    fill_every_kind(StorageService(db))
    kinds = {
        "order statuses": 'SELECT DISTINCT status FROM "order"',
        "order types": 'SELECT DISTINCT type FROM "order"',
        "trade types": "SELECT DISTINCT type FROM trade",
        "config types": "SELECT DISTINCT value_type FROM config",
    }
    found = {k: {r[0] for r in db.execute_sql(sql)} for k, sql in kinds.items()}
    db.close()
    assert found == {
        "order statuses": {"filled", "cancelled", "pending", "rejected"},
        "order types": {"market", "limit", "stop", "stop_limit"},
        "trade types": {"open", "close", "adjustment"},
        "config types": {"string", "int", "float", "bool", "json"},
    }


@pytest.mark.parametrize("backend", ["sqlite_file", "postgres"])
def test_lines_made_by_the_database_equal_the_python_form(backend, tmp_path):
    """The database writes the lines itself (SQLite json_array, PostgreSQL to_json)
    when the values are canonical; a batch with a value stored some other way is
    converted in Python; the bytes are the same either way, batch by batch."""
    from stocksbot_store import StorageService

    with fresh_database_url(backend, tmp_path) as url:
        make_store(url)
        db = connect(url)
        _check_lines(db, StorageService(db))
        db.close()


def _check_lines(db, storage) -> None:
    from stocksbot_store.rows import (
        _line_sql,
        canonical_batches,
        canonical_lines,
        encode_rows,
        store_tables,
    )

    tables = [t for t in store_tables(db) if t.name in db.get_tables()]
    assert all(_line_sql(db, t) for t in tables)  # the database makes them

    # Stored directly: the service refuses control characters, a database may still
    # hold them (written by older code), and its lines must still be exact.
    storage.create_strategy("odd")
    db.execute_sql(
        f"UPDATE strategy SET description = {db.param} WHERE name = 'odd'",
        ('tab\t ctrl\x01\x1f quote" back\\ ],[ é \u2028 😀',),
    )
    db.execute_sql("UPDATE \"order\" SET filled_quantity = '0' WHERE status = 'pending'")
    if db.param == "?":
        db.execute_sql("UPDATE strategy SET is_enabled = 2 WHERE name = 'idle'")
        db.execute_sql("UPDATE trade SET executed_at = '2026-03-02T14:30:00Z' WHERE id = 2")
    else:
        db.execute_sql("UPDATE trade SET executed_at = '2026-03-02T15:30:00+01' WHERE id = 2")
    for table in tables:
        for size in (2, 1000):
            fast = [lines for _, lines in canonical_lines(db, table, batch=size)]
            slow = [encode_rows(rows) for rows in canonical_batches(db, table, batch=size)]
            assert fast == slow, table.name
    order_lines = b"".join(lines for _, lines in canonical_lines(db, store_tables(db)[2]))
    assert b',"0.0000000000",' in order_lines
    trade_lines = b"".join(lines for _, lines in canonical_lines(db, store_tables(db)[3]))
    assert b'"2026-03-02 14:30:00.000000+00:00"' in trade_lines


def test_figures_past_the_input_limit_survive_the_round_trip(tmp_path):
    """Derived figures (cost basis, realized P&L) may have up to 30 digits before the
    point, twice what an input may: the archive carries and accepts them."""
    from stocksbot_store import StorageService, init_db

    source = f"sqlite:///{tmp_path / 'big.db'}"
    db = init_db(connect(source))
    storage = StorageService(db)
    for side, price in (("buy", "1.5"), ("sell", "999999999999.25")):
        order = storage.create_order("BIG", side, "market", "99999999999999")
        storage.record_trade(order.id, "BIG", side, "99999999999999", price)
    db.close()
    folder = export(source, tmp_path / "archive")
    assert '"99999999999774000000000002.2500000000"' in (folder / "trade.jsonl").read_text()
    with fresh_pg_database() as pg_url:
        assert import_archive(str(folder), pg_url).ledger.ok
        assert canonical(pg_url) == canonical(source)


@pytest.mark.parametrize("target", ["sqlite_file", "postgres"])
def test_an_adopted_store_keeps_its_adoption_report(target, tmp_path):
    """The tables ``migrate adopt`` keeps its report in are carried by archives and
    conversions, though no migration makes them."""
    import datetime as dt

    from stocksbot_store.adopt_report import REPORT_MODELS, AdoptionChange, AdoptionReportRow
    from stocksbot_store.conversion import convert

    source = f"sqlite:///{tmp_path / 'adopted.db'}"
    make_store(source)
    db = connect(source)
    with db.bind_ctx(REPORT_MODELS):
        db.create_tables(REPORT_MODELS)
        AdoptionReportRow.create(
            adopted_at=dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc),
            source="old.db",
            time_zone="UTC",
            positions="as-stored",
            counts="{}",
            summary="adopted",
        )
        AdoptionChange.create(
            adoption=1,
            kind="orphan",
            table_name="trade",
            row_id=7,
            field="order_id",
            old="99",
            new=None,
            why="no such order",
        )
    db.close()
    folder = export(source, tmp_path / "archive")
    assert (folder / "adoption_change.jsonl").read_text().count("\n") == 1
    with fresh_database_url(target, tmp_path) as url:
        import_archive(str(folder), url)
        assert canonical(url) == canonical(source)
    with fresh_database_url(target, tmp_path) as url:
        convert(source, url)
        assert canonical(url)["adoption_report"] == canonical(source)["adoption_report"]


def _back_to_the_first_revision(folder: Path) -> set[str]:
    """Make ``folder`` an archive of the first revision: without the tables and history
    of later migrations. Returns the names of the tables left out."""
    manifest = json.loads((folder / "manifest.json").read_text())
    first = SHIPPED[0]
    later = {m._meta.table_name for m in MODELS} - set(FIRST_TABLES)
    for entry in [t for t in manifest["tables"] if t["name"] in later]:
        (folder / entry["file"]).unlink()
    manifest["tables"] = [t for t in manifest["tables"] if t["name"] not in later]
    manifest.update(revision=first, history=[first])
    (folder / "manifest.json").write_text(json.dumps(manifest))
    history = (folder / f"{HISTORY_TABLE}.jsonl").read_text().splitlines(keepends=True)
    _rewrite(folder, f"{HISTORY_TABLE}.jsonl", history[0])
    for entry in manifest["tables"]:  # the columns of later migrations (soft delete)
        if "deleted_at" in entry["columns"]:
            _drop_soft_delete(folder, entry["name"], entry["file"], entry["columns"])
    return later


def _drop_soft_delete(folder: Path, table: str, file: str, columns: list[str]) -> None:
    """Leave out ``deleted_at``/``deleted_by`` of a table file, as an archive made before
    soft delete has none (of a store with no deleted row: :func:`_before_soft_delete`)."""
    kept = [i for i, name in enumerate(columns) if name not in ("deleted_at", "deleted_by")]
    rows = [json.loads(line) for line in (folder / file).read_text().splitlines()]
    assert all(row[columns.index("deleted_at")] is None for row in rows)
    text = "".join(
        json.dumps([row[i] for i in kept], ensure_ascii=False, separators=(",", ":")) + "\n"
        for row in rows
    )
    _rewrite(folder, file, text)
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["tables"]:
        if entry["name"] == table:
            entry["columns"] = [columns[i] for i in kept]
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _before_soft_delete(url: str) -> None:
    """Make the store at ``url`` one that could have been made before soft delete: its
    deleted rows gone for good, its deleted (closed) position live."""
    db = connect(url)
    for table in ("order", "strategy", "config"):
        db.execute_sql(f'DELETE FROM "{table}" WHERE deleted_at IS NOT NULL')
    db.execute_sql("UPDATE position SET deleted_at = NULL, deleted_by = NULL")
    db.close()


def by_amount(table: str, rows: list) -> list[list]:
    """``rows`` of ``table`` with each ``pnl_bucket`` amount as one number instead of its
    four integer parts: fills add parts in SQL (a sum of ten-billionths may pass 10**10
    without carrying into the units) while a rebuild splits each exact sum once, so the
    same amount may be held by different parts."""
    if table != "pnl_bucket":
        return [list(r) for r in rows]
    columns = describe_model(PnlBucket).columns
    out = []
    for row in rows:
        values = dict(zip(columns, row, strict=True))
        for name in AMOUNTS:
            values[name] = join(*(values.pop(f"{name}_{part}") for part in PARTS))
        out.append(list(values.values()))
    return out


@pytest.mark.parametrize("target", ["sqlite_file", "postgres"])
def test_an_archive_at_the_first_revision_gets_its_kept_figures(target, tmp_path):
    """An archive made before the P&L figures were kept (at 0001_initial, with no
    table of a later migration) is loaded at its revision and migrated to head: the
    figures are rebuilt from its trades and pass the ledger check."""
    source = f"sqlite:///{tmp_path / 'source.db'}"
    make_store(source)
    _before_soft_delete(source)
    folder = export(source, tmp_path / "archive")
    later = _back_to_the_first_revision(folder)
    with fresh_database_url(target, tmp_path) as url:
        report = import_archive(str(folder), url)
        assert report.upgraded == SHIPPED[1:] and report.ledger.ok
        copy, original = canonical(url), canonical(source)
        assert copy.keys() == original.keys()
        # an archive from before the audit log brings none: the log starts with the import
        assert copy["audit_log"] == []
        for name in copy.keys() - {HISTORY_TABLE, "audit_log"}:
            if name in later:  # rebuilt by the migration: the same rows, ids aside
                rebuilt, kept = (by_amount(name, rows) for rows in (copy[name], original[name]))
                assert sorted(r[1:] for r in rebuilt) == sorted(r[1:] for r in kept), name
            else:
                assert list(map(list, copy[name])) == list(map(list, original[name])), name
        db = connect(url)
        assert Runner(db).current() == HEAD and check_ledger(db).ok
        db.close()


def test_an_older_archive_that_fails_the_ledger_at_head_is_not_kept(tmp_path):
    """The ledger check of an older archive runs once it is migrated; when it fails,
    the copied rows are removed again (the database was not new, so it stays)."""
    source = f"sqlite:///{tmp_path / 'source.db'}"
    make_store(source)
    _before_soft_delete(source)
    folder = export(source, tmp_path / "archive")
    _back_to_the_first_revision(folder)
    lines = (folder / "position.jsonl").read_text().splitlines(keepends=True)
    tables = json.loads((folder / "manifest.json").read_text())["tables"]
    columns = next(t for t in tables if t["name"] == "position")["columns"]
    at = next(i for i, line in enumerate(lines) if json.loads(line)[columns.index("is_open")])
    row = json.loads(lines[at])
    row[columns.index("quantity")] = "12345.0000000000"  # not what its trades make
    lines[at] = json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"
    _rewrite(folder, "position.jsonl", "".join(lines))
    with fresh_pg_database() as url:
        with pytest.raises(VerificationError, match="fails the ledger check"):
            import_archive(str(folder), url)
        db = connect(url, migrate=False)
        assert set(rows_held(db).values()) == {0}
        db.close()


def test_a_failed_export_leaves_no_folder_it_made(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    make_store(url)
    (tmp_path / "archives").mkdir()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("stocksbot_store.archive._write_table", disk_full)
    with pytest.raises(StorageError, match="No space left"):
        export(url, tmp_path / "archives" / "2026" / "11" / "nightly")
    # The folders it created for the archive are gone; the one that was there stays.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archives", "bot.db"]
    assert list((tmp_path / "archives").iterdir()) == []


def test_an_export_removes_what_a_killed_export_left(tmp_path):
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'bot.db'}"
    make_store(url)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    abandoned = tmp_path / f"nightly.partial-{gone.stdout.strip()}"
    abandoned.mkdir()
    (abandoned / "trade.jsonl").write_text("{}\n")
    live = tmp_path / "nightly.partial-1"  # pid 1 is alive: an export in progress, kept
    live.mkdir()
    export(url, tmp_path / "nightly")
    assert (tmp_path / "nightly" / "manifest.json").exists()
    assert not abandoned.exists() and live.exists()
