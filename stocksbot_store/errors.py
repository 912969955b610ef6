"""The errors the store raises, and how driver errors become them.

Every rejection is a :class:`StorageError`, so a caller can catch one class. Each
subclass says what kind of problem it is; the message says what was wrong and,
where there is one, what to do about it. Driver errors (``peewee.IntegrityError``,
``OperationalError``, ``sqlite3``/``psycopg`` errors, a ``UnicodeEncodeError`` from
binding a lone surrogate) are wrapped in one of these with ``raise ... from``, so
they never reach a caller raw.

Driver errors are classified by their code, never by their words (:func:`fault_of`):
the SQLSTATE on PostgreSQL, the extended result code on SQLite
(``sqlite3.Error.sqlite_errorname``). Only conditions that are transient by code
(busy or locked, a lost connection, a serialization failure or deadlock) say
"retry later"; a permanent one (a read-only file, a full disk, a missing table)
says what to fix instead.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING

import peewee

if TYPE_CHECKING:
    from .fills.importer import ImportSummary


class StorageError(Exception):
    """Root of every error the store raises."""


class ValidationError(StorageError, ValueError):
    """An argument is malformed or out of range; nothing was written."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class NotFoundError(StorageError, LookupError):
    """The row asked for does not exist."""


class DeletedError(NotFoundError):
    """The row asked for is soft-deleted: restore it first, or read it with
    ``include_deleted=True``."""


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


class CommitUnknownError(DatabaseUnavailableError):
    """The connection was lost while a transaction committed: it may or may not be stored."""


class DatabaseWriteError(StorageError):
    """The database refuses writes (read-only, disk full); retrying will not help until fixed."""


class ReadOnlyError(DatabaseWriteError):
    """A write through a database opened read-only (``connect(url, read_only=True)``)."""


class SchemaError(StorageError):
    """The database schema is missing, behind, or newer than this package knows."""


class MigrationError(SchemaError):
    """A migration could not be applied or reverted; what it did was rolled back."""


class CorruptRowError(StorageError):
    """A stored row breaks the store's schema (a table changed outside the store): a NULL
    in a column it declares NOT NULL, an audit row whose changes are not JSON."""


class PathError(StorageError):
    """A file or folder the store was asked to write cannot be written there; nothing was."""


MIGRATE_COMMAND = "python -m stocksbot_store.migrate upgrade"


class ImportStoppedError(StorageError):
    """An import stopped at a fill the store refused, or at a database error; the
    batches before it are stored (``stored``), nothing of the batch it was in is."""

    def __init__(
        self, message: str, stored: ImportSummary, index: int | None, error: StorageError
    ) -> None:
        super().__init__(message)
        #: What was stored before the import stopped.
        self.stored = stored
        #: Index of the refused fill in the fills given (from 0); None when the error
        #: is the database's, not a fill's.
        self.index = index
        #: The error the fill (or the batch) raised, also the ``__cause__``.
        self.error = error


class ImportInterruptedError(ImportStoppedError, DatabaseUnavailableError):
    """An import stopped because the database could not be reached or stayed busy;
    retry later (``except DatabaseUnavailableError`` sees it, as it sees any call's)."""


class ImportCommitUnknownError(ImportInterruptedError, CommitUnknownError):
    """An import stopped because the connection was lost while a batch committed: that
    batch may or may not be stored (a re-run with broker ids is safe either way)."""


class Fault(Enum):
    """What a driver error means, read from its code (see :func:`fault_of`)."""

    UNIQUE = "unique"
    FOREIGN_KEY = "foreign key"
    CONSTRAINT = "constraint"
    MISSING_TABLE = "missing table"
    BAD_DATA = "bad data"
    ENCODING = "encoding"
    RETRYABLE = "retryable"
    CONNECTION_LOST = "connection lost"
    DISK_FULL = "disk full"
    READ_ONLY = "read-only"
    NOT_A_DATABASE = "not a database"
    CANNOT_OPEN = "cannot open"
    CONFIGURATION = "configuration"
    OTHER = "other"


