"""The portable archive: a folder with one file per table and a manifest.

Layout::

    stocksbot-export-20261125T230000Z/
        manifest.json     format, schema revision and history, and per file: its
                          columns, row count, size, sha256, and the size and sha256
                          of each block of rows (so damage is found to the block)
        strategy.jsonl    one canonical row per line (see stocksbot_store.rows)
        position.jsonl
        ...

JSON lines (the default) keep everything exactly; CSV (``file_format="csv"``,
one file per table with a header row, empty for NULL) is for spreadsheets and is
not imported back. :func:`export_archive` reads the store in one snapshot and
streams each table to its file; :func:`verify_archive` checks the whole archive
against its manifest and names the file and position of any damage;
:func:`import_archive` loads a verified JSON-lines archive into an empty
database through :func:`stocksbot_store.transfer.load_store`, checking every value
as it goes, and keeps nothing if anything is wrong.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from peewee import Database

from .backends import read_transaction
from .check import LedgerReport, check_ledger
from .database import backend_of, describe
from .errors import StorageError, path_error, translate_path_errors
from .fields import utcnow
from .migration.runner import HISTORY_TABLE, Runner
from .models import MODELS
from .rows import (
    Progress,
    Table,
    canonical_batches,
    canonical_lines,
    check_value,
    count_rows,
    store_tables,
    table_names,
)
from .transfer import CopyReport, known_revisions, load_store, refuse_newer

FORMAT = "stocksbot-archive"
VERSION = 1
MANIFEST = "manifest.json"
FILE_FORMATS = ("jsonl", "csv")
#: Bytes read at a time while checking a file.
_CHUNK = 1 << 20


class ArchiveError(StorageError):
    """An archive is damaged, incomplete or not one; nothing was written from it."""


@dataclass
class ExportReport:
    """Where an export went and what it holds."""

    path: str
    manifest: dict[str, Any]
    #: The ledger check run in the export's snapshot, when asked for.
    ledger: LedgerReport | None = None

    @property
    def size(self) -> int:
        """Bytes of every file, manifest included."""
        return sum(os.path.getsize(os.path.join(self.path, f)) for f in os.listdir(self.path))

    @property
    def rows(self) -> dict[str, int]:
        """Rows per table."""
        return {t["name"]: t["rows"] for t in self.manifest["tables"]}


def export_archive(
    db: Database,
    out: str,
    file_format: str = "jsonl",
    tables: list[str] | None = None,
    since: dt.datetime | None = None,
    progress: Progress | None = None,
    check: bool = False,
) -> ExportReport:
    """Write the store in ``db`` to a new archive folder ``out``, in one snapshot.

    ``tables`` limits it to some tables, ``since`` to rows with a time at or after it
    (trades by execution time, other tables by their last change); either makes the
    archive partial, which :func:`import_archive` refuses. ``check`` runs the ledger
    check in the same snapshot. The folder appears complete or not at all.
    """
    if file_format not in FILE_FORMATS:
        raise ArchiveError(f"unknown format {file_format!r}; use jsonl or csv")
    unknown = sorted(set(tables or ()) - table_names())
    if unknown:
        raise ArchiveError(
            f"no table {', '.join(unknown)} in a stocksbot store; the tables "
            f"are {', '.join(sorted(table_names()))}"
        )
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise ArchiveError(
            f"{out} already exists and is not an empty folder; "
            "choose a new path so no archive is overwritten"
        )
    partial = f"{out.rstrip(os.sep)}.partial-{os.getpid()}"
    _remove_abandoned(out)
    made = _missing_folders(os.path.dirname(os.path.abspath(partial)))
    with translate_path_errors("the archive", out):
        os.makedirs(partial, mode=0o700)
    try:
        with read_transaction(db):
            history = Runner(db).applied_names()
            present = set(db.get_tables())
            chosen = [
                t
                for t in store_tables(db)
                if t.name in present and (not tables or t.name in tables)
            ]
            entries = [_write_table(db, t, partial, file_format, since, progress) for t in chosen]
            ledger = check_ledger(db) if check else None
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": utcnow().isoformat(timespec="seconds"),
            "source": describe(db),
            "backend": backend_of(db),
            "revision": history[-1] if history else None,
            "history": history,
            "complete": not tables and since is None,
            "since": None if since is None else since.isoformat(),
            "file_format": file_format,
            "tables": entries,
        }
        with open(os.path.join(partial, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)
            f.write("\n")
        if os.path.isdir(out):
            os.rmdir(out)
        os.replace(partial, out)
    except OSError as e:  # a full disk, or a folder that changed meanwhile
        _undo(partial, made)
        raise path_error("the archive", out, e) from e
    except BaseException:
        _undo(partial, made)
        raise
    return ExportReport(out, manifest, ledger)


def _missing_folders(folder: str) -> list[str]:
    """The folders of ``folder``'s path that do not exist yet, deepest first: what an
    export creates, and removes again if it fails."""
    missing = []
    while folder and not os.path.exists(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing


def _undo(partial: str, made: list[str]) -> None:
    """Remove a failed export's unfinished folder and the folders it created for it
    (each only while it is empty: another process may have put something there)."""
    shutil.rmtree(partial, ignore_errors=True)
    for folder in made:
        try:
            os.rmdir(folder)
        except OSError:
            break


def _remove_abandoned(out: str) -> None:
    """Remove unfinished folders left beside ``out`` by exports that were killed (their
    name carries the pid of a process that is gone); a live export's is left alone."""
    folder, name = os.path.split(os.path.abspath(out.rstrip(os.sep)))
    try:
        names = os.listdir(folder)
    except OSError:
        return  # no folder yet (nothing to remove), or one the export will report
    prefix = f"{name}.partial-"
    for entry in names:
        pid = entry[len(prefix) :]
        if entry.startswith(prefix) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(folder, entry), ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether a process with this id exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _write_table(
    db: Database,
    table: Table,
    folder: str,
    file_format: str,
    since: dt.datetime | None,
    progress: Progress | None,
) -> dict[str, Any]:
    name = f"{table.name}.{file_format}"
    total = count_rows(db, table.name)
    whole, blocks, rows, size = hashlib.sha256(), [], 0, 0
    with open(os.path.join(folder, name), "wb") as out:

        def put(data: bytes, count: int) -> None:
            nonlocal rows, size
            out.write(data)
            whole.update(data)
            blocks.append([count, len(data), hashlib.sha256(data).hexdigest()])
            rows, size = rows + count, size + len(data)

        batches: Iterable[tuple[int, bytes]]
        if file_format == "csv":
            put(_csv_lines([list(table.columns)]), 0)
            batches = (
                (len(b), _csv_lines([_csv_row(r) for r in b]))
                for b in canonical_batches(db, table, since)
            )
        else:
            batches = canonical_lines(db, table, since)
        for count, data in batches:
            put(data, count)
            if progress is not None:
                progress(table.name, rows, total)
    return {
        "name": table.name,
        "file": name,
        "columns": list(table.columns),
        "rows": rows,
        "bytes": size,
        "sha256": whole.hexdigest(),
        "blocks": blocks,
    }


