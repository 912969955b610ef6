"""The errors the store raises.

Every rejection is a :class:`StorageError`, so a caller can catch one class. Each
subclass says what kind of problem it is; the message says what was wrong and,
where there is one, what to do about it. Driver errors (``peewee.IntegrityError``,
``OperationalError``...) are wrapped in one of these with ``raise ... from``, so
they never reach a caller raw.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import peewee


class StorageError(Exception):
    """Root of every error the store raises."""


class ValidationError(StorageError, ValueError):
    """An argument is malformed or out of range; nothing was written."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class NotFoundError(StorageError, LookupError):
    """The row asked for does not exist."""


class DuplicateError(StorageError):
    """A row with the same unique key already exists."""


class ConflictError(StorageError):
    """A re-sent fill or write disagrees with what is already stored."""


class InvalidTransitionError(StorageError):
    """An order status change that would move backwards or out of a final state."""


class OverfillError(ValidationError):
    """A fill is larger than what is left of its order."""


class ConfigurationError(StorageError):
    """The database URL or connection options cannot be used."""


class DatabaseUnavailableError(StorageError):
    """The database cannot be reached or stayed locked; retrying later may succeed."""


class ReadOnlyError(StorageError):
    """A write through a database opened read-only (``connect(url, read_only=True)``)."""


class SchemaError(StorageError):
    """The database schema is missing, behind, or newer than this package knows."""


class MigrationError(SchemaError):
    """A migration could not be applied or reverted; what it did was rolled back."""


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Turn a driver error raised while doing ``action`` into a :class:`StorageError`.

    Unique-key violations become :class:`DuplicateError`, other constraint
    violations :class:`ValidationError`, lost connections and lock time-outs
    :class:`DatabaseUnavailableError`. The driver error stays as ``__cause__``.
    """
    try:
        yield
    except StorageError:
        raise
    except peewee.IntegrityError as e:
        if is_unique_violation(e):
            raise DuplicateError(
                f"{action}: a row with the same key exists ({_first_line(e)})") from e
        raise ValidationError(action, f"rejected by the database: {_first_line(e)}") from e
    except peewee.OperationalError as e:
        raise DatabaseUnavailableError(
            f"{action}: the database is unavailable or locked ({_first_line(e)}); retry later"
        ) from e
    except (peewee.InterfaceError, peewee.DatabaseError) as e:
        raise StorageError(f"{action} failed: {_first_line(e)}") from e


def is_unique_violation(error: BaseException) -> bool:
    """Whether a driver error is a unique-key violation (SQLite and PostgreSQL words)."""
    text = str(error).lower()
    return "unique" in text or "duplicate" in text


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
