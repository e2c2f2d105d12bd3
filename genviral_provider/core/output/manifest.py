"""The manifest of a published output: what a run wrote, from which reads of the API, as of when."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from genviral_provider import __version__
from genviral_provider.core.output.folder import OutputSpec
from genviral_provider.core.output.formats import SCHEMA_VERSION
from genviral_provider.core.reading.plan import PlanStats
from genviral_provider.core.reading.run_window import RunWindow, WindowFilter
from genviral_provider.core.rows import UTC

MANIFEST_VERSION = 1


class _Filters(Protocol):
    """The filters a window was read with (a ``PostsFilter``)."""

    @property
    def platforms(self) -> tuple[str, ...]: ...

    @property
    def accounts(self) -> tuple[str, ...]: ...


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
    freshness: Mapping[str, Any] | None = None,
    unknown_fields: Mapping[str, int] | None = None,
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
    :param freshness: each target's last refresh and the watermark, as ``freshness_summary`` gives it.
    :param unknown_fields: per field the row layout does not know (``schema_version``), the rows carrying it.
    """
    dates_read = _dates_asked(window, api_dates_read)
    api_start, api_end = min(d["start"] for d in dates_read), max(d["end"] for d in dates_read)
    return {
        "manifest_version": MANIFEST_VERSION,
        "schema_version": SCHEMA_VERSION,
        "complete": True,
        "provider": {"name": "airflow-provider-genviral", "version": __version__},
        "extracted_at": extracted_at.astimezone(UTC).isoformat(),
        "published_at": dt.datetime.now(UTC).isoformat(),
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
        "freshness": dict(freshness) if freshness is not None else None,
        "unknown_fields": dict(sorted((unknown_fields or {}).items())),
    }


def _dates_asked(window: RunWindow, api_dates_read: Sequence[Mapping[str, str]] | None) -> list[dict[str, str]]:
    if api_dates_read:
        return [dict(dates) for dates in api_dates_read]
    first, last = window.api_dates()
    return [{"start": first.isoformat(), "end": last.isoformat()}]


def read_manifest(
    window: RunWindow,
    filters: _Filters,
    kept: WindowFilter,
    stats: PlanStats,
    spec: OutputSpec,
    extracted_at: dt.datetime,
    run: Mapping[str, Any],
    freshness: Mapping[str, Any],
    unknown_fields: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The manifest of a window read by the plan reader and kept by ``kept`` (a folder's, a snapshot's summary)."""
    return build_manifest(
        window=window,
        filters={"platforms": filters.platforms, "accounts": filters.accounts},
        counts=kept.counts(),
        api_parts=[part.as_dict() for part in stats.parts],
        api_pages=stats.pages,
        api_dates_read=stats.api_dates_read(),
        api_requests=stats.requests,
        spec=spec,
        extracted_at=extracted_at,
        run=run,
        freshness=freshness,
        unknown_fields=unknown_fields,
    )


def run_identity(context: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies the run that wrote an output: its DAG, task, run, try and logical date."""
    ti = context.get("ti")
    logical_date = context.get("logical_date")
    return {
        "dag_id": getattr(ti, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": context.get("run_id"),
        "try_number": getattr(ti, "try_number", None),
        "logical_date": logical_date.isoformat() if logical_date is not None else None,
    }
