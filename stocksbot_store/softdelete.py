"""Soft delete: what may be deleted, who deleted it, and how reads leave it out.

Orders, positions, strategies and config rows are never removed by the store's API:
``delete`` sets their ``deleted_at`` (UTC) and ``deleted_by`` (who asked), and
``restore`` clears both. Every read, list, report, dashboard query and the ledger
check's counts leave soft-deleted rows out unless the call takes
``include_deleted=True``. Only ``stocksbot-purge`` (:mod:`stocksbot_store.purge`)
removes rows for good.

The rules, chosen so that the books stay the replay of the trades:

* **Trades are never deleted**: the ledger is append-only.
* **An order with fills** cannot be deleted (its trades name it); an order without
  fills can, in any status. A fill for a deleted order is refused.
* **An open position** cannot be deleted (the next fill of its symbol moves it);
  close it first. A closed position can: it leaves the lists, and the ledger check
  still counts it among the positions its symbol's trades opened.
* **A strategy** can be deleted whatever its history: its trades keep their
  strategy, its figures stay exact (the ledger check still checks them), and the
  fills of its orders still add to them. Its name is free for a new strategy; it is
  no longer found by name and new orders cannot name it.
* **A config row** can be deleted, except ``trading_enabled`` while it halts
  trading: unset means "trade", so deleting a halt would resume trading.

A unique key (a strategy's name, a config key, an order's broker id) binds only the
rows that are not deleted (partial unique indexes), so it is free again once its row
is deleted; restoring a row whose key was taken since raises
:class:`~stocksbot_store.errors.DuplicateError` naming the key and the row holding it.
"""

from __future__ import annotations

from peewee import Expression, Model

from .errors import DeletedError, NotFoundError


def is_soft(model: type[Model]) -> bool:
    """Whether rows of ``model`` are soft-deleted (it has ``deleted_at``)."""
    return "deleted_at" in model._meta.fields


def live(model: type[Model]) -> Expression:
    """The condition of a row of ``model`` that is not soft-deleted."""
    # deleted_at is a field of the soft-delete models only, so not known on Model
    return model.deleted_at.is_null()  # type: ignore[attr-defined]


def not_found(model: type[Model], row_id: int, deleted: bool) -> NotFoundError:
    """The error for a row that is missing, or (``deleted``) soft-deleted."""
    name = model.__name__
    if deleted:
        return DeletedError(
            f"{name} {row_id} is deleted; restore it first "
            f"(restore_{name.lower()}({row_id})) or read it with "
            "include_deleted=True"
        )
    return NotFoundError(f"{name} {row_id} does not exist")


__all__ = ["is_soft", "live", "not_found"]
