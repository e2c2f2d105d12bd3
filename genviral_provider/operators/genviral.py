"""GenviralPostsOperator: the posts of one window, written once to object storage as JSON Lines or Parquet."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import Asset, BaseOperator, Context, ObjectStoragePath

from genviral_provider.core.api.query import PostsFilter, posts_filter
from genviral_provider.core.freshness.refresh import (
    freshness_summary,
    iso,
)
from genviral_provider.core.output.folder import (
    DEFAULT_ROWS_PER_FILE,
    MANIFEST_NAME,
    OutputSpec,
    StagedOutput,
    staging_owner,
)
from genviral_provider.core.output.formats import FieldDrift
from genviral_provider.core.output.locations import location_uri, normalised_location, partition_key
from genviral_provider.core.output.manifest import read_manifest, run_identity
from genviral_provider.core.reading.plan import WindowStream
from genviral_provider.core.reading.run_window import (
    Instant,
    RunWindow,
    WindowFilter,
    checked_max_unplaceable,
    window_of_run,
)
from genviral_provider.core.rows import UTC, Row
from genviral_provider.exceptions import GenviralError, GenviralInvalidParameterError
from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.hooks.iceberg import DEFAULT_CATALOG_CONN_ID
from genviral_provider.operators.assets import as_list, default_asset
from genviral_provider.operators.iceberg_output import ICEBERG_FORMAT, default_table_asset, write_to_iceberg

# Imported here too, so that ``genviral_provider.operators.genviral`` keeps naming every operator.
from genviral_provider.operators.refresh import GenviralRefreshAnalyticsOperator
from genviral_provider.version_compat import add_partition, get_hook_lineage_collector

#: The most rows returned through XCom (``return_rows=True``, no ``output_path``); beyond it the task fails.
MAX_RETURNED_ROWS = 1_000


class GenviralPostsOperator(BaseOperator):
    """Write every post published in the run's window to object storage, exactly once.

    The window is half-open, ``[start, end)``: explicit ``start``/``end`` if given, else the run's data interval
    if it is not empty, else ``window`` ending at the interval's end, the logical date or ``run_after``. The API
    is asked for dates that cover the window however it reads them, and only rows whose ``publishedAt`` lies in
    the window are kept, so consecutive runs tile the timeline: no post lost, none twice.

    Rows are staged, then published to ``output_path`` with a ``_manifest.json`` written last; a re-run replaces
    the folder's earlier output, a failed run leaves it untouched. See ``docs/operator.md`` for the layout.

    :param output_path: the folder to write to, an ``ObjectStoragePath`` URI such as ``file:///data/posts/{{ ds }}``
        or ``s3://aws_default@bucket/posts/{{ ds }}`` (templated). Required for ``jsonl`` and ``parquet`` unless
        ``return_rows``; not used with ``iceberg``, so that a templated ``output_format`` may choose between an
        ``output_path`` and a ``table`` both given.
    :param return_rows: without ``output_path``, return the rows themselves through XCom, at most
        :data:`MAX_RETURNED_ROWS` (more fail the task). Off by default, so that XCom, which lives in the metadata
        database, stays small: the return value is then a summary of a few hundred bytes.
    :param start: the window's first instant: an ISO 8601 date or date-time, with or without offset; naive values
        are in the DAG's time zone (templated).
    :param end: the first instant after the window, in the same forms (templated).
    :param window: the window's length when neither ``start``/``end`` nor a non-empty data interval gives it. With
        zero-width schedules (``"@hourly"``, ``timedelta(...)``, cron strings) set it to the schedule's period.
    :param platforms: only these platforms, e.g. ``["tiktok", "instagram"]`` (templated).
    :param accounts: only these analytics target ids (templated).
    :param output_format: ``"jsonl"`` (one API row per line, unchanged), ``"parquet"`` (flat typed columns;
        needs the ``parquet`` extra) or ``"iceberg"`` (an Iceberg table, see ``table``; the ``iceberg`` extra)
        (templated).
    :param table: with ``output_format="iceberg"``, the table as ``<namespace>.<table>``, e.g. ``genviral.posts``
        (templated; not used with the folder formats): created on first write; each run replaces exactly its
        window's rows in one commit (see ``docs/iceberg.md``).
    :param catalog_conn_id: the connection holding the Iceberg catalog's properties in its extra; without such a
        connection, the embedded sqlite catalog under ``$AIRFLOW_HOME/genviral_iceberg/`` (templated).
    :param snapshot_date: with ``output_format="iceberg"``, write a snapshots table instead: every row gets this
        ``snapshot_date`` (``YYYY-MM-DD``), and a run replaces that date's rows only (templated).
    :param compression: ``"gzip"`` for JSON Lines; a Parquet codec (default ``snappy``) for Parquet.
    :param rows_per_file: rows per data file before the output rolls over to the next part.
    :param asset: the Asset the output updates. Default: ``output_path`` up to its first template expression,
        without connection id (``file:///data/posts/{{ ds }}`` gives ``Asset("file:///data/posts")``). An asset
        of the folder's scheme must contain the folder; one of another scheme names the dataset wherever it is
        written (``Asset("genviral://posts")``, as the example DAGs do). Each run's event carries its folder (or
        table), window and row count in ``extra``.
    :param partition_asset_events: give each run's Asset event a ``partition_key``: the folder's partition
        value (``published_date=2026-01-05`` gives ``2026-01-05``), for partition-aware DAGs downstream (Airflow
        3.3+). Off by default: Airflow does not queue DAGs with a plain Asset schedule for a partitioned event.
    :param max_unplaceable_rows: how many rows without a readable ``publishedAt`` (missing, a number, a time
        without offset) may be skipped, counted in the manifest as ``rows_without_published_at``. Default 0: the
        first such row fails the task, naming it, since it belongs to some window that would be published without it.
    :param genviral_conn_id: the Genviral connection (templated).

    With ``apache-airflow-providers-openlineage`` installed (the ``openlineage`` extra), each run reports the
    API window it read as its input dataset (namespace ``genviral://<host>``, name ``analytics/summary/posts``,
    facet ``genviralWindow`` with the window and filters) and the folder it wrote as its output, with the row
    count (``outputStatistics``).
    """

    template_fields: Sequence[str] = (
        "output_path",
        "start",
        "end",
        "platforms",
        "accounts",
        "genviral_conn_id",
        "output_format",
        "table",
        "catalog_conn_id",
        "snapshot_date",
    )
    ui_color = "#f2e8ff"

    def __init__(
        self,
        *,
        output_path: str | ObjectStoragePath | None = None,
        start: Instant | None = None,
        end: Instant | None = None,
        window: dt.timedelta = dt.timedelta(days=1),
        platforms: Sequence[str] | str | None = None,
        accounts: Sequence[str] | str | None = None,
        output_format: str = "jsonl",
        compression: str | None = None,
        rows_per_file: int = DEFAULT_ROWS_PER_FILE,
        asset: Asset | None = None,
        return_rows: bool = False,
        max_unplaceable_rows: int = 0,
        genviral_conn_id: str = GenviralHook.default_conn_name,
        table: str | None = None,
        catalog_conn_id: str = DEFAULT_CATALOG_CONN_ID,
        snapshot_date: str | dt.date | None = None,
        partition_asset_events: bool = False,
        **kwargs: Any,
    ) -> None:
        if asset is None:
            iceberg = output_format == ICEBERG_FORMAT
            asset = default_table_asset(table, catalog_conn_id) if iceberg else default_asset(output_path)
        if asset is not None:
            kwargs["outlets"] = [*as_list(kwargs.get("outlets")), asset]
        super().__init__(**kwargs)
        self.output_path = output_path
        self.start = start
        self.end = end
        self.window = window
        self.platforms = platforms
        self.accounts = accounts
        self.output_format = output_format
        self.compression = compression
        self.rows_per_file = rows_per_file
        self.asset = asset
        self.return_rows = return_rows
        self.max_unplaceable_rows = max_unplaceable_rows
        self.genviral_conn_id = genviral_conn_id
        self.table = table
        self.catalog_conn_id = catalog_conn_id
        self.snapshot_date = snapshot_date
        self.partition_asset_events = partition_asset_events
        self._lineage: dict[str, Any] | None = None  # what execute() read and wrote, for OpenLineage
        self._dates_read: list[dict[str, str]] = []  # the API dates the last read asked, in order
        self._bytes_written: int | None = None  # the data files' size, once published
        self._unknown_fields: dict[str, int] = {}  # per field the row layout does not know, the rows carrying it

    @cached_property
    def hook(self) -> GenviralHook:
        """The hook of ``genviral_conn_id``."""
        return GenviralHook(genviral_conn_id=self.genviral_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Read the run's window and publish it; return a small summary (the rows only with ``return_rows``)."""
        if self.output_format == ICEBERG_FORMAT:
            return write_to_iceberg(self, context)
        spec = OutputSpec.validated(self.output_format, self.compression, self.rows_per_file)
        if self.table is not None and self.output_path is not None:  # a templated format chose the folder
            self.log.info("output_format %r writes to output_path; table %r is not used.", spec.format, self.table)
        checked_max_unplaceable(self.max_unplaceable_rows)
        window = self._resolve_window(context)
        filters = self._checked_filters()
        if self.output_path is None:
            return self._return_rows(window, filters)
        folder, folder_uri = self._output_folder()
        freshness = self._freshness(window, filters)
        names, rows = self._stage_and_publish(
            window, filters, spec, folder, run=run_identity(context), freshness=freshness
        )
        self.log.info("Published %d rows of %s to %s in %d file(s).", rows, window.describe(), folder_uri, len(names))
        get_hook_lineage_collector().add_output_asset(context=folder, uri=folder_uri)
        self._record_asset_event(context, folder_uri, window, rows, freshness)
        self._keep_lineage(window, filters, rows, output_uri=folder_uri, file_count=len(names))
        return {
            "output_path": str(folder),
            "uri": folder_uri,
            "files": [str(folder / name) for name in names],
            "row_count": rows,
            "window": window.as_dict(),
            "manifest": str(folder / MANIFEST_NAME),
            "freshness_watermark": freshness["watermark"],
            "stale_targets": freshness["stale_targets"],
        }

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Render the templated fields, with the run's window in their context as ``run_window``.

        ``output_path="…/published_date={{ run_window.start | ds }}"`` names the folder after the window the task
        reads, whichever rule chose it (see ``docs/operator.md``). ``start`` and ``end`` are rendered first, since
        the window depends on them; a bad bound leaves ``run_window`` undefined and fails in ``execute()``.
        """
        env = jinja_env or self.get_template_env()
        self._do_render_template_fields(self, ("start", "end"), context, env, set())
        with contextlib.suppress(GenviralInvalidParameterError):
            window = window_of_run(context, start=self.start, end=self.end, length=self.window)
            context["run_window"] = window  # type: ignore[typeddict-unknown-key]
        super().render_template_fields(context, env)

    def _resolve_window(self, context: Context) -> RunWindow:
        window = window_of_run(context, start=self.start, end=self.end, length=self.window)
        self.log.info("Window %s: reading the API's dates around it, only where they hold its rows.", window.describe())
        return window

    def _checked_filters(self) -> PostsFilter:
        return posts_filter(platforms=self.platforms, accounts=self.accounts)

    def _output_folder(self) -> tuple[ObjectStoragePath, str]:
        text = normalised_location(str(self.output_path))  # checks and writes see the same folder: no '..'
        uri = location_uri(text)
        if uri is None:
            raise GenviralInvalidParameterError(
                f"output_path {text!r} is not a folder URI: expected e.g. file:///data/genviral/posts or "
                "s3://aws_default@bucket/genviral/posts."
            )
        try:
            folder = ObjectStoragePath(text if "://" in text else uri)
            folder.fs  # noqa: B018 - resolve the filesystem now, to fail before reading the API
        except (ValueError, ImportError) as error:
            raise GenviralInvalidParameterError(
                f"output_path {text!r} cannot be written: {error}. {_filesystem_hint(uri.split(':', 1)[0])}"
            ) from error
        self._check_asset_covers(uri)
        return folder, uri

    def _check_asset_covers(self, folder_uri: str) -> None:
        """Refuse a folder outside an asset of the same store; an asset of another scheme names a dataset."""
        asset_uri = normalised_location(self.asset.uri).rstrip("/") if self.asset is not None else ""
        same_store = asset_uri.split("://", 1)[0] == folder_uri.split("://", 1)[0]
        if same_store and folder_uri != asset_uri and not folder_uri.startswith(asset_uri + "/"):
            raise GenviralInvalidParameterError(
                f"output_path {folder_uri!r} is not inside the asset {asset_uri!r} this task updates: downstream "
                "DAGs and lineage would point elsewhere. Write under the asset's URI, or pass a matching asset."
            )

    def _freshness(self, window: RunWindow, filters: PostsFilter) -> dict[str, Any]:
        """Read the targets' last refreshes (one request), and warn about those before the window's end."""
        targets = self.hook.get_analytics_targets(
            target_ids=filters.accounts or None, platforms=filters.platforms or None
        )
        freshness = freshness_summary(targets, until=window.end)
        for target in targets:
            if target.id not in freshness["stale_targets"]:
                continue
            when = iso(target.last_refreshed_at)
            self.log.warning(
                "Analytics target %s was last refreshed %s, before the window's end %s: its posts published since "
                "are not in the API's cache yet, so the window may be incomplete. Run GenviralAnalyticsFreshnessSensor "
                "before this task to wait (or refresh) until it is fresh.",
                target.describe(),
                f"at {when}" if when else "at a time the API does not give",
                window.end.isoformat(),
            )
        return freshness

    def _stage_and_publish(
        self,
        window: RunWindow,
        filters: PostsFilter,
        spec: OutputSpec,
        folder: ObjectStoragePath,
        *,
        run: dict[str, Any],
        freshness: dict[str, Any],
    ) -> tuple[list[str], int]:
        extracted_at = dt.datetime.now(UTC)
        kept, drift = self._window_filter(window), FieldDrift()
        with (
            self._posts(window, filters) as stream,
            StagedOutput(folder.fs, folder.path, spec, log=self.log, owner=staging_owner(run)) as staged,
        ):
            staged.write(drift.track(kept.rows(stream)))
            self._warn_unplaceable(kept)
            self._warn_unknown_fields(drift)
            manifest = read_manifest(
                window, filters, kept, stream.stats, spec, extracted_at, run, freshness, drift.counts
            )
            names = staged.publish(manifest)
            self._bytes_written = sum(data_file.bytes or 0 for data_file in staged.files)
            return names, kept.kept

    def _warn_unknown_fields(self, drift: FieldDrift) -> None:
        self._unknown_fields = dict(drift.counts)
        if drift.counts:
            self.log.warning(drift.describe(kept_in="extra_fields" if self.output_format == "parquet" else None))

    @contextlib.contextmanager
    def _posts(self, window: RunWindow, filters: PostsFilter) -> Iterator[WindowStream]:
        stream = self.hook.iter_window(window, platforms=filters.platforms, accounts=filters.accounts)
        try:
            yield stream
        finally:
            stream.close()
            self._dates_read = stream.stats.api_dates_read()

    def _return_rows(self, window: RunWindow, filters: PostsFilter) -> dict[str, Any]:
        if not self.return_rows:
            table = f" (table {self.table!r} is written only with output_format='iceberg')" if self.table else ""
            raise GenviralInvalidParameterError(
                f"output_path is None and return_rows is False with output_format {self.output_format!r}{table}: "
                "give output_path (e.g. "
                "'s3://aws_default@bucket/genviral/posts/{{ ds }}') to write the rows to object storage, or "
                f"return_rows=True to return at most {MAX_RETURNED_ROWS:,} rows through XCom."
            )
        freshness = self._freshness(window, filters)
        kept = self._window_filter(window)
        rows: list[Row] = []
        with self._posts(window, filters) as stream:
            for row in kept.rows(stream):
                if len(rows) == MAX_RETURNED_ROWS:
                    raise GenviralError(_too_many_rows(window, stream))
                rows.append(row)
        self._warn_unplaceable(kept)
        self._keep_lineage(window, filters, len(rows))
        summary: dict[str, Any] = {
            "output_path": None,
            "uri": None,
            "files": [],
            "row_count": len(rows),
            "window": window.as_dict(),
            "freshness_watermark": freshness["watermark"],
            "stale_targets": freshness["stale_targets"],
        }
        return {**summary, "manifest": None, "rows": rows}

    def _window_filter(self, window: RunWindow) -> WindowFilter:
        return WindowFilter(window, max_unplaceable=checked_max_unplaceable(self.max_unplaceable_rows))

    def _warn_unplaceable(self, kept: WindowFilter) -> None:
        if kept.unplaceable:  # past max_unplaceable_rows, the read failed instead
            self.log.warning(
                "%d row(s) had no readable publishedAt and could not be placed in any window: they are not written, "
                "as max_unplaceable_rows=%d allows (counted in the manifest as rows_without_published_at).",
                kept.unplaceable,
                kept.max_unplaceable,
            )

    def _keep_lineage(
        self, window: RunWindow, filters: PostsFilter, rows: int, *, output_uri: str | None = None, file_count: int = 0
    ) -> None:
        first, last = (day.isoformat() for day in window.api_dates())
        if self._dates_read:  # what the reader asked, which need not be the dates that cover the window
            first, last = min(d["start"] for d in self._dates_read), max(d["end"] for d in self._dates_read)
        self._lineage = {
            "base_url": self.hook.settings.base_url,
            "window": window.as_dict(),
            "api_dates": (first, last),
            "api_dates_read": list(self._dates_read),
            "platforms": list(filters.platforms) or None,
            "accounts": list(filters.accounts) or None,
            "row_count": rows,
            "output_uri": output_uri,
            "file_count": file_count,
            "file_format": str(self.output_format),
            "size_bytes": self._bytes_written,
        }

    def _record_asset_event(
        self, context: Context, folder_uri: str, window: RunWindow, rows: int, freshness: dict[str, Any]
    ) -> None:
        events = context.get("outlet_events")
        if self.asset is None or events is None:
            return
        event = events[self.asset]
        if self.partition_asset_events:
            add_partition(event, partition_key(folder_uri), log=self.log)
        event.extra.update(
            {
                "path": folder_uri,
                "unknown_fields": dict(sorted(self._unknown_fields.items())),
                "window_start": window.start.isoformat(),
                "window_end": window.end.isoformat(),
                "row_count": rows,
                "freshness_watermark": freshness["watermark"],
                "freshness_covered": freshness["covered"],
                "targets_last_refreshed_at": {
                    target_id: target["last_refreshed_at"] for target_id, target in freshness["targets"].items()
                },
            }
        )

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Return the run's OpenLineage: the API window read as the input, the folder written as the output.

        Called by the OpenLineage provider (only then imported) once the task succeeded.

        :param task_instance: the finished task instance (unused: ``execute()`` kept what it read and wrote).
        """
        from genviral_provider.operators.lineage import PostsLineage, operator_lineage

        if self._lineage is None:
            return None
        return operator_lineage(PostsLineage(**self._lineage))


def _too_many_rows(window: RunWindow, stream: WindowStream) -> str:
    dates = ", ".join(f"{part['start']}..{part['end']}" for part in stream.stats.api_dates_read())
    counted = max((part.total_count for part in stream.stats.parts), default=0)
    return (
        f"The window {window.describe()} holds more than {MAX_RETURNED_ROWS:,} rows (the API counts {counted:,} "
        f"on the dates {dates} read so far): too many to return through XCom. Give output_path "
        "(e.g. 's3://aws_default@bucket/genviral/posts/{{ ds }}') to write them to object storage."
    )


__all__ = ["MAX_RETURNED_ROWS", "GenviralPostsOperator", "GenviralRefreshAnalyticsOperator", "default_asset"]


def _filesystem_hint(scheme: str) -> str:
    """Say what to install for a folder URI's scheme that no filesystem serves here."""
    if scheme in ("s3", "s3a"):
        return "Install this provider's s3 extra (Amazon provider, s3fs): pip install 'airflow-provider-genviral[s3]'."
    return f"Install the Airflow provider that registers the {scheme!r} scheme."
