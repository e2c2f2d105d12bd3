"""GenviralPostsOperator through real Airflow: DAG files run with ``dag.test()`` against sandboxes over HTTP.

Each schedule's DAG holds one task per reading of the API's dates (end inclusive or exclusive; dates read in
UTC, UTC+14 or UTC-11). Consecutive runs must tile the timeline: adjacent windows, every post of the span once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
from collections.abc import Callable, Iterable
from typing import Any

import pendulum
import pytest
from sqlalchemy import select

from genviral_provider.sandbox import SandboxServer
from tests.operators.conftest import (
    READINGS,
    add_boundary_posts,
    assert_tiles,
    dag_source,
    read_output,
    run_folders,
)

pytestmark = pytest.mark.slow

RunDag = Callable[..., Any]


def _run_each(
    run_dag_file: RunDag, source: str, dag_id: str, dates: Iterable[dt.datetime | None], **kwargs: Any
) -> list[Any]:
    runs = []
    for date in dates:
        run = run_dag_file(source, dag_id, logical_date=date, **kwargs)
        assert run.state == "success", f"{dag_id} run at {date} ended {run.state}"
        runs.append(run)
    return runs


def _check_tiling(root: pathlib.Path, sandboxes: dict[str, SandboxServer], runs: int) -> list[Any]:
    dataset = next(iter(sandboxes.values())).dataset
    outputs = []
    for conn_id in READINGS:
        outputs = run_folders(root, conn_id)
        assert len(outputs) == runs
        assert_tiles(outputs, dataset)
    return outputs


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return pendulum.datetime(year, month, day, hour, minute, tz="UTC")


def test_cron_data_interval_timetable_runs_tile_exactly(
    reading_sandboxes: dict[str, SandboxServer], run_dag_file: RunDag, tmp_path: pathlib.Path
) -> None:
    schedule = 'CronDataIntervalTimetable("0 0 * * *", timezone="UTC")'
    source = dag_source("posts_cron_interval", schedule=schedule, output_root=tmp_path, conn_ids=READINGS)
    _run_each(run_dag_file, source, "posts_cron_interval", [_utc(2026, 1, day) for day in (5, 6, 7)])
    outputs = _check_tiling(tmp_path, reading_sandboxes, runs=3)
    assert [o.manifest["window"]["source"] for o in outputs] == ["data interval"] * 3
    assert outputs[0].window == (_utc(2026, 1, 4), _utc(2026, 1, 5))  # a manual run gets the last complete day
    assert {row["publishedAt"] for row in outputs[0].rows} >= {"2026-01-04T00:00:00.000Z", "2026-01-04T23:59:59.999Z"}


def test_at_daily_zero_width_intervals_read_the_day_before_each_run(
    reading_sandboxes: dict[str, SandboxServer], run_dag_file: RunDag, tmp_path: pathlib.Path
) -> None:
    source = dag_source("posts_at_daily", schedule='"@daily"', output_root=tmp_path, conn_ids=READINGS)
    _run_each(run_dag_file, source, "posts_at_daily", [_utc(2026, 1, day) for day in (5, 6, 7)])
    outputs = _check_tiling(tmp_path, reading_sandboxes, runs=3)
    assert outputs[-1].window == (_utc(2026, 1, 6), _utc(2026, 1, 7))
    assert "ending at the data interval's end" in outputs[-1].manifest["window"]["source"]


def test_cron_trigger_timetable_with_interval_tiles_windows_that_end_mid_day(
    reading_sandboxes: dict[str, SandboxServer], run_dag_file: RunDag, tmp_path: pathlib.Path
) -> None:
    # Windows ending at 12:00 UTC: an API reading its dates at UTC+14 with an exclusive end needs the date after
    # next, the hardest case of the cover.
    dataset = next(iter(reading_sandboxes.values())).dataset
    add_boundary_posts(dataset, [_utc(2026, 1, day, 12) for day in (4, 5, 6, 7)])
    schedule = 'CronTriggerTimetable("0 12 * * *", timezone="UTC", interval=dt.timedelta(days=1))'
    source = dag_source("posts_cron_trigger", schedule=schedule, output_root=tmp_path, conn_ids=READINGS)
    _run_each(run_dag_file, source, "posts_cron_trigger", [_utc(2026, 1, day, 12) for day in (5, 6, 7)])
    outputs = _check_tiling(tmp_path, reading_sandboxes, runs=3)
    assert outputs[0].window == (_utc(2026, 1, 4, 12), _utc(2026, 1, 5, 12))
    assert "2026-01-05T12:00:00.000Z" in {row["publishedAt"] for row in outputs[1].rows}


@pytest.mark.parametrize(
    ("schedule", "operator_args"),
    [
        ("dt.timedelta(hours=12)", "window=dt.timedelta(hours=12),"),  # a DeltaTriggerTimetable: zero-width
        ("DeltaDataIntervalTimetable(dt.timedelta(hours=12))", ""),
    ],
    ids=["timedelta", "DeltaDataIntervalTimetable"],
)
def test_timedelta_schedule_runs_tile_exactly(
    reading_sandboxes: dict[str, SandboxServer],
    run_dag_file: RunDag,
    tmp_path: pathlib.Path,
    schedule: str,
    operator_args: str,
) -> None:
    dataset = next(iter(reading_sandboxes.values())).dataset
    add_boundary_posts(dataset, [_utc(2026, 1, 4, 12), _utc(2026, 1, 5, 12)])
    source = dag_source(
        "posts_delta", schedule=schedule, output_root=tmp_path, conn_ids=READINGS, operator_args=operator_args
    )
    _run_each(run_dag_file, source, "posts_delta", [_utc(2026, 1, 5), _utc(2026, 1, 5, 12), _utc(2026, 1, 6)])
    outputs = _check_tiling(tmp_path, reading_sandboxes, runs=3)
    assert outputs[0].window == (_utc(2026, 1, 4, 12), _utc(2026, 1, 5))


def test_hourly_runs_tile_exactly(
    reading_sandboxes: dict[str, SandboxServer], run_dag_file: RunDag, tmp_path: pathlib.Path
) -> None:
    dataset = next(iter(reading_sandboxes.values())).dataset
    add_boundary_posts(dataset, [_utc(2026, 1, 5, hour) for hour in range(9, 13)])
    source = dag_source(
        "posts_hourly",
        schedule='"@hourly"',
        output_root=tmp_path,
        conn_ids=READINGS,
        operator_args="window=dt.timedelta(hours=1),",
    )
    _run_each(run_dag_file, source, "posts_hourly", [_utc(2026, 1, 5, hour) for hour in (10, 11, 12)])
    outputs = _check_tiling(tmp_path, reading_sandboxes, runs=3)
    assert outputs[0].window == (_utc(2026, 1, 5, 9), _utc(2026, 1, 5, 10))
    assert [row["publishedAt"] for row in outputs[0].rows][:1] == ["2026-01-05T09:00:00.000Z"]


def test_weekly_runs_tile_exactly(
    reading_sandboxes: dict[str, SandboxServer], run_dag_file: RunDag, tmp_path: pathlib.Path
) -> None:
    schedule = 'CronDataIntervalTimetable("0 0 * * 1", timezone="UTC")'  # Mondays; 2026-01-05 is one
    source = dag_source("posts_weekly", schedule=schedule, output_root=tmp_path, conn_ids=READINGS)
    _run_each(run_dag_file, source, "posts_weekly", [_utc(2026, 1, 12), _utc(2026, 1, 19), _utc(2026, 1, 26)])
    outputs = _check_tiling(tmp_path, reading_sandboxes, runs=3)
    assert outputs[0].window == (_utc(2026, 1, 5), _utc(2026, 1, 12))
    assert len(outputs[0].rows) == 7 * 16


def test_daily_runs_of_a_berlin_dag_tile_across_the_spring_dst_change(
    reading_sandboxes: dict[str, SandboxServer], run_dag_file: RunDag, tmp_path: pathlib.Path
) -> None:
    # "@daily" in Europe/Berlin: runs at local midnight; 2026-03-29 has 23 hours.
    berlin = [pendulum.datetime(2026, 3, day, tz="Europe/Berlin") for day in (27, 28, 29, 30, 31)]
    add_boundary_posts(next(iter(reading_sandboxes.values())).dataset, berlin)
    source = dag_source(
        "posts_berlin", schedule='"@daily"', timezone="Europe/Berlin", output_root=tmp_path, conn_ids=READINGS
    )
    _run_each(run_dag_file, source, "posts_berlin", berlin[1:])
    outputs = _check_tiling(tmp_path, reading_sandboxes, runs=4)
    hours = [(end - start) / dt.timedelta(hours=1) for start, end in (o.window for o in outputs)]
    assert hours == [24, 24, 23, 24]
    assert outputs[2].window == (berlin[2], berlin[3])


def test_interval_runs_of_a_new_york_dag_tile_across_the_spring_dst_change(
    reading_sandboxes: dict[str, SandboxServer], run_dag_file: RunDag, tmp_path: pathlib.Path
) -> None:
    new_york = [pendulum.datetime(2026, 3, day, tz="America/New_York") for day in (7, 8, 9, 10)]
    add_boundary_posts(next(iter(reading_sandboxes.values())).dataset, new_york)
    schedule = 'CronDataIntervalTimetable("0 0 * * *", timezone="America/New_York")'
    source = dag_source(
        "posts_new_york", schedule=schedule, timezone="America/New_York", output_root=tmp_path, conn_ids=READINGS
    )
    _run_each(run_dag_file, source, "posts_new_york", new_york[1:])
    outputs = _check_tiling(tmp_path, reading_sandboxes, runs=3)
    assert [(end - start) / dt.timedelta(hours=1) for start, end in (o.window for o in outputs)] == [24, 23, 24]


def test_manual_runs_without_logical_date_read_the_last_whole_day_before_run_after(
    reading_sandboxes: dict[str, SandboxServer], run_dag_file: RunDag, tmp_path: pathlib.Path
) -> None:
    source = dag_source("posts_manual", schedule="None", output_root=tmp_path, conn_ids=READINGS)
    for day in (10, 11, 12):
        [run] = _run_each(run_dag_file, source, "posts_manual", [None], run_after=_utc(2026, 1, day, 7, 30))
        assert run.logical_date is None and run.data_interval_start is None
    outputs = _check_tiling(tmp_path, reading_sandboxes, runs=3)
    assert outputs[0].window == (_utc(2026, 1, 9), _utc(2026, 1, 10))
    assert outputs[0].manifest["window"]["source"] == "the last whole 1 day, 0:00:00 before run_after"
    assert outputs[0].manifest["run"]["logical_date"] is None


def test_manual_runs_with_a_logical_date_read_the_window_before_it(
    reading_sandboxes: dict[str, SandboxServer], run_dag_file: RunDag, tmp_path: pathlib.Path
) -> None:
    source = dag_source("posts_manual_dated", schedule="None", output_root=tmp_path, conn_ids=READINGS)
    _run_each(run_dag_file, source, "posts_manual_dated", [_utc(2026, 1, 3), _utc(2026, 1, 4)])
    outputs = _check_tiling(tmp_path, reading_sandboxes, runs=2)
    assert outputs[1].window == (_utc(2026, 1, 3), _utc(2026, 1, 4))


def test_rerun_of_a_window_replaces_its_output(
    genviral_sandbox_factory: Callable[..., SandboxServer],
    genviral_connection: Callable[..., str],
    run_dag_file: RunDag,
    tmp_path: pathlib.Path,
) -> None:
    server = genviral_sandbox_factory(dataset=_dataset())
    genviral_connection(server)
    day = _utc(2026, 1, 6)
    first = _posts_dag(tmp_path, "posts_rerun", 'output_path=ROOT + "/posts", rows_per_file=5')
    _run_each(run_dag_file, first, "posts_rerun", [day])
    before = read_output(tmp_path / "posts")
    assert before.names == ["_manifest.json", *(f"part-0000{i}.jsonl" for i in range(4))]

    [late_post] = server.insert_posts([{"publishedAt": "2026-01-05T12:00:00.000Z"}])
    second = _posts_dag(tmp_path, "posts_rerun", 'output_path=ROOT + "/posts", compression="gzip"')
    _run_each(run_dag_file, second, "posts_rerun", [day])

    after = read_output(tmp_path / "posts")
    assert after.names == ["_manifest.json", "part-00000.jsonl.gz"]  # stale parts and formats removed
    assert [row["id"] for row in after.rows if row not in before.rows] == [late_post["id"]]
    assert len(after.rows) == len(before.rows) + 1 == len({row["id"] for row in after.rows})


def test_failure_midway_leaves_the_previous_output_intact(
    genviral_sandbox_factory: Callable[..., SandboxServer],
    genviral_connection: Callable[..., str],
    run_dag_file: RunDag,
    tmp_path: pathlib.Path,
) -> None:
    server = genviral_sandbox_factory(dataset=_dataset())
    genviral_connection(server, max_retries=1, max_retry_wait=1, max_concurrency=1)
    # 20 days: several pages to read, parts of 50 rows staged before the API starts failing.
    source = _posts_dag(
        tmp_path, "posts_fault", 'output_path=ROOT + "/posts", start="2026-01-02", end="2026-01-22", rows_per_file=50'
    )
    _run_each(run_dag_file, source, "posts_fault", [_utc(2026, 1, 23)])
    before = _snapshot(tmp_path / "posts")

    server.faults.update(script=["ok"] * 3 + ["500"] * 40, path_filter="/analytics/summary/posts")
    run = run_dag_file(source, "posts_fault", logical_date=_utc(2026, 1, 23))

    assert run.state == "failed"
    assert server.stats.by_status.get(500, 0) >= 2 and server.stats.by_status[200] >= 3
    assert _snapshot(tmp_path / "posts") == before  # same files, same bytes; no staging left behind


def test_asset_event_xcom_and_downstream_dag(
    genviral_sandbox_factory: Callable[..., SandboxServer],
    genviral_connection: Callable[..., str],
    run_dag_file: RunDag,
    tmp_path: pathlib.Path,
) -> None:
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    server = genviral_sandbox_factory(dataset=_dataset())
    genviral_connection(server)
    stale_target = server.dataset.targets[0].id
    server.set_targets_refreshed_at(dt.datetime(2026, 1, 5, 18, tzinfo=dt.timezone.utc), [stale_target])
    asset_uri = f"file://{tmp_path}/posts"
    consumer = f"""
