"""The refresh batch and the freshness gate as state machines: what they ask next, and what answers mean.

The HTTP behaviour (the sandbox's cache, the hook, the trigger) is tested in the hook, sensor and trigger tests;
here an in-memory API answers, so that every branch of the policy is pinned down without waiting.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.core.freshness.gate import (
    LIST_TARGETS,
    MAX_ATTEMPTS_PER_TARGET,
    NO_TARGETS,
    ApiCall,
    FreshnessGate,
    RefreshBatch,
)
from genviral_provider.core.freshness.refresh import RefreshPolicy, RefreshStatus, TargetSelection
from genviral_provider.exceptions import (
    GenviralAPIError,
    GenviralAuthError,
    GenviralRetryableError,
    GenviralTargetNotFoundError,
)

UTC = dt.timezone.utc
WINDOW_END = dt.datetime(2026, 1, 15, tzinfo=UTC)
NOW = dt.datetime(2026, 1, 15, 1, tzinfo=UTC)


class FakeApi:
    """Targets and refreshes in memory, answering the machines' calls as the documented API would."""

    def __init__(self, **targets: dict[str, Any]) -> None:
        self.targets = {
            tid: {"id": tid, "platform": "tiktok", "identifier": f"@{tid}", **t} for tid, t in targets.items()
        }
        self.refreshes: dict[str, dict[str, Any]] = {}
        self.calls: list[ApiCall] = []
        self.refuse: dict[str, GenviralAPIError] = {}

    def answer(self, call: ApiCall) -> Any:
        self.calls.append(call)
        if call.path in self.refuse:
            raise self.refuse.pop(call.path)
        if call == LIST_TARGETS:
            return {"targets": list(self.targets.values())}
        if call.method == "POST":
            assert call.target_id is not None
            free = self.targets[call.target_id].get("free_refresh_available") is True
            refresh: dict[str, Any] = {
                "id": f"r{len(self.refreshes) + 1}",
                "target_id": call.target_id,
                "status": "pending",
                "credits_used": 0 if free else 1,
                "started_at": NOW.isoformat(),
                "completed_at": None,
            }
            self.refreshes[refresh["id"]] = refresh
            return {"refresh": dict(refresh), "wasFree": free}
        assert call.refresh_id is not None
        return dict(self.refreshes[call.refresh_id])

    def complete(self, refresh_id: str, *, at: dt.datetime = NOW, failed: bool = False) -> None:
        refresh = self.refreshes[refresh_id]
        refresh.update(
            status="failed" if failed else "completed", completed_at=at.isoformat(), error="boom" if failed else None
        )
        if not failed and self.targets[refresh["target_id"]].get("last_refreshed_at") is not None:
            self.targets[refresh["target_id"]]["last_refreshed_at"] = at.isoformat()


def run_round(machine: FreshnessGate | RefreshBatch, api: FakeApi) -> None:
    for call in machine.round():
        try:
            outcome = api.answer(call)
        except GenviralAPIError as error:
            outcome = error
        machine.answer(call, outcome, redact=lambda text: text)


def gate(*, clock: Callable[[], dt.datetime] = lambda: NOW, paid: int = 0, **kwargs: Any) -> FreshnessGate:
    return FreshnessGate(
        selection=TargetSelection.parse(),
        policy=RefreshPolicy.parse(max_paid_refreshes=paid),
        fresh_after=WINDOW_END,
        clock=clock,
        **kwargs,
    )


def posts(api: FakeApi) -> list[str]:
    return [call.target_id or "" for call in api.calls if call.method == "POST"]


def test_a_fresh_target_passes_with_one_request() -> None:
    api = FakeApi(a={"last_refreshed_at": "2026-01-15T00:30:00Z", "free_refresh_available": True})
    machine = gate()
    run_round(machine, api)
    assert machine.done and api.calls == [LIST_TARGETS]
    assert machine.result()["targets"]["a"]["proof"] == "last_refreshed_at"


def test_a_stale_target_gets_its_free_refresh_and_passes_once_it_completes() -> None:
    api = FakeApi(a={"last_refreshed_at": "2026-01-14T12:00:00Z", "free_refresh_available": True})
    machine = gate()
    run_round(machine, api)
    assert not machine.done and posts(api) == ["a"]
    run_round(machine, api)  # still pending
    assert not machine.done and "last refreshed 2026-01-14T12:00:00+00:00" in machine.describe_stale()
    api.complete("r1", at=NOW)
    run_round(machine, api)
    assert machine.done and posts(api) == ["a"]
    result = machine.result()
    assert result["paid_refreshes"] == 0 and result["credits_used"] == 0
    assert result["refreshes"][0]["status"] == "completed" and result["refreshes"][0]["was_free"] is True


