"""The sink of the example DAGs comes from the Variable `genviral_output_format`, rendered when the task runs.

One run of genviral_posts_daily per format: jsonl (the default) and parquet into the day's folder, iceberg into the
table `genviral.posts` of the `genviral_iceberg` connection's catalog — each holding exactly the day's rows; and
genviral_metrics_refresh into the table `genviral.metrics_snapshots`, one snapshot date per run.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
from typing import Any

import pytest

from genviral_provider.sandbox import SandboxServer
from tests.conftest import needs_iceberg
from tests.dags.conftest import UTC, RunExampleDag, assert_success, rows_published_between

DAY = dt.datetime(2026, 1, 5, tzinfo=UTC)
FOLDER = "posts/published_date=2026-01-05"


@pytest.fixture
def catalog_folder(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """Point the connection `genviral_iceberg` at a SQL catalog of its own (sqlite and a warehouse in tmp_path)."""
    folder = tmp_path / "lake"
    folder.mkdir()
    extra = {"type": "sql", "uri": f"sqlite:///{folder / 'catalog.db'}", "warehouse": (folder / "warehouse").as_uri()}
    monkeypatch.setenv("AIRFLOW_CONN_GENVIRAL_ICEBERG", json.dumps({"conn_type": "generic", "extra": extra}))
    return folder


def _day_of_posts(run_example_dag: RunExampleDag, monkeypatch: pytest.MonkeyPatch, output_format: str | None) -> None:
    if output_format is not None:
        monkeypatch.setenv("AIRFLOW_VAR_GENVIRAL_OUTPUT_FORMAT", output_format)
    assert_success(run_example_dag("genviral_posts_daily", logical_date=DAY + dt.timedelta(days=1)))


def _table(catalog_folder: pathlib.Path, name: str) -> Any:
    """Load a table of the catalog the `catalog_folder` fixture points the connection `genviral_iceberg` at."""
    from genviral_provider.core.output.iceberg.catalog import catalog_config, open_catalog

    extra = {"type": "sql", "uri": f"sqlite:///{catalog_folder / 'catalog.db'}", "warehouse": "unused"}
    return open_catalog(catalog_config("genviral_iceberg", extra)).load_table(name)


def _expected(sandbox: SandboxServer) -> set[str]:
    expected = {
        row["id"] for row in rows_published_between(sandbox.dataset.rows, DAY, DAY + dt.timedelta(days=1)).values()
    }
    assert len(expected) == 40
    return expected


def test_without_the_variable_the_day_is_written_as_json_lines(
    genviral_sandbox: SandboxServer,
    sandbox_conn: str,
    output_base: pathlib.Path,
    run_example_dag: RunExampleDag,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _day_of_posts(run_example_dag, monkeypatch, None)

    folder = output_base / FOLDER
    manifest = json.loads((folder / "_manifest.json").read_text())
    lines = (folder / "part-00000.jsonl").read_text().splitlines()
    assert manifest["output"]["format"] == "jsonl"
    assert sorted(path.name for path in folder.iterdir()) == ["_manifest.json", "part-00000.jsonl"]
    assert {json.loads(line)["id"] for line in lines} == _expected(genviral_sandbox) and len(lines) == 40


def test_parquet_from_the_variable_writes_the_days_folder_as_parquet(
    genviral_sandbox: SandboxServer,
    sandbox_conn: str,
    output_base: pathlib.Path,
    run_example_dag: RunExampleDag,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyarrow.parquet as pq

    _day_of_posts(run_example_dag, monkeypatch, "parquet")

    folder = output_base / FOLDER
    assert sorted(path.name for path in folder.iterdir()) == ["_manifest.json", "part-00000.parquet"]
    ids = pq.read_table(folder / "part-00000.parquet").column("id").to_pylist()
    assert set(ids) == _expected(genviral_sandbox) and len(ids) == 40


@needs_iceberg
def test_iceberg_from_the_variable_commits_the_day_to_the_table_and_writes_no_folder(
    genviral_sandbox: SandboxServer,
    sandbox_conn: str,
    output_base: pathlib.Path,
    catalog_folder: pathlib.Path,
    run_example_dag: RunExampleDag,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _day_of_posts(run_example_dag, monkeypatch, "iceberg")

    table = _table(catalog_folder, "genviral.posts")
    ids = table.scan().to_arrow().column("id").to_pylist()
    assert set(ids) == _expected(genviral_sandbox) and len(ids) == 40
    summary = table.current_snapshot().summary
    assert summary["genviral.window.start"] == DAY.isoformat()
    assert not (output_base / "posts").exists()  # output_path is not used with iceberg


@needs_iceberg
def test_iceberg_from_the_variable_appends_the_metrics_snapshot_and_a_rerun_replaces_only_its_date(
    genviral_sandbox: SandboxServer,
    sandbox_conn: str,
    output_base: pathlib.Path,
    catalog_folder: pathlib.Path,
    run_example_dag: RunExampleDag,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_GENVIRAL_OUTPUT_FORMAT", "iceberg")
    snapshot_day = DAY + dt.timedelta(days=10)
    genviral_sandbox.now = snapshot_day + dt.timedelta(hours=12)

    def poll_often(dag: object) -> None:
        dag.get_task("refresh_targets").poll_interval = 0.2  # type: ignore[attr-defined]

    for run_after in (snapshot_day - dt.timedelta(days=1), snapshot_day, snapshot_day):  # the last one re-runs
        run = run_example_dag(
            "genviral_metrics_refresh",
            logical_date=None,
            run_after=run_after,
            run_conf={"lookback_days": 3},
            adjust=poll_often,
        )
        assert_success(run)

    table = _table(catalog_folder, "genviral.metrics_snapshots")
    rows = table.scan(selected_fields=("snapshot_date", "id")).to_arrow().to_pylist()
    by_date: dict[str, list[str]] = {}
    for row in rows:
        by_date.setdefault(row["snapshot_date"].isoformat(), []).append(row["id"])
    expected = {
        day: {
            row["id"]
            for row in rows_published_between(genviral_sandbox.dataset.rows, day - dt.timedelta(days=3), day).values()
        }
        for day in (snapshot_day - dt.timedelta(days=1), snapshot_day)
    }
    assert {date: sorted(ids) for date, ids in by_date.items()} == {
        day.date().isoformat(): sorted(ids) for day, ids in expected.items()
    }
    assert all(len(ids) == 120 for ids in by_date.values())
    assert not (output_base / "metrics_snapshots").exists()
