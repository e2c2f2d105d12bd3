"""Fixtures for the example DAGs of dags/: their sources, an output base, and running one through dag.test()."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
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
