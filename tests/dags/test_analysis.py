"""Every SQL query of docs/analysis.md runs with DuckDB over folders the example DAGs wrote from the sandbox.

The DAGs run through real Airflow (dag.test) against the default sandbox, its clock moved to each run's time.
The sandbox's metrics do not change by themselves, so the test grows them between readings, as platforms do.
"""

from __future__ import annotations

import collections
import datetime as dt
import pathlib
import re
from typing import Any

import pytest

from genviral_provider.core.rows import published_at
from genviral_provider.sandbox import SandboxServer
from tests.dags.conftest import (
    REPO,
    TABLES_SECTION,
    RunExampleDag,
    duckdb_row,
    expected_posts_per_day,
    rows_of_days,
    run_analysis_dags,
)

duckdb = pytest.importorskip("duckdb")

PAGE = REPO / "docs" / "analysis.md"
SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.MULTILINE | re.DOTALL)
DOC_BASE = "/tmp/genviral"


@pytest.fixture
def written(
    genviral_sandbox: SandboxServer, sandbox_conn: str, output_base: pathlib.Path, run_example_dag: RunExampleDag
) -> dict[str, Any]:
    """Run the example DAGs into `output_base`; return what the sandbox served, to check the answers against."""
    return run_analysis_dags(genviral_sandbox, run_example_dag)


def _queries() -> list[str]:
    text = PAGE.read_text()
    return [match.group(1) for match in SQL_BLOCK.finditer(text[: text.index(TABLES_SECTION)])]


def test_the_page_has_the_queries_this_test_checks() -> None:
    assert len(_queries()) == 5


def test_every_query_of_the_page_returns_the_numbers_of_the_data_the_dags_wrote(
    genviral_sandbox: SandboxServer, output_base: pathlib.Path, written: dict[str, Any]
) -> None:
    sandbox = genviral_sandbox
    results = []
    for query in _queries():
        assert DOC_BASE in query
        answer = duckdb.sql(query.replace(DOC_BASE, str(output_base))).fetchall()
        results.append([duckdb_row(row) for row in answer])
    per_day, latest, growth, top, orphans = results

    # Posts per day and platform: the 40 posts of the 4th and of the 5th, split as the sandbox has them.
    assert per_day == expected_posts_per_day(sandbox.dataset.rows, 4, 5)
    assert sum(count for _, _, count in per_day) == 80

    # Latest metrics: every post of the 11th to the 14th once, from the snapshot of the 15th when it is in it
    # (its views grew by 100 after the first snapshot), else from that of the 14th (the 11th's posts).
    assert len(latest) == 160 == len({row[0] for row in latest})
    snapshot_of = {row[0]: row[3] for row in latest}
    views_of = {row[0]: row[4] for row in latest}
    for row in rows_of_days(sandbox.dataset.rows, 11, 14):
        day = published_at(row).date()  # type: ignore[union-attr]
        assert snapshot_of[row["id"]] == (dt.date(2026, 1, 14) if day == dt.date(2026, 1, 11) else dt.date(2026, 1, 15))
        # Views grew by 100 after each snapshot: the 11th's posts were last read before both growths.
        assert views_of[row["id"]] == row["metrics"]["views"] - (200 if day == dt.date(2026, 1, 11) else 100)

    # Growth: the posts of the 4th, at 48 hours and tripled at 7 days.
    by_platform: dict[str, list[int]] = collections.defaultdict(list)
    for row in rows_of_days(sandbox.dataset.rows, 4, 4):
        by_platform[row["platform"]].append(written["views_48h"][row["id"]])
    assert growth == [
        (platform, len(views), sum(views), 3 * sum(views), 3.0) for platform, views in sorted(by_platform.items())
    ]
    assert sum(row[1] for row in growth) == 40

    # Top 3 per account, named from the targets dimension.
    names = {(t.platform, t.identifier): t.display_name for t in sandbox.dataset.targets}
    per_account: dict[tuple[str, str], list[tuple[int, str]]] = collections.defaultdict(list)
    for row in rows_of_days(sandbox.dataset.rows, 4, 5):
        per_account[(row["platform"], row["accountIdentifier"])].append((row["metrics"]["views"], row["id"]))
    expected_top = []
    for account, posts in per_account.items():
        for views, post_id in sorted(posts, key=lambda post: (-post[0], post[1]))[:3]:
            expected_top.append((names[account], account[0], post_id, views))
    assert top == sorted(expected_top, key=lambda r: (r[0], r[1], -r[3]))
    assert len(top) == 3 * len(per_account)

    # The targets dimension joins to every post.
    assert orphans == [(0,)]