def _csv_row(row: Sequence[Any]) -> list[Any]:
    return ["true" if v is True else "false" if v is False else v for v in row]


def _csv_lines(rows: list[list[Any]]) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue().encode()


# -- checking ----------------------------------------------------------------------------------


def read_manifest(path: str) -> dict[str, Any]:
    """The manifest of the archive folder ``path`` (or of its ``manifest.json``), checked
    for shape: format, version, known tables."""
    folder = os.path.dirname(path) if os.path.basename(path) == MANIFEST else path
    where = os.path.join(folder, MANIFEST)
    if not os.path.isfile(where):
        raise ArchiveError(f"{folder} is not a stocksbot archive: it has no {MANIFEST}")
    try:
        with open(where, encoding="utf-8") as f:
            manifest = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ArchiveError(f"{where} is damaged: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(f"{where} is not the manifest of a stocksbot archive")
    if manifest.get("version") != VERSION:
        raise ArchiveError(
            f"{where} is archive format version {manifest.get('version')}; "
            f"this version of stocksbot-store reads version {VERSION}"
        )
    try:
        names = [t["name"] for t in manifest["tables"]]
        for entry in manifest["tables"]:
            _ = (
                entry["file"],
                entry["rows"],
                entry["bytes"],
                entry["sha256"],
                entry["blocks"],
                entry["columns"],
            )
    except (KeyError, TypeError) as e:
        raise ArchiveError(f"{where} is damaged: a table entry lacks {e}") from None
    unknown = [n for n in names if n not in table_names()]
    if unknown:
        raise ArchiveError(
            f"{where} lists table(s) {', '.join(unknown)}, which are not part "
            "of a stocksbot store; refusing the archive, nothing was written"
        )
    for entry in manifest["tables"]:
        if os.path.basename(entry["file"]) != entry["file"]:
            raise ArchiveError(
                f"{where}: file name {entry['file']!r} points outside the "
                "archive folder; refusing the archive"
            )
    manifest["_folder"] = folder
    return manifest


def verify_archive(path: str) -> dict[str, Any]:
    """Check every file of the archive at ``path`` against its manifest; its manifest.

    Raises :class:`ArchiveError` naming the file and the position of the first
    damage: a truncated or extended file, a block of rows whose checksum differs, a
    file checksum that differs from the manifest's.
    """
    manifest = read_manifest(path)
    for entry in manifest["tables"]:
        _verify_file(manifest["_folder"], entry)
    return manifest


def _verify_file(folder: str, entry: dict[str, Any]) -> None:
    name = entry["file"]
    where = os.path.join(folder, name)
    if not os.path.isfile(where):
        raise ArchiveError(f"{name} is missing from the archive")
    size = os.path.getsize(where)
    whole = hashlib.sha256()
    offset, first_row = 0, 1
    with open(where, "rb") as f:
        for count, length, sha in entry["blocks"]:
            data = f.read(length)
            rows = f"rows {first_row:,}-{first_row + count - 1:,}" if count else "its header"
            if len(data) < length:
                raise ArchiveError(
                    f"{name} is truncated: it ends at byte {size:,}, in {rows} (bytes "
                    f"{offset:,}-{offset + length:,}); the manifest says {entry['bytes']:,} "
                    "bytes. Nothing was written"
                )
            if hashlib.sha256(data).hexdigest() != sha:
                raise ArchiveError(
                    f"{name} is damaged in {rows} (bytes {offset:,}-{offset + length:,}): "
                    "their sha256 differs from the manifest's. Nothing was written"
                )
            whole.update(data)
            offset, first_row = offset + length, first_row + count
    if size != entry["bytes"] or offset != size:
        raise ArchiveError(
            f"{name} has {size - offset:,} byte(s) after byte {offset:,} that "
            "the manifest does not list. Nothing was written"
        )
    if whole.hexdigest() != entry["sha256"]:
        raise ArchiveError(
            f"{name}: its sha256 is {whole.hexdigest()}, the manifest says "
            f"{entry['sha256']}. Nothing was written"
        )


# -- importing -------------------------------------------------------------------------------


class ArchiveSource:
    """The rows of a verified JSON-lines archive, checked value by value as they are read."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        self.manifest = manifest
        self.folder = manifest["_folder"]
        self.description = f"archive {self.folder}"
        self.history = list(manifest.get("history") or [])
        self.entries = {t["name"]: t for t in manifest["tables"]}

    def tables(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(name, tuple(e["columns"])) for name, e in self.entries.items()]

    def count(self, table: str) -> int:
        return self.entries[table]["rows"]

    def batches(self, table: Table) -> Iterator[list[Sequence[Any]]]:
        entry = self.entries[table.name]
        name, width = entry["file"], len(table.columns)
        line_no, offset = 0, 0
        with open(os.path.join(self.folder, name), "rb") as f:
            for count, length, sha in entry["blocks"]:
                data = f.read(length)
                if hashlib.sha256(data).hexdigest() != sha:
                    raise ArchiveError(
                        f"{name} changed while it was read (bytes "
                        f"{offset:,}-{offset + length:,}); nothing was written"
                    )
                rows: list[Sequence[Any]] = []
                for line in data.splitlines(keepends=True):
                    line_no += 1
                    rows.append(self._row(table, name, line, line_no, offset, width))
                    offset += len(line)
                if len(rows) != count:
                    raise ArchiveError(
                        f"{name}: a block of {count} rows holds {len(rows)} "
                        f"lines (ending at line {line_no}); nothing was written"
                    )
                yield rows

    @staticmethod
    def _row(
        table: Table, name: str, line: bytes, line_no: int, offset: int, width: int
    ) -> list[Any]:
        where = f"{name} line {line_no:,} (byte {offset:,})"
        try:
            row = json.loads(line)
        except ValueError as e:
            raise ArchiveError(f"{where} is not a JSON row: {e}; nothing was written") from None
        if not isinstance(row, list) or len(row) != width:
            raise ArchiveError(f"{where} is not a row of {width} values; nothing was written")
        for i, value in enumerate(row):
            problem = check_value(table, i, value)
            if problem:
                raise ArchiveError(f"{where}: {table.columns[i]} {problem}; nothing was written")
        return row


def import_archive(
    path: str, url: str | None = None, progress: Progress | None = None
) -> CopyReport:
    """Load the archive at ``path`` into the empty (or new) database at ``url``, verified.

    The archive is checked whole first; a newer schema revision, a partial or CSV
    archive, an unknown table or a malformed value is refused with a message that
    names it, and nothing is written. An archive from an older schema is loaded at
    its revision, then migrated to head.
    """
    manifest = verify_archive(path)
    refuse_newer(manifest.get("history") or [], f"archive {manifest['_folder']}")
    if manifest.get("file_format") != "jsonl":
        raise ArchiveError(
            f"{path} is a {manifest.get('file_format')} archive, made for "
            "spreadsheets; import needs a jsonl archive (the default)"
        )
    if not manifest.get("complete"):
        raise ArchiveError(
            f"{path} holds part of a store (exported with --tables or "
            "--since); only a complete archive can be imported"
        )
    every_store = {m._meta.table_name for m in MODELS} | {HISTORY_TABLE}
    missing = sorted(every_store - {t["name"] for t in manifest["tables"]})
    if missing and manifest.get("revision") == known_revisions()[-1]:
        raise ArchiveError(
            f"{path} says it is complete but has no {', '.join(missing)} "
            "table(s): it was cut down; nothing was written"
        )
    return load_store(url, ArchiveSource(manifest), progress)
