"""GenviralPostsOperator.execute() with a run's context: backfill intervals, errors, the XCom cap, lineage, memory.

These call ``execute()`` directly with the context values Airflow would pass (real sandbox over HTTP, real
files); the DAG-level behaviour is in ``test_genviral.py``.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import pathlib
import tracemalloc
from collections.abc import Callable
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG, Asset, ObjectStoragePath

from genviral_provider.core.reading.run_window import RunWindow, WindowFilter
from genviral_provider.exceptions import GenviralError, GenviralInvalidParameterError
from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.operators import genviral as operator_module
from genviral_provider.operators.genviral import MAX_RETURNED_ROWS, GenviralPostsOperator, default_asset
from genviral_provider.sandbox import Dataset, SandboxServer
from tests.conftest import scheduler_dag
from tests.operators.conftest import (
    READINGS,
    add_boundary_posts,
    assert_tiles,
    operator_context,
    operator_dataset,
    read_output,
    rows_between,
)

UTC = dt.timezone.utc
Factory = Callable[..., SandboxServer]
Connect = Callable[..., str]


@pytest.fixture
def sandbox(genviral_sandbox_factory: Factory, genviral_connection: Connect) -> SandboxServer:
    server = genviral_sandbox_factory(dataset=operator_dataset())
    genviral_connection(server, max_retry_wait=2)
    return server


def _day(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2026, 1, day, hour, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "expected_first"),
    [
        ('CronDataIntervalTimetable("0 0 * * *", timezone="UTC")', (_day(5), _day(6))),  # [D, D+1)
        ('"@daily"', (_day(4), _day(5))),  # zero-width at D: the day before
        ('CronTriggerTimetable("0 0 * * *", timezone="UTC", interval=dt.timedelta(days=1))', (_day(4), _day(5))),
    ],
    ids=["CronDataIntervalTimetable", "@daily", "CronTriggerTimetable-interval"],
)
def test_backfill_runs_tile_exactly(
    genviral_sandbox_factory: Factory,
    genviral_connection: Connect,
    tmp_path: pathlib.Path,
    schedule: str,
    expected_first: tuple[dt.datetime, dt.datetime],
) -> None:
    from airflow.timetables.interval import CronDataIntervalTimetable  # noqa: F401 - used by eval
    from airflow.timetables.trigger import CronTriggerTimetable  # noqa: F401 - used by eval

    dataset = operator_dataset()
    for conn_id, (end_inclusive, zone) in READINGS.items():
        server = genviral_sandbox_factory(dataset=dataset, end_inclusive=end_inclusive, date_timezone=zone)
        genviral_connection(server, conn_id=conn_id)
    dag = DAG("posts_backfill", schedule=eval(schedule), start_date=pendulum.datetime(2025, 1, 1, tz="UTC"))
    # The runs `airflow backfill create --from-date 2026-01-05 --to-date 2026-01-07` makes: the same
    # DagRunInfos the backfill code asks the serialized DAG for.
    infos = list(scheduler_dag(dag).iter_dagrun_infos_between(_day(5), _day(7)))
    assert len(infos) == 3
    for info in infos:
        for conn_id in READINGS:
            operator = GenviralPostsOperator(
                task_id=conn_id,
                genviral_conn_id=conn_id,
                output_path=f"file://{tmp_path}/{conn_id}/{info.logical_date:%Y%m%d}",
            )
            operator.execute(
                operator_context(
                    dag,
                    logical_date=info.logical_date,
                    data_interval_start=info.data_interval.start,
                    data_interval_end=info.data_interval.end,
                    run_after=info.run_after,
                )
            )
    for conn_id in READINGS:
        outputs = sorted((read_output(f) for f in (tmp_path / conn_id).iterdir()), key=lambda o: o.window)
        assert outputs[0].window == expected_first
        assert_tiles(outputs, dataset)


def test_a_run_without_logical_date_reads_the_last_whole_period_before_run_after(
    sandbox: SandboxServer, tmp_path: pathlib.Path
) -> None:
    operator = GenviralPostsOperator(
        task_id="posts", output_path=f"file://{tmp_path}/posts", window=dt.timedelta(hours=6)
    )
    result = operator.execute(operator_context(run_after=_day(5, 9)))
    assert result["window"] == {"start": "2026-01-05T00:00:00+00:00", "end": "2026-01-05T06:00:00+00:00"}
    assert {r["id"] for r in read_output(tmp_path / "posts").rows} == set(
        rows_between(sandbox.dataset, _day(5, 0), _day(5, 6))
    )


def test_explicit_start_and_end_win_over_the_data_interval(sandbox: SandboxServer, tmp_path: pathlib.Path) -> None:
    operator = GenviralPostsOperator(
        task_id="posts", output_path=f"file://{tmp_path}/posts", start="2026-01-03T00:00:00+01:00", end="2026-01-04"
    )
    result = operator.execute(
        operator_context(data_interval_start=_day(5), data_interval_end=_day(6), run_after=_day(6))
    )
    assert result["window"] == {"start": "2026-01-02T23:00:00+00:00", "end": "2026-01-04T00:00:00+00:00"}
    assert result["row_count"] == len(rows_between(sandbox.dataset, dt.datetime(2026, 1, 2, 23, tzinfo=UTC), _day(4)))


def test_without_output_path_the_rows_of_a_small_window_are_returned_when_asked(sandbox: SandboxServer) -> None:
    operator = GenviralPostsOperator(task_id="posts", platforms=["tiktok"], return_rows=True)
    result = operator.execute(
        operator_context(data_interval_start=_day(5), data_interval_end=_day(6), run_after=_day(6))
    )
    expected = [r for r in rows_between(sandbox.dataset, _day(5), _day(6)).values() if r["platform"] == "tiktok"]
    assert result["rows"] == sorted(expected, key=lambda r: (r["publishedAt"], r["id"]))
    assert result["row_count"] == len(expected) > 0
    assert {key: result[key] for key in ("output_path", "uri", "files", "manifest")} == {
        "output_path": None,
        "uri": None,
        "files": [],
        "manifest": None,
    }


def test_without_output_path_a_large_window_fails_and_points_to_output_path(
    genviral_sandbox_factory: Factory, genviral_connection: Connect
) -> None:
    dataset = Dataset.generate(
        start=dt.date(2026, 1, 4), days=3, rows_per_day=10, day_counts={dt.date(2026, 1, 5): 1_200}
    )
    genviral_connection(genviral_sandbox_factory(dataset=dataset))
    operator = GenviralPostsOperator(task_id="posts", return_rows=True)
    with pytest.raises(GenviralError, match=r"more than 1,000 rows .*API counts 1,210.*Give output_path") as raised:
        operator.execute(operator_context(data_interval_start=_day(5), data_interval_end=_day(6), run_after=_day(6)))
    assert MAX_RETURNED_ROWS == 1_000
    assert "2026-01-05T00:00:00+00:00" in str(raised.value)


def test_without_output_path_nor_return_rows_nothing_is_read(sandbox: SandboxServer) -> None:
    operator = GenviralPostsOperator(task_id="posts")
    with pytest.raises(GenviralInvalidParameterError, match=r"give output_path .* or return_rows=True"):
        operator.execute(operator_context(data_interval_start=_day(5), data_interval_end=_day(6), run_after=_day(6)))
    assert sandbox.stats.total == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"start": "2026-01-06", "end": "2026-01-05"},
            r"\[2026-01-06T00:00:00\+00:00, 2026-01-05T00:00:00\+00:00\).* inverted",
        ),
        ({"start": "2026-01-05T06:00Z", "end": "2026-01-05T06:00Z"}, r"2026-01-05T06:00:00\+00:00.* is empty"),
        ({"start": "yesterday"}, r"start 'yesterday' is not an ISO 8601 date"),
        ({"end": "2026-13-01"}, r"end '2026-13-01' is not an ISO 8601 date"),
        ({"window": dt.timedelta(0)}, r"window datetime.timedelta\(0\) is not a positive timedelta"),
        ({"output_path": "relative/folder"}, r"output_path 'relative/folder' is not a folder URI"),
        (
            {"output_path": "nosuchscheme://bucket/posts"},
            r"output_path .nosuchscheme://bucket/posts. cannot be written: .*Install the Airflow provider",
        ),
        pytest.param(
            {"output_path": "s3://aws_default@bucket/posts"},
            r"cannot be written: .*pip install 'airflow-provider-genviral\[s3\]'",
            marks=pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed"),
        ),
        ({"output_format": "csv"}, r"Unknown output_format 'csv'"),
        ({"compression": "zstd"}, r"compression 'zstd' is not available for jsonl"),
        ({"platforms": ["tiktok,instagram"]}, r"platforms value 'tiktok,instagram' contains a separator"),
        ({"platforms": ["tiktk"]}, r"Unknown platform\(s\) 'tiktk': analytics targets exist for tiktok, instagram"),
    ],
)
def test_bad_arguments_fail_before_any_request(
    sandbox: SandboxServer, tmp_path: pathlib.Path, arguments: dict[str, Any], message: str
) -> None:
    operator = GenviralPostsOperator(task_id="posts", **{"output_path": f"file://{tmp_path}/posts", **arguments})
    with pytest.raises(GenviralInvalidParameterError, match=message):
        operator.execute(operator_context(data_interval_start=_day(5), data_interval_end=_day(6), run_after=_day(6)))
    assert sandbox.stats.total == 0
    assert list(tmp_path.iterdir()) == []


def test_an_output_path_outside_the_declared_asset_is_refused(sandbox: SandboxServer, tmp_path: pathlib.Path) -> None:
    operator = GenviralPostsOperator(
        task_id="posts", output_path=f"file://{tmp_path}/other", asset=Asset(f"file://{tmp_path}/posts")
    )
    with pytest.raises(GenviralInvalidParameterError, match="is not inside the asset"):
        operator.execute(operator_context(data_interval_start=_day(5), data_interval_end=_day(6), run_after=_day(6)))


def test_the_default_asset_is_the_folder_before_any_template_without_connection_id() -> None:
    assert default_asset("s3://aws_default@bucket/genviral/posts/{{ ds }}") == Asset("s3://bucket/genviral/posts")
    assert default_asset("file:///data/posts/ds={{ ds }}/") == Asset("file:///data/posts")
    assert default_asset("file:///data/posts/") == Asset("file:///data/posts")
    assert default_asset("s3://{{ var.value.bucket }}/posts") is None
    assert default_asset(None) is None
    assert default_asset(ObjectStoragePath("file:///data/posts")) == Asset("file:///data/posts")
    operator = GenviralPostsOperator(
        task_id="posts", output_path="gs://bucket/posts/{{ ds }}", outlets=[Asset("x://y")]
    )
    assert operator.outlets == [Asset("x://y"), Asset("gs://bucket/posts")]


def test_a_row_without_a_readable_published_at_fails_the_task_by_default(
    sandbox: SandboxServer, tmp_path: pathlib.Path
) -> None:
    sandbox.dataset.insert([{"_omit": ["publishedAt"]}], default_published_at=_day(5, 12))
    operator = GenviralPostsOperator(task_id="posts", output_path=f"file://{tmp_path}/posts")
    with pytest.raises(GenviralError, match=r"has no publishedAt.*max_unplaceable_rows"):
        operator.execute(operator_context(data_interval_start=_day(5), data_interval_end=_day(6), run_after=_day(6)))
    assert not (tmp_path / "posts").exists()


def test_rows_without_a_readable_published_at_are_counted_not_written_when_allowed(
    sandbox: SandboxServer, tmp_path: pathlib.Path
) -> None:
    sandbox.dataset.insert([{"_omit": ["publishedAt"]}], default_published_at=_day(5, 12))
    operator = GenviralPostsOperator(task_id="posts", output_path=f"file://{tmp_path}/posts", max_unplaceable_rows=1)
    operator.execute(operator_context(data_interval_start=_day(5), data_interval_end=_day(6), run_after=_day(6)))
    output = read_output(tmp_path / "posts")
    assert output.manifest["rows_without_published_at"] == 1
    assert all("publishedAt" in row for row in output.rows)
    assert len(output.rows) == len(rows_between(sandbox.dataset, _day(5), _day(6)))


@pytest.mark.parametrize("output_format", ["jsonl", "parquet"])
def test_fields_the_layout_does_not_know_are_kept_named_in_one_warning_and_counted(
    sandbox: SandboxServer, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], output_format: str
) -> None:
    from genviral_provider.core.output.formats import SCHEMA_VERSION

    sandbox.dataset.insert(
        [
            {
                "boostedBy": "ads",
                "metrics": {"views": 1, "likes": 0, "comments": 0, "shares": 0, "saves": 0, "reposts": 7},
            }
        ]
        * 2,
        default_published_at=_day(5, 12),
    )
    operator = GenviralPostsOperator(
        task_id="posts", output_path=f"file://{tmp_path}/posts", output_format=output_format
    )

    operator.execute(operator_context(data_interval_start=_day(5), data_interval_end=_day(6), run_after=_day(6)))

    manifest = json.loads((tmp_path / "posts" / "_manifest.json").read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["unknown_fields"] == {"boostedBy": 2, "metrics.reposts": 2}
    (warning,) = [line for line in capsys.readouterr().out.splitlines() if "does not know" in line]
    assert "boostedBy (2 row(s)), metrics.reposts (2 row(s))" in warning


def test_lineage_reports_the_published_folder_not_the_staging_files(
    sandbox: SandboxServer, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genviral_provider.version_compat import HookLineageCollector

    collector = HookLineageCollector()  # what Airflow uses once a lineage reader (OpenLineage) is installed
    monkeypatch.setattr(operator_module, "get_hook_lineage_collector", lambda: collector)
    operator = GenviralPostsOperator(task_id="posts", output_path=f"file://{tmp_path}/posts", rows_per_file=5)
    operator.execute(operator_context(data_interval_start=_day(5), data_interval_end=_day(6), run_after=_day(6)))
    assert [asset.asset.uri for asset in collector.collected_assets.outputs] == [f"file://{tmp_path}/posts"]
    assert collector.collected_assets.inputs == []


def test_a_boundary_post_lands_in_exactly_one_of_two_adjacent_explicit_windows(
    sandbox: SandboxServer, tmp_path: pathlib.Path
) -> None:
    add_boundary_posts(sandbox.dataset, [_day(5, 13)])
    for name, start, end in (
        ("a", "2026-01-05T07:00Z", "2026-01-05T13:00Z"),
        ("b", "2026-01-05T13:00Z", "2026-01-05T19:00Z"),
    ):
        GenviralPostsOperator(task_id=name, output_path=f"file://{tmp_path}/{name}", start=start, end=end).execute(
            operator_context(run_after=_day(6))
        )
    first, second = read_output(tmp_path / "a"), read_output(tmp_path / "b")
    assert first.rows[-1]["publishedAt"] == "2026-01-05T12:59:59.999Z"
    assert second.rows[0]["publishedAt"] == "2026-01-05T13:00:00.000Z"
    assert_tiles([first, second], sandbox.dataset)


def test_streaming_memory_does_not_grow_with_the_window(
    genviral_sandbox_factory: Factory, genviral_connection: Connect, tmp_path: pathlib.Path
) -> None:
    dataset = Dataset.generate(start=dt.date(2026, 1, 1), days=8, rows_per_day=400, seed=3)
    genviral_connection(genviral_sandbox_factory(dataset=dataset), max_concurrency=2)

    def streamed(days: int, window: dt.timedelta = dt.timedelta(days=1)) -> int:
        operator = GenviralPostsOperator(task_id="posts", output_path=f"file://{tmp_path}/posts{days}", window=window)
        return _peak_bytes(lambda: operator.execute(operator_context(run_after=_day(2 + days))))

    def buffered(days: int) -> int:
        window = RunWindow(_day(2), _day(2 + days), "test")
        rows: list[Any] = []
        return _peak_bytes(
            lambda: rows.extend(WindowFilter(window).rows(GenviralHook().iter_posts(*window.api_dates())))
        )

    streamed(0, dt.timedelta(hours=1))  # warm up: imports, connection pool, sandbox orderings
    small, large = streamed(1), streamed(5, dt.timedelta(days=5))
    rows_size = buffered(5) - buffered(1)  # what holding 1,600 more rows costs

    assert read_output(tmp_path / "posts5").manifest["row_count"] == 2_000
    # Streaming holds the pages in flight (and the ids of two dates), never the window's rows.
    assert large - small < rows_size / 5, f"peak grew {large - small:,} bytes for {rows_size:,} bytes of rows"


def _peak_bytes(action: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
