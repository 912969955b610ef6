"""Errors are StorageErrors told apart by the driver's code, with messages that say what to do.

No raw driver exception escapes ``connect()`` or a call; a full disk names the disk; a
permanent condition (read-only, missing table) never says "retry later"; a lone
surrogate or a control character is a ValidationError naming the field, with nothing
written.
"""

from __future__ import annotations

import os
import sqlite3
import uuid

import pytest
from conftest import PG_ADMIN_URL, dump_tables, require_postgres

from stocksbot_store import (
    ConfigurationError,
    DatabaseUnavailableError,
    DatabaseWriteError,
    DuplicateError,
    SchemaError,
    StorageError,
    StorageService,
    ValidationError,
    connect,
)
from stocksbot_store.check import check_ledger
from stocksbot_store.database import backend_of
from stocksbot_store.errors import Fault, fault_of, storage_error, translate_errors

PG_BASE = PG_ADMIN_URL.replace("postgresql+pool://", "postgresql://").rsplit("/", 1)[0]
MIGRATE = "python -m stocksbot_store.migrate upgrade"


def junk_file(tmp_path) -> str:
    path = tmp_path / "junk.db"
    path.write_bytes(os.urandom(8192))
    return str(path)


def damaged_database(tmp_path) -> str:
    """A file that starts as a SQLite database and is noise after its header."""
    path = tmp_path / "damaged.db"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(8176))
    return str(path)


#: (case, URL maker, needs PostgreSQL, error class, words the message holds)
CONNECT_FAILURES = [
    (
        "server down",
        lambda tmp: "postgresql://postgres@127.0.0.1:1/postgres",
        False,
        DatabaseUnavailableError,
        "server is running",
    ),
    (
        "missing database",
        lambda tmp: f"{PG_BASE}/absent_{uuid.uuid4().hex[:8]}",
        True,
        DatabaseUnavailableError,
        "does not exist",
    ),
    (
        "bad option",
        lambda tmp: f"{PG_BASE}/postgres?bogus_option=1",
        True,
        ConfigurationError,
        "bogus_option",
    ),
    (
        "malformed host",
        lambda tmp: "postgresql://u@[::1/db",
        False,
        ConfigurationError,
        "cannot be parsed",
    ),
    (
        "bad port",
        lambda tmp: "postgresql://u@127.0.0.1:notaport/db",
        False,
        ConfigurationError,
        "cannot be parsed",
    ),
    (
        "not a database file",
        lambda tmp: f"sqlite:///{junk_file(tmp)}",
        False,
        ConfigurationError,
        "not a (healthy) SQLite database",
    ),
    (
        "a damaged database file",
        lambda tmp: f"sqlite:///{damaged_database(tmp)}",
        False,
        ConfigurationError,
        "not a (healthy) SQLite database",
    ),
    (
        "unknown SQLite option",
        lambda tmp: f"sqlite:///{tmp / 'new.db'}?bogus_option=1",
        False,
        ConfigurationError,
        "bogus_option",
    ),
    (
        "missing file, create=False",
        lambda tmp: f"sqlite:///{tmp / 'absent.db'}",
        False,
        ConfigurationError,
        "no SQLite database at",
    ),
]


@pytest.mark.parametrize(
    "case, make_url, needs_pg, error, words", CONNECT_FAILURES, ids=[c[0] for c in CONNECT_FAILURES]
)
@pytest.mark.parametrize("migrate", [True, False], ids=["connect", "first-call"])
def test_connect_failures_are_storage_errors(
    case, make_url, needs_pg, error, words, migrate, tmp_path
):
    if needs_pg:
        require_postgres()
    url = make_url(tmp_path)
    options = {"create": False} if case == "missing file, create=False" else {}
    with pytest.raises(error) as caught:
        db = connect(url, migrate=migrate, **options)
        StorageService(db).get_open_positions()
    assert words in str(caught.value)
    assert "retry later" not in str(caught.value) or error is DatabaseUnavailableError


def test_a_full_disk_names_the_disk_and_writes_nothing(tmp_path):
    db = connect(f"sqlite:///{tmp_path / 'full.db'}")
    storage = StorageService(db)
    order = storage.create_order("AAPL", "buy", "market", 10**6)
    pages = db.execute_sql("PRAGMA page_count").fetchone()[0]
    db.execute_sql(f"PRAGMA max_page_count = {pages + 1}")  # the file may not grow further
    with pytest.raises(DatabaseWriteError) as caught:
        for i in range(10_000):
            before = dump_tables(db)
            storage.record_trade(
                order.id, "AAPL", "buy", 1, 100 + i, external_id=f"fill-{i}-" + "x" * 150
            )
    message = str(caught.value)
    assert "disk" in message and "full" in message
    assert "cannot rollback" not in message and "retry later" not in message
    assert dump_tables(db) == before  # the fill that did not fit left nothing
    assert check_ledger(db).ok
    with pytest.raises(DatabaseWriteError, match="full"):  # a plain insert too
        for i in range(1000):
            storage.create_strategy(f"s{i}", description="d" * 5000)
    db.close()


