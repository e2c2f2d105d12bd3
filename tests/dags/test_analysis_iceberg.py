"""Every SQL query of docs/analysis.md's tables section runs with DuckDB over the tables the example DAGs committed.

The DAGs run as in test_analysis.py (the same runs, the same growth of the sandbox's metrics), with the Variable
`genviral_output_format` = `iceberg` and no `genviral_iceberg` connection: into the embedded catalog under the
test's AIRFLOW_HOME, whose three tables are dropped first so that only these runs are in them.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import pathlib
import re
from typing import Any

import pytest

from genviral_provider.core.output.checkpoints import CheckpointInterval
from genviral_provider.core.rows import published_at
from genviral_provider.sandbox import SandboxServer
from tests.conftest import needs_iceberg
from tests.dags.conftest import (
    REPO,
    TABLES_SECTION,
    RunExampleDag,
    duckdb_row,
    expected_posts_per_day,
    january,
    rows_of_days,
    run_analysis_dags,
)

pytestmark = needs_iceberg

pytest.importorskip("duckdb")

PAGE = REPO / "docs" / "analysis.md"
SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.MULTILINE | re.DOTALL)
TABLES = ("posts", "metrics_snapshots", "post_checkpoints")


def duckdb_on_tables(catalog: Any) -> Any:
    """Return a DuckDB connection on which each table's current snapshot is a view named after the table."""
    import duckdb

    connection = duckdb.connect()
    for name in ("posts", "metrics_snapshots", "post_checkpoints"):
        connection.register(name, catalog.load_table(f"genviral.{name}").scan().to_arrow())
    return connection


def _queries() -> list[str]:
    text = PAGE.read_text()
    section = text[text.index(TABLES_SECTION) :]
    section = section[: section.index("\n## ", len(TABLES_SECTION))]
    return [match.group(1) for match in SQL_BLOCK.finditer(section)]


def _embedded_catalog() -> Any:
    from genviral_provider.core.output.iceberg.catalog import embedded_config, open_catalog

    return open_catalog(embedded_config(os.environ["AIRFLOW_HOME"], name="genviral_iceberg"))


@pytest.fixture
def committed(
    genviral_sandbox: SandboxServer,
    sandbox_conn: str,
    output_base: pathlib.Path,
    run_example_dag: RunExampleDag,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """Run the example DAGs in iceberg mode into the embedded catalog; return what the checks need."""
    monkeypatch.setenv("AIRFLOW_VAR_GENVIRAL_OUTPUT_FORMAT", "iceberg")
    monkeypatch.delenv("AIRFLOW_CONN_GENVIRAL_ICEBERG", raising=False)
    catalog = _embedded_catalog()
    for name in TABLES:
        if catalog.table_exists(f"genviral.{name}"):
            catalog.purge_table(f"genviral.{name}")
    written = run_analysis_dags(genviral_sandbox, run_example_dag)
    assert not (output_base / "posts").exists() and not (output_base / "checkpoints").exists()
    return written


def test_the_tables_section_has_the_queries_this_test_checks() -> None:
    assert len(_queries()) == 5


def test_every_table_query_of_the_page_returns_the_numbers_of_the_data_the_dags_committed(
    genviral_sandbox: SandboxServer, committed: dict[str, Any]
) -> None:
    sandbox = genviral_sandbox
    connection = duckdb_on_tables(_embedded_catalog())
    results = [[duckdb_row(row) for row in connection.sql(query).fetchall()] for query in _queries()]
    per_day, latest, snapshot_growth, per_checkpoint, checkpoint_growth = results

    # Posts per day and platform: the 40 posts of the 4th and of the 5th.
    assert per_day == expected_posts_per_day(sandbox.dataset.rows, 4, 5)
    assert sum(count for _, _, count in per_day) == 80

    # Latest metrics: the posts of the 11th from the snapshot of the 14th, those of the 12th to the 14th from the
    # 15th's; views grew by 100 after each snapshot.
    assert len(latest) == 160 == len({row[0] for row in latest})
    found = {row[0]: (row[3], row[4]) for row in latest}
    for row in rows_of_days(sandbox.dataset.rows, 11, 14):
        first_day = published_at(row).date() == dt.date(2026, 1, 11)  # type: ignore[union-attr]
        views = row["metrics"]["views"] - (200 if first_day else 100)
        assert found[row["id"]] == (dt.date(2026, 1, 14 if first_day else 15), views)

    # Growth between the two snapshots: the posts of the 12th and the 13th, 100 views more each.
    by_platform: dict[str, list[int]] = collections.defaultdict(list)
    for row in rows_of_days(sandbox.dataset.rows, 12, 13):
        by_platform[row["platform"]].append(row["metrics"]["views"])
    assert snapshot_growth == [
        (platform, len(views), sum(views) - 200 * len(views), sum(views) - 100 * len(views), 100 * len(views))
        for platform, views in sorted(by_platform.items())
    ]
    assert sum(row[1] for row in snapshot_growth) == 80

    # Checkpoints per age and day: exactly the posts of each age's window of the two runs.
    expected_checkpoints: collections.Counter[tuple[Any, ...]] = collections.Counter()
    for end_day in (7, 12):
        for entry in CheckpointInterval(january(end_day - 1), january(end_day)).plan("unused", [48, 168]):
            start, end = dt.datetime.fromisoformat(entry["start"]), dt.datetime.fromisoformat(entry["end"])
            for row in sandbox.dataset.rows:
                if (instant := published_at(row)) is not None and start <= instant < end:
                    expected_checkpoints[(entry["checkpoint_age"], instant.date())] += 1
    assert per_checkpoint == sorted((age, day, count) for (age, day), count in expected_checkpoints.items())
    assert ("48h", dt.date(2026, 1, 4), 40) in per_checkpoint and ("7d", dt.date(2026, 1, 4), 40) in per_checkpoint

    # Growth between the checkpoints: the posts of the 4th, tripled from 48 hours to 7 days.
    at_48h: dict[str, list[int]] = collections.defaultdict(list)
    for row in rows_of_days(sandbox.dataset.rows, 4, 4):
        at_48h[row["platform"]].append(committed["views_48h"][row["id"]])
    assert checkpoint_growth == [
        (platform, len(views), sum(views), 3 * sum(views), 3.0) for platform, views in sorted(at_48h.items())
    ]
