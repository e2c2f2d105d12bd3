"""The example DAGs of dags/: they parse cleanly without I/O, and each run writes exactly what it should."""

from __future__ import annotations

import ast
import datetime as dt
import json
import pathlib
import socket
import threading
import time
from typing import Any

import pytest

from genviral_provider.core.rows import row_key
from genviral_provider.sandbox import SandboxServer
from tests.conftest import ConnectionSetter, dag_bag, scheduler_dag
from tests.dags.conftest import (
    DAGS_DIR,
    EXAMPLE_DAG_IDS,
    UTC,
    RunExampleDag,
    read_output_folder,
    rows_published_between,
)

OUTPUT_BASE_TEMPLATE = "{{ var.value.get('genviral_output_base', 'file:///tmp/genviral') }}"


def _parse_dags() -> Any:
    return dag_bag(str(DAGS_DIR), known_pools={"default_pool"})


def _utc_iso(api_time: str) -> str:
    return dt.datetime.fromisoformat(api_time.replace("Z", "+00:00")).isoformat()


def _success(run: Any) -> None:
    assert str(run.state) in ("success", "DagRunState.SUCCESS"), f"{run.run_id} ended {run.state}"


# ------------------------------------------------------------------------------------------------ parsing


def test_every_dag_file_parses_without_import_errors() -> None:
    bag = _parse_dags()

    assert bag.import_errors == {}
    assert sorted(bag.dags) == sorted(EXAMPLE_DAG_IDS)
    assert sorted(path.stem for path in DAGS_DIR.glob("*.py")) == sorted(EXAMPLE_DAG_IDS)


def test_example_dags_import_only_the_public_modules_users_write() -> None:
    public = {"hooks", "operators", "sensors", "triggers", "exceptions"}
    for path in DAGS_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                parts = name.split(".")
                if parts[0] == "genviral_provider":
                    assert len(parts) > 1 and parts[1] in public, f"{path.name} imports {name}"


