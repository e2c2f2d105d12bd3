"""dags/genviral_post_checkpoints.py with `genviral_output_format` = `iceberg`: the table `genviral.post_checkpoints`.

As in test_checkpoints.py, the sandbox's clock is moved to one hour after each run's interval.
"""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.sandbox import SandboxServer
from tests.conftest import needs_iceberg, return_value
from tests.dags.conftest import UTC, RunExampleDag, assert_success, rows_published_between

pytestmark = needs_iceberg

TABLE = "genviral.post_checkpoints"
DAY = dt.timedelta(days=1)


def _day(day: int) -> dt.datetime:
    return dt.datetime(2026, 1, day, tzinfo=UTC)


def _run_on_time(sandbox: SandboxServer, run_example_dag: RunExampleDag, interval_end: dt.datetime) -> Any:
    sandbox.now = interval_end + dt.timedelta(hours=1)
    return run_example_dag("genviral_post_checkpoints", logical_date=interval_end)  # runs [end - 1 day, end)


def _ids_per_age_and_day(table: Any) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for row in table.scan().to_arrow().to_pylist():
        found.setdefault((row["checkpoint_age"], row["publishedAt"].date().isoformat()), []).append(row["id"])
    return {key: sorted(ids) for key, ids in found.items()}


def _expected(sandbox: SandboxServer, ages_and_days: list[tuple[str, int]]) -> dict[tuple[str, str], list[str]]:
    expected = {}
    for age, day in ages_and_days:
        rows = rows_published_between(sandbox.dataset.rows, _day(day), _day(day) + DAY).values()
        expected[(age, f"2026-01-{day:02d}")] = sorted(row["id"] for row in rows)
    return expected


def test_checkpoints_go_to_the_table_each_age_and_day_exactly_once_a_rerun_replacing_its_own(
    genviral_sandbox: SandboxServer,
    sandbox_conn: str,
    output_base: pathlib.Path,
    run_example_dag: RunExampleDag,
    iceberg_catalog: Callable[[], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_GENVIRAL_OUTPUT_FORMAT", "iceberg")
    for end_day in (13, 14):
        assert_success(_run_on_time(genviral_sandbox, run_example_dag, _day(end_day)))
    table = iceberg_catalog().load_table(TABLE)
    expected = _expected(genviral_sandbox, [("48h", 10), ("48h", 11), ("7d", 5), ("7d", 6)])
    assert all(len(ids) == 40 for ids in expected.values())
    assert _ids_per_age_and_day(table) == expected
    assert [(str(field.transform), field.name) for field in table.spec().fields] == [
        ("identity", "checkpoint_age"),
        ("day", "publishedAt_day"),
    ]
    assert not (output_base / "checkpoints").exists()  # no folders with iceberg

    before = len(table.snapshots())
    rerun = _run_on_time(genviral_sandbox, run_example_dag, _day(14))  # dag.test clears the day's run
    assert_success(rerun)
    table = iceberg_catalog().load_table(TABLE)
    assert _ids_per_age_and_day(table) == expected  # the re-run replaced its (age, day) rows, nothing else
    new = table.snapshots()[before:]
    # Per age one commit of a delete and one append (40 rows: one group), each naming its age.
    assert sorted((s.summary.operation.value, s.summary["genviral.checkpoint-age"]) for s in new) == [
        ("append", "48h"),
        ("append", "7d"),
        ("delete", "48h"),
        ("delete", "7d"),
    ]
    described = return_value(rerun, "describe_checkpoints")
    assert sorted((entry["age"], entry["table"], entry["row_count"]) for entry in described) == [
        ("48h", TABLE, 40),
        ("7d", TABLE, 40),
    ]
    # Each age's write updated the DAG's Asset, its event naming the table and the snapshot.
    assert sorted((e["table"], e["row_count"]) for e in _asset_events(rerun.run_id)) == [(TABLE, 40), (TABLE, 40)]


def _asset_events(run_id: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        asset = session.scalars(select(AssetModel).where(AssetModel.name == "genviral_post_checkpoints")).one()
        events = select(AssetEvent).where(AssetEvent.asset_id == asset.id, AssetEvent.source_run_id == run_id)
        return [dict(event.extra) for event in session.scalars(events).all()]
