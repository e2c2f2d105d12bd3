"""Fixtures for the example DAGs of dags/: their sources, an output base, and running one through dag.test()."""

from __future__ import annotations

import collections
import datetime as dt
import json
import pathlib
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.core.rows import published_at, row_key

REPO = pathlib.Path(__file__).resolve().parents[2]
DAGS_DIR = REPO / "dags"
EXAMPLE_DAG_IDS = (
    "genviral_posts_daily",
    "genviral_metrics_refresh",
    "genviral_wait_for_post_analytics",
    "genviral_post_checkpoints",
)
UTC = dt.timezone.utc

RunExampleDag = Callable[..., Any]


@pytest.fixture
def output_base(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """Point the Variable `genviral_output_base` at a fresh local folder (not created); return the folder."""
    base = tmp_path / "output"
    monkeypatch.setenv("AIRFLOW_VAR_GENVIRAL_OUTPUT_BASE", f"file://{base}")
    return base


@pytest.fixture
def run_example_dag(run_dag_file: Callable[..., Any]) -> RunExampleDag:
    """Return a function that runs dags/<dag_id>.py with dag.test(), from a copy in the DAGs folder.

    Task retries are turned off, so that a failing task fails the run at once instead of waiting for its retry
    delay; ``adjust`` may change the loaded DAG further (e.g. a shorter poke interval) before it runs.
    """

    def run(dag_id: str, *, adjust: Callable[[Any], None] | None = None, **test_kwargs: Any) -> Any:
        def without_retries(dag: Any) -> None:
            for task in dag.tasks:
                task.retries = 0
            if adjust is not None:
                adjust(dag)

        return run_dag_file((DAGS_DIR / f"{dag_id}.py").read_text(), dag_id, adjust=without_retries, **test_kwargs)

    return run


def read_output_folder(folder: pathlib.Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read an operator output folder through its manifest: (manifest, rows in file order)."""
    manifest = json.loads((folder / "_manifest.json").read_text())
    rows: list[dict[str, Any]] = []
    for entry in manifest["files"]:
        rows.extend(json.loads(line) for line in (folder / entry["name"]).read_text().splitlines() if line)
    return manifest, rows


def rows_published_between(rows: list[dict[str, Any]], start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """Return the rows whose publishedAt lies in [start, end), by row key."""
    return {row_key(row): row for row in rows if (instant := published_at(row)) is not None and start <= instant < end}


@pytest.fixture
def iceberg_catalog(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], Any]:
    """Point the connection `genviral_iceberg` at a SQL catalog of its own (sqlite, warehouse in tmp_path).

    Returns a function that opens that catalog, to read what the DAGs committed.
    """
    folder = tmp_path / "lake"
    folder.mkdir()
    extra = {"type": "sql", "uri": f"sqlite:///{folder / 'catalog.db'}", "warehouse": (folder / "warehouse").as_uri()}
    monkeypatch.setenv("AIRFLOW_CONN_GENVIRAL_ICEBERG", json.dumps({"conn_type": "generic", "extra": extra}))

    def open_test_catalog() -> Any:
        from genviral_provider.core.output.iceberg.catalog import catalog_config, open_catalog

        return open_catalog(catalog_config("genviral_iceberg", extra))

    return open_test_catalog


# ------------------------------------------------------------------------------- what docs/analysis.md queries
ANALYSIS_DAY = dt.timedelta(days=1)
#: The heading of the page's section on the tables: test_analysis.py runs the queries before it, over the folders;
#: test_analysis_iceberg.py those in it, over the tables.
TABLES_SECTION = "## The same questions on the Iceberg tables"


def january(day: int) -> dt.datetime:
    """Return midnight (UTC) of 2026-01-<day>."""
    return dt.datetime(2026, 1, day, tzinfo=UTC)


def rows_of_days(rows: list[dict[str, Any]], first: int, last: int) -> list[dict[str, Any]]:
    """Return the rows published from 2026-01-<first> to 2026-01-<last>, both included."""
    start, end = january(first), january(last) + ANALYSIS_DAY
    return [row for row in rows if (instant := published_at(row)) is not None and start <= instant < end]


def assert_success(run: Any) -> None:
    """Fail unless a DagRun ended in success."""
    assert str(run.state).removeprefix("DagRunState.").lower() == "success", run.run_id


def duckdb_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Return a DuckDB answer's row with its values as the API had them: ids that DuckDB read as UUIDs back as text."""
    return tuple(str(value) if isinstance(value, uuid.UUID) else value for value in row)


def expected_posts_per_day(rows: list[dict[str, Any]], first: int, last: int) -> list[tuple[Any, str, int]]:
    """Return (publication day, platform, posts) of the January days `first` to `last`, sorted, as the queries do."""
    counts = collections.Counter(
        (published_at(row).date(), row["platform"])  # type: ignore[union-attr]
        for row in rows_of_days(rows, first, last)
    )
    return sorted((day, platform, count) for (day, platform), count in counts.items())


def run_analysis_dags(sandbox: Any, run_example_dag: RunExampleDag) -> dict[str, Any]:
    """Run the example DAGs whose output docs/analysis.md queries; return what the checks need beyond the sandbox.

    Checkpoints of the intervals ending 2026-01-07 and -12, the posts of the 4th and the 5th, metrics snapshots of
    the 14th and the 15th (three days each). The sandbox's metrics do not change by themselves, so views grow
    between readings, as on the platforms: the 4th's posts triple by their 7-day checkpoint, the posts of the 11th
    to the 14th gain 100 after each snapshot.
    """

    def poll_often(dag: Any) -> None:
        dag.get_task("refresh_targets").poll_interval = 0.2

    # Checkpoints of the interval ending 2026-01-07, read an hour after it: the 48-hour one of the 4th.
    sandbox.now = january(7) + dt.timedelta(hours=1)
    assert_success(run_example_dag("genviral_post_checkpoints", logical_date=january(7)))
    views_48h = {row["id"]: row["metrics"]["views"] for row in rows_of_days(sandbox.dataset.rows, 4, 4)}
    for row in rows_of_days(sandbox.dataset.rows, 4, 4):  # the posts of the 4th triple their views by day 7
        row["metrics"]["views"] *= 3
    # The interval ending 2026-01-12: the 7-day checkpoint of the 4th, the 48-hour one of the 9th.
    sandbox.now = january(12) + dt.timedelta(hours=1)
    assert_success(run_example_dag("genviral_post_checkpoints", logical_date=january(12)))

    sandbox.now = january(15) + dt.timedelta(hours=12)
    for logical_day in (5, 6):  # the posts of the 4th and of the 5th
        assert_success(run_example_dag("genviral_posts_daily", logical_date=january(logical_day)))
    # Snapshots of the 14th (posts of the 11th to the 13th) and of the 15th (12th to 14th); views grow between.
    for snapshot_day in (14, 15):
        run = run_example_dag(
            "genviral_metrics_refresh",
            logical_date=None,
            run_after=january(snapshot_day),
            run_conf={"lookback_days": 3},
            adjust=poll_often,
        )
        assert_success(run)
        for row in rows_of_days(sandbox.dataset.rows, 11, 14):
            row["metrics"]["views"] += 100
    return {"views_48h": views_48h}
