"""Complete days: genviral_posts_daily against a sandbox whose cache lags, through real Airflow (dag.test()).

The sandbox's targets were last refreshed at noon of the last day, so half of that day's posts are not served
yet. The daily run of that day must publish every post of the day, spending free refreshes only; with no free
refresh left it must spend no credit and publish nothing incomplete; and when the platform refreshes by itself
while the gate waits, the day must complete without any refresh being bought.
"""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.core.rows import row_key
from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.sandbox import SandboxServer
from tests.conftest import ConnectionSetter
from tests.dags.conftest import UTC, RunExampleDag, read_output_folder, rows_published_between

LAST_DAY = dt.datetime(2026, 1, 14, tzinfo=UTC)
#: 12 hours before the end of the last day of the default dataset (2026-01-01 .. 2026-01-14).
LAST_REFRESH = LAST_DAY + dt.timedelta(hours=12)
CREDITS = 5


@pytest.fixture
def lagging_sandbox(
    genviral_sandbox_factory: Callable[..., SandboxServer], genviral_connection: ConnectionSetter
) -> Callable[..., SandboxServer]:
    """Return a function that starts the default sandbox with its cache lagging, as `genviral_default`."""

    def start(**settings: Any) -> SandboxServer:
        server = genviral_sandbox_factory(
            targets_refreshed_at=LAST_REFRESH, refresh_seconds=0.2, credits=CREDITS, **settings
        )
        genviral_connection(server, max_retry_wait=5)
        return server

    return start


def run_last_day(run_example_dag: RunExampleDag, *, timeout: float = 60) -> Any:
    def fast_gate(dag: Any) -> None:
        gate = dag.get_task("wait_for_fresh_analytics")
        gate.poke_interval, gate.timeout = 0.5, timeout

    # A manual run with logical date D covers the last whole day before it: [D - 1 day, D).
    return run_example_dag("genviral_posts_daily", logical_date=LAST_DAY + dt.timedelta(days=1), adjust=fast_gate)


def day_rows(server: SandboxServer) -> dict[str, Any]:
    return rows_published_between(server.dataset.rows, LAST_DAY, LAST_DAY + dt.timedelta(days=1))


def served_rows_of_the_day(server: SandboxServer) -> int:
    return len(list(GenviralHook().iter_posts(LAST_DAY.date(), LAST_DAY.date())))


def bought(server: SandboxServer) -> list[dict[str, Any]]:
    return [refresh for refresh in server.refreshes() if not refresh.get("wasFree")]


def test_the_last_day_is_published_whole_after_free_refreshes(
    lagging_sandbox: Callable[..., SandboxServer], output_base: pathlib.Path, run_example_dag: RunExampleDag
) -> None:
    server = lagging_sandbox()
    assert served_rows_of_the_day(server) < len(day_rows(server)) == 40  # the cache really lags

    run = run_last_day(run_example_dag)

    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    manifest, rows = read_output_folder(output_base / "posts" / "published_date=2026-01-14")
    assert {row_key(row): row for row in rows} == day_rows(server) and len(rows) == 40
    assert server.credits == CREDITS and bought(server) == []
    assert server.refreshes() and all(refresh["wasFree"] for refresh in server.refreshes())
    assert manifest["freshness"]["covered"] is True and manifest["freshness"]["stale_targets"] == []
    assert set(manifest["freshness"]["targets"]) == {target.id for target in server.dataset.targets}


def test_without_a_free_refresh_no_credit_is_spent_and_nothing_incomplete_is_published(
    lagging_sandbox: Callable[..., SandboxServer], output_base: pathlib.Path, run_example_dag: RunExampleDag
) -> None:
    server = lagging_sandbox()
    server.refresh_ledger.set_free_refresh_used(True)

    run = run_last_day(run_example_dag, timeout=3)

    assert str(run.state) in ("failed", "DagRunState.FAILED")
    assert str(run.get_task_instance("write_posts").state) in ("upstream_failed", "TaskInstanceState.UPSTREAM_FAILED")
    assert not (output_base / "posts").exists()
    assert server.credits == CREDITS and server.refreshes() == []


def test_the_platforms_own_refresh_completes_the_day_without_buying_one(
    lagging_sandbox: Callable[..., SandboxServer], output_base: pathlib.Path, run_example_dag: RunExampleDag
) -> None:
    server = lagging_sandbox(scheduled_refresh_seconds=2.0)
    server.refresh_ledger.set_free_refresh_used(True)

    run = run_last_day(run_example_dag)

    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    _, rows = read_output_folder(output_base / "posts" / "published_date=2026-01-14")
    assert {row_key(row): row for row in rows} == day_rows(server)
    assert server.credits == CREDITS and bought(server) == []
    assert server.refreshes() and all(refresh.get("scheduled") for refresh in server.refreshes())
