"""Soft delete, restore and purge, on every backend.

Deleting marks a row (``deleted_at``, ``deleted_by``); reads leave it out unless
``include_deleted=True``; ``restore`` brings it back; unique keys bind only live rows;
the books (the ledger check) stay clean; ``stocksbot-purge`` removes old deleted rows
nothing needs, after a backup.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
from conftest import dump_tables

from stocksbot_store import (
    DeletedError,
    DuplicateError,
    NotFoundError,
    StorageService,
    ValidationError,
    check_ledger,
    connect,
    init_db,
    stats,
)
from stocksbot_store.fields import utcnow
from stocksbot_store.fills import Fill
from stocksbot_store.models import Config, Order, Position, Strategy, Trade
from stocksbot_store.purge import main as purge_main
from stocksbot_store.purge import purge
from stocksbot_store.queries import order_page


def assert_books_clean(db) -> None:
    report = check_ledger(db)
    assert report.ok, report.format()


def test_delete_and_restore_each_kind(db):
    storage = StorageService(db, actor="bot-eu-1")
    strategy = storage.create_strategy("momentum")
    order = storage.create_order(
        "AAPL", "buy", "limit", 5, price=10, strategy=strategy.id, external_id="o-1"
    )
    position = storage.create_position("MSFT", "long", 3, 300)
    storage.positions.close_position(position.id)
    storage.set_config_value("max_orders", 5, "int")

    deleted = storage.delete_order(order.id)
    assert deleted.deleted_by == "bot-eu-1" and deleted.deleted_at is not None
    assert deleted.deleted_at.tzinfo is not None
    assert storage.get_order(order.id) is None
    assert storage.get_order(order.id, include_deleted=True).id == order.id
    assert storage.delete_position(position.id).deleted_by == "bot-eu-1"
    assert storage.positions.get_by_id(position.id) is None
    assert storage.delete_strategy("momentum").id == strategy.id
    assert storage.get_strategy_by_name("momentum") is None
    assert storage.get_strategy_by_name("momentum", include_deleted=True).id == strategy.id
    assert storage.delete_config("max_orders").key == "max_orders"
    assert storage.get_config("max_orders", "unset") == "unset"
    assert {
        type(r) for kind in (Order, Position, Strategy, Config) for r in storage.get_deleted(kind)
    } == {Order, Position, Strategy, Config}
    with pytest.raises(DeletedError, match="restore"):
        storage.delete_order(order.id)  # deleted already: said so, not "missing"
    with pytest.raises(DeletedError):
        storage.cancel_order(order.id)  # a deleted row is not changed
    assert_books_clean(db)

    assert storage.restore_order(order.id).deleted_at is None
    assert storage.get_order(order.id).external_id == "o-1"
    assert storage.restore_position(position.id).deleted_by is None
    assert storage.restore_strategy(strategy.id).name == "momentum"
    assert storage.restore_config("max_orders").value == "5"
    assert storage.get_config("max_orders") == 5
    assert storage.get_deleted(Order) == []
    with pytest.raises(NotFoundError):
        storage.restore_order(10_000)
    with pytest.raises(ValidationError, match="never deleted"):
        storage.get_deleted(Trade)
    # Each delete and restore is in the audit log, in the transaction of the change.
    for table, row_id in (
        ("orders", order.id),
        ("positions", position.id),
        ("strategies", strategy.id),
    ):
        entries = storage.get_audit_log(table=table, row_id=row_id)
        actions = [e.action for e in entries]
        assert actions[:2] == ["restore", "delete"], (table, actions)
        assert {e.actor for e in entries[:2]} == {"bot-eu-1"}
        assert entries[1].changes["deleted_by"] == [None, "bot-eu-1"]
    assert_books_clean(db)


def test_the_old_module_delete_is_soft(db):
    storage = StorageService(db)
    config = storage.config.create("name", "bot")
    assert storage.config.delete("name") is True and storage.config.delete("name") is False
    assert storage.config.get_by_key("name") is None
    row = storage.config.get_by_key("name", include_deleted=True)
    assert row.id == config.id and row.deleted_by == storage.actor
    assert "@" in storage.actor and storage.actor.endswith(f":{os.getpid()}")
    order = storage.orders.create("AAPL", "buy", "market", 1)
    assert storage.orders.delete(order) is True and order.deleted_at is not None
    assert storage.orders.restore(order.id).deleted_at is None


def test_reads_leave_deleted_rows_out_unless_asked(db):
    storage = StorageService(db)
    keep = storage.create_order("AAPL", "buy", "market", 1, external_id="keep")
    gone = storage.create_order("AAPL", "buy", "market", 2, external_id="gone")
    storage.create_strategy("alive")
    dead = storage.create_strategy("dead")
    storage.delete_order(gone.id)
    storage.delete_strategy(dead.id)
    orders = storage.orders

    def ids(rows):
        return [r.id for r in rows]

    assert ids(storage.get_recent_orders()) == [keep.id]
    assert ids(storage.get_recent_orders(include_deleted=True)) == [gone.id, keep.id]
    assert ids(orders.get_by_symbol("AAPL")) == [keep.id]
    assert ids(orders.get_by_status("pending")) == [keep.id]
    assert ids(orders.get_by_status("pending", include_deleted=True)) == [gone.id, keep.id]
    assert ids(orders.page(symbol="AAPL")) == [keep.id]
    assert ids(order_page(db, sort="quantity")) == [keep.id]
    assert ids(order_page(db, sort="quantity", include_deleted=True)) == [gone.id, keep.id]
    assert orders.get_by_external_id("gone") is None
    assert orders.get_by_external_id("gone", include_deleted=True).id == gone.id
    assert not orders.exists(gone.id) and orders.exists(gone.id, include_deleted=True)
    assert ids(orders.get_all()) == [keep.id]
    assert [s.name for s in storage.get_strategy_stats()] == ["alive"]
    assert [s.name for s in storage.get_strategy_stats(include_deleted=True)] == ["alive", "dead"]
    # The broker still has the deleted order open: it is not the store's any more.
    report = storage.reconcile({}, open_orders=["keep", "gone"])
    assert [(d.subject, d.store) for d in report.differences] == [("gone", "no such order")]
    figures = stats(db)
    assert figures.table_rows["order"] == 1 and figures.deleted_rows["order"] == 1
    assert figures.table_rows["strategy"] == 1 and figures.deleted_rows["strategy"] == 1
    assert figures.deleted_rows["config"] == 0 and "trade" not in figures.deleted_rows
    summary = check_ledger(db).summary()
    assert summary.startswith("ledger OK") and "order 1, strategy 1" in summary


def test_unique_keys_are_free_once_deleted_and_conflict_on_restore(db):
    storage = StorageService(db)
    first = storage.create_strategy("alpha")
    storage.delete_strategy(first.id)
    second = storage.create_strategy("alpha")  # the name is free again
    assert storage.get_strategy_by_name("alpha").id == second.id
    old = storage.create_order("AAPL", "buy", "market", 1, external_id="b-1")
    storage.delete_order(old.id)
    new = storage.create_order("AAPL", "buy", "market", 1, external_id="b-1")
    storage.set_config_value("risk", "0.1", "float")
    storage.delete_config("risk")
    storage.set_config_value("risk", "0.2", "float")  # the upsert inserts a new row
    assert storage.get_config("risk") == 0.2
    before = dump_tables(db)

    with pytest.raises(DuplicateError, match=f"'alpha' is taken by Strategy {second.id}"):
        storage.restore_strategy(first.id)
    with pytest.raises(DuplicateError, match=f"'b-1' is taken by Order {new.id}"):
        storage.restore_order(old.id)
    with pytest.raises(DuplicateError, match="'risk' is taken"):
        storage.restore_config("risk")
    assert dump_tables(db) == before  # nothing written
    with pytest.raises(DuplicateError):  # a live duplicate is still refused
        storage.create_strategy("alpha")

    storage.delete_strategy(second.id)
    assert storage.restore_strategy(first.id).deleted_at is None
    assert storage.get_strategy_by_name("alpha").id == first.id
    assert_books_clean(db)


def test_an_order_with_fills_cannot_be_deleted_and_a_deleted_one_takes_none(db):
    storage = StorageService(db)
    filled = storage.create_order("AAPL", "buy", "market", 2)
    storage.record_trade(filled.id, "AAPL", "buy", 1, 10)
    before = dump_tables(db)
    with pytest.raises(ValidationError, match=r"has 1 fill\(s\).*trades are never deleted"):
        storage.delete_order(filled.id)
    assert dump_tables(db) == before

    order = storage.create_order("MSFT", "buy", "market", 2)
    storage.delete_order(order.id)
    before = dump_tables(db)
    with pytest.raises(DeletedError, match=f"order {order.id} is deleted and takes no fills"):
        storage.record_trade(order.id, "MSFT", "buy", 1, 10)
    with pytest.raises(DeletedError, match="restore_order"):
        storage.record_trades(
            [Fill(filled.id, "AAPL", "buy", 1, 10), Fill(order.id, "MSFT", "buy", 1, 10)]
        )
    assert dump_tables(db) == before  # the bulk path wrote none of the batch
    storage.restore_order(order.id)
    storage.record_trade(order.id, "MSFT", "buy", 1, 10)
    assert_books_clean(db)


def test_what_the_books_still_need_is_not_deleted(db):
    storage = StorageService(db)
    position = storage.create_position("AAPL", "long", 10, 100)
    with pytest.raises(ValidationError, match="is open.*close_position"):
        storage.delete_position(position.id)
    storage.halt_trading()
    with pytest.raises(ValidationError, match="would resume trading"):
        storage.delete_config("trading_enabled")
    assert storage.is_trading_enabled() is False
    storage.resume_trading()
    storage.delete_config("trading_enabled")  # unset reads as enabled, as it was
    assert storage.is_trading_enabled() is True


def test_a_deleted_strategy_keeps_its_figures(db):
    storage = StorageService(db)
    strategy = storage.create_strategy("swing")
    order = storage.create_order("AAPL", "buy", "market", 4, strategy=strategy.id)
    storage.record_trade(order.id, "AAPL", "buy", 2, 10)
    storage.delete_strategy(strategy.id)
    storage.record_trade(order.id, "AAPL", "buy", 2, 12)  # its live order still fills
    sell = storage.create_order("AAPL", "sell", "market", 4)
    storage.record_trade(sell.id, "AAPL", "sell", 4, 15)
    kept = storage.strategies.get(strategy.id, include_deleted=True)
    assert kept.total_trades == 2 and kept.deleted_at is not None
    with pytest.raises(DeletedError, match="restore_strategy"):
        storage.create_order("AAPL", "buy", "market", 1, strategy=strategy.id)
    with pytest.raises(NotFoundError):
        storage.create_order("AAPL", "buy", "market", 1, strategy="swing")
    assert sum(r.trades for r in storage.pnl_by_symbol()) == 3  # trades are never deleted
    assert_books_clean(db)


def test_the_ledger_check_flags_rows_deleted_around_the_rules(db):
    storage = StorageService(db)
    order = storage.create_order("AAPL", "buy", "market", 1)
    storage.record_trade(order.id, "AAPL", "buy", 1, 10)
    now = utcnow()
    with db.bind_ctx([Order, Position]):  # written around the store's rules
        Order.update(deleted_at=now).where(Order.id == order.id).execute()
        Position.update(deleted_at=now).execute()
    report = check_ledger(db)
    assert {v.kind for v in report.violations} == {"order", "position"}
    assert "soft-deleted but has 1 trade" in report.format()
    assert "is open but soft-deleted" in report.format()


def backdate(db, days: float) -> None:
    """Move every deletion ``days`` days into the past."""
    then = utcnow() - dt.timedelta(days=days)
    for model in (Order, Position, Strategy, Config):
        with db.bind_ctx([model]):
            model.update(deleted_at=then).where(model.deleted_at.is_null(False)).execute()


def deleted_history(storage: StorageService) -> dict[str, int]:
    """One row of each kind deleted; a strategy with trades; ids by name."""
    traded = storage.create_strategy("traded")
    idle = storage.create_strategy("idle")
    held = storage.create_strategy("held")  # named by a deleted order: goes with it
    order = storage.create_order("AAPL", "buy", "market", 3, strategy=traded.id)
    storage.record_trade(order.id, "AAPL", "buy", 3, 10)
    storage.record_trade(
        storage.create_order("AAPL", "sell", "market", 3).id, "AAPL", "sell", 3, 11
    )
    unfilled = storage.create_order(
        "MSFT", "buy", "limit", 1, price=5, strategy=held.id, external_id="x-1"
    )
    storage.set_config_value("note", "old")
    closed = storage.positions.get_by_symbol("AAPL", is_open=False)
    for name in ("traded", "idle", "held"):
        storage.delete_strategy(name)
    storage.delete_order(unfilled.id)
    storage.delete_config("note")
    storage.delete_position(closed.id)
    return {"traded": traded.id, "idle": idle.id, "held": held.id, "unfilled": unfilled.id}


def test_purge_dry_run_then_removes_what_nothing_needs(db):
    storage = StorageService(db)
    ids = deleted_history(storage)
    recent = storage.create_strategy("recent")
    before = dump_tables(db)
    assert purge(db, 30).total == 0  # deleted today: too young
    backdate(db, 40)
    storage.delete_strategy(recent.id)  # deleted now: stays
    before = dump_tables(db)

    dry = purge(db, 30, dry_run=True)
    assert dump_tables(db) == before
    expected = {"order": 1, "strategy": 2, "config": 1, "position": 0}
    assert (dry.removed, dry.kept) == (
        expected,
        {"order": 0, "strategy": 1, "config": 0, "position": 1},
    )
    assert "would remove 2" in dry.summary() and "dry run" in dry.summary()

    done = purge(db, 30, backup=False)
    assert done.removed == expected and done.backup_note == "none taken (--no-backup)"
    assert storage.strategies.get_by_id(ids["idle"], include_deleted=True) is None
    assert storage.strategies.get_by_id(ids["held"], include_deleted=True) is None
    assert storage.orders.get_by_id(ids["unfilled"], include_deleted=True) is None
    assert storage.strategies.get_by_id(ids["traded"], include_deleted=True) is not None
    assert storage.strategies.get_by_id(recent.id, include_deleted=True) is not None
    assert len(storage.positions.get_deleted()) == 1
    purged = [e for e in storage.get_audit_log(limit=1000) if e.action == "purge"]
    assert sorted(e.table for e in purged) == ["config", "orders", "strategies", "strategies"]
    assert purge(db, 30).total == 0  # nothing left to do
    assert_books_clean(db)
    with pytest.raises(ValidationError, match="older_than"):
        purge(db, -1)


def test_purge_in_memory_takes_no_backup(tmp_path, monkeypatch):
    """A SQLite database in memory has no file to back up: no backup file appears in the
    current folder, and the report says why."""
    monkeypatch.chdir(tmp_path)
    db = init_db(connect("sqlite:///:memory:"))
    deleted_history(StorageService(db))
    backdate(db, 40)
    done = purge(db, 30)
    db.close()
    assert done.total and done.backup_path is None
    assert done.backup_note == "none: the database is in memory"
    assert list(tmp_path.iterdir()) == []


def test_purge_command_backs_up_first_and_reports_counts(file_db_url, tmp_path, capsys):
    db = connect(file_db_url)
    init_db(db)
    deleted_history(StorageService(db))
    backdate(db, 10)
    db.close()

    assert purge_main(["--url", file_db_url, "--older-than", "7", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "order: would remove 1" in out and "strategy: would remove 2, kept 1" in out
    assert "position: would remove 0, kept 1" in out

    target = tmp_path / "before-purge"
    if file_db_url.startswith("sqlite"):
        target = tmp_path / "before-purge.db"
    assert purge_main(["--url", file_db_url, "--older-than", "7", "--backup-to", str(target)]) == 0
    out = capsys.readouterr().out
    assert f"backup: {target}" in out and "total: removed 4 row(s)" in out
    assert target.exists()
    # The backup holds what was purged.
    if file_db_url.startswith("sqlite"):
        copy = connect(f"sqlite:///{target}", read_only=True)
        assert copy.execute_sql("SELECT COUNT(*) FROM strategy").fetchone()[0] == 3
        copy.close()
    else:
        assert (target / "strategy.csv").exists() or any(target.iterdir())
    db = connect(file_db_url)
    assert db.execute_sql("SELECT COUNT(*) FROM strategy").fetchone()[0] == 1
    assert_books_clean(db)
    db.close()


def test_purge_command_help_and_errors_never_show_a_password(capsys):
    with pytest.raises(SystemExit) as info:
        purge_main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "--older-than DAYS" in text and "--dry-run" in text and "backup" in text
    with pytest.raises(SystemExit):
        purge_main(["--older-than", "-3"])
    assert "0 or more" in capsys.readouterr().err
    url = "postgresql://stocksbot:s3cret-pw@127.0.0.1:1/nowhere"
    assert purge_main(["--url", url, "--older-than", "1"]) == 2
    out, err = capsys.readouterr()
    assert "s3cret-pw" not in out + err and "nothing was removed" in err


def test_a_downgrade_is_refused_while_rows_are_soft_deleted(db):
    from stocksbot_store.migrate import MigrationError, Runner

    storage = StorageService(db)
    storage.delete_strategy(storage.create_strategy("gone").id)
    with pytest.raises(MigrationError, match="soft-deleted"):
        Runner(db).downgrade("-1")
    assert storage.strategies.get_deleted()[0].name == "gone"  # nothing changed


def test_a_trade_has_nothing_to_restore(storage):
    order = storage.create_order("AAPL", "buy", "market", 1)
    trade = storage.record_trade(order.id, "AAPL", "buy", 1, 10)
    with pytest.raises(ValidationError, match="never deleted"):
        storage.trades.restore(trade.id)
    assert storage.trades.get_deleted() == []


def test_deletion_is_not_set_by_hand(storage):
    strategy = storage.create_strategy("manual")
    with pytest.raises(ValidationError, match="delete()"):
        storage.strategies.update(strategy, deleted_at=utcnow())
    with pytest.raises(ValidationError, match="restore()"):
        storage.orders.create("AAPL", "buy", "market", 1, deleted_by="me")
    assert storage.get_strategy_by_name("manual").deleted_at is None
