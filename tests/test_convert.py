"""stocksbot-convert: SQLite to PostgreSQL and back, every kind of row, verified.

The copy keeps every row byte for byte in canonical form and the same strategy
figures; PostgreSQL sequences go on past the copied ids; a target that holds rows
is refused; a target that changes what is written fails the verification, naming
the table, and keeps nothing.
"""

from __future__ import annotations

import pytest
from conftest import fresh_database_url, fresh_pg_database
from every_row import fill_every_kind

from stocksbot_store import StorageService, connect, convert, init_db
from stocksbot_store.commands import convert_main
from stocksbot_store.errors import StorageError
from stocksbot_store.models import MODELS
from stocksbot_store.rows import VerificationError, canonical_batches, rows_held, store_tables


def canonical(url: str) -> dict[str, list[list]]:
    """Every row of every table in canonical form (what an archive holds), but the audit
    log's import summary rows: a copy appends them to the source's own audit rows (see
    tests/test_audit.py), so a copy equals its source without them."""
    db = connect(url, migrate=False)
    try:
        found = {
            t.name: [row for batch in canonical_batches(db, t) for row in batch]
            for t in store_tables(db)
            if t.name in db.get_tables()
        }
        if "audit_log" in found:
            action = [t for t in store_tables(db) if t.name == "audit_log"][0].columns.index(
                "action"
            )
            found["audit_log"] = [r for r in found["audit_log"] if r[action] != "import"]
        return found
    finally:
        db.close()


def without_audit(figures: dict) -> dict:
    """``figures`` by table but the audit log's."""
    return {name: value for name, value in figures.items() if name != "audit_log"}


def stats(url: str) -> list:
    db = connect(url)
    try:
        return StorageService(db).get_strategy_stats()
    finally:
        db.close()


def make_store(url: str) -> None:
    db = init_db(connect(url))
    fill_every_kind(StorageService(db))
    db.close()


def test_convert_both_ways_keeps_every_row_and_the_figures(tmp_path):
    source = f"sqlite:///{tmp_path / 'source.db'}"
    back = f"sqlite:///{tmp_path / 'back.db'}"
    make_store(source)
    with fresh_pg_database() as pg_url:
        to_pg = convert(source, pg_url)
        assert to_pg.ledger.ok and to_pg.rows["trade"] == 8 and to_pg.rows["config"] == 6
        assert canonical(pg_url) == canonical(source)
        to_sqlite = convert(pg_url, back)
        # the audit log differs by the first copy's summary rows, which the second copies
        assert without_audit(to_sqlite.digests) == without_audit(to_pg.digests)
        assert stats(pg_url) == stats(source)
        # sequences were moved past the copied ids: the bot goes on where it was
        db = connect(pg_url)
        storage = StorageService(db)
        order = storage.create_order("EEE", "buy", "market", 1)
        strategy = storage.create_strategy("new one")
        db.close()
        assert order.id == len(canonical(source)["order"]) + 1
        assert strategy.id == len(canonical(source)["strategy"]) + 1
    assert canonical(back) == canonical(source)
    assert stats(back) == stats(source)


@pytest.mark.parametrize("target", ["sqlite_file", "postgres"])
def test_a_target_that_holds_rows_is_refused_and_left_alone(target, tmp_path):
    source = f"sqlite:///{tmp_path / 'source.db'}"
    make_store(source)
    with fresh_database_url(target, tmp_path) as url:
        db = init_db(connect(url))
        StorageService(db).set_config_value("keep", "me")
        db.close()
        with pytest.raises(StorageError, match=r"not empty \(config 1, audit_log 1 rows\)"):
            convert(source, url)
        db = connect(url)
        # every table of the store is counted, and all but the one config row (and its
        # audit row) are empty
        assert rows_held(db) == {m._meta.table_name: 0 for m in MODELS} | {
            "config": 1,
            "audit_log": 1,
        }
        db.close()


@pytest.mark.parametrize("target", ["sqlite_file", "postgres"])
def test_a_copy_that_differs_fails_naming_the_table_and_keeps_nothing(target, tmp_path):
    """A trigger on the target changes every trade as it is written (a real database
    doing something unexpected): the digest of the copy differs from the source's."""
    source = f"sqlite:///{tmp_path / 'source.db'}"
    make_store(source)
    with fresh_database_url(target, tmp_path) as url:
        db = init_db(connect(url))
        if target == "postgres":
            db.execute_sql(
                "CREATE FUNCTION meddle() RETURNS trigger AS $$ BEGIN "
                "NEW.fees := NEW.fees + 1; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            db.execute_sql(
                "CREATE TRIGGER meddle BEFORE INSERT ON trade "
                "FOR EACH ROW EXECUTE FUNCTION meddle()"
            )
        else:
            db.execute_sql(
                "CREATE TRIGGER meddle AFTER INSERT ON trade BEGIN "
                "UPDATE trade SET fees = '9.0000000000' WHERE id = NEW.id; END"
            )
        db.close()
        with pytest.raises(VerificationError, match="table trade"):
            convert(source, url)
        db = connect(url)
        assert set(rows_held(db).values()) == {0}
        db.close()


@pytest.mark.parametrize("form", ["sqlite:///{}", "sqlite:///file:{}?mode=rwc"])
def test_a_refused_copy_into_a_new_sqlite_file_leaves_no_file(tmp_path, form):
    """Also when a ``file:`` URI names the new file."""
    source = f"sqlite:///{tmp_path / 'source.db'}"
    make_store(source)
    db = connect(source)
    db.execute_sql("UPDATE position SET quantity = '1.0000000000' WHERE is_open AND symbol = 'AAA'")
    db.close()
    target = tmp_path / "new.db"
    with pytest.raises(VerificationError, match="ledger check"):
        convert(source, form.format(target))
    assert not target.exists()


def test_command_line_prints_the_verification_and_hides_the_password(tmp_path, capsys):
    source = f"sqlite:///{tmp_path / 'source.db'}"
    make_store(source)
    with fresh_pg_database() as pg_url:
        assert convert_main(["--from", source, "--to", pg_url]) == 0
        out = capsys.readouterr().out
        assert "rows: strategy 4, position 4, order 8, trade 8, config 6" in out
        assert "ledger OK" in out and "verified" in out
        again = convert_main(["--from", source, "--to", pg_url])
        err = capsys.readouterr().err
        assert again == 2 and "not empty" in err and "Traceback" not in err
    secret = "postgresql://postgres:Sekr1t@127.0.0.1:5432/stocksbot_no_such_db_x"
    assert convert_main(["--from", source, "--to", secret]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stocksbot-convert: error:") and "Sekr1t" not in err
    assert convert_main(["--from", f"sqlite:///{tmp_path / 'none.db'}", "--to", secret]) == 2
    assert "no such file" in capsys.readouterr().err