def test_a_completed_refresh_proves_freshness_when_targets_do_not_say() -> None:
    api = FakeApi(a={"free_refresh_available": True})  # no last_refreshed_at at all
    machine = gate()
    run_round(machine, api)
    api.complete("r1", at=NOW)
    run_round(machine, api)
    assert machine.done and machine.result()["targets"]["a"]["proof"] == "refresh completed by this task"


def test_without_any_proof_the_gate_never_passes() -> None:
    api = FakeApi(a={})  # neither last_refreshed_at nor free_refresh_available
    machine = gate()
    for _ in range(3):
        run_round(machine, api)
    assert not machine.done and posts(api) == []
    assert "unknown (the API gives no last_refreshed_at)" in machine.describe_stale()
    assert "may cost credits" in machine.describe_stale()


def test_no_targets_prove_nothing_and_the_gate_says_so() -> None:
    api = FakeApi()  # the key lists no analytics target at all
    machine = gate()
    for _ in range(2):
        run_round(machine, api)
    assert not machine.done and api.calls == [LIST_TARGETS, LIST_TARGETS]
    assert machine.describe_stale() == NO_TARGETS


@pytest.mark.parametrize(
    ("last_refreshed_at", "fresh"),
    [("2026-01-15T01:04:00Z", True), ("2026-01-15T01:06:00Z", False), ("2027-01-01T00:00:00z", False)],
)
def test_a_refresh_time_after_now_beyond_the_clock_skew_is_no_proof(last_refreshed_at: str, fresh: bool) -> None:
    api = FakeApi(a={"last_refreshed_at": last_refreshed_at})  # NOW is 01:00; 5 minutes of skew are allowed
    machine = gate()
    run_round(machine, api)
    assert machine.done is fresh
    if not fresh:
        assert machine.result()["targets"]["a"]["proof"] is None
        assert "lies after now" in machine.describe_stale() and "proves nothing" in machine.describe_stale()


def test_nothing_is_refreshed_before_the_window_ends() -> None:
    api = FakeApi(a={"last_refreshed_at": "2026-01-14T12:00:00Z", "free_refresh_available": True})
    machine = gate(clock=lambda: WINDOW_END - dt.timedelta(minutes=1))
    run_round(machine, api)
    assert posts(api) == [] and "waiting until 2026-01-15T00:00:00+00:00" in machine.describe_stale()


def test_no_credit_is_spent_unless_allowed() -> None:
    api = FakeApi(a={"last_refreshed_at": "2026-01-14T12:00:00Z", "free_refresh_available": False})
    machine = gate()
    run_round(machine, api)
    assert posts(api) == [] and "set max_paid_refreshes" in machine.describe_stale()


def test_the_platforms_own_refresh_completes_the_gate_without_buying_one() -> None:
    api = FakeApi(a={"last_refreshed_at": "2026-01-14T12:00:00Z", "free_refresh_available": False})
    machine = gate()
    run_round(machine, api)
    api.targets["a"]["last_refreshed_at"] = "2026-01-15T00:45:00Z"  # a scheduled refresh
    run_round(machine, api)
    assert machine.done and posts(api) == [] and machine.result()["credits_used"] == 0


def test_paid_refreshes_stop_at_the_maximum_across_targets() -> None:
    stale = {"last_refreshed_at": "2026-01-14T12:00:00Z", "free_refresh_available": False}
    api = FakeApi(a=stale, b=dict(stale))
    machine = gate(paid=1)
    run_round(machine, api)
    assert posts(api) == ["a"] and machine.paid_started == 1
    assert "already started max_paid_refreshes=1" in machine.describe_stale()


def test_a_post_with_an_unknown_outcome_counts_against_the_paid_budget() -> None:
    api = FakeApi(a={"last_refreshed_at": "2026-01-14T12:00:00Z", "free_refresh_available": False})
    path = "/analytics/targets/a/refresh"
    api.refuse[path] = GenviralRetryableError(
        status=504, error_code=None, message="gateway timeout", request=f"POST {path}"
    )
    machine = gate(paid=1)
    run_round(machine, api)
    assert "may or may not have started" in machine.notes["a"] and machine.paid_started == 1
    run_round(machine, api)
    assert posts(api) == ["a"] and "already started max_paid_refreshes=1" in machine.notes["a"]


