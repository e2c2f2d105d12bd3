"""The file formats of the folder sink: JSON Lines (rows exactly as the API sent them) and Parquet (typed columns).

A part writer takes rows one at a time and writes them to an open binary file; Parquet is written in batches so
that memory stays bounded whatever the window's size.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, BinaryIO, Protocol

from genviral_provider.core.rows import Row, published_at, row_key
from genviral_provider.exceptions import GenviralError, GenviralInvalidParameterError

OUTPUT_FORMATS = ("jsonl", "parquet")


JSONL_COMPRESSIONS = ("gzip",)


PARQUET_COMPRESSIONS = ("none", "snappy", "gzip", "brotli", "lz4", "zstd")


#: Rows flattened in memory before they are written to Parquet as one batch.
PARQUET_BATCH_ROWS = 5_000


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

#: The version of the row layout above, recorded in every manifest: raised when a column is added, renamed or
#: changes type, so that readers can tell which layout a folder holds.
SCHEMA_VERSION = 1


def unknown_fields(row: Row) -> list[str]:
    """The fields of a row the layout has no column for: top-level keys, and ``metrics.<name>`` for metrics.

    In Parquet they go to ``extra_fields``; in JSON Lines they are written as the API sent them.
    """
    metrics = row.get("metrics")
    unknown = [key for key in row if key not in _KNOWN_KEYS]
    if isinstance(metrics, Mapping):
        unknown += [f"metrics.{key}" for key in metrics if key not in _KNOWN_METRICS]
    return unknown


class FieldDrift:
    """Count, per field the layout does not know, the rows that carry it, as the rows stream by."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def track(self, rows: Iterable[Row]) -> Iterator[Row]:
        """Yield the rows unchanged, counting their unknown fields."""
        for row in rows:
            for name in unknown_fields(row):
                self.counts[name] = self.counts.get(name, 0) + 1
            yield row

    def describe(self, *, kept_in: str | None) -> str:
        """One warning naming the unknown fields and their rows, and where they are kept (default: as sent)."""
        fields = ", ".join(f"{name} ({rows} row(s))" for name, rows in sorted(self.counts.items()))
        return (
            f"The API sent field(s) the row layout (schema_version {SCHEMA_VERSION}) does not know: {fields}; they "
            f"are kept in {kept_in or 'the rows as the API sent them'} and counted in the manifest's unknown_fields."
        )


# JSON allows these two in strings, but str.splitlines() and some JSON Lines readers split on them.
_LINE_SEPARATORS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029"})


#: A lone surrogate (text the API sent as an unpaired ``\\udXXX`` escape) cannot be encoded as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")


INT64_RANGE = range(-(2**63), 2**63)


class PartWriter(Protocol):
    def write(self, row: Row) -> None: ...

    def close(self) -> None: ...


class JsonLinesPart:
    """One JSON Lines file: each row as compact UTF-8 JSON, keys and values exactly as the API sent them."""

    def __init__(self, raw: BinaryIO, *, compress: bool) -> None:
        self._raw = raw
        self._out: BinaryIO = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if compress else raw  # type: ignore[assignment]

    def write(self, row: Row) -> None:
        self._out.write(strict_json_line(row))

    def close(self) -> None:
        try:
            if self._out is not self._raw:
                self._out.close()
        finally:
            self._raw.close()


class ParquetPart:
    """One Parquet file, written in batches of :data:`PARQUET_BATCH_ROWS` flattened rows."""

    def __init__(self, raw: BinaryIO, *, compression: str | None) -> None:
        pa, pq = require_pyarrow()
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


def strict_json_line(row: Row) -> bytes:
    """Return a row as one line of strict JSON (RFC 8259) in UTF-8, losslessly, or fail naming the field.

    A lone surrogate is written as its ``\\udXXX`` escape, as the API sent it (valid JSON; a strict UTF-8
    encoder cannot write the character itself). Integers of any size are written exactly. NaN and Infinity
    have no JSON form: writing them as null or as a string would change the data, so they fail.

    :raises GenviralError: for NaN or infinity, naming the row and the field.
    """
    because = " (no NaN or Infinity in strict JSON); the API sent a value that is not a JSON number"
    line = _strict_json(row, row, because=because, separators=(",", ":"))
    return line.translate(_LINE_SEPARATORS).encode("utf-8") + b"\n"


def _strict_json(row: Row, value: Any, *, because: str, **dumps_options: Any) -> str:
    """Return ``value`` (``row`` or part of it) as strict JSON, lone surrogates escaped; fail naming a NaN's field."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, **dumps_options)
    except ValueError:
        field_path, bad = _first_non_finite(value) or ("?", None)
        raise GenviralError(
            f"Row {_shown_key(row)}: field {field_path} holds {bad!r}, which JSON cannot represent{because}. "
            "Nothing was written."
        ) from None
    return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def _first_non_finite(value: Any, path: str = "") -> tuple[str, float] | None:
    """Return the path (``metrics.views``, ``tags[2]``) and value of the first NaN or infinity in ``value``."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "(row)", value
    if isinstance(value, Mapping):
        children = [(f"{path}.{key}" if path else str(key), item) for key, item in value.items()]
    elif isinstance(value, list):
        children = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    else:
        return None
    for child_path, item in children:
        found = _first_non_finite(item, child_path)
        if found is not None:
            return found
    return None


def _shown_key(row: Row) -> str:
    key = row_key(row)
    return repr(key if len(key) <= 100 else key[:100] + "…")


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
    flat["extra_fields"] = _extra_fields_json(row, extra) if extra else None
    return flat


def _extra_fields_json(row: Row, extra: dict[str, Any]) -> str:
    return _strict_json(row, extra, because="; it would go in extra_fields as JSON", sort_keys=True)


def parquet_schema() -> Any:
    """Return the ``pyarrow.Schema`` of :data:`PARQUET_COLUMNS`."""
    pa, _ = require_pyarrow()
    types = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "timestamp": pa.timestamp("us", "UTC")}
    return pa.schema([pa.field(name, types[kind], nullable=True) for name, kind in PARQUET_COLUMNS])


def _typed(row: Row, name: str, kind: str, value: Any) -> Any:
    if value is None or kind == "timestamp":
        return value
    if kind == "string":
        text = value if isinstance(value, str) else _extra_fields_json(row, value)
        if _SURROGATE.search(text) is None:
            return text
    if isinstance(value, bool):
        value = int(value)
    if kind == "int" and isinstance(value, float) and value.is_integer() and int(value) in INT64_RANGE:
        return int(value)
    if kind == "int" and isinstance(value, int) and value in INT64_RANGE:
        return value
    if kind == "float" and isinstance(value, int | float):
        with contextlib.suppress(OverflowError):  # an integer beyond a double's range
            return float(value)
    raise GenviralError(
        f"Row {_shown_key(row)}: field {name} holds {_shown_value(value)}, which a Parquet {kind} column cannot "
        "hold (a string must be valid Unicode without lone surrogates, an int must fit in 64 bits). "
        "Write JSON Lines (output_format='jsonl') to keep rows exactly as the API sent them."
    )


def _shown_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 100 else text[:100] + "…"


def require_pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise GenviralInvalidParameterError(
            "output_format='parquet' needs pyarrow: pip install 'airflow-provider-genviral[parquet]'."
        ) from None
    return pa, pq
