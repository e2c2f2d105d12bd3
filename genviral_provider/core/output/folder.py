"""Writing a window's rows to a folder of object storage: files, their formats, the manifest, atomic publishing.

Layout of an output folder (``<folder>`` is the operator's ``output_path``)::

    <folder>/part-00000.jsonl         rows, ``rows_per_file`` per part at most (.jsonl.gz with gzip, .parquet)
    <folder>/part-00001.jsonl         ...
    <folder>/_manifest.json           written last: the folder is complete when it exists
    <folder>/_staging/<token>/...     only while a run writes; removed when it publishes or fails
    <folder>/_staging/_publish.lock   only while a run publishes

A run writes its parts into its own staging folder (a unique token), and only once every row is written does
it publish, holding the folder's publish lock: remove the old manifest (the folder is now marked incomplete),
move the staged parts over the final names, remove data files of an earlier run that are not part of this
one, move the manifest in, release the lock, remove its own staging folder. Two runs writing the same folder
at once never touch each other's staging, and their publishes take turns: the last one wins completely.
A run that fails before publishing removes its staging files and leaves the previous output untouched.
A killed try cannot clean up: its staging folder is named after its task instance (``<owner hash>-<random>``),
and the next try of the same run to publish removes it; any staging whose files are all a day old is swept too.

Everything goes through an fsspec filesystem (the operator passes the one ``ObjectStoragePath`` resolves), so
it works the same on local disks and object stores. Object stores have no atomic rename: a reader listing the
folder during a publish may see old files, new ones, or both; only a reader of the manifest sees one run's output
(docs/object-storage.md). Nothing here needs Airflow.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import posixpath
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from genviral_provider.core.log import Log
from genviral_provider.core.output.formats import (
    JSONL_COMPRESSIONS,
    OUTPUT_FORMATS,
    PARQUET_COMPRESSIONS,
    JsonLinesPart,
    ParquetPart,
    PartWriter,
    require_pyarrow,
)
from genviral_provider.core.output.publish_lock import PUBLISH_LOCK_NAME, PublishLock, modified
from genviral_provider.core.rows import Row
from genviral_provider.exceptions import GenviralError, GenviralInvalidParameterError

MANIFEST_NAME = "_manifest.json"
STAGING_DIR = "_staging"
#: A staging folder whose files are all older than this was left by a killed attempt and is swept.
ABANDONED_STAGING_AGE = 86_400.0
#: Rows per data file before the output rolls over to the next part.
DEFAULT_ROWS_PER_FILE = 100_000
#: The data files a run owns in its folder: only these are ever replaced or removed.
DATA_FILE_NAME = re.compile(r"part-\d{5}\.(?:jsonl|jsonl\.gz|parquet)")


class FileSystem(Protocol):
    """The part of an fsspec ``AbstractFileSystem`` this module uses."""

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        """Open a file."""

    def exists(self, path: str, **kwargs: Any) -> bool:
        """Whether a path exists."""

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        """List a folder."""

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Create a folder (a no-op on most object stores)."""

    def mv(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Move a file, replacing the target."""

    def rm(self, path: str, recursive: bool = False, **kwargs: Any) -> None:
        """Remove a file, or a folder with ``recursive``."""

    def find(self, path: str, detail: bool = False, **kwargs: Any) -> Any:
        """List the files under a folder, recursively."""

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """Describe a path (size, type, modification time when the store knows it)."""

    def rmdir(self, path: str) -> None:
        """Remove an empty folder."""

    def size(self, path: str) -> int | None:
        """Return a file's size in bytes."""


@dataclass(frozen=True)
class OutputSpec:
    """How rows are written: format, compression, rows per file. Build one with :meth:`validated`.

    :param format: ``"jsonl"`` (one API row per line, unchanged) or ``"parquet"`` (flat typed columns).
    :param compression: for JSON Lines ``None`` or ``"gzip"``; for Parquet a codec (default ``snappy``).
    :param rows_per_file: rows per data file before rolling to the next part.
    """

    format: str = "jsonl"
    compression: str | None = None
    rows_per_file: int = DEFAULT_ROWS_PER_FILE

    @classmethod
    def validated(cls, output_format: str, compression: str | None, rows_per_file: int) -> OutputSpec:
        """Check the options and return them.

        :raises GenviralInvalidParameterError: naming the bad value and what is allowed.
        """
        if output_format not in OUTPUT_FORMATS:
            raise GenviralInvalidParameterError(
                f"Unknown output_format {output_format!r}: allowed are {', '.join(OUTPUT_FORMATS)}."
            )
        allowed = JSONL_COMPRESSIONS if output_format == "jsonl" else PARQUET_COMPRESSIONS
        if compression is not None and compression not in allowed:
            raise GenviralInvalidParameterError(
                f"compression {compression!r} is not available for {output_format}: allowed are None, "
                f"{', '.join(allowed)}."
            )
        if isinstance(rows_per_file, bool) or not isinstance(rows_per_file, int) or rows_per_file < 1:
            raise GenviralInvalidParameterError(f"rows_per_file {rows_per_file!r} is not a positive integer.")
        if output_format == "parquet":
            require_pyarrow()
        return cls(output_format, compression, rows_per_file)

    @property
    def extension(self) -> str:
        """Return the data files' extension: ``.jsonl``, ``.jsonl.gz`` or ``.parquet``."""
        if self.format == "parquet":
            return ".parquet"
        return ".jsonl.gz" if self.compression == "gzip" else ".jsonl"

    def part_name(self, index: int) -> str:
        """Return the name of the ``index``-th data file, e.g. ``part-00003.jsonl.gz``."""
        return f"part-{index:05d}{self.extension}"

    def as_dict(self) -> dict[str, Any]:
        """Return the options as JSON-ready data (for the manifest)."""
        compression = self.compression or ("snappy" if self.format == "parquet" else None)
        return {"format": self.format, "compression": compression, "rows_per_file": self.rows_per_file}


@dataclass(frozen=True)
class DataFile:
    """A data file written: its name in the folder, its rows and its size."""

    name: str
    rows: int
    bytes: int | None

    def as_dict(self) -> dict[str, Any]:
        """Return the file as JSON-ready data (for the manifest)."""
        return {"name": self.name, "rows": self.rows, "bytes": self.bytes}


@dataclass
class StagedOutput:
    """Stage a run's files in ``<folder>/_staging/<token>/``, then publish them over the folder's previous output.

    Use as a context manager: leaving it without :meth:`publish` (an error midway) removes the staged files.

    :param fs: the folder's filesystem (fsspec).
    :param folder: the folder's path on ``fs`` (no scheme), e.g. ``bucket/genviral/posts``.
    :param spec: format, compression and rows per file.
    :param log: where cleanup problems are reported (a ``logging.Logger`` or Airflow's task logger).
    :param owner: what writes, e.g. ``dag_id/task_id/run_id`` (see :func:`staging_owner`): a run's tries run
        one after another, so once one publishes, the staging left by its killed earlier tries is removed,
        while other runs' staging is left alone. ``None``: only this attempt's staging is ever removed (and
        any staging abandoned for a day).
    :param token: this attempt's staging folder name (default: ``<owner hash>-<random>``).
    """

    fs: FileSystem
    folder: str
    spec: OutputSpec
    log: Log = field(default_factory=lambda: logging.getLogger(__name__))
    owner: str | None = None
    token: str = ""
    files: list[DataFile] = field(default_factory=list, init=False)
    published: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.token = self.token or f"{self._owner_prefix}{uuid.uuid4().hex}"
        self.folder = self.folder.rstrip("/") or "/"
        self._folder_existed = self.fs.exists(self.folder)

    @property
    def staging(self) -> str:
        """Return this run's staging folder."""
        return posixpath.join(self.folder, STAGING_DIR, self.token)

    def __enter__(self) -> StagedOutput:
        self.fs.makedirs(self.staging, exist_ok=True)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.published:
            self.discard()

    def write(self, rows: Iterable[Row]) -> list[DataFile]:
        """Write every row into staged parts of at most ``rows_per_file`` rows; at least one part, maybe empty."""
        part: PartWriter | None = None
        count = 0
        try:
            for row in rows:
                if part is None or count == self.spec.rows_per_file:
                    if part is not None:
                        self._close_part(part, count)
                    part, count = self._open_part(len(self.files)), 0
                part.write(row)
                count += 1
            if part is None:
                part = self._open_part(0)
            self._close_part(part, count)
            part = None
        finally:
            if part is not None:
                with contextlib.suppress(Exception):  # the original error matters, not the half-written file
                    part.close()
        return list(self.files)

    def publish(self, manifest: Mapping[str, Any]) -> list[str]:
        """Replace the folder's previous output with the staged files, manifest last; return the data file names.

        ``manifest`` gets ``files`` (name, rows, bytes of each part) added. Publishing holds the folder's
        publish lock, so that two runs publishing at once never mix: the last one to publish wins completely (on
        a store without exclusive create there is no lock: see :mod:`~genviral_provider.core.output.publish_lock`).
        """
        names = [data_file.name for data_file in self.files]
        self._write_json(posixpath.join(self.staging, MANIFEST_NAME), {**manifest, "files": self._file_dicts()})
        lock_path = posixpath.join(self.folder, STAGING_DIR, PUBLISH_LOCK_NAME)
        probe = posixpath.join(self.staging, "_exclusive_create.probe")
        with PublishLock(self.fs, lock_path, self.token, self.log, probe=probe):
            self._check_staged([*names, MANIFEST_NAME])  # before the folder is touched: fail leaving it whole
            self._remove_if_exists(posixpath.join(self.folder, MANIFEST_NAME))
            for name in names:
                self.fs.mv(posixpath.join(self.staging, name), posixpath.join(self.folder, name))
            for stale in sorted(set(self.data_files()) - set(names)):
                self.fs.rm(posixpath.join(self.folder, stale))
            self.fs.mv(posixpath.join(self.staging, MANIFEST_NAME), posixpath.join(self.folder, MANIFEST_NAME))
            self.published = True
        self._remove_staging()
        self._remove_abandoned_staging()
        return names

    def discard(self) -> None:
        """Remove this run's staged files (best effort: a failure here is logged, never raised)."""
        try:
            self._remove_staging()
            if not self._folder_existed and self.fs.exists(self.folder) and not self.fs.ls(self.folder, detail=False):
                self.fs.rmdir(self.folder)
        except Exception as error:  # never hide the error that made the run fail
            self.log.warning("Could not remove staged files under %s: %s", self.staging, error)

    def data_files(self) -> list[str]:
        """Return the names of the data files now in the folder (``part-NNNNN.*``; nothing else is touched)."""
        return sorted(name for name in self._names(self.folder) if DATA_FILE_NAME.fullmatch(name))

    def _open_part(self, index: int) -> PartWriter:
        raw = self.fs.open(posixpath.join(self.staging, self.spec.part_name(index)), "wb")
        if self.spec.format == "parquet":
            return ParquetPart(raw, compression=self.spec.compression)
        return JsonLinesPart(raw, compress=self.spec.compression == "gzip")

    def _close_part(self, part: PartWriter, rows: int) -> None:
        part.close()
        name = self.spec.part_name(len(self.files))
        self.files.append(DataFile(name, rows, _size(self.fs, posixpath.join(self.staging, name))))

    def _file_dicts(self) -> list[dict[str, Any]]:
        return [data_file.as_dict() for data_file in self.files]

    def _write_json(self, path: str, data: Mapping[str, Any]) -> None:
        with self.fs.open(path, "wb") as handle:
            handle.write(json.dumps(data, indent=2, ensure_ascii=False, default=str).encode("utf-8") + b"\n")

    def _remove_staging(self) -> None:
        # Only this run's staging folder: another run may be writing its own next to it.
        root = posixpath.join(self.folder, STAGING_DIR)
        self._remove_if_exists(self.staging, recursive=True)
        with contextlib.suppress(OSError):
            if self.fs.exists(root) and not self.fs.ls(root, detail=False):
                self.fs.rmdir(root)

    @property
    def _owner_prefix(self) -> str:
        if self.owner is None:
            return ""
        return hashlib.sha256(self.owner.encode("utf-8")).hexdigest()[:16] + "-"

    def _check_staged(self, names: Sequence[str]) -> None:
        missing = [name for name in names if not self.fs.exists(posixpath.join(self.staging, name))]
        if missing:
            raise GenviralError(
                f"Staged file(s) {', '.join(missing)} under {self.staging} vanished before publishing (a later try "
                "of this task, or someone else, removed them); the folder's output was left as it was."
            )

    def _remove_abandoned_staging(self) -> None:
        """Remove staging left by earlier, killed tries of this owner, and any whose files are all a day old."""
        root = posixpath.join(self.folder, STAGING_DIR)
        prefix = self._owner_prefix
        try:
            for entry in self._names(root):
                path = posixpath.join(root, entry)
                earlier_try = bool(prefix) and entry.startswith(prefix) and entry != self.token
                if entry != PUBLISH_LOCK_NAME and (earlier_try or _abandoned(self.fs, path)):
                    self.log.info("Removing staging folder %s, abandoned by a killed attempt.", path)
                    self.fs.rm(path, recursive=True)
            if self.fs.exists(root) and not self.fs.ls(root, detail=False):
                self.fs.rmdir(root)
        except Exception as error:  # housekeeping: never fail a published run for it
            self.log.warning("Could not sweep abandoned staging folders under %s: %s", root, error)

    def _remove_if_exists(self, path: str, *, recursive: bool = False) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.fs.exists(path):
                self.fs.rm(path, recursive=recursive)

    def _names(self, folder: str) -> list[str]:
        try:
            entries = self.fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        return [posixpath.basename(str(entry).rstrip("/")) for entry in entries]


def _abandoned(fs: FileSystem, path: str) -> bool:
    """Whether every file under ``path`` is older than :data:`ABANDONED_STAGING_AGE` (unknown ages: no)."""
    try:
        infos = fs.find(path, detail=True).values()
    except (OSError, NotImplementedError):
        return False
    times = [modified(info) for info in infos]
    if not times or any(when is None for when in times):
        return False
    return time.time() - max(when for when in times if when is not None) > ABANDONED_STAGING_AGE


def staging_owner(run: Mapping[str, Any]) -> str | None:
    """Return who writes, for :class:`StagedOutput`: ``dag_id/task_id/run_id`` of a run identity, if known."""
    parts = [run.get("dag_id"), run.get("task_id"), run.get("run_id")]
    return "/".join(str(part) for part in parts) if all(parts) else None


def _size(fs: FileSystem, path: str) -> int | None:
    try:
        return fs.size(path)
    except (OSError, NotImplementedError):
        return None