def test_a_running_refresh_means_wait_not_fail() -> None:
    api = FakeApi(a={"last_refreshed_at": "2026-01-14T12:00:00Z", "free_refresh_available": True})
    path = "/analytics/targets/a/refresh"
    api.refuse[path] = GenviralAPIError(status=409, error_code="analytics_conflict", message="running", request=path)
    machine = gate()
    run_round(machine, api)
    assert not machine.done and "not started by this task is running" in machine.describe_stale()
    api.targets["a"].update(last_refreshed_at="2026-01-15T00:50:00Z", free_refresh_available=False)
    run_round(machine, api)
    assert machine.done


def test_no_credits_are_not_asked_for_again() -> None:
    api = FakeApi(a={"last_refreshed_at": "2026-01-14T12:00:00Z", "free_refresh_available": False})
    path = "/analytics/targets/a/refresh"
    api.refuse[path] = GenviralAPIError(
        status=402, error_code="insufficient_credits", message="no credits", request=path
    )
    machine = gate(paid=5)
    for _ in range(3):
        run_round(machine, api)
    assert posts(api) == ["a"] and "insufficient_credits" in machine.describe_stale()


def test_a_failed_refresh_is_tried_again_a_bounded_number_of_times() -> None:
    api = FakeApi(a={"last_refreshed_at": "2026-01-14T12:00:00Z", "free_refresh_available": True})
    machine = gate()
    for _ in range(MAX_ATTEMPTS_PER_TARGET + 2):
        run_round(machine, api)
        for refresh_id, refresh in api.refreshes.items():
            if refresh["status"] == "pending":
                api.complete(refresh_id, failed=True)
    assert len(posts(api)) == MAX_ATTEMPTS_PER_TARGET and not machine.done


def test_an_unknown_target_is_an_error_before_any_refresh() -> None:
    api = FakeApi(a={"last_refreshed_at": "2026-01-14T12:00:00Z", "free_refresh_available": True})
    machine = FreshnessGate(
        selection=TargetSelection.parse(target_ids=["zz"]),
        policy=RefreshPolicy(),
        fresh_after=WINDOW_END,
        clock=lambda: NOW,
    )
    with pytest.raises(Exception, match="'zz' are not visible"):
        run_round(machine, api)
    assert posts(api) == []


@pytest.mark.parametrize(("status", "code"), [(404, "target_not_found"), (400, "missing_target_id")])
def test_a_target_whose_refresh_is_refused_is_skipped_and_named_and_the_others_are_refreshed(
    status: int, code: str
) -> None:
    stale = {"last_refreshed_at": "2026-01-14T12:00:00Z", "free_refresh_available": True}
    api = FakeApi(a=stale, b=stale, c=stale)
    path = "/analytics/targets/b/refresh"
    api.refuse[path] = GenviralAPIError(status=status, error_code=code, message="gone", request=path)
    machine = gate()
    run_round(machine, api)
    assert posts(api) == ["a", "b", "c"]
    assert set(machine.refreshes) == {"a", "c"}
    assert re.search(rf"@b \(b\) .*skipped: the API refused its refresh .*HTTP {status}", machine.describe_stale())
    assert list(machine.result()["skipped_targets"]) == ["b"]
    later = gate(state=machine.state())  # across a deferral too
    run_round(later, api)
    assert posts(api) == ["a", "b", "c"]  # b is not asked again
    assert "@b" in later.describe_stale() and "skipped" in later.describe_stale()


def test_a_listed_target_whose_id_no_path_can_carry_is_skipped_and_the_others_are_refreshed() -> None:
    stale = {"last_refreshed_at": "2026-01-14T12:00:00Z", "free_refresh_available": True}
    api = FakeApi(a=stale, **{"b/../x": stale})
    machine = gate()
    run_round(machine, api)
    assert posts(api) == ["a"]
    assert "'b/../x' is not a valid id" in machine.result()["skipped_targets"]["b/../x"]