def test_parsing_sends_no_request_reads_no_variable_and_writes_nothing(
    genviral_sandbox: SandboxServer,
    sandbox_conn: str,
    output_base: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("I/O at parse time")

    from airflow.sdk import Variable

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(Variable, "get", refuse)
    bag = _parse_dags()

    assert bag.import_errors == {}
    assert genviral_sandbox.stats.total == 0
    assert not output_base.exists()


def test_no_task_needs_a_pool_a_fresh_airflow_lacks_and_scheduled_dags_keep_runs_few() -> None:
    bag = _parse_dags()

    for dag in bag.dags.values():
        if dag.schedule is not None:  # triggered waits may overlap freely: they wait in the triggerer
            assert dag.max_active_runs <= 3, dag.dag_id
        for task in dag.tasks:
            assert task.pool == "default_pool", (dag.dag_id, task.task_id)


def test_every_example_dag_waits_for_fresh_analytics_before_reading_posts() -> None:
    bag = _parse_dags()
    gates = {
        "genviral_posts_daily": ("wait_for_fresh_analytics", {"write_posts"}),
        "genviral_metrics_refresh": ("refresh_targets", {"write_snapshot", "write_targets"}),
        "genviral_wait_for_post_analytics": ("refresh_analytics", set()),  # alongside the search
        # plan_checkpoints reads the targets (to refuse a late run) and hands the windows to write_checkpoint.
        "genviral_post_checkpoints": ("wait_for_fresh_analytics", {"plan_checkpoints"}),
    }

    assert set(gates) == set(EXAMPLE_DAG_IDS)
    for dag_id, (gate, readers) in gates.items():
        task = bag.dags[dag_id].get_task(gate)
        assert task.downstream_task_ids == readers, dag_id
        assert task.deferrable is True and task.max_paid_refreshes in (0, "{{ params.max_paid_refreshes }}")
    assert bag.dags["genviral_posts_daily"].params["max_paid_refreshes"] == 0
    assert bag.dags["genviral_wait_for_post_analytics"].get_task("refresh_analytics").soft_fail is True
    assert bag.dags["genviral_post_checkpoints"].params["max_paid_refreshes"] == 0
    assert bag.dags["genviral_post_checkpoints"].get_task("plan_checkpoints").downstream_task_ids == {
        "write_checkpoint"
    }


def test_every_output_path_is_a_template_of_the_output_base_variable() -> None:
    bag = _parse_dags()
    paths = {dag.dag_id: t.output_path for dag in bag.dags.values() for t in dag.tasks if hasattr(t, "output_path")}

    paths["genviral_wait_for_post_analytics"] = (
        bag.dags["genviral_wait_for_post_analytics"].get_task("write_rows").op_kwargs["base"]
    )
    # The checkpoints' folders are planned per age by a task, under its `base`; the targets dimension likewise.
    paths["genviral_post_checkpoints"] = bag.dags["genviral_post_checkpoints"].get_task("plan_checkpoints").output_base
    targets_base = bag.dags["genviral_metrics_refresh"].get_task("write_targets").op_kwargs["base"]

    assert set(paths) == set(EXAMPLE_DAG_IDS)
    for path in [*paths.values(), targets_base]:
        assert path.startswith(OUTPUT_BASE_TEMPLATE)


def test_post_checkpoints_runs_daily_without_catchup_with_48_hours_and_7_days_by_default() -> None:
    dag = _parse_dags().dags["genviral_post_checkpoints"]

    assert dag.catchup is False
    assert dag.params["checkpoint_hours"] == [48, 168]
    assert dag.params["max_lateness_hours"] == 12
    assert dag.get_task("write_checkpoint").downstream_task_ids == {"describe_checkpoints"}


def test_wait_for_post_analytics_waits_in_the_triggerer_then_writes_the_sensors_rows() -> None:
    dag = _parse_dags().dags["genviral_wait_for_post_analytics"]
    sensor = dag.get_task("wait_for_analytics")

    assert sensor.deferrable is True
    assert sensor.downstream_task_ids == {"write_rows"}
    assert dag.schedule is None
    assert {name: dag.params[name] for name in ("genviral_post_ids", "external_ids")} == {
        "genviral_post_ids": [],
        "external_ids": [],
    }


def test_a_backfill_of_posts_daily_gives_one_run_per_whole_utc_day() -> None:

    dag = scheduler_dag(_parse_dags().dags["genviral_posts_daily"])
    infos = list(
        dag.iter_dagrun_infos_between(dt.datetime(2026, 1, 5, tzinfo=UTC), dt.datetime(2026, 1, 7, tzinfo=UTC))
    )

    intervals = [(info.data_interval.start, info.data_interval.end) for info in infos]
    assert intervals == [
        (dt.datetime(2026, 1, day, tzinfo=UTC), dt.datetime(2026, 1, day + 1, tzinfo=UTC)) for day in (5, 6, 7)
    ]


# ------------------------------------------------------------------------------------------------ runs


def test_posts_daily_writes_exactly_the_rows_of_its_day(
    genviral_sandbox: SandboxServer, sandbox_conn: str, output_base: pathlib.Path, run_example_dag: RunExampleDag
) -> None:
    run = run_example_dag("genviral_posts_daily", logical_date=dt.datetime(2026, 1, 6, tzinfo=UTC))

    _success(run)
    day = run.data_interval_start
    assert (day, run.data_interval_end - day) == (dt.datetime(2026, 1, 5, tzinfo=UTC), dt.timedelta(days=1))
    folder = output_base / "posts" / "published_date=2026-01-05"
    manifest, rows = read_output_folder(folder)
    expected = rows_published_between(genviral_sandbox.dataset.rows, day, day + dt.timedelta(days=1))
    assert len(expected) == 40
    assert {row_key(row): row for row in rows} == expected
    assert len(rows) == len(expected)
    assert manifest["row_count"] == 40
    assert manifest["window"]["start"] == "2026-01-05T00:00:00+00:00"
    assert sorted(path.name for path in (output_base / "posts").iterdir()) == ["published_date=2026-01-05"]


def test_posts_daily_without_a_logical_date_writes_the_last_whole_day_before_it_ran(
    genviral_sandbox: SandboxServer, sandbox_conn: str, output_base: pathlib.Path, run_example_dag: RunExampleDag
) -> None:
    # As Airflow 3 triggers from the UI and the REST API by default: no logical date, so no data interval.
    run = run_example_dag("genviral_posts_daily", logical_date=None, run_after=dt.datetime(2026, 1, 6, 13, tzinfo=UTC))

    _success(run)
    assert run.logical_date is None
    day = dt.datetime(2026, 1, 5, tzinfo=UTC)
    manifest, rows = read_output_folder(output_base / "posts" / "published_date=2026-01-05")
    expected = rows_published_between(genviral_sandbox.dataset.rows, day, day + dt.timedelta(days=1))
    assert {row_key(row): row for row in rows} == expected and len(rows) == 40
    assert manifest["window"]["start"] == "2026-01-05T00:00:00+00:00"
    assert manifest["window"]["end"] == "2026-01-06T00:00:00+00:00"


def test_metrics_refresh_snapshots_the_posts_of_the_last_n_days(
    genviral_sandbox: SandboxServer, sandbox_conn: str, output_base: pathlib.Path, run_example_dag: RunExampleDag
) -> None:
    snapshot_day = dt.datetime(2026, 1, 14, tzinfo=UTC)

    def poll_often(dag: Any) -> None:
        dag.get_task("refresh_targets").poll_interval = 0.5

    run = run_example_dag(
        "genviral_metrics_refresh",
        logical_date=None,
        run_after=snapshot_day,
        run_conf={"lookback_days": 3},
        adjust=poll_often,
    )

    _success(run)
    manifest, rows = read_output_folder(output_base / "metrics_snapshots" / "snapshot_date=2026-01-14")
    refreshed = {refresh["target_id"]: refresh["completed_at"] for refresh in genviral_sandbox.refreshes()}
    assert set(refreshed) == {target.id for target in genviral_sandbox.dataset.targets}
    assert all(refresh["wasFree"] for refresh in genviral_sandbox.refreshes())
    recorded = {tid: target["last_refreshed_at"] for tid, target in manifest["freshness"]["targets"].items()}
    assert recorded == {tid: _utc_iso(completed) for tid, completed in refreshed.items()}
    expected = rows_published_between(genviral_sandbox.dataset.rows, snapshot_day - dt.timedelta(days=3), snapshot_day)
    assert len(expected) == 3 * 40
    assert {row_key(row): row for row in rows} == expected
    assert len(rows) == len(expected)
    # The targets dimension: every target once, as refreshed, and every row joins to one on platform + identifier.
    targets_folder = output_base / "targets" / "snapshot_date=2026-01-14"
    assert [path.name for path in targets_folder.iterdir()] == ["part-00000.jsonl"]
    targets = [json.loads(line) for line in (targets_folder / "part-00000.jsonl").read_text().splitlines()]
    assert {target["id"]: target["last_refreshed_at"] for target in targets} == recorded
    assert sorted(targets[0]) == ["display_name", "id", "identifier", "last_refreshed_at", "platform"]
    by_account = {(target["platform"], target["identifier"]): target["id"] for target in targets}
    assert all((row["platform"], row["accountIdentifier"]) in by_account for row in rows)


def test_wait_for_post_analytics_defers_until_the_posts_appear_then_writes_their_rows(
    genviral_sandbox_factory: Any,
    genviral_connection: ConnectionSetter,
    output_base: pathlib.Path,
    run_example_dag: RunExampleDag,
) -> None:
    # On the real clock: the run's targets must have been refreshed after the run was triggered.
    genviral_sandbox = genviral_sandbox_factory(now=None, refresh_seconds=0.2)
    genviral_connection(genviral_sandbox, max_retry_wait=5)
    post_ids = ["d0e1d35c-0000-4000-8000-000000000001", "d0e1d35c-0000-4000-8000-000000000002"]
    published = (dt.datetime.now(UTC) - dt.timedelta(minutes=5)).isoformat(timespec="milliseconds")
    external_ids = ["automation-1"]
    # The first post is awaited by both its ids: its row matches twice and is written once. The second post is
    # published to two accounts: two rows, both written.
    new_rows = [
        {"genviralPostId": post_ids[0], "externalId": external_ids[0], "platform": "tiktok", "publishedAt": published}
    ] + [
        {"genviralPostId": post_ids[1], "platform": platform, "publishedAt": published}
        for platform in ("instagram", "youtube")
    ]
    inserted: list[dict[str, Any]] = []

    def publish_after_the_first_search() -> None:
        deadline = time.monotonic() + 60
        while genviral_sandbox.stats.total == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)
        inserted.extend(genviral_sandbox.insert_posts(new_rows))

    def poke_often(dag: Any) -> None:
        dag.get_task("refresh_analytics").poke_interval = 0.5
        dag.get_task("wait_for_analytics").poke_interval = 1

    publisher = threading.Thread(target=publish_after_the_first_search, daemon=True)
    publisher.start()
    run = run_example_dag(
        "genviral_wait_for_post_analytics",
        logical_date=None,
        run_conf={"genviral_post_ids": post_ids, "external_ids": external_ids},
        adjust=poke_often,
    )
    publisher.join(timeout=5)

    _success(run)
    assert len(inserted) == 3
    assert genviral_sandbox.stats.total >= 2  # searched before the posts existed, and again after
    folders = list((output_base / "correlated").iterdir())
    safe_run_id = run.run_id.replace(":", "_").replace("+", "_")
    assert [folder.name for folder in folders] == [f"run_id={safe_run_id}"]
    assert ":" not in folders[0].name and "+" not in folders[0].name
    written = [json.loads(line) for line in (folders[0] / "rows.jsonl").read_text().splitlines()]
    assert len(written) == 3
    assert sorted(written, key=row_key) == sorted(inserted, key=row_key)


def test_wait_for_post_analytics_without_ids_fails_naming_what_to_give(
    genviral_sandbox_factory: Any,
    genviral_connection: ConnectionSetter,
    output_base: pathlib.Path,
    run_example_dag: RunExampleDag,
) -> None:
    genviral_sandbox = genviral_sandbox_factory(now=None)  # the real clock, as the run's
    genviral_connection(genviral_sandbox, max_retry_wait=5)

    run = run_example_dag("genviral_wait_for_post_analytics", logical_date=None)

    assert str(run.state) in ("failed", "DagRunState.FAILED")
    assert not any(record.path.endswith("/summary/posts") for record in genviral_sandbox.stats.requests)
    assert not (output_base / "correlated").exists()