def test_a_read_only_sqlite_file_does_not_say_retry(tmp_path):
    path = tmp_path / "ro.db"
    connect(f"sqlite:///{path}").close()
    for url, options in (
        (f"sqlite:///{path}?mode=ro", {}),
        (f"sqlite:///{path}", {"read_only": True}),
    ):
        storage = StorageService(connect(url, **options))
        assert storage.get_open_positions() == []  # reads work
        with pytest.raises(DatabaseWriteError) as caught:
            storage.create_strategy("s")
        assert "read-only" in str(caught.value) and "retry" not in str(caught.value)
        storage.db.close()


def test_a_read_only_postgres_session_does_not_say_retry():
    from conftest import fresh_pg_database

    with fresh_pg_database() as url:
        connect(url).close()
        db = connect(url, read_only=True)
        with pytest.raises(DatabaseWriteError) as caught:
            StorageService(db).create_strategy("s")
        assert "read-only" in str(caught.value) and "retry" not in str(caught.value)
        db.close()


def test_a_missing_table_is_a_schema_error_naming_the_migrate_command(db):
    execute = db.execute_sql
    execute('DROP TABLE "config"')
    with pytest.raises(SchemaError) as caught:
        StorageService(db).get_config_value("trading_enabled")
    assert MIGRATE in str(caught.value) and "retry" not in str(caught.value)


def test_a_constraint_named_unique_is_not_a_duplicate(db):
    """Classified by code: a CHECK constraint whose name says "unique" is a ValidationError."""
    db.execute_sql(
        'CREATE TABLE "scratch" ("n" INTEGER CONSTRAINT "unique_guard" CHECK (n > 0),'
        ' "k" INTEGER UNIQUE)'
    )
    with pytest.raises(ValidationError), translate_errors("scratch"):
        db.execute_sql('INSERT INTO "scratch" ("n", "k") VALUES (-1, 1)')
    db.execute_sql('INSERT INTO "scratch" ("n", "k") VALUES (1, 1)')
    with pytest.raises(DuplicateError), translate_errors("scratch"):
        db.execute_sql('INSERT INTO "scratch" ("n", "k") VALUES (2, 1)')


@pytest.mark.sqlite_only
def test_a_locked_sqlite_database_is_retryable(backend, tmp_path):
    path = tmp_path / "busy.db"
    db = connect(f"sqlite:///{path}", pragmas={"busy_timeout": 0})
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseUnavailableError, match="retry later"):
            StorageService(db).create_strategy("s")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert StorageService(db).create_strategy("s").name == "s"
    db.close()


@pytest.mark.parametrize(
    "code, fault",
    [
        ("23505", Fault.UNIQUE),
        ("23503", Fault.FOREIGN_KEY),
        ("23514", Fault.CONSTRAINT),
        ("42P01", Fault.MISSING_TABLE),
        ("40001", Fault.RETRYABLE),
        ("40P01", Fault.RETRYABLE),
        ("08006", Fault.CONNECTION_LOST),
        ("57P01", Fault.CONNECTION_LOST),
        ("57P02", Fault.CONNECTION_LOST),
        ("57P03", Fault.CONNECTION_LOST),
        ("53100", Fault.DISK_FULL),
        ("25006", Fault.READ_ONLY),
    ],
)
def test_postgres_errors_are_classified_by_sqlstate(code, fault):
    """The words are irrelevant: each driver error class carries its SQLSTATE."""
    psycopg = pytest.importorskip("psycopg")
    error = psycopg.errors.lookup(code)("unique duplicate locked full read-only words")
    assert fault_of(error) is fault
    made = storage_error("writing", error)
    assert isinstance(made, StorageError)
    assert ("retry later" in str(made)) == (fault in (Fault.RETRYABLE, Fault.CONNECTION_LOST))
    if fault is Fault.DISK_FULL:
        assert isinstance(made, DatabaseWriteError) and "disk" in str(made)


# -- text the store refuses ------------------------------------------------------------------

SURROGATE = "\ud800"


