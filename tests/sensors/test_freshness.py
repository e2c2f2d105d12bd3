"""GenviralAnalyticsFreshnessSensor in real DAG runs (dag.test()) against the sandbox's lagging cache."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.sandbox import SandboxServer
from tests.conftest import TaskOutcome

UTC = dt.timezone.utc
WINDOW_END = dt.datetime(2026, 1, 15, tzinfo=UTC)
GATE = "genviral_provider.sensors.genviral.GenviralAnalyticsFreshnessSensor"


@pytest.fixture
def lagging(genviral_sandbox_factory: Callable[..., SandboxServer], genviral_connection: Any) -> SandboxServer:
    """The default sandbox (clock 2026-01-15T12:00Z), every target last refreshed 12 hours before WINDOW_END."""
    server = genviral_sandbox_factory(
        targets_refreshed_at=WINDOW_END - dt.timedelta(hours=12), refresh_seconds=0.2, credits=3
    )
    genviral_connection(server, max_retry_wait=2)
    return server


@pytest.fixture
def run_gate(run_one_task: Callable[..., TaskOutcome]) -> Callable[..., TaskOutcome]:
    """Return a function that runs the gate alone in a DAG run (polling every 0.5 s)."""

    def run(dag_id: str, **arguments: Any) -> TaskOutcome:
        return run_one_task(GATE, dag_id, poke_interval=0.5, **arguments)

    return run


def refresh_posts(server: SandboxServer) -> int:
    return sum(1 for record in server.stats.requests if record.path.endswith("/refresh"))


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_the_gate_refreshes_free_and_passes_with_proof(
    lagging: SandboxServer, run_gate: Callable[..., Any], deferrable: bool
) -> None:
    state, xcom, error = run_gate(
        f"gate_free_{deferrable}", fresh_after=WINDOW_END.isoformat(), deferrable=deferrable, timeout=60
    )

    assert state.endswith("success"), error
    assert xcom["fresh_after"] == "2026-01-15T00:00:00+00:00"
    assert {entry["proof"] for entry in xcom["targets"].values()} == {"last_refreshed_at"}
    assert xcom["credits_used"] == 0 and lagging.credits == 3
    assert len(xcom["refreshes"]) == len(lagging.dataset.targets) == refresh_posts(lagging)


def test_the_default_instant_is_the_runs_window_end_plus_settle(
    lagging: SandboxServer, run_gate: Callable[..., Any]
) -> None:
    state, xcom, error = run_gate("gate_window", end="2026-01-14", settle=dt.timedelta(hours=1), timeout=30)

    assert state.endswith("success"), error
    assert xcom["fresh_after"] == "2026-01-14T01:00:00+00:00"
    assert refresh_posts(lagging) == 0  # 2026-01-14T12:00 already covers it: fresh without a refresh


def test_a_timeout_names_each_stale_target_and_soft_fail_skips(
    lagging: SandboxServer, run_gate: Callable[..., Any]
) -> None:
    lagging.refresh_ledger.set_free_refresh_used(True)
    target = lagging.dataset.targets[0]

    state, _, error = run_gate(
        "gate_timeout", fresh_after=WINDOW_END.isoformat(), target_ids=[target.id], timeout=1.5, soft_fail=True
    )

    assert state.endswith("skipped")
    assert error is not None and error.startswith("AirflowSkipException")
    assert f"({target.id}) last refreshed 2026-01-14T12:00:00+00:00" in error and "max_paid_refreshes" in error
    assert refresh_posts(lagging) == 0 and lagging.credits == 3


def test_paid_refreshes_are_bounded_by_the_maximum(lagging: SandboxServer, run_gate: Callable[..., Any]) -> None:
    lagging.refresh_ledger.set_free_refresh_used(True)
    tiktok = [target.id for target in lagging.dataset.targets if target.platform == "tiktok"]

    state, _, error = run_gate(
        "gate_paid", fresh_after=WINDOW_END.isoformat(), target_ids=tiktok, max_paid_refreshes=1, timeout=3
    )

    assert state.endswith("failed") and error is not None and "already started max_paid_refreshes=1" in error
    assert lagging.credits == 2 and refresh_posts(lagging) == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"fresh_after": "yesterday"}, "fresh_after 'yesterday' is not an ISO 8601 date or date-time"),
        ({"settle": dt.timedelta(minutes=-5)}, "settle datetime.timedelta(days=-1, seconds=86100) is not allowed"),
        ({"target_ids": ["a/b"]}, "target id 'a/b' is not a valid id"),
        ({"max_paid_refreshes": -1}, "max_paid_refreshes -1 is not allowed"),
        ({"max_paid_refreshes": 2, "mode": "reschedule"}, "max_paid_refreshes=2 needs mode='poke' or deferrable=True"),
    ],
    ids=["instant", "settle", "target-id", "paid", "reschedule"],
)
def test_bad_input_is_refused_before_any_request(
    lagging: SandboxServer, run_gate: Callable[..., Any], arguments: dict[str, Any], message: str
) -> None:
    state, _, error = run_gate("gate_bad_input", **arguments)

    assert state.endswith("failed")
    assert error is not None and message in error
    assert lagging.stats.total == 0


def test_an_unknown_target_is_refused_before_any_refresh(lagging: SandboxServer, run_gate: Callable[..., Any]) -> None:
    state, _, error = run_gate("gate_unknown", fresh_after=WINDOW_END.isoformat(), target_ids=["not-mine"])

    assert state.endswith("failed") and error is not None and "'not-mine' are not visible to this key" in error
    assert refresh_posts(lagging) == 0
