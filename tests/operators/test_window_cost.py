"""What a run's window costs through GenviralPostsOperator, under every reading of the API's dates.

Each test runs ``execute()`` with the context Airflow would pass, against one sandbox per reading over HTTP (see
``conftest.READINGS``), and checks the rows written (exactly the window's) and the manifest's cost fields against
the requests the sandbox answered: at most 1.25 times the pages the window's rows need, plus 3.
"""

from __future__ import annotations

import datetime as dt
import math
import pathlib
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG, Context

from genviral_provider.operators.genviral import GenviralPostsOperator
from genviral_provider.sandbox import SandboxServer
from tests.operators.conftest import (
    Output,
    add_boundary_posts,
    assert_tiles,
    operator_context,
    read_output,
    rows_between,
)

UTC = dt.timezone.utc
BERLIN = "Europe/Berlin"


def _bound(rows: int) -> float:
    return 1.25 * max(1, math.ceil(rows / 100)) + 3


def _run(server: SandboxServer, conn_id: str, folder: pathlib.Path, context: Context, **operator_args: Any) -> Output:
    """Run one task and check its manifest's cost against what the sandbox answered."""
    server.reset_stats()
    operator = GenviralPostsOperator(
        task_id=conn_id, genviral_conn_id=conn_id, output_path=f"file://{folder}", **operator_args
    )
    operator.execute(context)
    output = read_output(folder)
    manifest = output.manifest
    reads = [r for r in server.stats.requests if r.path.endswith("/analytics/summary/posts")]
    assert server.stats.total == len(reads) + 1  # and one read of the targets, for the freshness watermark
    assert manifest["api_requests"] == len(reads) == manifest["api"]["pages"]
    assert manifest["api_requests"] <= _bound(manifest["row_count"]), manifest
    asked = {(r.query["start"], r.query["end"]) for r in reads}
    assert {(d["start"], d["end"]) for d in manifest["api_dates_read"]} == asked
    assert manifest["api_dates"] == {
        "start": min(d["start"] for d in manifest["api_dates_read"]),
        "end": max(d["end"] for d in manifest["api_dates_read"]),
    }
    return output


def test_daily_runs_across_both_dst_changes_tile_exactly_and_cheaply(
    reading_sandboxes: dict[str, SandboxServer], tmp_path: pathlib.Path
) -> None:
    dag = DAG("posts_dst", schedule="@daily", start_date=pendulum.datetime(2025, 1, 1, tz=BERLIN))
    for conn_id, server in reading_sandboxes.items():
        outputs = []
        # "@daily" in Berlin: zero-width intervals at local midnight; the window is the local day before, which
        # is 23 hours long on 2026-03-29 (spring forward). 2026-03-26 .. 2026-03-31.
        for day in range(27, 32):
            midnight = pendulum.datetime(2026, 3, day, tz=BERLIN)
            context = operator_context(
                dag, logical_date=midnight, data_interval_start=midnight, data_interval_end=midnight, run_after=midnight
            )
            outputs.append(_run(server, conn_id, tmp_path / conn_id / str(day), context))
        lengths = {output.window[1] - output.window[0] for output in outputs}
        assert lengths == {dt.timedelta(hours=24), dt.timedelta(hours=23)}
        assert_tiles(outputs, server.dataset)


def test_hourly_runs_off_midnight_tile_exactly_and_cheaply(
    reading_sandboxes: dict[str, SandboxServer], tmp_path: pathlib.Path
) -> None:
    start = dt.datetime(2026, 2, 10, 21, 30, tzinfo=UTC)  # across a UTC midnight, off the hour
    server = next(iter(reading_sandboxes.values()))
    add_boundary_posts(server.dataset, [start + dt.timedelta(hours=h) for h in range(5)])
    for conn_id, server in reading_sandboxes.items():
        outputs = []
        for hour in range(1, 5):
            end = start + dt.timedelta(hours=hour)
            context = operator_context(run_after=end)
            outputs.append(_run(server, conn_id, tmp_path / conn_id / str(hour), context, window=dt.timedelta(hours=1)))
        assert_tiles(outputs, server.dataset)
        assert all(output.rows for output in outputs)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-01-20T06:00:00+02:00", "2026-01-21T06:00:00+02:00"),  # a day off UTC midnight
        ("2026-01-20T13:00:00Z", "2026-01-20T13:20:00Z"),  # twenty minutes inside a date
        ("2026-01-20", "2026-01-27"),  # a week
    ],
    ids=["day-off-midnight", "twenty-minutes", "week"],
)
def test_explicit_windows_are_exact_and_cheap_under_every_reading(
    reading_sandboxes: dict[str, SandboxServer], tmp_path: pathlib.Path, start: str, end: str
) -> None:
    for conn_id, server in reading_sandboxes.items():
        output = _run(
            server, conn_id, tmp_path / conn_id, operator_context(run_after=pendulum.now("UTC")), start=start, end=end
        )
        window_start, window_end = output.window
        assert {row["id"] for row in output.rows} == set(rows_between(server.dataset, window_start, window_end))
