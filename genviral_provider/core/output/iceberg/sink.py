"""The Iceberg sink: a run's window written to a table in one atomic commit, retried when another run commits first.

Open it for a table and a window (the namespace and table are created on first use), write the window's rows
(staged on local disk, see :mod:`~genviral_provider.core.output.iceberg.staging`), then :meth:`IcebergSink.commit`
with the run's summary: one transaction adds the columns the rows brought (``union_by_name``), deletes the rows of
``publishedAt >= start AND publishedAt < end`` and appends the window's rows, with the summary in the snapshots'
properties. Readers see the table before or after it, never between. The rows are appended with pyiceberg's public
``Transaction.append``, one group of the stage at a time (memory stays bounded by the group), so a commit makes one
``delete`` snapshot (when the window held rows) and one ``append`` snapshot per group of about
:data:`~genviral_provider.core.output.iceberg.staging.COMMIT_GROUP_ROWS` rows (at least one, also for an empty
window), all in the one commit: the table's current snapshot moves once, from before the run to its last append.
When the catalog refuses the commit because another run committed first (``CommitFailedException``;
``ValidationException`` when pyiceberg finds that run's rows in the same window), the whole transaction is made
again on the refreshed table, after a bounded backoff.
Leaving the sink without committing (an error) commits nothing and removes the staged rows.

A sink given a ``snapshot_date`` writes a snapshots table instead (metrics as of that date): every row gets that
``snapshot_date``, the table is partitioned by it, and a commit replaces the rows of that date only. A sink given a
``checkpoint_age`` writes a checkpoints table: every row gets that ``checkpoint_age``, the table is partitioned by
it and by publication day, and a commit replaces the rows of that age published within the window only (see
:class:`~genviral_provider.core.output.iceberg.layout.TableKind`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import random
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from genviral_provider.core.log import Log
from genviral_provider.core.output.iceberg.catalog import table_identifier
from genviral_provider.core.output.iceberg.layout import (
    CHECKPOINT_COLUMN,
    CHECKPOINTS,
    ICEBERG_TYPE_NAMES,
    PARTITION_SOURCE,
    POSTS,
    SNAPSHOT_COLUMN,
    SNAPSHOTS,
    RowLayout,
    TableKind,
    iceberg_type,
    initial_schema,
    kind_of_columns,
    partition_spec,
    table_columns,
)
from genviral_provider.core.output.iceberg.staging import COMMIT_GROUP_ROWS, STAGE_BATCH_ROWS, ArrowStage
from genviral_provider.core.reading.run_window import RunWindow
from genviral_provider.core.rows import Row
from genviral_provider.exceptions import GenviralIcebergError, GenviralInvalidParameterError, GenviralSchemaChangeError

#: The prefix of the snapshot summary properties this provider sets.
PROPERTY_PREFIX = "genviral."


@dataclass(frozen=True)
class CommitRetry:
    """How often a refused commit is made again, and how long to wait before each new attempt.

    :param attempts: commit attempts in all.
    :param first_wait: seconds before the second attempt; doubled for each next one, up to ``max_wait``.
    :param max_wait: the longest wait, in seconds.
    """

    attempts: int = 8
    first_wait: float = 0.1
    max_wait: float = 5.0

    def wait(self, attempt: int) -> float:
        """Return the seconds to wait after failed attempt ``attempt`` (1-based), with up to 50 % jitter."""
        base = min(self.max_wait, self.first_wait * 2 ** (attempt - 1))
        return float(base * (1 + random.random() / 2))


@dataclass(frozen=True)
class Committed:
    """What a run committed: the table, the snapshot readers now see, the rows, how many attempts it took."""

    table: str
    snapshot_id: int | None
    row_count: int
    attempts: int
    added_columns: tuple[str, ...]


def _retryable_errors() -> tuple[type[Exception], ...]:
    from pyiceberg import exceptions

    found = (getattr(exceptions, name, None) for name in ("CommitFailedException", "ValidationException"))
    return tuple(error for error in found if isinstance(error, type))


class IcebergSink:
    """Write one window's rows into an Iceberg table in one commit; use as a context manager.

    :param catalog: a pyiceberg catalog (see :func:`~genviral_provider.core.output.iceberg.catalog.open_catalog`).
    :param table: ``namespace.table``.
    :param window: the window the rows belong to: exactly its rows are replaced (without ``snapshot_date``).
    :param snapshot_date: for a snapshots table, the date whose rows are replaced; the window only says what was
        read.
    :param checkpoint_age: for a checkpoints table, the age (e.g. ``48h``) whose rows of the window are replaced.
    :param log: where retries are reported.
    :param retry: how refused commits are retried.
    :param stage_dir: where rows are staged until the commit (default: the system's temporary folder).
    :param sleep: how to wait between attempts (tests pass a recorder).
    :param group_rows: rows appended at once (each group is one snapshot of the run's commit; bounds its memory).
    :param stage_batch_rows: records flattened in memory before they are staged as one batch.
    """

    def __init__(
        self,
        catalog: Any,
        table: str,
        window: RunWindow,
        *,
        log: Log,
        retry: CommitRetry = CommitRetry(),
        stage_dir: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        snapshot_date: dt.date | None = None,
        checkpoint_age: str | None = None,
        group_rows: int = COMMIT_GROUP_ROWS,
        stage_batch_rows: int = STAGE_BATCH_ROWS,
    ) -> None:
        namespace, name = table_identifier(table)
        self.catalog = catalog
        self.identifier = f"{namespace}.{name}"
        self.namespace = namespace
        self.window = window
        self.log = log
        self.retry = retry
        self.stage_dir = stage_dir
        self.sleep = sleep
        self.snapshot_date = snapshot_date
        self.checkpoint_age = checkpoint_age
        self.kind, self.key = _kind_and_key(snapshot_date, checkpoint_age)
        self.group_rows = group_rows
        self.stage_batch_rows = stage_batch_rows
        self.layout: RowLayout | None = None
        self.stage: ArrowStage | None = None

    def __enter__(self) -> IcebergSink:
        columns = table_columns(self._table().schema())
        self._check_kind_of_table(columns)
        self.layout = RowLayout(columns, table=self.identifier, constants=self.key)
        self.stage = ArrowStage(self.stage_dir, batch_rows=self.stage_batch_rows)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.stage is not None:
            self.stage.close()

    def write(self, rows: Iterable[Row]) -> int:
        """Stage the window's rows; return how many. Nothing is visible in the table before :meth:`commit`.

        :raises GenviralSchemaChangeError: when a value no longer fits its column (nothing is committed).
        """
        layout, stage = self._opened()
        for row in rows:
            stage.add(layout.record(row), layout.columns)
        stage.flush(layout.columns)
        return stage.rows

    def commit(self, properties: Mapping[str, str]) -> Committed:
        """Replace the window's rows by the staged ones in one transaction, retrying refused commits.

        :param properties: the snapshot summary properties (see :func:`snapshot_properties`).
        :raises GenviralIcebergError: when every attempt was refused; nothing was committed.
        """
        layout, stage = self._opened()
        retryable = _retryable_errors()
        for attempt in range(1, self.retry.attempts + 1):
            try:
                snapshot_id = self._commit_once(dict(properties))
            except retryable as error:
                if attempt == self.retry.attempts:
                    raise GenviralIcebergError(
                        f"Commit of {self.window.describe()} to {self.identifier} refused {attempt} times (other "
                        f"runs kept committing first): {type(error).__name__}: {error}. Nothing was committed; the "
                        "task's retry will try again."
                    ) from error
                wait = self.retry.wait(attempt)
                self.log.warning(
                    "Commit to %s refused (%s: %s), another run committed first: making it again on the refreshed "
                    "table in %.2f s (attempt %d of %d).",
                    self.identifier,
                    type(error).__name__,
                    error,
                    wait,
                    attempt + 1,
                    self.retry.attempts,
                )
                self.sleep(wait)
                continue
            return Committed(self.identifier, snapshot_id, stage.rows, attempt, tuple(layout.added))
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _commit_once(self, properties: dict[str, str]) -> int | None:
        _, stage = self._opened()
        table = self.catalog.load_table(self.identifier)
        transaction = table.transaction()
        new_columns = self._columns_to_add(table)
        if new_columns:
            with transaction.update_schema() as update:
                update.union_by_name(_schema_of(new_columns))
        replaced, properties = self._replaced(properties)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Delete operation did not match any records")
            transaction.delete(replaced, snapshot_properties=properties)
        schema = transaction.table_metadata.schema().as_arrow()
        # One append per group, all in this transaction: each is a snapshot, committed together with the delete.
        appended = False
        for group in stage.groups(schema, group_rows=self.group_rows):
            transaction.append(group, snapshot_properties=properties)
            appended = True
        if not appended:  # an empty window still leaves a snapshot that carries the run's summary
            transaction.append(schema.empty_table(), snapshot_properties=properties)
        committed = transaction.commit_transaction()
        snapshot = committed.current_snapshot()
        return snapshot.snapshot_id if snapshot is not None else None

    def _replaced(self, properties: dict[str, str]) -> tuple[Any, dict[str, str]]:
        """Return the filter of the rows this run replaces, and the snapshot properties that say which."""
        from pyiceberg import expressions

        filters: Any = expressions  # their pydantic signatures take (term, literal) positionally at run time
        keyed = {name: value.isoformat() if isinstance(value, dt.date) else value for name, value in self.key.items()}
        conditions = [filters.EqualTo(name, value) for name, value in keyed.items()]
        if self.kind.by_publication_day:
            conditions.append(filters.GreaterThanOrEqual(PARTITION_SOURCE, self.window.start.isoformat()))
            conditions.append(filters.LessThan(PARTITION_SOURCE, self.window.end.isoformat()))
        named = {f"{PROPERTY_PREFIX}{name.replace('_', '-')}": str(value) for name, value in keyed.items()}
        return functools.reduce(filters.And, conditions), {**properties, **named}

    def _columns_to_add(self, table: Any) -> dict[str, str]:
        """Return the columns this run adds that the (refreshed) table lacks; fail if one came with another type."""
        layout, _ = self._opened()
        now = table_columns(table.schema())
        for name, kind in layout.added.items():
            if name in now and now[name] != kind:
                old, new = ICEBERG_TYPE_NAMES.get(now[name], now[name]), ICEBERG_TYPE_NAMES[kind]
                raise GenviralSchemaChangeError(
                    f"Field {name!r}: another run added it to {self.identifier} as a {old} column while this run "
                    f"staged it as {new}. Nothing was committed.",
                    field=name,
                    old_type=old,
                    new_type=new,
                )
        return {name: kind for name, kind in layout.added.items() if name not in now}

    def _check_kind_of_table(self, columns: Mapping[str, str]) -> None:
        """Refuse to write into a table of another kind: its rows would be cut by a filter meant for other ones."""
        found = kind_of_columns(columns)
        if found == self.kind:
            return
        if self.kind is POSTS:
            column = found.key_columns[0][0]
            raise GenviralInvalidParameterError(
                f"table {self.identifier} holds {found.name} (it has a {column} column) and no {column} is given: "
                "replacing a window of publication times would cut rows out of every one of them. Give "
                f"{column} (e.g. {_KEY_EXAMPLES[column]!r}), or write posts to another table."
            )
        given = ", ".join(f"{name} {str(value)!r}" for name, value in self.key.items())
        wanted = " and ".join(f"{name} {kind} column" for name, kind in self.kind.key_columns)
        raise GenviralInvalidParameterError(
            f"{given} is given, but table {self.identifier} has no {wanted}: it holds {found.name}. Write "
            f"{self.kind.name} to a table of their own, e.g. {self.kind.example!r} (created on first write)."
        )

    def _table(self) -> Any:
        self.catalog.create_namespace_if_not_exists(self.namespace)
        schema = initial_schema(self.kind)
        return self.catalog.create_table_if_not_exists(
            self.identifier, schema=schema, partition_spec=partition_spec(schema)
        )

    def _opened(self) -> tuple[RowLayout, ArrowStage]:
        if self.layout is None or self.stage is None:
            raise RuntimeError("use IcebergSink as a context manager")
        return self.layout, self.stage


#: How a template gives each key column's value, for messages.
_KEY_EXAMPLES = {SNAPSHOT_COLUMN: "{{ dag_run.run_after | ds }}", CHECKPOINT_COLUMN: "48h"}


def _kind_and_key(snapshot_date: dt.date | None, checkpoint_age: str | None) -> tuple[TableKind, dict[str, Any]]:
    """Return the kind of table a sink writes, and the key values every row it writes gets."""
    if snapshot_date is not None and checkpoint_age is not None:
        raise GenviralInvalidParameterError(
            f"snapshot_date {snapshot_date.isoformat()!r} and checkpoint_age {checkpoint_age!r} are both given: a "
            "table holds snapshots or checkpoints, not both. Give one."
        )
    if snapshot_date is not None:
        return SNAPSHOTS, {SNAPSHOT_COLUMN: snapshot_date}
    if checkpoint_age is not None:
        return CHECKPOINTS, {CHECKPOINT_COLUMN: checkpoint_age}
    return POSTS, {}


def _schema_of(columns: Mapping[str, str]) -> Any:
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField

    fields = [
        NestedField(field_id=index, name=name, field_type=iceberg_type(kind), required=False)
        for index, (name, kind) in enumerate(columns.items(), start=1)
    ]
    return Schema(*fields)


def snapshot_properties(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Return the snapshot summary properties of a run: what its manifest says, in a few short strings.

    Not the whole manifest: the table's metadata file holds every snapshot's summary and is rewritten by every
    commit, so a summary stays a few hundred bytes (plus one timestamp per analytics target).

    :param manifest: what ``build_manifest`` returns for the run.
    """
    window = manifest.get("window") or {}
    freshness = manifest.get("freshness") or {}
    run = manifest.get("run") or {}
    api_dates = manifest.get("api_dates") or {}
    filters = {name: values for name, values in (manifest.get("filters") or {}).items() if values}
    targets = {target_id: target.get("last_refreshed_at") for target_id, target in freshness.get("targets", {}).items()}
    fields = {
        "window.start": window.get("start"),
        "window.end": window.get("end"),
        "window.source": window.get("source"),
        "row-count": manifest.get("row_count"),
        "api-requests": manifest.get("api_requests"),
        "run-id": run.get("run_id"),
        "dag-id": run.get("dag_id"),
        "task-id": run.get("task_id"),
        "freshness.watermark": freshness.get("watermark"),
        "freshness.targets": json.dumps(targets, sort_keys=True) if freshness else None,
        "api-dates": f"{api_dates['start']}..{api_dates['end']}" if api_dates else None,
        "filters": json.dumps(filters, sort_keys=True) if filters else None,
        "rows-outside-window": manifest.get("rows_outside_window"),
        "rows-without-published-at": manifest.get("rows_without_published_at"),
        "logical-date": run.get("logical_date"),
        "try-number": run.get("try_number"),
        "extracted-at": manifest.get("extracted_at"),
        "provider-version": (manifest.get("provider") or {}).get("version"),
    }
    return {f"{PROPERTY_PREFIX}{key}": str(value) for key, value in fields.items() if value is not None}