from airflow.sdk import DAG, Asset
from airflow.providers.standard.operators.empty import EmptyOperator
with DAG("posts_consumer", schedule=[Asset({asset_uri!r})], is_paused_upon_creation=False):
    EmptyOperator(task_id="noop")
"""
    (pathlib.Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "posts_consumer.py").write_text(consumer)
    source = _posts_dag(tmp_path, "posts_asset", 'output_path=ROOT + "/posts/published_date={{ logical_date | ds }}"')
    [run] = _run_each(run_dag_file, source, "posts_asset", [_utc(2026, 1, 6)])

    with create_session() as session:
        asset = session.scalars(select(AssetModel).where(AssetModel.uri == asset_uri)).one()
        [event] = session.scalars(
            select(AssetEvent).where(AssetEvent.asset_id == asset.id, AssetEvent.source_run_id == run.run_id)
        ).all()
        queued = session.scalars(select(AssetDagRunQueue).where(AssetDagRunQueue.asset_id == asset.id)).all()
        xcom = session.scalars(XComModel.get_many(run_id=run.run_id, dag_ids="posts_asset", key="return_value")).one()
        value = XComModel.deserialize_value(xcom)

    folder = f"{asset_uri}/published_date=2026-01-06"
    window = {"start": "2026-01-05T00:00:00+00:00", "end": "2026-01-06T00:00:00+00:00"}
    live = server.current_time().isoformat()  # the sandbox's clock: what a target without lag says
    last_refreshed = {target.id: live for target in server.dataset.targets}
    last_refreshed[stale_target] = "2026-01-05T18:00:00+00:00"
    row_count = event.extra["row_count"]
    assert event.extra == {
        "path": folder,
        "window_start": window["start"],
        "window_end": window["end"],
        "row_count": row_count,
        "freshness_watermark": "2026-01-05T18:00:00+00:00",
        "freshness_covered": False,
        "targets_last_refreshed_at": last_refreshed,
        "unknown_fields": {},
    }
    # Partitioned events would not queue a plain Asset-scheduled DAG (AssetEvent has no partition_key before 3.2).
    assert getattr(event, "partition_key", None) is None
    assert 0 < row_count < 16  # the stale target's posts of the evening are not served yet
    assert [q.target_dag_id for q in queued] == ["posts_consumer"]
    assert value == {
        "output_path": folder,
        "uri": folder,
        "files": [f"{folder}/part-00000.jsonl"],
        "row_count": row_count,
        "window": window,
        "manifest": f"{folder}/_manifest.json",
        "freshness_watermark": "2026-01-05T18:00:00+00:00",
        "stale_targets": [stale_target],
    }


def test_parquet_output_has_the_flat_typed_schema(
    genviral_sandbox_factory: Callable[..., SandboxServer],
    genviral_connection: Callable[..., str],
    run_dag_file: RunDag,
    tmp_path: pathlib.Path,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    server = genviral_sandbox_factory(dataset=_dataset())
    genviral_connection(server)
    source = _posts_dag(tmp_path, "posts_parquet", 'output_path=ROOT + "/posts", output_format="parquet"')
    _run_each(run_dag_file, source, "posts_parquet", [_utc(2026, 1, 6)])

    manifest = json.loads((tmp_path / "posts" / "_manifest.json").read_text())
    table = pq.read_table(tmp_path / "posts" / "part-00000.parquet")
    expected = [r for r in server.dataset.rows if r["publishedAt"].startswith("2026-01-05")]
    assert manifest["output"] == {"format": "parquet", "compression": "snappy", "rows_per_file": 100_000}
    assert table.num_rows == manifest["row_count"] == len(expected) == 16
    assert table.schema.field("publishedAt").type == pa.timestamp("us", "UTC")
    assert table.schema.field("metrics_views").type == pa.int64()
    assert table.column("id").to_pylist() == [r["id"] for r in expected]
    assert table.column("metrics_saves").to_pylist() == [r["metrics"]["saves"] for r in expected]
    assert table.column("caption").to_pylist() == [r["caption"] for r in expected]


def test_an_inverted_window_fails_the_task_before_any_request(
    genviral_sandbox_factory: Callable[..., SandboxServer],
    genviral_connection: Callable[..., str],
    run_dag_file: RunDag,
    tmp_path: pathlib.Path,
) -> None:
    server = genviral_sandbox_factory(dataset=_dataset())
    genviral_connection(server)
    source = _posts_dag(tmp_path, "posts_inverted", 'output_path=ROOT + "/posts", start="2026-01-06", end="2026-01-05"')
    run = run_dag_file(source, "posts_inverted", logical_date=_utc(2026, 1, 6))
    assert run.state == "failed"
    assert server.stats.total == 0
    assert not (tmp_path / "posts").exists()


def _dataset() -> Any:
    from tests.operators.conftest import operator_dataset

    return operator_dataset()


def _posts_dag(root: pathlib.Path, dag_id: str, arguments: str) -> str:
    return f"""
