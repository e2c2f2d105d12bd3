"""Writing a window's rows to a folder of object storage: files, their formats, the manifest, atomic publishing.

Layout of an output folder (``<folder>`` is the operator's ``output_path``)::

    <folder>/part-00000.jsonl         rows, ``rows_per_file`` per part at most (.jsonl.gz with gzip, .parquet)
    <folder>/part-00001.jsonl         ...
    <folder>/_manifest.json           written last: the folder is complete when it exists
    <folder>/_staging/<token>/...     only while a run writes; removed when it publishes or fails

A run writes its parts into its own staging folder, and only once every row is written does it publish:
remove the old manifest (the folder is now marked incomplete), move the staged parts over the final names,
remove data files of an earlier run that are not part of this one, move the manifest in, remove staging.
A run that fails before publishing removes its staging files and leaves the previous output untouched.

Everything goes through an fsspec filesystem (the operator passes the one ``ObjectStoragePath`` resolves), so
it works the same on local disks and object stores, which have no atomic directory rename. Nothing here needs
Airflow.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import logging
import posixpath
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit

from genviral_provider import __version__
from genviral_provider.core.log import Log
from genviral_provider.core.rows import Row, published_at, row_key
from genviral_provider.core.run_window import RunWindow
from genviral_provider.exceptions import GenviralError, GenviralInvalidParameterError

OUTPUT_FORMATS = ("jsonl", "parquet")
JSONL_COMPRESSIONS = ("gzip",)
PARQUET_COMPRESSIONS = ("none", "snappy", "gzip", "brotli", "lz4", "zstd")
MANIFEST_NAME = "_manifest.json"
STAGING_DIR = "_staging"
MANIFEST_VERSION = 1
#: Rows per data file before the output rolls over to the next part.
DEFAULT_ROWS_PER_FILE = 100_000
#: Rows flattened in memory before they are written to Parquet as one batch.
PARQUET_BATCH_ROWS = 5_000
#: The data files a run owns in its folder: only these are ever replaced or removed.
DATA_FILE_NAME = re.compile(r"part-\d{5}\.(?:jsonl|jsonl\.gz|parquet)")

#: The Parquet schema: the API's fields by their API names, ``metrics`` flattened to ``metrics_<name>``, and
#: ``extra_fields`` holding (as a JSON object) any field the API adds that is not listed here.
PARQUET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "string"),
    ("analyticsId", "string"),
    ("platformPostId", "string"),
    ("genviralPostId", "string"),
    ("externalId", "string"),
    ("publishedAt", "timestamp"),
    ("caption", "string"),
    ("permalink", "string"),
    ("thumbnailUrl", "string"),
    ("durationSeconds", "float"),
    ("metrics_views", "int"),
    ("metrics_likes", "int"),
    ("metrics_comments", "int"),
    ("metrics_shares", "int"),
    ("metrics_saves", "int"),
    ("engagementRate", "float"),
    ("platform", "string"),
    ("accountIdentifier", "string"),
    ("accountDisplayName", "string"),
    ("accountAvatarUrl", "string"),
    ("extra_fields", "string"),
)
_METRIC_PREFIX = "metrics_"
_KNOWN_METRICS = tuple(name[len(_METRIC_PREFIX) :] for name, _ in PARQUET_COLUMNS if name.startswith(_METRIC_PREFIX))
_KNOWN_KEYS = frozenset(name for name, _ in PARQUET_COLUMNS if not name.startswith(_METRIC_PREFIX)) | {"metrics"}
# JSON allows these two in strings, but str.splitlines() and some JSON Lines readers split on them.
_LINE_SEPARATORS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029"})


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
            _require_pyarrow()
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


class _PartWriter(Protocol):
    def write(self, row: Row) -> None: ...

    def close(self) -> None: ...


class _JsonLinesPart:
    """One JSON Lines file: each row as compact UTF-8 JSON, keys and values exactly as the API sent them."""

    def __init__(self, raw: BinaryIO, *, compress: bool) -> None:
        self._raw = raw
        self._out: BinaryIO = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if compress else raw  # type: ignore[assignment]

    def write(self, row: Row) -> None:
        line = json.dumps(row, ensure_ascii=False, separators=(",", ":")).translate(_LINE_SEPARATORS)
        self._out.write(line.encode("utf-8") + b"\n")

    def close(self) -> None:
        try:
            if self._out is not self._raw:
                self._out.close()
        finally:
            self._raw.close()


class _ParquetPart:
    """One Parquet file, written in batches of :data:`PARQUET_BATCH_ROWS` flattened rows."""

    def __init__(self, raw: BinaryIO, *, compression: str | None) -> None:
        pa, pq = _require_pyarrow()
        self._pa = pa
        self._raw = raw
        self._schema = parquet_schema()
        self._writer = pq.ParquetWriter(raw, self._schema, compression=compression or "snappy")
        self._batch: list[dict[str, Any]] = []

    def write(self, row: Row) -> None:
        self._batch.append(flatten_row(row))
        if len(self._batch) >= PARQUET_BATCH_ROWS:
            self._flush()

    def close(self) -> None:
        try:
            self._flush()
            self._writer.close()
        finally:
            self._raw.close()

    def _flush(self) -> None:
        if self._batch:
            self._writer.write_batch(self._pa.RecordBatch.from_pylist(self._batch, schema=self._schema))
            self._batch = []


@dataclass
class StagedOutput:
    """Stage a run's files in ``<folder>/_staging/<token>/``, then publish them over the folder's previous output.

    Use as a context manager: leaving it without :meth:`publish` (an error midway) removes the staged files.

    :param fs: the folder's filesystem (fsspec).
    :param folder: the folder's path on ``fs`` (no scheme), e.g. ``bucket/genviral/posts``.
    :param spec: format, compression and rows per file.
    :param log: where cleanup problems are reported (a ``logging.Logger`` or Airflow's task logger).
    """

    fs: FileSystem
    folder: str
    spec: OutputSpec
    log: Log = field(default_factory=lambda: logging.getLogger(__name__))
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    files: list[DataFile] = field(default_factory=list, init=False)
    published: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
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
        part: _PartWriter | None = None
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

        ``manifest`` gets ``files`` (name, rows, bytes of each part) added.
        """
        names = [data_file.name for data_file in self.files]
        self._write_json(posixpath.join(self.staging, MANIFEST_NAME), {**manifest, "files": self._file_dicts()})
        self._remove_if_exists(posixpath.join(self.folder, MANIFEST_NAME))
        for name in names:
            self.fs.mv(posixpath.join(self.staging, name), posixpath.join(self.folder, name))
        for stale in sorted(set(self.data_files()) - set(names)):
            self.fs.rm(posixpath.join(self.folder, stale))
        self.fs.mv(posixpath.join(self.staging, MANIFEST_NAME), posixpath.join(self.folder, MANIFEST_NAME))
        self.published = True
        self._remove_staging(everything=True)
        return names

    def discard(self) -> None:
        """Remove this run's staged files (best effort: a failure here is logged, never raised)."""
        try:
            self._remove_staging(everything=False)
            if not self._folder_existed and self.fs.exists(self.folder) and not self.fs.ls(self.folder, detail=False):
                self.fs.rmdir(self.folder)
        except Exception as error:  # never hide the error that made the run fail
            self.log.warning("Could not remove staged files under %s: %s", self.staging, error)

    def data_files(self) -> list[str]:
        """Return the names of the data files now in the folder (``part-NNNNN.*``; nothing else is touched)."""
        return sorted(name for name in self._names(self.folder) if DATA_FILE_NAME.fullmatch(name))

    def _open_part(self, index: int) -> _PartWriter:
        raw = self.fs.open(posixpath.join(self.staging, self.spec.part_name(index)), "wb")
        if self.spec.format == "parquet":
            return _ParquetPart(raw, compression=self.spec.compression)
        return _JsonLinesPart(raw, compress=self.spec.compression == "gzip")

    def _close_part(self, part: _PartWriter, rows: int) -> None:
        part.close()
        name = self.spec.part_name(len(self.files))
        self.files.append(DataFile(name, rows, _size(self.fs, posixpath.join(self.staging, name))))

    def _file_dicts(self) -> list[dict[str, Any]]:
        return [data_file.as_dict() for data_file in self.files]

    def _write_json(self, path: str, data: Mapping[str, Any]) -> None:
        with self.fs.open(path, "wb") as handle:
            handle.write(json.dumps(data, indent=2, ensure_ascii=False, default=str).encode("utf-8") + b"\n")

    def _remove_staging(self, *, everything: bool) -> None:
        # After publishing, the whole staging folder goes (with leftovers of attempts that were killed);
        # after a failure, only this attempt's files.
        root = posixpath.join(self.folder, STAGING_DIR)
        self._remove_if_exists(root if everything else self.staging, recursive=True)
        if not everything and self.fs.exists(root) and not self.fs.ls(root, detail=False):
            with contextlib.suppress(OSError):
                self.fs.rmdir(root)

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


def build_manifest(
    *,
    window: RunWindow,
    filters: Mapping[str, Sequence[str]],
    counts: Mapping[str, int],
    api_parts: Sequence[Mapping[str, Any]],
    api_pages: int,
    spec: OutputSpec,
    extracted_at: dt.datetime,
    run: Mapping[str, Any],
    api_dates_read: Sequence[Mapping[str, str]] | None = None,
    api_requests: int | None = None,
) -> dict[str, Any]:
    """Return the manifest of an output folder (its ``files`` are added when it is published).

    :param window: the run's window.
    :param filters: ``platforms`` and ``accounts`` (empty: all).
    :param counts: ``rows``, ``rows_outside_window``, ``rows_without_published_at`` (see ``WindowFilter``).
    :param api_parts: the filter sets the window was read with, each with the API's ``totalCount``.
    :param api_pages: the pages fetched.
    :param spec: format, compression and rows per file.
    :param extracted_at: when reading began.
    :param run: what identifies the run (dag_id, task_id, run_id, try_number, logical_date).
    :param api_dates_read: the API date ranges actually asked, ``{"start", "end"}`` each, in order (default: the
        covering dates of :meth:`RunWindow.api_dates`, read whole).
    :param api_requests: the requests sent to read the window (default: ``api_pages``).
    """
    dates_read = [dict(dates) for dates in api_dates_read] if api_dates_read else None
    if dates_read:
        api_start, api_end = min(d["start"] for d in dates_read), max(d["end"] for d in dates_read)
    else:
        first, last = window.api_dates()
        api_start, api_end = first.isoformat(), last.isoformat()
        dates_read = [{"start": api_start, "end": api_end}]
    return {
        "manifest_version": MANIFEST_VERSION,
        "complete": True,
        "provider": {"name": "airflow-provider-genviral", "version": __version__},
        "extracted_at": extracted_at.astimezone(dt.timezone.utc).isoformat(),
        "published_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "window": {**window.as_dict(), "source": window.source},
        "api_dates": {"start": api_start, "end": api_end},
        "api_dates_read": dates_read,
        "api_requests": api_pages if api_requests is None else api_requests,
        "filters": {name: list(values) for name, values in filters.items()},
        "row_count": counts["rows"],
        "rows_outside_window": counts["rows_outside_window"],
        "rows_without_published_at": counts["rows_without_published_at"],
        "api": {
            "parts": list(api_parts),
            "pages": api_pages,
        },
        "output": spec.as_dict(),
        "run": dict(run),
    }


def location_uri(location: str) -> str | None:
    """Return the URI of a storage location without the connection id, or ``None`` if it names no location.

    ``s3://aws_default@bucket/posts/`` becomes ``s3://bucket/posts`` (the connection id is how Airflow reaches
    the bucket, not part of its name); ``/data/posts`` becomes ``file:///data/posts``. This is the URI of the
    output's Asset and lineage. Relative local paths name no location (workers' directories differ).
    """
    parts = urlsplit(location.strip())
    path = parts.path.rstrip("/")
    if parts.scheme in ("", "file", "local"):
        if parts.netloc or not path.startswith("/"):
            return None
        return f"file://{path}"
    host = parts.netloc.rpartition("@")[2]
    if not host or parts.query or parts.fragment:
        return None
    return f"{parts.scheme}://{host}{path}"


def flatten_row(row: Row) -> dict[str, Any]:
    """Return a row as the flat Parquet record: metrics as ``metrics_<name>``, unknown fields in ``extra_fields``.

    :raises GenviralError: when a field holds a value its column cannot hold, naming the row and field.
    """
    metrics = row.get("metrics")
    metrics = metrics if isinstance(metrics, Mapping) else {}
    flat: dict[str, Any] = {}
    for name, kind in PARQUET_COLUMNS[:-1]:
        if name.startswith(_METRIC_PREFIX):
            value = metrics.get(name[len(_METRIC_PREFIX) :])
        elif name == "publishedAt":
            value = published_at(row)
        else:
            value = row.get(name)
        flat[name] = _typed(row, name, kind, value)
    extra = {key: value for key, value in row.items() if key not in _KNOWN_KEYS}
    unknown_metrics = {key: value for key, value in metrics.items() if key not in _KNOWN_METRICS}
    if unknown_metrics:
        extra["metrics"] = unknown_metrics
    if row.get("metrics") is not None and not isinstance(row.get("metrics"), Mapping):
        extra["metrics"] = row["metrics"]
    flat["extra_fields"] = json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None
    return flat


def parquet_schema() -> Any:
    """Return the ``pyarrow.Schema`` of :data:`PARQUET_COLUMNS`."""
    pa, _ = _require_pyarrow()
    types = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "timestamp": pa.timestamp("us", "UTC")}
    return pa.schema([pa.field(name, types[kind], nullable=True) for name, kind in PARQUET_COLUMNS])


def _typed(row: Row, name: str, kind: str, value: Any) -> Any:
    if value is None or kind == "timestamp":
        return value
    if kind == "string":
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        value = int(value)
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "int" and isinstance(value, int):
        return value
    if kind == "float" and isinstance(value, int | float):
        return float(value)
    raise GenviralError(
        f"Row {row_key(row)!r}: field {name} holds {value!r}, which a Parquet {kind} column cannot hold. "
        "Write JSON Lines (output_format='jsonl') to keep rows exactly as the API sent them."
    )


def _size(fs: FileSystem, path: str) -> int | None:
    try:
        return fs.size(path)
    except (OSError, NotImplementedError):
        return None


def _require_pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise GenviralInvalidParameterError(
            "output_format='parquet' needs pyarrow: pip install 'airflow-provider-genviral[parquet]'."
        ) from None
    return pa, pq
