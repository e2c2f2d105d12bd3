"""The posts table's columns and how a row fills them: the Parquet format's flat layout, plus evolved columns.

A table starts with :data:`~genviral_provider.core.output.formats.PARQUET_COLUMNS` (timestamps with UTC, metrics
as 64-bit integers, every column nullable, unknown fields as JSON in ``extra_fields``), partitioned by the day of
``publishedAt``. Where the Parquet format puts every unknown field in ``extra_fields``, the table gives a new
top-level field (or metric, as ``metrics_<name>``) holding a scalar its own nullable column; nested values, and
values of a type other than their column's first one within a run, stay in ``extra_fields``, so no field the API
sends is ever dropped. A value that no longer fits a column the table already has fails, naming the field, its
column's type and the value's type, before anything is committed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genviral_provider.core.output.formats import INT64_RANGE, PARQUET_COLUMNS, flatten_row
from genviral_provider.core.rows import Row, row_key
from genviral_provider.exceptions import GenviralSchemaChangeError

#: The partition field of a posts table: the day (UTC) of ``publishedAt``.
PARTITION_SOURCE = "publishedAt"
PARTITION_NAME = "publishedAt_day"
#: The column (and identity partition) of a snapshots table: the date of the snapshot each row belongs to.
SNAPSHOT_COLUMN = "snapshot_date"
#: The column (and identity partition) of a checkpoints table: the age at which the row's metrics were read.
CHECKPOINT_COLUMN = "checkpoint_age"


@dataclass(frozen=True)
class TableKind:
    """What a table holds: the key columns every row of one commit shares, and whether it is by publication day.

    A commit replaces the rows with its key's values (``identity`` partitions) and, in a table by publication day
    (``day(publishedAt)`` partitions), only those published within its window.

    :param name: what the table holds, for messages (``posts``, ``snapshots``, ``checkpoints``).
    :param key_columns: the key columns and their kinds, in partition order.
    :param by_publication_day: whether the table is partitioned, and a commit bounded, by the publication time.
    :param example: a table name for this kind, for messages.
    """

    name: str
    key_columns: tuple[tuple[str, str], ...]
    by_publication_day: bool
    example: str


POSTS = TableKind("posts", (), True, "genviral.posts")
SNAPSHOTS = TableKind("snapshots", ((SNAPSHOT_COLUMN, "date"),), False, "genviral.metrics_snapshots")
CHECKPOINTS = TableKind("checkpoints", ((CHECKPOINT_COLUMN, "string"),), True, "genviral.post_checkpoints")


def kind_of_columns(columns: Mapping[str, str]) -> TableKind:
    """Return the kind of a table with these columns: the one whose key columns it has, else a posts table."""
    for kind in (SNAPSHOTS, CHECKPOINTS):
        if all(name in columns for name, _ in kind.key_columns):
            return kind
    return POSTS


_METRIC_PREFIX = "metrics_"

#: A column kind (the Parquet layout's names, and ``boolean``) as Iceberg names its type.
ICEBERG_TYPE_NAMES = {
    "string": "string",
    "int": "long",
    "float": "double",
    "timestamp": "timestamptz",
    "boolean": "boolean",
    "date": "date",
}

_KNOWN_KINDS = dict(PARQUET_COLUMNS)
_KNOWN_METRICS = frozenset(name[len(_METRIC_PREFIX) :] for name in _KNOWN_KINDS if name.startswith(_METRIC_PREFIX))
_KNOWN_KEYS = frozenset(name for name in _KNOWN_KINDS if not name.startswith(_METRIC_PREFIX)) | {"metrics"}
#: The known numeric columns, their kinds and (for metrics) the metric's name: values that must be numbers.
_NUMERIC_KNOWN = tuple(
    (name, kind, name[len(_METRIC_PREFIX) :] if name.startswith(_METRIC_PREFIX) else "")
    for name, kind in PARQUET_COLUMNS
    if kind in ("int", "float")
)
#: How an error names a value's kind that no column holds.
_VALUE_NAMES = {"object": "object (nested)", "json": "number or text no column type holds"}


def value_kind(value: Any) -> str:
    """Return the kind of a JSON value: ``string``, ``int``, ``float``, ``boolean``, ``object``, ``array``, ``null``.

    An integer beyond 64 bits, a non-finite float and text with a lone surrogate have no column type: ``json``.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int" if value in INT64_RANGE else "json"
    if isinstance(value, float):
        return "float" if math.isfinite(value) else "json"
    if isinstance(value, str):
        return "string" if not any("\ud800" <= char <= "\udfff" for char in value) else "json"
    return "object" if isinstance(value, Mapping) else "array" if isinstance(value, list) else "json"


def fits(column_kind: str, value: Any) -> bool:
    """Whether a value can be stored in a column of a kind without changing it (ints in double columns do)."""
    kind = value_kind(value)
    if kind == "null" or kind == column_kind:
        return True
    if column_kind == "float":
        return kind == "int"
    return column_kind == "int" and kind == "float" and float(value).is_integer() and int(value) in INT64_RANGE


def _stored(column_kind: str, value: Any) -> Any:
    if value is None:
        return None
    if column_kind == "float":
        return float(value)
    return int(value) if column_kind == "int" else value


