"""GenviralRefreshAnalyticsOperator in real DAG runs (dag.test()) against the sandbox's refreshes and credits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.sandbox import SandboxServer
from tests.conftest import TaskOutcome

REFRESH = "genviral_provider.operators.genviral.GenviralRefreshAnalyticsOperator"


@pytest.fixture
def cache(genviral_sandbox_factory: Callable[..., SandboxServer], genviral_connection: Any) -> SandboxServer:
    """The default sandbox with fast refreshes and 3 credits, as connection `genviral_default`."""
    server = genviral_sandbox_factory(refresh_seconds=0.3, credits=3)
    genviral_connection(server, max_retry_wait=2)
    return server


@pytest.fixture
def run_refresh(run_one_task: Callable[..., TaskOutcome]) -> Callable[..., TaskOutcome]:
    """Return a function that runs the operator alone in a DAG run (polling every 0.5 s)."""

    def run(dag_id: str, **arguments: Any) -> TaskOutcome:
        return run_one_task(REFRESH, dag_id, poll_interval=0.5, **arguments)

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
