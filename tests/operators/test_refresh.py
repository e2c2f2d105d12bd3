"""GenviralRefreshAnalyticsOperator in real DAG runs (dag.test()) against the sandbox's refreshes and credits."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.sandbox import SandboxServer
from tests.sensors.conftest import _xcom

DAG_SOURCE = """
import datetime as dt
import pathlib

from airflow.sdk import DAG

from genviral_provider.operators.genviral import GenviralRefreshAnalyticsOperator


class RecordingRefresh(GenviralRefreshAnalyticsOperator):
    def execute(self, context):
        try:
            return super().execute(context)
        except BaseException as error:
            if type(error).__name__ != "TaskDeferred":
                pathlib.Path({error_file!r}).write_text(f"{{type(error).__name__}}: {{error}}")
            raise

    def execute_complete(self, context, event=None):
        try:
            return super().execute_complete(context, event)
        except BaseException as error:
            pathlib.Path({error_file!r}).write_text(f"{{type(error).__name__}}: {{error}}")
            raise


with DAG({dag_id!r}, schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)) as dag:
    RecordingRefresh(task_id="refresh", poll_interval=0.5, {arguments})
"""


@pytest.fixture
def cache(genviral_sandbox_factory: Callable[..., SandboxServer], genviral_connection: Any) -> SandboxServer:
    """The default sandbox with fast refreshes and 3 credits, as connection `genviral_default`."""
    server = genviral_sandbox_factory(refresh_seconds=0.3, credits=3)
    genviral_connection(server, max_retry_wait=2)
    return server


@pytest.fixture
def run_refresh(run_dag_file: Callable[..., Any], tmp_path: pathlib.Path) -> Callable[..., tuple[str, Any, str | None]]:
    """Return a function that runs a one-task DAG; it returns the task's state, its XCom and its error."""

    def run(dag_id: str, **arguments: Any) -> tuple[str, Any, str | None]:
        error_file = tmp_path / f"{dag_id}.error"
        source = DAG_SOURCE.format(
            dag_id=dag_id,
            error_file=str(error_file),
            arguments=", ".join(f"{name}={value!r}" for name, value in arguments.items()),
        )
        dag_run = run_dag_file(source, dag_id)
        state = str(dag_run.get_task_instance("refresh").state)
        return state, _xcom(dag_run, "refresh"), error_file.read_text() if error_file.exists() else None

    return run


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferrable"])
def test_every_target_gets_its_free_refresh_and_the_task_waits_for_the_end(
    cache: SandboxServer, run_refresh: Callable[..., Any], deferrable: bool
) -> None:
    state, xcom, error = run_refresh(f"refresh_all_{deferrable}", deferrable=deferrable)

    assert state.endswith("success"), error
    targets = xcom["targets"]
    assert set(targets) == {target.id for target in cache.dataset.targets}
    for entry in targets.values():
        assert entry["status"] == "completed" and entry["was_free"] is True and entry["credits_used"] == 0
        assert entry["refresh_id"] and entry["completed_at"]
    assert (xcom["paid_refreshes"], xcom["credits_used"], cache.credits) == (0, 0, 3)


def test_without_a_free_refresh_nothing_is_bought_and_the_task_says_what_to_do(
    cache: SandboxServer, run_refresh: Callable[..., Any]
) -> None:
    cache.refresh_ledger.set_free_refresh_used(True)

    state, xcom, error = run_refresh("refresh_none_free", platforms=["youtube"])

    assert state.endswith("success"), error
    assert {entry["status"] for entry in xcom["targets"].values()} == {"not_refreshed"}
    assert all("set max_paid_refreshes" in entry["note"] for entry in xcom["targets"].values())
    assert cache.refreshes() == [] and cache.credits == 3


def test_paid_refreshes_are_made_only_up_to_the_maximum(cache: SandboxServer, run_refresh: Callable[..., Any]) -> None:
    cache.refresh_ledger.set_free_refresh_used(True)

    state, xcom, error = run_refresh("refresh_paid", platforms="tiktok", max_paid_refreshes=1)

    assert state.endswith("success"), error
    statuses = sorted(entry["status"] for entry in xcom["targets"].values())
    assert statuses == ["completed", "not_refreshed"]
    assert (xcom["paid_refreshes"], xcom["credits_used"], cache.credits) == (1, 1, 2)


def test_a_failed_refresh_fails_the_task_naming_the_target_and_the_error(
    genviral_sandbox_factory: Callable[..., SandboxServer], genviral_connection: Any, run_refresh: Callable[..., Any]
) -> None:
    probe = genviral_sandbox_factory()
    target = probe.dataset.targets[0]
    server = genviral_sandbox_factory(refresh_seconds=0.2, failing_targets=[target.id])
    genviral_connection(server, max_retry_wait=2)

    state, _, error = run_refresh("refresh_failing", target_ids=[target.id])

    assert state.endswith("failed")
    assert error is not None and error.startswith("GenviralRefreshFailedError")
    assert f"target {target.id}: refresh" in error and f"Platform fetch failed for {target.identifier}" in error


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"target_ids": "a b"}, "target id 'a b' is not a valid id"),
        ({"platforms": ["myspace"]}, "Unknown platform(s) 'myspace'"),
        ({"max_paid_refreshes": "lots"}, "max_paid_refreshes 'lots' is not allowed"),
        ({"timeout": 0}, "timeout 0 is not a positive number of seconds"),
    ],
    ids=["target-id", "platform", "paid", "timeout"],
)
def test_bad_input_is_refused_before_any_request(
    cache: SandboxServer, run_refresh: Callable[..., Any], arguments: dict[str, Any], message: str
) -> None:
    state, _, error = run_refresh("refresh_bad_input", **arguments)

    assert state.endswith("failed") and error is not None and message in error
    assert cache.stats.total == 0