#: SQLSTATEs (PostgreSQL) by exact code, then by their two-character class.
_SQLSTATES = {
    "23505": Fault.UNIQUE,
    "23503": Fault.FOREIGN_KEY,
    "42P01": Fault.MISSING_TABLE,  # undefined_table
    "42703": Fault.MISSING_TABLE,  # undefined_column: the schema is behind
    "40001": Fault.RETRYABLE,  # serialization_failure
    "40P01": Fault.RETRYABLE,  # deadlock_detected
    "55P03": Fault.RETRYABLE,  # lock_not_available
    "57014": Fault.RETRYABLE,  # query_canceled (statement timeout)
    "53100": Fault.DISK_FULL,  # disk_full
    "53200": Fault.RETRYABLE,  # out_of_memory
    "53300": Fault.RETRYABLE,  # too_many_connections
    "25006": Fault.READ_ONLY,  # read_only_sql_transaction
    "25P03": Fault.CONNECTION_LOST,  # idle_in_transaction_session_timeout
    "3D000": Fault.CONFIGURATION,  # invalid_catalog_name: no such database
    "22021": Fault.ENCODING,  # character_not_in_repertoire
    "22P05": Fault.ENCODING,  # untranslatable_character
}
_SQLSTATE_CLASSES = {
    "23": Fault.CONSTRAINT,
    "08": Fault.CONNECTION_LOST,  # connection exception
    "57": Fault.CONNECTION_LOST,  # 57P01-57P05: the server ended the session
    "28": Fault.CONFIGURATION,  # invalid authorization
    "22": Fault.BAD_DATA,
}
#: SQLite extended result codes, by prefix (most specific first).
_SQLITE_CODES = (
    ("SQLITE_CONSTRAINT_UNIQUE", Fault.UNIQUE),
    ("SQLITE_CONSTRAINT_PRIMARYKEY", Fault.UNIQUE),
    ("SQLITE_CONSTRAINT_FOREIGNKEY", Fault.FOREIGN_KEY),
    ("SQLITE_CONSTRAINT", Fault.CONSTRAINT),
    ("SQLITE_BUSY", Fault.RETRYABLE),
    ("SQLITE_LOCKED", Fault.RETRYABLE),
    ("SQLITE_FULL", Fault.DISK_FULL),
    ("SQLITE_READONLY", Fault.READ_ONLY),
    ("SQLITE_PERM", Fault.READ_ONLY),
    ("SQLITE_NOTADB", Fault.NOT_A_DATABASE),
    ("SQLITE_CORRUPT", Fault.NOT_A_DATABASE),
    ("SQLITE_CANTOPEN", Fault.CANNOT_OPEN),
    ("SQLITE_TOOBIG", Fault.BAD_DATA),
    ("SQLITE_MISMATCH", Fault.BAD_DATA),
)
#: Python before 3.11 has no ``sqlite_errorname``: SQLite's fixed result-code texts.
_SQLITE_TEXTS = (
    ("unique constraint failed", "SQLITE_CONSTRAINT_UNIQUE"),
    ("foreign key constraint failed", "SQLITE_CONSTRAINT_FOREIGNKEY"),
    ("constraint failed", "SQLITE_CONSTRAINT"),
    ("database is locked", "SQLITE_BUSY"),
    ("database table is locked", "SQLITE_LOCKED"),
    ("database or disk is full", "SQLITE_FULL"),
    ("attempt to write a readonly database", "SQLITE_READONLY"),
    ("file is not a database", "SQLITE_NOTADB"),
    ("unable to open database file", "SQLITE_CANTOPEN"),
)


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error``, then the driver error inside it and what it was raised from, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        inner = getattr(current, "orig", None)
        if isinstance(inner, BaseException) and id(inner) not in seen:
            seen.add(id(inner))
            yield inner
        current = current.__cause__ or current.__context__


