"""GenviralAnalyticsFreshnessSensor in real DAG runs (dag.test()) against the sandbox's lagging cache."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.core.api.query import TARGETS_PATH
from genviral_provider.exceptions import GenviralInvalidParameterError
from genviral_provider.sandbox import SandboxServer
from genviral_provider.sensors.genviral import GATE_STATE_KEY, GenviralAnalyticsFreshnessSensor
from tests.conftest import TaskOutcome

UTC = dt.timezone.utc
WINDOW_END = dt.datetime(2026, 1, 15, tzinfo=UTC)
GATE = "genviral_provider.sensors.genviral.GenviralAnalyticsFreshnessSensor"
#: The three ways the gate waits, as sensor arguments.
MODES: dict[str, dict[str, Any]] = {
    "poke": {"mode": "poke"},
    "reschedule": {"mode": "reschedule"},
    "deferrable": {"deferrable": True},
}
TASK_STATE_STORE = pytest.mark.needs_airflow("3.3", "The task state store (a rescheduled gate's state between pokes)")
#: The modes as test parameters: reschedule mode keeps what the gate started only where the task state store is.
MODE_PARAMS = [pytest.param(mode, marks=TASK_STATE_STORE) if mode == "reschedule" else mode for mode in MODES]


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


def target_listings(server: SandboxServer) -> int:
    """Count the gate's rounds: each reads the targets once."""
    return sum(1 for record in server.stats.requests if record.path.endswith(TARGETS_PATH))


def saved_gate_states(dag_id: str) -> list[Any]:
    """Return what the task state store still holds for the gate of ``dag_id``'s runs."""
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(TaskStateStoreModel).where(
            TaskStateStoreModel.dag_id == dag_id, TaskStateStoreModel.key == GATE_STATE_KEY
        )
        return list(session.scalars(query))


@pytest.mark.parametrize("mode", MODE_PARAMS)
def test_the_gate_refreshes_free_and_passes_with_proof(
    lagging: SandboxServer, run_gate: Callable[..., Any], mode: str
) -> None:
    state, xcom, error = run_gate(f"gate_free_{mode}", fresh_after=WINDOW_END.isoformat(), timeout=60, **MODES[mode])

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


@pytest.fixture
def unproven(genviral_sandbox_factory: Callable[..., SandboxServer], genviral_connection: Any) -> SandboxServer:
    """The default sandbox, its target rows without last_refreshed_at or free_refresh_available."""
    server = genviral_sandbox_factory(omit_freshness_fields=True, refresh_seconds=1.5, credits=3)
    genviral_connection(server, max_retry_wait=2)
    return server


@pytest.mark.parametrize("mode", MODE_PARAMS)
def test_freshness_is_proven_from_the_gates_own_completed_refreshes(
    unproven: SandboxServer, run_gate: Callable[..., Any], mode: str
) -> None:
    # Without last_refreshed_at, only a refresh the gate saw complete proves anything: in reschedule mode, a
    # refresh started by one poke must be remembered, and followed to its end, by the next.
    targets = len(unproven.dataset.targets)
    dag_id = f"gate_own_refresh_{mode}"

    state, xcom, error = run_gate(
        dag_id, fresh_after=WINDOW_END.isoformat(), max_paid_refreshes=targets, timeout=60, **MODES[mode]
    )

    assert state.endswith("success"), error
    assert {entry["proof"] for entry in xcom["targets"].values()} == {"refresh completed by this task"}
    assert all(entry["watermark"] for entry in xcom["targets"].values())
    assert refresh_posts(unproven) == len(xcom["refreshes"]) == targets  # one each, not one per poke
    assert {refresh["status"] for refresh in xcom["refreshes"]} == {"completed"}
    assert target_listings(unproven) >= 2  # the refreshes ended after the round that started them
    assert xcom["credits_used"] == 0 and unproven.credits == 3  # absent free_refresh_available: counted, then free
    if mode == "reschedule":  # the only mode that saves it
        assert saved_gate_states(dag_id) == []  # forgotten once the gate passed


