"""dags/genviral_post_checkpoints.py through real Airflow (dag.test) against the sandbox.

The sandbox's clock is moved to one hour after each run's interval, as if each run ran on schedule: its targets
report that instant as their last refresh.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
from typing import Any

import pytest

from genviral_provider.core.rows import row_key
from genviral_provider.sandbox import SandboxServer
from tests.dags.conftest import UTC, RunExampleDag, read_output_folder, rows_published_between

DAG_ID = "genviral_post_checkpoints"
DAY = dt.timedelta(days=1)


def _day(day: int) -> dt.datetime:
    return dt.datetime(2026, 1, day, tzinfo=UTC)


def _state(run: Any) -> str:
    return str(run.state).removeprefix("DagRunState.").lower()


def _task_states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state).removeprefix("TaskInstanceState.").lower() for ti in run.get_task_instances()}


def _run_on_time(
    sandbox: SandboxServer, run_example_dag: RunExampleDag, interval_end: dt.datetime, **kwargs: Any
) -> Any:
    sandbox.now = interval_end + dt.timedelta(hours=1)
    # A daily data-interval schedule: logical date L runs the interval [L - 1 day, L).
    return run_example_dag(DAG_ID, logical_date=interval_end, **kwargs)


def test_three_consecutive_runs_put_every_post_in_each_checkpoint_exactly_once(
    genviral_sandbox: SandboxServer,
    sandbox_conn: str,
    output_base: pathlib.Path,
    run_example_dag: RunExampleDag,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for end_day in (12, 13, 14):
        run = _run_on_time(genviral_sandbox, run_example_dag, _day(end_day))
        assert _state(run) == "success", _task_states(run)
        assert set(_task_states(run).values()) == {"success"}
    assert "XCom not found" not in capsys.readouterr().out

    rows = genviral_sandbox.dataset.rows
    for age, published_days in (("48h", (9, 10, 11)), ("7d", (4, 5, 6))):
        root = output_base / "checkpoints" / f"age={age}"
        assert sorted(p.name for p in root.iterdir()) == [f"published_date=2026-01-{d:02d}" for d in published_days]
        written: list[str] = []
        for day in published_days:
            manifest, day_rows = read_output_folder(root / f"published_date=2026-01-{day:02d}")
            expected = rows_published_between(rows, _day(day), _day(day) + DAY)
            assert len(expected) == 40
            assert {row_key(row): row for row in day_rows} == expected
            assert manifest["window"]["start"] == _day(day).isoformat()
            written.extend(row_key(row) for row in day_rows)
        # Every post of the three covered days once: none lost at a boundary, none twice.
        assert len(written) == len(set(written)) == 120


def test_each_checkpoint_says_its_age_window_read_time_and_the_real_age_of_its_metrics(
    genviral_sandbox: SandboxServer, sandbox_conn: str, output_base: pathlib.Path, run_example_dag: RunExampleDag
) -> None:
    run = _run_on_time(genviral_sandbox, run_example_dag, _day(14), run_conf={"checkpoint_hours": [24, 48]})

    assert _state(run) == "success", _task_states(run)
    root = output_base / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["age=24h", "age=48h"]
    folder = root / "age=48h" / "published_date=2026-01-11"
    checkpoint = json.loads((folder / "_checkpoint.json").read_text())
    manifest = json.loads((folder / "_manifest.json").read_text())
    assert checkpoint["age"] == "48h"
    assert checkpoint["publication_window"]["start"] == "2026-01-11T00:00:00+00:00"
    assert checkpoint["publication_window"]["end"] == "2026-01-12T00:00:00+00:00"
    assert checkpoint["read_at"] == manifest["extracted_at"]
    # Refreshed at 2026-01-14T01:00: the posts of the 11th were 49 to 73 hours old in the data.
    assert checkpoint["age_hours"] == [49.0, 73.0]
    assert set(checkpoint["targets"]) == {target.id for target in genviral_sandbox.dataset.targets}
    assert manifest["freshness"]["covered"] is True
    assert (root / "age=24h" / "published_date=2026-01-12" / "_manifest.json").is_file()


def test_a_manual_run_without_a_logical_date_checkpoints_the_day_before_run_after(
    genviral_sandbox: SandboxServer, sandbox_conn: str, output_base: pathlib.Path, run_example_dag: RunExampleDag
) -> None:
    genviral_sandbox.now = dt.datetime(2026, 1, 14, 7, tzinfo=UTC)

    run = run_example_dag(DAG_ID, logical_date=None, run_after=dt.datetime(2026, 1, 14, 6, tzinfo=UTC))

    assert _state(run) == "success", _task_states(run)
    manifest, rows = read_output_folder(output_base / "checkpoints" / "age=48h" / "published_date=2026-01-11")
    assert manifest["row_count"] == len(rows) == 40
    assert (output_base / "checkpoints" / "age=7d" / "published_date=2026-01-06" / "_manifest.json").is_file()


def test_an_old_window_is_skipped_before_any_post_is_read_saying_why_and_what_to_read_instead(
    genviral_sandbox: SandboxServer,
    sandbox_conn: str,
    output_base: pathlib.Path,
    run_example_dag: RunExampleDag,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A backfill of the interval ending 2026-01-06, run when the sandbox's clock says 2026-01-15T12:00: the
    # metrics the API serves are 9.5 days past the interval, not the 48-hour or 7-day ones.
    run = run_example_dag(DAG_ID, logical_date=_day(6))

    assert _state(run) == "success"  # a late checkpoint is not a failure of the pipeline
    states = _task_states(run)
    assert states["wait_for_fresh_analytics"] == "success"
    assert states["plan_checkpoints"] == states["write_checkpoint"] == states["describe_checkpoints"] == "skipped"
    assert not any(record.path.endswith("/summary/posts") for record in genviral_sandbox.stats.requests)
    assert not (output_base / "checkpoints").exists()
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "Skipping the checkpoints" in line)
    assert "[2026-01-05T00:00:00+00:00, 2026-01-06T00:00:00+00:00)" in line
    assert "max_lateness_hours=12" in line and "last refreshed 2026-01-15" in line
    assert "metrics snapshots" in line
    assert "XCom not found" not in out


def test_max_lateness_hours_decides_what_is_late(
    genviral_sandbox: SandboxServer, sandbox_conn: str, output_base: pathlib.Path, run_example_dag: RunExampleDag
) -> None:
    genviral_sandbox.now = _day(14) + dt.timedelta(hours=13)

    late = _task_states(run_example_dag(DAG_ID, logical_date=_day(14)))
    allowed = run_example_dag(DAG_ID, logical_date=_day(14), run_conf={"max_lateness_hours": 13})

    assert late["plan_checkpoints"] == "skipped"
    assert _state(allowed) == "success", _task_states(allowed)
    assert _task_states(allowed)["describe_checkpoints"] == "success"
