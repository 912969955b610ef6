"""Online backup and verified restore.

:func:`backup` takes a consistent copy while the bot keeps writing:

* **SQLite**: SQLite's online backup API copies the pages of one read snapshot
  (WAL lets writers go on; the copy steps through the file, so they never wait on
  it) into ``<name>-backup-<UTC time>.db`` beside the database. The copy is then
  verified (``PRAGMA integrity_check`` and the ledger check, read-only) and its
  sha256 written next to it as ``<file>.sha256`` (the ``sha256sum`` format).
* **PostgreSQL**: the portable archive (:mod:`stocksbot_store.archive`) taken in
  one repeatable-read snapshot, the ledger check run in that same snapshot, then
  every file checked against the manifest.

:func:`restore` puts a backup file or an archive into an empty database, verified
before anything is kept (:mod:`stocksbot_store.transfer`).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass, field
from urllib.parse import quote

import peewee
from peewee import Database, SqliteDatabase

from .archive import MANIFEST, export_archive, import_archive, verify_archive
from .check import LedgerReport, check_ledger
from .database import backend_of, describe, prepare_database
from .errors import PathError, StorageError, path_error
from .fields import utcnow
from .rows import Progress, VerificationError, rows_held
from .transfer import CopyReport
from .urls import sqlite_file_path

#: Pages copied per step of the SQLite backup (progress is shown between steps).
STEP_PAGES = 4096
_SQLITE_MAGIC = b"SQLite format 3\x00"


class BackupError(StorageError):
    """A backup file is damaged or is not one; nothing was written from it."""


@dataclass
class BackupReport:
    """Where a backup went, how big it is, what it holds and whether it verified."""

    path: str
    size: int
    rows: dict[str, int] = field(default_factory=dict)
    #: ``"ok"`` or the first problem ``PRAGMA integrity_check`` reported (SQLite).
    integrity: str = "ok"
    ledger: LedgerReport | None = None
    #: sha256 of the backup file (SQLite) or of the archive's manifest (PostgreSQL).
    sha256: str = ""
    checksum_file: str | None = None

    @property
    def ok(self) -> bool:
        """The copy is sound and its books agree with its trades."""
        return self.integrity == "ok" and (self.ledger is None or self.ledger.ok)

    def summary(self) -> str:
        """What a person wants to read after a backup."""
        counts = ", ".join(f"{name} {n:,}" for name, n in self.rows.items())
        lines = [f"backup: {self.path}", f"size: {self.size:,} bytes", f"rows: {counts}"]
        if self.checksum_file:
            lines.append(f"sha256: {self.sha256} (in {self.checksum_file})")
        lines.append(f"integrity: {self.integrity}")
        if self.ledger is not None:
            lines.append(self.ledger.summary())
        lines.append("verified: OK" if self.ok else "verified: FAILED (see above)")
        return "\n".join(lines)


def _stamp() -> str:
    return utcnow().strftime("%Y%m%dT%H%M%SZ")


def default_backup_path(db: Database) -> str:
    """Beside a SQLite file, ``<name>-backup-<UTC time>.db``; for PostgreSQL, the folder
    ``stocksbot-backup-<database>-<UTC time>`` in the current directory (a SQLite
    database in memory goes there too, as ``stocksbot-backup-<UTC time>.db``).

    The file is the one SQLite opens: a ``file:`` URI (how a read-only database is
    opened) names it by its path (:func:`~stocksbot_store.urls.sqlite_file_path`)."""
    file = sqlite_file_path(str(db.database)) if backend_of(db) == "sqlite" else None
    if file is not None:
        stem, _ = os.path.splitext(file)
        base, ext = f"{stem}-backup-{_stamp()}", ".db"
    elif backend_of(db) == "sqlite":  # in memory: into the current directory
        base, ext = os.path.abspath(f"stocksbot-backup-{_stamp()}"), ".db"
    else:
        base, ext = os.path.abspath(f"stocksbot-backup-{db.database}-{_stamp()}"), ""
    return unused_path(base, ext)


def claim_new_file(
    path: str, what: str, kind: type[StorageError] = PathError, shown_as: str | None = None
) -> None:
    """Create ``path`` empty and private, only if no one has: ``FileExistsError`` when
    another run took the name first. A path the file system refuses is ``kind`` naming
    ``what`` at ``shown_as`` (default ``path``) and the fix
    (:func:`~stocksbot_store.errors.path_error`)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        raise
    except OSError as e:
        raise path_error(what, shown_as or path, e, kind) from e
    os.close(fd)


def unused_path(base: str, ext: str) -> str:
    """``base + ext``, or the first of ``base-2 + ext``, ``base-3 + ext``... that is not
    taken: names stamped to the second meet when two backups share one."""
    path, n = base + ext, 1
    # Done, or still being written (a backup's ``.partial`` copy).
    while os.path.exists(path) or os.path.exists(f"{path}.partial"):
        n += 1
        path = f"{base}-{n}{ext}"
    return path