def test_a_lone_surrogate_in_any_text_is_a_validation_error(storage):
    order = storage.create_order("OK", "buy", "market", 5)
    storage.create_strategy("plain")
    before = dump_tables(storage.db)
    writes = {
        "symbol": lambda: storage.create_order(f"A{SURROGATE}", "buy", "market", 1),
        "position symbol": lambda: storage.create_position(SURROGATE, "long", 1, 1),
        "strategy name": lambda: storage.create_strategy(f"s{SURROGATE}"),
        "strategy type": lambda: storage.create_strategy("t", strategy_type=SURROGATE),
        "description": lambda: storage.create_strategy("d", description=f"x{SURROGATE}"),
        "strategy config": lambda: storage.create_strategy("c", config={"k": SURROGATE}),
        "strategy config key": lambda: storage.create_strategy("c", config={SURROGATE: 1}),
        "config key": lambda: storage.set_config_value(SURROGATE, "v"),
        "config value": lambda: storage.set_config_value("k", f"v{SURROGATE}"),
        "trade symbol": lambda: storage.record_trade(order.id, SURROGATE, "buy", 1, 1),
        "broker id": lambda: storage.record_trade(
            order.id, "OK", "buy", 1, 1, external_id=SURROGATE
        ),
        "order broker id": lambda: storage.attach_external_id(order.id, SURROGATE),
    }
    for what, write in writes.items():
        with pytest.raises(ValidationError, match="surrogate") as caught:
            write()
        assert caught.value.field, what
    assert dump_tables(storage.db) == before


def test_an_encoding_error_from_any_statement_is_a_validation_error(db):
    """The root: whatever text reaches a statement unchecked, the driver's encoding error
    becomes a ValidationError naming the action."""
    with pytest.raises(ValidationError, match="surrogate") as caught:
        with translate_errors("saving a note"):
            db.execute_sql(f"SELECT {db.param}", (SURROGATE,))
    assert caught.value.field == "saving a note"


IDENTIFIER_CONTROLS = [
    "tab\there",
    "new\nline",
    "cr\rx",
    "esc\x1b]2;pwned\x07",
    "\x1b[2J",
    "del\x7f",
    "c1\x9b",
    "\x85nel",
    "bidi\u202eevil",
]


def test_control_characters_are_refused_in_identifiers(storage):
    order = storage.create_order("OK", "buy", "market", 5)
    before = dump_tables(storage.db)
    writes = (
        ("symbol", lambda text: storage.create_order(text, "buy", "market", 1)),
        ("name", lambda text: storage.create_strategy(text)),
        ("strategy_type", lambda text: storage.create_strategy("t", strategy_type=text)),
        ("key", lambda text: storage.set_config_value(text, "v")),
        (
            "external_id",
            lambda text: storage.record_trade(order.id, "OK", "buy", 1, 1, external_id=text),
        ),
        ("external_id", lambda text: storage.attach_external_id(order.id, text)),
    )
    for text in IDENTIFIER_CONTROLS:
        for field, write in writes:
            with pytest.raises(ValidationError) as caught:
                write(text)
            assert caught.value.field == field, (text, field, caught.value)
    assert dump_tables(storage.db) == before


def test_free_text_keeps_tabs_and_newlines_and_refuses_other_controls(storage):
    text = "line one\n\tline two\r\nend"
    strategy = storage.create_strategy("notes", description=text, config={"note": text})
    storage.set_config_value("motd", text)
    assert storage.get_strategy_by_name("notes").description == text
    assert strategy.config == {"note": text}
    assert storage.get_config_value("motd") == text
    before = dump_tables(storage.db)
    for bad in ("esc\x1b[2J", "bell\x07", "del\x7f", "c1\x9b", "nul\x00"):
        with pytest.raises(ValidationError, match="description"):
            storage.create_strategy("d", description=bad)
        with pytest.raises(ValidationError, match="config"):
            storage.create_strategy("c", config={"k": bad})
        with pytest.raises(ValidationError, match="value"):
            storage.set_config_value("motd", bad)
    assert dump_tables(storage.db) == before
    assert backend_of(storage.db) in ("sqlite", "postgres")


def test_every_character_an_identifier_may_not_hold_is_refused_and_no_other():
    """check_text skips its pattern for text str.isprintable() accepts: that must never
    let a refused character through, nor refuse a character the rules allow."""
    import re
    import sys

    from stocksbot_store.validation import check_text

    refused = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        try:
            check_text(f"a{char}b", "symbol", 64)
        except ValidationError:
            assert refused.match(char), hex(code)
        else:
            assert not refused.match(char), hex(code)


def test_audit_rows_of_a_batch_hold_any_text_as_json(storage):
    names = ["plain-1", 'quo"te', "back\\slash", "caf\u00e9", "tab\u00a0nbsp", "\u2028line"]
    for n, name in enumerate(names):
        order = storage.create_order(f"S{n}", "buy", "market", 1)
        storage.record_trades(
            [
                {
                    "order_id": order.id,
                    "symbol": f"S{n}",
                    "side": "buy",
                    "quantity": 1,
                    "price": 2,
                    "external_id": name,
                }
            ]
        )
    created = [e for e in storage.get_audit_log(table="trades") if e.action == "create"]
    assert sorted(e.changes["external_id"][1] for e in created) == sorted(names)
