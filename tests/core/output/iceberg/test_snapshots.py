"""A snapshots table: each run's rows under its snapshot_date, a re-run replacing that date only."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest

from genviral_provider.core.output.iceberg.sink import IcebergSink
from genviral_provider.exceptions import GenviralInvalidParameterError
from tests.conftest import needs_iceberg
from tests.core.output.iceberg.conftest import LOG, TABLE, day_window, posts, write_window

pytestmark = needs_iceberg

SNAPSHOTS = "genviral.metrics_snapshots"


def _snapshot(catalog: Any, date: dt.date, rows: list[dict[str, Any]]) -> None:
    """Write a snapshot: the posts of the 28 days before its date (here: whatever rows are given)."""
    window = day_window(1)
    window = type(window)(window.start, dt.datetime.combine(date, dt.time(), dt.timezone.utc), "explicit")
    with IcebergSink(catalog, SNAPSHOTS, window, log=LOG, snapshot_date=date) as sink:
        sink.write(rows)
        sink.commit({})


def _per_date(catalog: Any) -> Counter[str]:
    rows = catalog.load_table(SNAPSHOTS).scan().to_arrow().to_pylist()
    return Counter(row["snapshot_date"].isoformat() for row in rows)


def test_each_snapshot_keeps_its_date_and_a_rerun_replaces_only_it(catalog: Any) -> None:
    _snapshot(catalog, dt.date(2026, 1, 10), posts(5, 4))
    _snapshot(catalog, dt.date(2026, 1, 11), posts(5, 4, metrics={"views": 99}))
    _snapshot(catalog, dt.date(2026, 1, 10), posts(5, 2, tag="again-"))
    assert _per_date(catalog) == {"2026-01-10": 2, "2026-01-11": 4}
    table = catalog.load_table(SNAPSHOTS)
    rows = table.scan(row_filter="snapshot_date = '2026-01-11'").to_arrow().to_pylist()
    assert {row["metrics_views"] for row in rows} == {99}  # the same posts, their metrics as of that date
    assert [(str(field.transform), field.name) for field in table.spec().fields] == [("identity", "snapshot_date")]
    assert table.current_snapshot().summary["genviral.snapshot-date"] == "2026-01-10"


def test_a_snapshot_into_a_posts_table_is_refused(catalog: Any) -> None:
    write_window(catalog, day_window(1), posts(1, 1))
    with pytest.raises(GenviralInvalidParameterError, match=r"table genviral.posts has no snapshot_date date column"):
        IcebergSink(catalog, TABLE, day_window(1), log=LOG, snapshot_date=dt.date(2026, 1, 2)).__enter__()


def test_a_window_into_a_snapshots_table_is_refused(catalog: Any) -> None:
    _snapshot(catalog, dt.date(2026, 1, 10), posts(5, 1))
    with pytest.raises(GenviralInvalidParameterError, match=r"holds snapshots .* no snapshot_date is given"):
        IcebergSink(catalog, SNAPSHOTS, day_window(5), log=LOG).__enter__()
    assert _per_date(catalog) == {"2026-01-10": 1}