def test_a_refresh_batch_ends_without_the_skipped_target_and_names_it() -> None:
    stale = {"last_refreshed_at": "2026-01-14T12:00:00Z", "free_refresh_available": True}
    api = FakeApi(a=stale, b=stale)
    api.refuse["/analytics/targets/a/refresh"] = GenviralTargetNotFoundError(
        status=404, error_code="target_not_found", message="gone", request="POST", target_id="a"
    )
    machine = RefreshBatch(selection=TargetSelection.parse(), policy=RefreshPolicy.parse(), clock=lambda: NOW)
    run_round(machine, api)
    api.complete("r1")
    run_round(machine, api)
    assert machine.done and posts(api) == ["a", "b"]
    result = machine.result()
    assert result["targets"]["a"]["status"] == "not_refreshed"
    assert re.match(r"skipped: the API refused its refresh .*HTTP 404", result["targets"]["a"]["note"])
    assert result["targets"]["b"]["status"] == "completed"
    assert list(result["skipped_targets"]) == ["a"]


def test_a_refused_key_fails_at_once_and_a_transient_listing_failure_waits() -> None:
    api = FakeApi(a={})
    api.refuse["/analytics/targets"] = GenviralRetryableError(
        status=503, error_code=None, message="down", request="GET"
    )
    machine = gate()
    run_round(machine, api)
    assert not machine.done and "the targets could not be read" in machine.describe_stale()
    api.refuse["/analytics/targets"] = GenviralAuthError(
        status=401, error_code="invalid_token", message="no", request="GET"
    )
    with pytest.raises(GenviralAuthError):
        run_round(machine, api)


def test_the_state_carries_a_started_refresh_across_a_deferral() -> None:
    api = FakeApi(a={"free_refresh_available": False})
    first = gate(paid=1)
    run_round(first, api)
    resumed = gate(paid=1, state=first.state())
    api.complete("r1", at=NOW)
    run_round(resumed, api)
    assert resumed.done and posts(api) == ["a"] and resumed.paid_started == 1


def test_a_refresh_charged_although_announced_free_is_counted_and_said() -> None:
    api = FakeApi(a={"last_refreshed_at": "2026-01-14T12:00:00Z", "free_refresh_available": True})
    original = api.answer

    def charging(call: ApiCall) -> Any:
        data = original(call)
        if call.method == "POST":
            data["refresh"]["credits_used"], data["wasFree"] = 3, False
        return data

    api.answer = charging  # type: ignore[method-assign]
    machine = gate()
    run_round(machine, api)
    assert machine.paid_started == 1 and "although the API said a free refresh was available" in machine.notes["a"]


def test_a_batch_refreshes_each_target_once_and_waits_for_the_end() -> None:
    api = FakeApi(a={"free_refresh_available": True}, b={"free_refresh_available": False})
    batch = RefreshBatch(selection=TargetSelection.parse(), policy=RefreshPolicy.parse(), wait=True)
    run_round(batch, api)
    assert posts(api) == ["a"] and not batch.done
    api.complete("r1")
    run_round(batch, api)
    assert batch.done and [c for c in api.calls if c == LIST_TARGETS] == [LIST_TARGETS]
    result = batch.result()
    assert result["targets"]["a"]["status"] == RefreshStatus.COMPLETED.value and result["targets"]["a"]["was_free"]
    assert (
        result["targets"]["b"]["status"] == "not_refreshed"
        and "set max_paid_refreshes" in result["targets"]["b"]["note"]
    )


def test_a_batch_without_wait_is_done_once_started_and_reports_failures() -> None:
    api = FakeApi(a={"free_refresh_available": True})
    batch = RefreshBatch(selection=TargetSelection.parse(), policy=RefreshPolicy.parse(), wait=False)
    run_round(batch, api)
    assert batch.done
    waiting = RefreshBatch(selection=TargetSelection.parse(), policy=RefreshPolicy.parse(), wait=True)
    api = FakeApi(a={"free_refresh_available": True})
    run_round(waiting, api)
    api.complete("r1", failed=True)
    run_round(waiting, api)
    assert set(waiting.failed()) == {"a"} and waiting.failed()["a"].error == "boom"


def test_an_answer_is_redacted_before_it_is_read_and_an_error_no_round_can_mend_is_raised() -> None:
    api = FakeApi(a={"last_refreshed_at": "2026-01-15T00:30:00Z"})
    api.targets["a"]["identifier"] = "@a-gva_live_SECRET"
    machine = gate()
    call = next(machine.round())
    machine.answer(call, api.answer(call), redact=lambda text: text.replace("gva_live_SECRET", "***"))
    assert [target.identifier for target in machine.targets] == ["@a-***"] and machine.done

    refused = GenviralAuthError(status=401, error_code="invalid_token", message="API key not found", request="GET")
    with pytest.raises(GenviralAuthError):
        machine.answer(next(machine.round()), refused, redact=lambda text: text)
