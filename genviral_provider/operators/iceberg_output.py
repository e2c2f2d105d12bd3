"""``output_format="iceberg"`` of GenviralPostsOperator: a run's window committed to an Iceberg table, once.

Everything is checked before the first API request: the table's name, the ``iceberg`` extra, the catalog's
connection and that the catalog answers. Then the window is read, staged, and committed in one transaction
(:class:`~genviral_provider.core.output.iceberg.sink.IcebergSink`); a failure before the commit commits nothing.
The task returns a small XCom (table, snapshot id, row count) and the Asset event and OpenLineage output name
the table as ``iceberg://<catalog>/<namespace>.<table>`` with the snapshot id. See ``docs/iceberg.md``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, Context

from genviral_provider.core.output.folder import OutputSpec
from genviral_provider.core.output.iceberg.catalog import open_catalog, require_pyiceberg, table_identifier
from genviral_provider.core.output.iceberg.sink import Committed, IcebergSink, snapshot_properties
from genviral_provider.core.output.manifest import read_manifest, run_identity
from genviral_provider.core.reading.run_window import RunWindow, checked_max_unplaceable
from genviral_provider.core.rows import UTC
from genviral_provider.exceptions import GenviralInvalidParameterError
from genviral_provider.hooks.iceberg import iceberg_catalog_config

if TYPE_CHECKING:
    from genviral_provider.core.api.query import PostsFilter
    from genviral_provider.operators.genviral import GenviralPostsOperator

ICEBERG_FORMAT = "iceberg"


def table_uri(catalog: str, table: str) -> str:
    """Return the URI that names a table in Assets and lineage: ``iceberg://<catalog>/<namespace>.<table>``."""
    return f"iceberg://{catalog}/{table}"


def default_table_asset(table: str | None, catalog_conn_id: str) -> Asset | None:
    """Return the Asset of a table given without templates (the catalog is named by its connection id)."""
    if not table or "{{" in table or "{%" in table or "{{" in catalog_conn_id:
        return None
    return Asset(uri=table_uri(catalog_conn_id, table.strip()))


def write_to_iceberg(
    operator: GenviralPostsOperator, context: Context, *, checkpoint_age: str | None = None
) -> dict[str, Any]:
    """Check the sink, read the run's window and commit it to ``operator.table``; return the run's summary.

    :param checkpoint_age: for a checkpoints table, the age whose rows of the window the run replaces.
    """
    table = _checked_table(operator)
    snapshot_date = _checked_snapshot_date(operator.snapshot_date)
    checked_max_unplaceable(operator.max_unplaceable_rows)
    window = operator._resolve_window(context)
    filters = operator._checked_filters()
    config = iceberg_catalog_config(operator.catalog_conn_id, log=operator.log)
    catalog = open_catalog(config)  # an unreachable catalog fails here, before any API request
    freshness = operator._freshness(window, filters)
    sink = IcebergSink(
        catalog, table, window, log=operator.log, snapshot_date=snapshot_date, checkpoint_age=checkpoint_age
    )
    committed = _read_and_commit(operator, context, sink, window, filters, freshness)
    uri = table_uri(config.name, committed.table)
    operator.log.info(
        "Committed %d rows of %s to %s: snapshot %s (%d attempt(s)%s).",
        committed.row_count,
        window.describe(),
        uri,
        committed.snapshot_id,
        committed.attempts,
        f", new columns {', '.join(committed.added_columns)}" if committed.added_columns else "",
    )
    operator._record_asset_event(context, uri, window, committed.row_count, freshness)
    events = context.get("outlet_events")
    if operator.asset is not None and events is not None:
        events[operator.asset].extra.update({"table": committed.table, "snapshot_id": committed.snapshot_id})
    operator._keep_lineage(window, filters, committed.row_count, output_uri=uri)
    if operator._lineage is not None:
        operator._lineage["snapshot_id"] = committed.snapshot_id
    return {
        **({"checkpoint_age": checkpoint_age} if checkpoint_age is not None else {}),
        "table": committed.table,
        "catalog": config.name,
        "uri": uri,
        "snapshot_id": committed.snapshot_id,
        "row_count": committed.row_count,
        "added_columns": list(committed.added_columns),
        "window": window.as_dict(),
        "freshness_watermark": freshness["watermark"],
        "stale_targets": freshness["stale_targets"],
    }


def _checked_table(operator: GenviralPostsOperator) -> str:
    if operator.table is None:
        raise GenviralInvalidParameterError(
            "output_format='iceberg' needs table='<namespace>.<table>', e.g. table='genviral.posts'"
            + (
                f" (output_path {str(operator.output_path)!r} is for jsonl and parquet)."
                if operator.output_path
                else "."
            )
        )
    namespace, name = table_identifier(operator.table)
    require_pyiceberg()
    if operator.output_path is not None:  # a templated format chose the table
        operator.log.info("output_format='iceberg' writes to table %s; output_path is not used.", operator.table)
    return f"{namespace}.{name}"


def _checked_snapshot_date(value: Any) -> dt.date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise GenviralInvalidParameterError(
            f"snapshot_date {value!r} is not a date: give YYYY-MM-DD, e.g. '{{{{ dag_run.run_after | ds }}}}'."
        ) from None


def _read_and_commit(
    operator: GenviralPostsOperator,
    context: Context,
    sink: IcebergSink,
    window: RunWindow,
    filters: PostsFilter,
    freshness: dict[str, Any],
) -> Committed:
    extracted_at = dt.datetime.now(UTC)
    kept = operator._window_filter(window)  # the bound on unplaceable rows holds here as for folders
    spec = OutputSpec(format=ICEBERG_FORMAT)
    with operator._posts(window, filters) as stream, sink:
        sink.write(kept.rows(stream))
        operator._warn_unplaceable(kept)
        run = run_identity(context)
        manifest = read_manifest(window, filters, kept, stream.stats, spec, extracted_at, run, freshness)
        return sink.commit(snapshot_properties(manifest))
