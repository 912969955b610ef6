"""Safety switches: a halt given in any usual spelling halts, anything unreadable is refused,
and the trading switch fails safe: a stored value that does not clearly say "enabled"
reads as halted, whoever wrote it and whatever its type. Unset means enabled."""

from __future__ import annotations

import pytest
from conftest import dump_tables

from stocksbot_store import ValidationError
from stocksbot_store.service import TRADING_ENABLED

TRUE = [True, 1, "true", "True", "TRUE", " true ", "1", "yes", "YES", "on", " On\n"]
FALSE = [False, 0, "false", "False", "FALSE", " false ", "0", "no", "No", "off", "OFF\t"]
REFUSED = ["maybe", "", "  ", "enabled", "t", "2", 2, -1, None, 0.5, 1.0, [], {}, b"true"]


def test_switches_read_the_usual_spellings(storage):
    strategy = storage.create_strategy("s")
    for value in TRUE + FALSE:
        on = value in TRUE
        storage.set_trading_enabled(not on)  # start each from the other state
        storage.set_trading_enabled(value)
        assert storage.is_trading_enabled() is on, value
        assert storage.get_config_value(TRADING_ENABLED) == ("true" if on else "false")

        storage.set_trading_enabled(not on)
        storage.set_config_value(TRADING_ENABLED, value)  # value_type defaults to "string"
        assert storage.is_trading_enabled() is on, value
        assert storage.get_config(TRADING_ENABLED) is on

        storage.set_strategy_active(strategy.id, not on)
        assert storage.set_strategy_active(strategy.id, value).is_active is on, value
        assert storage.get_strategy_by_name("s").is_active is on
        assert [s.name for s in storage.get_active_strategies()] == (["s"] if on else [])

        storage.set_config_value("flag", value, "bool")
        assert storage.get_config("flag") is on


def test_unreadable_switch_values_are_refused(storage, db):
    strategy = storage.create_strategy("s", is_active=True)
    storage.set_trading_enabled(True)
    before = dump_tables(db)
    for value in REFUSED:
        calls = [
            (storage.set_trading_enabled, (value,), {}, "enabled"),
            (storage.set_strategy_active, (strategy.id, value), {}, "active"),
            (storage.set_config_value, (TRADING_ENABLED, value), {}, TRADING_ENABLED),
            (storage.set_config_value, ("k", value, "bool"), {}, "k"),
            (storage.create_strategy, ("t",), {"is_active": value}, "is_active"),
        ]
        if value is not None:  # None is "no value" for a column, refused by NOT NULL
            calls.append(
                (storage.strategies.update, (strategy,), {"is_active": value}, "is_active")
            )
        for call, args, kwargs, field in calls:
            with pytest.raises(ValidationError) as info:
                call(*args, **kwargs)
            assert info.value.field == field, (value, field)
    assert dump_tables(db) == before
    assert storage.is_trading_enabled() is True


def test_unset_trading_switch_means_enabled(storage):
    """A new store trades until someone halts it (documented in the README)."""
    assert storage.is_trading_enabled() is True


# value_type, stored text (None is SQL NULL), what is_trading_enabled() must say.
STORED = [
    ("bool", "true", True),
    ("bool", "1", True),
    ("bool", " YES ", True),
    ("bool", "on", True),
    ("string", "true", True),
    ("int", "1", True),
    ("json", "true", True),
    ("bool", "false", False),
    ("bool", "0", False),
    ("bool", "off", False),
    ("string", "false", False),
    ("string", "no", False),
    ("string", "", False),
    ("string", "garbage", False),
    ("string", "enabled", False),
    ("bool", "garbage", False),
    ("bool", "", False),
    ("bool", None, False),
    ("json", "null", False),
    ("json", "false", False),
    ("json", '"true"', False),
    ("json", "{}", False),
    ("int", "0", False),
    ("int", "2", False),
    ("int", "-1", False),
    ("float", "1.0", False),
    ("float", "0.0", False),
    ("float", "nan", False),
    ("string", None, False),
    # A value type no version of the store writes: the row cannot be read at all.
    ("yesno", "true", False),
    ("", "true", False),
]


def store_switch(db, value_type: str, text: str | None) -> None:
    """Write the trading switch by SQL, as an operator or another tool would."""
    now = "2026-01-01 00:00:00.000000+00:00"
    p = db.param
    db.execute_sql('DELETE FROM "config"')
    db.execute_sql(
        f'INSERT INTO "config" ("key", "value", "value_type", "created_at", '
        f'"updated_at") VALUES ({p}, {p}, {p}, {p}, {p})',
        (TRADING_ENABLED, text, value_type, now, now),
    )


def test_the_trading_switch_fails_safe_on_rows_written_behind_its_back(storage, db):
    """A row written by SQL (an operator, another tool, an old version) is read as halted
    unless its text clearly says enabled, whatever its value_type."""
    for value_type, text, enabled in STORED:
        store_switch(db, value_type, text)
        assert storage.is_trading_enabled() is enabled, (value_type, text)


@pytest.mark.parametrize("halt", [True, False], ids=["halt", "resume"])
def test_the_operator_can_always_set_the_trading_switch(storage, db, halt):
    """Halting must work whatever the stored row holds, one that cannot be read
    included (it used to raise CorruptRowError and leave the switch as it was); the
    audit log keeps what the row held before, as stored."""
    for value_type, text, _ in STORED:
        store_switch(db, value_type, text)
        row = storage.set_trading_enabled(not halt)
        assert storage.is_trading_enabled() is (not halt), (value_type, text)
        assert (row.value_type.value, row.value) == ("bool", "false" if halt else "true")
        entry = storage.get_audit_log(table="config", row_id=row.id, limit=1)[0]
        assert entry.action == "set"
        expected = {
            "value": [text, row.value],
            "value_type": [value_type, "bool"],
            "description": [None, row.description],
        }
        assert entry.changes == {k: v for k, v in expected.items() if v[0] != v[1]}, (
            value_type,
            text,
        )


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    "stored", ["'false'", "'off'", "'no'", "'0.0'", "''", "'maybe'", "2", "-1"]
)
def test_a_strategy_switch_written_by_hand_reads_as_off(storage, db, stored):
    """A SQLite file holds whatever is written into a column: an operator's
    ``UPDATE strategy SET is_enabled = 'false'`` stored the text, which Python's bool()
    reads as True. A strategy switch is on only when it holds the database's own true,
    as the store's SQL filters (``get_active_strategies``) read it."""
    strategy = storage.create_strategy("hand", is_active=True)
    db.execute_sql(
        f'UPDATE "strategy" SET "is_active" = {stored}, "is_enabled" = {stored} '
        f"WHERE id = {strategy.id}"
    )
    read = storage.strategies.get(strategy.id)
    assert (read.is_active, read.is_enabled) == (False, False)
    assert strategy.id not in [s.id for s in storage.get_active_strategies()]
    stats = {s.id: s for s in storage.get_strategy_stats()}[strategy.id]
    assert (stats.is_active, stats.is_enabled) == (False, False)
    storage.set_strategy_active(strategy.id, True)
    assert storage.strategies.get(strategy.id).is_active is True