import pendulum
from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable
from genviral_provider.operators.genviral import GenviralPostsOperator

ROOT = "file://{root}"
with DAG({dag_id!r}, schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
         start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), default_args={{"retries": 0}}) as dag:
    GenviralPostsOperator(task_id="posts", {arguments})
"""


def _snapshot(folder: pathlib.Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() if path.is_file() else b"" for path in folder.rglob("*")}


@pytest.mark.parametrize(
    ("password", "host", "arguments", "tries"),
    [
        pytest.param("wrong.key", None, {}, 1, id="refused-key"),
        pytest.param(None, None, {"platforms": ["instagram"], "rows_per_file": 0}, 1, id="bad-argument"),
        pytest.param(None, "http://127.0.0.1:9", {}, 2, id="unreachable-api"),
    ],
)
def test_a_refused_key_or_bad_argument_fails_without_retries_while_an_outage_is_retried(
    genviral_sandbox: SandboxServer,
    genviral_connection: Callable[..., str],
    run_one_task: Callable[..., Any],
    tmp_path: pathlib.Path,
    password: str | None,
    host: str | None,
    arguments: dict[str, Any],
    tries: int,
) -> None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    genviral_connection(genviral_sandbox, password=password, max_retries=0)
    if host is not None:
        conn = json.loads(os.environ["AIRFLOW_CONN_GENVIRAL_DEFAULT"])
        os.environ["AIRFLOW_CONN_GENVIRAL_DEFAULT"] = json.dumps({**conn, "host": host})
    dag_id = f"posts_fail_fast_{tries}_{len(arguments)}"
    state, _, error = run_one_task(
        "genviral_provider.operators.genviral.GenviralPostsOperator",
        dag_id,
        output_path=f"file://{tmp_path}/posts",
        start="2026-01-05",
        end="2026-01-06",
        retries=1,
        retry_delay=dt.timedelta(seconds=1),
        **arguments,
    )
    with create_session() as session:
        ti = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id)).one()
    assert (state, ti.try_number) == ("failed", tries), error


@pytest.mark.needs_airflow("3.3", "Partition keys on Asset events")
def test_partitioned_asset_events_carry_the_day_when_asked(
    genviral_sandbox_factory: Callable[..., SandboxServer],
    genviral_connection: Callable[..., str],
    run_dag_file: RunDag,
    tmp_path: pathlib.Path,
) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    genviral_connection(genviral_sandbox_factory(dataset=_dataset()))
    arguments = 'output_path=ROOT + "/days/published_date={{ logical_date | ds }}", partition_asset_events=True'
    runs = _run_each(
        run_dag_file,
        _posts_dag(tmp_path, "posts_partitioned", arguments),
        "posts_partitioned",
        [_utc(2026, 1, 6), _utc(2026, 1, 7)],
    )

    with create_session() as session:
        asset = session.scalars(select(AssetModel).where(AssetModel.uri == f"file://{tmp_path}/days")).one()
        events = session.scalars(select(AssetEvent).where(AssetEvent.asset_id == asset.id)).all()
    assert sorted((e.source_run_id, e.partition_key) for e in events) == sorted(
        zip([run.run_id for run in runs], ["2026-01-06", "2026-01-07"], strict=True)
    )
