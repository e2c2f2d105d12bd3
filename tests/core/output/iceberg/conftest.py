"""Fixtures for the Iceberg sink: a real pyiceberg SQL catalog on sqlite with a local warehouse, in a temp dir."""

from __future__ import annotations

import datetime as dt
import logging
import pathlib
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pytest

from genviral_provider.core.output.iceberg.catalog import embedded_config, open_catalog
from genviral_provider.core.output.iceberg.sink import CommitRetry, Committed, IcebergSink
from genviral_provider.core.reading.run_window import RunWindow

UTC = dt.timezone.utc
TABLE = "genviral.posts"
LOG = logging.getLogger("tests.iceberg")


@pytest.fixture
def catalog(tmp_path: pathlib.Path) -> Any:
    """A SQL catalog (sqlite) with its warehouse under ``tmp_path``: the embedded catalog's layout."""
    return open_catalog(embedded_config(tmp_path, name="test"))


def day_window(day: int) -> RunWindow:
    """Return the window of 2026-01-<day> (UTC)."""
    start = dt.datetime(2026, 1, day, tzinfo=UTC)
    return RunWindow(start, start + dt.timedelta(days=1), "explicit")


def posts(day: int, count: int, *, tag: str = "", **fields: Any) -> list[dict[str, Any]]:
    """Return ``count`` API rows published on 2026-01-<day>, ids ``<tag>d<day>-<n>``."""
    return [
        {
            "id": f"{tag}d{day}-{index}",
            "publishedAt": f"2026-01-{day:02d}T{index % 24:02d}:{index % 60:02d}:00.000Z",
            "caption": f"post {index}",
            "metrics": {"views": index * 10, "likes": index},
            "platform": "tiktok",
            **fields,
        }
        for index in range(count)
    ]


def write_window(
    catalog: Any, window: RunWindow, rows: Iterable[dict[str, Any]], *, run_id: str = "run", **options: Any
) -> Committed:
    """Write rows for a window through the sink, committed with a run id in the snapshot properties."""
    options.setdefault("retry", CommitRetry(attempts=20, first_wait=0.01, max_wait=0.2))
    with IcebergSink(catalog, TABLE, window, log=LOG, **options) as sink:
        sink.write(rows)
        return sink.commit({"genviral.run-id": run_id})


def table_rows(catalog: Any) -> list[dict[str, Any]]:
    """Return every row of the table, sorted by id."""
    return sorted(catalog.load_table(TABLE).scan().to_arrow().to_pylist(), key=lambda row: row["id"])


def rows_per_day(catalog: Any) -> Counter[str]:
    """Return the table's row count per publication day (UTC)."""
    return Counter(row["publishedAt"].astimezone(UTC).date().isoformat() for row in table_rows(catalog))
