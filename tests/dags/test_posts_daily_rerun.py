"""Re-running one day of genviral_posts_daily: every way Airflow 3.3.2 creates a manual run writes the same day.

A manual run with logical date D reads the whole day before D (the period Airflow gives manual runs), into that day's
folder, whether it was created by `airflow dags test`, the REST API or `airflow dags trigger -l D` — whose data
interval follows the trigger time instead (issue 22 item 2: it silently re-wrote yesterday).
"""

from __future__ import annotations

import datetime as dt
import pathlib
from typing import Any

import pytest
from sqlalchemy import select

from genviral_provider.core.rows import row_key
from genviral_provider.sandbox import SandboxServer
from tests.dags.conftest import UTC, RunExampleDag, read_output_folder, rows_published_between

DAG_ID = "genviral_posts_daily"
LOGICAL_DATE = dt.datetime(2026, 1, 6, tzinfo=UTC)
TRIGGERED_AT = dt.datetime(2026, 1, 12, 13, tzinfo=UTC)  # days later: the CLI's interval is [01-11, 01-12)
DAY = dt.datetime(2026, 1, 5, tzinfo=UTC)


def _interval_of_cli_trigger(logical_date: dt.datetime, run_after: dt.datetime) -> tuple[Any, Any]:
    """Create a run as `airflow dags trigger -l` does (its local client calls trigger_dag); return its interval."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType

    with create_session() as session:  # one run per logical date: the CLI refuses D if D already has a run
        for earlier in session.scalars(
            select(DagRun).where(DagRun.dag_id == DAG_ID, DagRun.logical_date == logical_date)
        ):
            session.delete(earlier)
    run = trigger_dag(DAG_ID, triggered_by=DagRunTriggeredByType.CLI, logical_date=logical_date, run_after=run_after)
    assert run is not None and run.run_type == "manual"
    return run.data_interval_start, run.data_interval_end


def _interval_of_rest_trigger(logical_date: dt.datetime, run_after: dt.datetime) -> tuple[Any, Any]:
    """Return the interval `POST /api/v2/dags/{id}/dagRuns` gives a run with this logical date."""
    from airflow.api_fastapi.core_api.datamodels.dag_run import TriggerDAGRunPostBody
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session

    with create_session() as session:
        dag = DBDagBag().get_latest_version_of_dag(DAG_ID, session=session)
        assert dag is not None
        body = TriggerDAGRunPostBody(logical_date=logical_date, run_after=run_after)
        interval = body.validate_context(dag)["data_interval"]
    return interval.start, interval.end


def _check_the_day_was_written(output_base: pathlib.Path, sandbox: SandboxServer) -> None:
    assert sorted(path.name for path in (output_base / "posts").iterdir()) == ["published_date=2026-01-05"]
    manifest, rows = read_output_folder(output_base / "posts" / "published_date=2026-01-05")
    expected = rows_published_between(sandbox.dataset.rows, DAY, DAY + dt.timedelta(days=1))
    assert {row_key(row): row for row in rows} == expected and len(rows) == len(expected) == 40
    assert manifest["window"]["start"] == DAY.isoformat()
    assert manifest["window"]["end"] == LOGICAL_DATE.isoformat()


def test_a_run_triggered_from_the_cli_with_a_logical_date_writes_the_day_before_it_not_yesterday(
    genviral_sandbox: SandboxServer,
    sandbox_conn: str,
    output_base: pathlib.Path,
    run_example_dag: RunExampleDag,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.timetables.interval import CronDataIntervalTimetable

    _run(run_example_dag, logical_date=dt.datetime(2026, 1, 2, tzinfo=UTC))  # the DAG, now in the metadata DB
    for folder in (output_base / "posts").iterdir():
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
    cli_interval = _interval_of_cli_trigger(LOGICAL_DATE, TRIGGERED_AT)
    assert cli_interval == (dt.datetime(2026, 1, 11, tzinfo=UTC), dt.datetime(2026, 1, 12, tzinfo=UTC))

    # dag.test() replaces the CLI's run (same logical date) by its own: give that one the CLI's interval.
    monkeypatch.setattr(
        CronDataIntervalTimetable, "infer_manual_data_interval", lambda self, *, run_after: _as_interval(cli_interval)
    )
    run = _run(run_example_dag, logical_date=LOGICAL_DATE, run_after=TRIGGERED_AT)

    assert (run.run_type, run.data_interval_start, run.data_interval_end) == ("manual", *cli_interval)
    _check_the_day_was_written(output_base, genviral_sandbox)


@pytest.mark.needs_airflow("3.1", "The REST API's DAG lookup this test calls (DBDagBag)")
def test_a_run_with_a_logical_date_from_airflow_dags_test_or_the_rest_api_writes_the_day_before_it(
    genviral_sandbox: SandboxServer, sandbox_conn: str, output_base: pathlib.Path, run_example_dag: RunExampleDag
) -> None:
    run = _run(run_example_dag, logical_date=LOGICAL_DATE, run_after=TRIGGERED_AT)

    assert (run.data_interval_start, run.data_interval_end) == _interval_of_rest_trigger(LOGICAL_DATE, TRIGGERED_AT)
    _check_the_day_was_written(output_base, genviral_sandbox)


def _run(run_example_dag: RunExampleDag, **test_kwargs: Any) -> Any:
    run = run_example_dag(DAG_ID, **test_kwargs)
    assert str(run.state) in ("success", "DagRunState.SUCCESS"), f"{run.run_id} ended {run.state}"
    return run


def _as_interval(bounds: tuple[Any, Any]) -> Any:
    from airflow.timetables.base import DataInterval

    return DataInterval(*bounds)