class RowLayout:
    """Turn rows into flat records for a table whose columns are ``columns`` (name to kind), growing it as needed.

    :param columns: the table's columns and their kinds (see :func:`table_columns`); kinds it does not know
        (``other``) fit only nulls.
    :param table: the table's name, for error messages.
    :param constants: columns set to the same value in every record (a snapshots table's ``snapshot_date``).
    """

    def __init__(self, columns: Mapping[str, str], *, table: str, constants: Mapping[str, Any] | None = None) -> None:
        self.table = table
        self.constants = dict(constants or {})
        self.existing = dict(columns)
        #: Columns this run adds, in the order first seen.
        self.added: dict[str, str] = {}

    @property
    def columns(self) -> dict[str, str]:
        """Return every column a record may fill: the table's, then those this run adds."""
        return {**self.existing, **self.added}

    def record(self, row: Row) -> dict[str, Any]:
        """Return a row as a flat record; new scalar fields become columns (see :attr:`added`).

        :raises GenviralSchemaChangeError: when a value does not fit a column the table already has.
        """
        promoted: dict[str, Any] = {}
        rest = {
            key: value for key, value in row.items() if key in _KNOWN_KEYS or not self._place(row, key, value, promoted)
        }
        metrics = row.get("metrics")
        if isinstance(metrics, Mapping):
            rest["metrics"] = {
                name: value
                for name, value in metrics.items()
                if name in _KNOWN_METRICS or not self._place(row, f"{_METRIC_PREFIX}{name}", value, promoted)
            }
        for column, kind, metric in _NUMERIC_KNOWN:
            value = (metrics.get(metric) if isinstance(metrics, Mapping) else None) if metric else row.get(column)
            if value_kind(value) != "boolean" and not fits(kind, value):  # booleans count as 0/1, as in Parquet
                raise self._changed(row, column, kind, value)
        flat = flatten_row(rest)
        flat.update(promoted)
        flat.update(self.constants)
        return flat

    def _place(self, row: Row, column: str, value: Any, promoted: dict[str, Any]) -> bool:
        """Put a field's value in its column (a new one if it is a scalar); ``False`` leaves it to ``extra_fields``."""
        kind = self.existing.get(column) or self.added.get(column)
        if kind is None:
            kind = value_kind(value)
            if kind not in ICEBERG_TYPE_NAMES:
                return False
            self.added[column] = kind
        if fits(kind, value):
            promoted[column] = _stored(kind, value)
            return True
        if column in self.existing:
            raise self._changed(row, column, kind, value)
        return False  # a column this run added: a later value of another type keeps its type in extra_fields

    def _changed(self, row: Row, column: str, kind: str, value: Any) -> GenviralSchemaChangeError:
        old = ICEBERG_TYPE_NAMES.get(kind, kind)
        kind_of_value = value_kind(value)
        new = ICEBERG_TYPE_NAMES.get(kind_of_value) or _VALUE_NAMES.get(kind_of_value, kind_of_value)
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:80] + "…"
        return GenviralSchemaChangeError(
            f"Field {column!r} changed type: table {self.table} has it as a {old} column, but row "
            f"{row_key(row)!r} holds a {new} value ({shown}). Nothing was committed. Iceberg cannot change a "
            f"column from {old} to {new}: rename or drop the column in the table, or write this window to another "
            "table.",
            field=column,
            old_type=old,
            new_type=new,
        )


def table_columns(schema: Any) -> dict[str, str]:
    """Return the top-level columns of a pyiceberg ``Schema`` by name, as kinds (``other`` for types we don't write)."""
    from pyiceberg.types import BooleanType, DateType, DoubleType, LongType, StringType, TimestamptzType

    kinds: dict[Any, str] = {StringType: "string", LongType: "int", DoubleType: "float", TimestamptzType: "timestamp"}
    kinds.update({BooleanType: "boolean", DateType: "date"})
    return {field.name: kinds.get(type(field.field_type), "other") for field in schema.fields}


def iceberg_type(kind: str) -> Any:
    """Return the pyiceberg type of a column kind."""
    from pyiceberg.types import BooleanType, DateType, DoubleType, LongType, StringType, TimestamptzType

    types = {"string": StringType, "int": LongType, "float": DoubleType, "timestamp": TimestamptzType}
    return {**types, "boolean": BooleanType, "date": DateType}[kind]()


def initial_schema(kind: TableKind = POSTS) -> Any:
    """Return the pyiceberg ``Schema`` a new table starts with: the Parquet columns, then its key's; all optional."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField

    columns = [*PARQUET_COLUMNS, *kind.key_columns]
    fields = [
        NestedField(field_id=index, name=name, field_type=iceberg_type(column_kind), required=False)
        for index, (name, column_kind) in enumerate(columns, start=1)
    ]
    return Schema(*fields)


def partition_spec(schema: Any) -> Any:
    """Return a new table's partitions: ``identity`` of each key column, then ``day(publishedAt)`` if by that day.

    A snapshots table: ``identity(snapshot_date)``; a checkpoints table: ``identity(checkpoint_age)`` and
    ``day(publishedAt)``; a posts table: ``day(publishedAt)``.
    """
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import DayTransform, IdentityTransform

    kind = kind_of_columns({field.name: "" for field in schema.fields})
    sources: list[tuple[str, Any, str]] = [(name, IdentityTransform(), name) for name, _ in kind.key_columns]
    if kind.by_publication_day:
        sources.append((PARTITION_SOURCE, DayTransform(), PARTITION_NAME))
    fields = [
        PartitionField(source_id=schema.find_field(source).field_id, field_id=1000 + index, transform=how, name=name)
        for index, (source, how, name) in enumerate(sources)
    ]
    return PartitionSpec(*fields)


def arrow_schema(columns: Mapping[str, str]) -> Any:
    """Return the Arrow schema of records with these columns (every field nullable)."""
    import pyarrow as pa

    types = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "timestamp": pa.timestamp("us", "UTC")}
    types.update({"boolean": pa.bool_(), "date": pa.date32()})
    return pa.schema([pa.field(name, types[kind]) for name, kind in columns.items() if kind in types])