def sqlstate(error: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE of a psycopg (3 or 2) error, if it has one."""
    code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return code if isinstance(code, str) else None


def sqlite_code(error: BaseException) -> str | None:
    """The SQLite extended result code name (``SQLITE_BUSY``...) of an ``sqlite3`` error."""
    if not isinstance(error, sqlite3.Error):
        return None
    name = getattr(error, "sqlite_errorname", None)
    if name:
        return name
    text = str(error).lower()
    return next((code for words, code in _SQLITE_TEXTS if words in text), None)


def _fault_of_one(error: BaseException) -> Fault | None:
    if isinstance(error, UnicodeError):
        return Fault.ENCODING
    code = sqlstate(error)
    if code:
        return _SQLSTATES.get(code) or _SQLSTATE_CLASSES.get(code[:2]) or Fault.OTHER
    name = sqlite_code(error)
    if name:
        found = next((fault for prefix, fault in _SQLITE_CODES if name.startswith(prefix)), None)
        if found:
            return found
        if name == "SQLITE_ERROR" and str(error).startswith(("no such table", "no such column")):
            return Fault.MISSING_TABLE  # SQLite has no code of its own for these
        return None  # generic (e.g. "cannot rollback"): look at what caused it
    if type(error).__module__.startswith("psycopg") and type(error).__name__ in (
        "OperationalError",
        "InterfaceError",
    ):
        return Fault.CONNECTION_LOST  # no SQLSTATE: the client lost (or never had) the server
    return None


def fault_of(error: BaseException) -> Fault:
    """What a driver error means, from the first code found in its chain, outermost first.

    A generic code (SQLite's ``SQLITE_ERROR`` for "cannot rollback - no transaction is
    active") defers to the error it was raised while handling, so a full disk is
    reported as a full disk.
    """
    for cause in causes(error):
        fault = _fault_of_one(cause)
        if fault is not None:
            return fault
    return Fault.OTHER


def _driver_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [peewee.PeeweeException, sqlite3.Error, UnicodeError]
    try:
        import psycopg
    except ImportError:
        pass
    else:
        found.append(psycopg.Error)
    return tuple(found)


DRIVER_ERRORS = _driver_errors()


def storage_error(action: str, error: BaseException) -> StorageError:
    """The :class:`StorageError` that tells a caller what a driver ``error`` raised while
    doing ``action`` means, and what to do about it."""
    if isinstance(error, StorageError):
        return error
    fault = fault_of(error)
    reason = first_line(error)
    if fault is Fault.UNIQUE:
        return DuplicateError(f"{action}: a row with the same key exists ({reason})")
    if fault is Fault.FOREIGN_KEY:
        return ValidationError(action, f"refers to a row that does not exist ({reason})")
    if fault in (Fault.CONSTRAINT, Fault.BAD_DATA):
        return ValidationError(action, f"rejected by the database: {reason}")
    if fault is Fault.ENCODING:
        return ValidationError(
            action,
            "text cannot be stored: it holds a character with no "
            f"UTF-8 form, such as a lone surrogate ({reason})",
        )
    if fault is Fault.MISSING_TABLE:
        return SchemaError(
            f"{action}: the database does not have the store's schema "
            f"({reason}); create or upgrade it with `{MIGRATE_COMMAND}`"
        )
    if fault is Fault.RETRYABLE:
        return DatabaseUnavailableError(
            f"{action}: the database is busy ({reason}); nothing was written; retry later"
        )
    if fault is Fault.CONNECTION_LOST:
        return DatabaseUnavailableError(
            f"{action}: the connection to the database was lost ({reason}); retry later"
        )
    if fault is Fault.DISK_FULL:
        return DatabaseWriteError(
            f"{action}: the disk that holds the database is full ({reason}); nothing was "
            "written; free space on that disk before writing again"
        )
    if fault is Fault.READ_ONLY:
        return DatabaseWriteError(
            f"{action}: the database is read-only ({reason}); nothing was written; open it "
            "with write access (file permissions, a read-only URL or replica) to write"
        )
    if fault is Fault.NOT_A_DATABASE:
        return ConfigurationError(
            f"{action}: the file is not a (healthy) SQLite database ({reason}); point the URL "
            "at a stocksbot store"
        )
    if fault is Fault.CANNOT_OPEN:
        return ConfigurationError(
            f"{action}: the database file cannot be opened ({reason}); "
            "check its path and permissions"
        )
    if fault is Fault.CONFIGURATION:
        return ConfigurationError(f"{action}: {reason}; check the database URL")
    return StorageError(f"{action} failed: {reason}")


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Turn a driver error raised while doing ``action`` into a :class:`StorageError`.

    See :func:`storage_error` for which one; the driver error stays as ``__cause__``.
    """
    try:
        yield
    except StorageError:
        raise
    except DRIVER_ERRORS as e:
        raise storage_error(action, e) from e


_NO_WRITE = (
    "this user cannot write there (permissions, a read-only file system, or a system "
    "folder such as /proc or /sys): choose a folder it can write"
)
#: What to do about a file-system error, by its errno.
_PATH_FIXES = {
    errno.EACCES: _NO_WRITE,
    errno.EPERM: _NO_WRITE,
    errno.EROFS: _NO_WRITE,
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose a path whose folders are "
    "folders",
    errno.EISDIR: "it is a folder: name a file",
    errno.EEXIST: "something already has that name: choose a new path",
    errno.ENAMETOOLONG: "a name in it is longer than the file system allows (255 bytes): choose "
    "a shorter one",
    errno.ENOSPC: "the disk is full: free space on it, or choose a path on another disk",
    errno.EDQUOT: "the disk quota is used up: free space, or choose a path on another disk",
}


def path_error(
    what: str, path: str, error: OSError, kind: type[StorageError] = PathError
) -> StorageError:
    """The ``kind`` of :class:`StorageError` that says why ``what`` (``"the backup"``) could
    not be written at ``path`` and what to do, from the ``OSError`` the file system raised."""
    reason = error.strerror or first_line(error)
    fix = _PATH_FIXES.get(error.errno or 0, "choose another path")
    if error.errno == errno.ENOENT:
        folder = os.path.dirname(os.path.abspath(path))
        # A folder that is there but takes no new files: /proc, some mounts.
        missing = f"the folder {folder} does not exist: create it first, or choose a path"
        fix = _NO_WRITE if os.path.isdir(folder) else missing + " in a folder that exists"
    return kind(f"cannot write {what} {path}: {reason}; {fix}")


@contextmanager
def translate_path_errors(
    what: str, path: str, kind: type[StorageError] = PathError
) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``what`` at ``path`` into a
    :class:`StorageError` (see :func:`path_error`); the ``OSError`` stays as ``__cause__``."""
    try:
        yield
    except StorageError:
        raise
    except OSError as e:
        raise path_error(what, path, e, kind) from e


def is_unique_violation(error: BaseException) -> bool:
    """Whether a driver error is a unique-key violation (SQLSTATE 23505, SQLite's
    ``SQLITE_CONSTRAINT_UNIQUE``/``_PRIMARYKEY``)."""
    return fault_of(error) is Fault.UNIQUE


def first_line(error: BaseException) -> str:
    """The first line of an error's message (at most 300 characters), for a message."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