def backup(
    db: Database, path: str | None = None, verify: bool = True, progress: Progress | None = None
) -> BackupReport:
    """Take a consistent backup of ``db`` at ``path`` (default
    :func:`default_backup_path`) while others keep writing; see the module docstring.

    A copy that fails ``integrity_check`` is deleted and raises
    :class:`VerificationError`; one whose ledger check fails is kept (it is a
    faithful copy of books that already disagreed) and reported (``ok`` False).
    Backups of one file started in the same second (two migration runs) get
    different default names.
    """
    chosen = path is None
    path = path or default_backup_path(db)
    if os.path.exists(path):
        raise StorageError(f"{path} already exists; a backup never overwrites a file")
    if backend_of(db) == "sqlite":
        while True:
            try:
                return _backup_sqlite(db, path, verify, progress)
            except FileExistsError:
                # Another process (a second migration run) began a backup of the same
                # file under the same name meanwhile: take the next free name.
                if not chosen:
                    raise StorageError(
                        f"{path}.partial exists: another backup to {path} is being written "
                        "(or one was stopped; delete that file); choose another path"
                    ) from None
                path = default_backup_path(db)
    report = export_archive(db, path, progress=progress, check=verify)
    if verify:
        verify_archive(path)
    manifest = os.path.join(path, MANIFEST)
    return BackupReport(
        path,
        report.size,
        report.rows,
        ledger=report.ledger,
        sha256=_sha256(manifest),
        checksum_file=manifest,
    )


def _backup_sqlite(
    db: Database, path: str, verify: bool, progress: Progress | None
) -> BackupReport:
    partial = f"{path}.partial"
    claim_new_file(partial, "the backup", shown_as=path)  # two backups never share one
    name = str(db.database)
    source = sqlite3.connect(name, uri=name.startswith("file:"), isolation_level=None, timeout=30)
    try:
        target = sqlite3.connect(partial)
        try:
            # An open read transaction pins one snapshot: the stepped copy is of that
            # moment, and writes made meanwhile (in the WAL) do not restart it.
            source.execute("BEGIN")
            source.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            step = (
                None
                if progress is None
                else (lambda _status, remaining, total: progress("pages", total - remaining, total))
            )
            source.backup(target, pages=STEP_PAGES, progress=step)
            source.execute("COMMIT")
            target.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            target.close()
        # Verified before it takes its name, but reported under that name: the user
        # gets ``path``, never the ``.partial`` file.
        report = verify_sqlite_copy(partial, shown_as=path) if verify else BackupReport(path, 0)
        if report.integrity != "ok":
            raise VerificationError(
                f"the backup of {describe(db)} fails integrity_check "
                f"({report.integrity}); it was deleted"
            )
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    finally:
        source.close()
    report.path, report.size = path, os.path.getsize(path)
    report.sha256 = _sha256(path)
    report.checksum_file = f"{path}.sha256"
    with open(report.checksum_file, "w", encoding="utf-8") as f:
        f.write(f"{report.sha256}  {os.path.basename(path)}\n")
    return report


def open_read_only(path: str, shown_as: str | None = None) -> Database:
    """A peewee database on the SQLite file ``path`` that cannot change it; messages and
    reports name it ``shown_as`` (default ``path``)."""
    db = SqliteDatabase(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True)
    db.stocksbot_url = f"sqlite:///{shown_as or path}"  # type: ignore[attr-defined]  # for messages
    return prepare_database(db)


def verify_sqlite_copy(path: str, shown_as: str | None = None) -> BackupReport:
    """``PRAGMA integrity_check``, row counts and the ledger check of a SQLite copy.

    ``shown_as`` is the name the report gives the copy (default ``path``): a backup
    verifies its temporary file before renaming it to the file the user gets."""
    db = open_read_only(path, shown_as)
    try:
        problems = [row[0] for row in db.execute_sql("PRAGMA integrity_check").fetchall()]
        report = BackupReport(shown_as or path, os.path.getsize(path))
        report.integrity = "ok" if problems == ["ok"] else "; ".join(problems[:5])
        if report.integrity == "ok":
            report.rows = rows_held(db)
            report.ledger = check_ledger(db)
    finally:
        db.close()
    return report


def _sha256(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def is_sqlite_file(path: str) -> bool:
    """Whether ``path`` is a SQLite database file (by its header)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def restore(source: str, url: str | None = None, progress: Progress | None = None) -> CopyReport:
    """Put the backup file or archive folder ``source`` into the empty (or new) database
    at ``url`` (default ``$DATABASE_URL``), verified before anything is kept.

    A SQLite backup's ``.sha256`` file, when it is beside it, must match, and the file
    must pass ``integrity_check``; an archive must match its manifest.
    """
    from .conversion import copy_database

    if os.path.isdir(source) or os.path.basename(source) == MANIFEST:
        return import_archive(source, url, progress)
    if not os.path.exists(source):
        raise BackupError(f"{source}: no such backup file or archive folder")
    if not is_sqlite_file(source):
        raise BackupError(f"{source} is neither a SQLite backup nor an archive folder")
    _check_sidecar(source)
    db = open_read_only(source)
    try:
        problems = [row[0] for row in db.execute_sql("PRAGMA integrity_check").fetchall()]
        if problems != ["ok"]:
            raise BackupError(
                f"{source} is damaged (integrity_check: "
                f"{'; '.join(problems[:3])}); nothing was written"
            )
        return copy_database(db, url, progress)
    except (sqlite3.DatabaseError, peewee.DatabaseError) as e:
        raise BackupError(f"{source} is damaged: {e}; nothing was written") from e
    finally:
        db.close()


def _check_sidecar(path: str) -> None:
    sidecar = f"{path}.sha256"
    if not os.path.exists(sidecar):
        return
    with open(sidecar, encoding="utf-8") as f:
        expected = f.read().split()[:1]
    actual = _sha256(path)
    if expected != [actual]:
        raise BackupError(
            f"{path}: its sha256 is {actual}, {sidecar} says "
            f"{expected[0] if expected else 'nothing'}: the file changed "
            "or is damaged; nothing was written"
        )