@pytest.mark.parametrize("mode", MODE_PARAMS)
def test_paid_refreshes_are_bounded_by_the_maximum_over_the_whole_wait(
    lagging: SandboxServer, run_gate: Callable[..., Any], mode: str
) -> None:
    lagging.refresh_ledger.set_free_refresh_used(True)
    tiktok = [target.id for target in lagging.dataset.targets if target.platform == "tiktok"]
    assert len(tiktok) >= 2

    state, _, error = run_gate(
        f"gate_paid_{mode}",
        fresh_after=WINDOW_END.isoformat(),
        target_ids=tiktok,
        max_paid_refreshes=1,
        timeout=8 if mode == "reschedule" else 3,
        **MODES[mode],
    )

    assert state.endswith("failed") and error is not None and "already started max_paid_refreshes=1" in error
    assert target_listings(lagging) >= 3  # several pokes, each of which could have spent again
    assert lagging.credits == 2 and refresh_posts(lagging) == 1


def test_without_a_task_state_store_reschedule_mode_refuses_paid_refreshes() -> None:
    # Airflow 3.2 gives tasks no state store (it cannot be run here): the gate could not count across pokes.
    gate = GenviralAnalyticsFreshnessSensor(
        task_id="gate", fresh_after=WINDOW_END.isoformat(), max_paid_refreshes=2, mode="reschedule"
    )

    with pytest.raises(
        GenviralInvalidParameterError, match=r"max_paid_refreshes=2 in mode='reschedule' needs Airflow 3\.3"
    ):
        gate._prepare({})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"fresh_after": "yesterday"}, "fresh_after 'yesterday' is not an ISO 8601 date or date-time"),
        ({"settle": dt.timedelta(minutes=-5)}, "settle datetime.timedelta(days=-1, seconds=86100) is not allowed"),
        ({"target_ids": ["a/b"]}, "target id 'a/b' is not a valid id"),
        ({"max_paid_refreshes": -1}, "max_paid_refreshes -1 is not allowed"),
    ],
    ids=["instant", "settle", "target-id", "paid"],
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


@TASK_STATE_STORE
def test_in_reschedule_mode_a_new_try_starts_afresh_as_in_the_other_modes(
    lagging: SandboxServer, genviral_connection: Any, run_gate: Callable[..., Any]
) -> None:
    # The saved state belongs to one try: a retry gets the budget anew (as a poke-mode retry does), and does not
    # take the first try's refreshes for its own.
    genviral_connection(lagging, max_retries=1, max_retry_wait=1)
    lagging.refresh_ledger.set_free_refresh_used(True)
    tiktok = [target.id for target in lagging.dataset.targets if target.platform == "tiktok"]
    stop = threading.Event()

    def end_the_first_try() -> None:  # once it has spent its one paid refresh: no answer to its next listing
        while not (refresh_posts(lagging) >= 1 and target_listings(lagging) >= 3):
            if stop.wait(0.02):
                return
        lagging.faults.update(script=["reset", "reset"], path_filter=TARGETS_PATH)

    thread = threading.Thread(target=end_the_first_try, daemon=True)
    thread.start()
    try:
        state, xcom, error = run_gate(
            "gate_new_try",
            fresh_after=WINDOW_END.isoformat(),
            target_ids=tiktok,
            max_paid_refreshes=1,
            mode="reschedule",
            retries=1,
            retry_delay=dt.timedelta(0),
            timeout=30,
        )
    finally:
        stop.set()
        thread.join()

    assert state.endswith("success"), error
    assert xcom["paid_refreshes"] == 1 and len(xcom["refreshes"]) == 1  # the second try's own, only
    assert lagging.credits == 1 and refresh_posts(lagging) == 2  # one paid refresh per try
