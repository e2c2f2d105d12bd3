"""The refresh contract: records, ids, target selection, the credit policy and typed errors."""

from __future__ import annotations

import datetime as dt
import pickle

import pytest

from genviral_provider.core.freshness.refresh import (
    AnalyticsTarget,
    Refresh,
    RefreshKind,
    RefreshPolicy,
    RefreshStatus,
    TargetSelection,
    check_id,
    freshness_summary,
    parse_targets,
    refresh_error,
    refresh_path,
    refresh_target_path,
)
from genviral_provider.exceptions import (
    GenviralAPIError,
    GenviralAuthError,
    GenviralInsufficientCreditsError,
    GenviralInvalidParameterError,
    GenviralRefreshConflictError,
    GenviralRefreshRateLimitedError,
    GenviralRetryableError,
    GenviralTargetNotFoundError,
)

UTC = dt.timezone.utc
T1 = "e7a7f417-3c1d-4f5e-9a2b-0c8d7e6f5a4b"


def target(target_id: str = T1, **fields: object) -> AnalyticsTarget:
    return AnalyticsTarget.from_api(
        {"id": target_id, "platform": "tiktok", "identifier": "@brand", **fields}, request="t"
    )


def test_a_target_keeps_every_field_and_reads_its_freshness() -> None:
    row = {
        "id": T1,
        "target_id": T1,
        "platform": "tiktok",
        "identifier": "@brand",
        "display_name": "Brand HQ",
        "free_refresh_available": True,
        "last_refreshed_at": "2026-01-14T12:00:00.000Z",
        "normalized_identifier": "brand",
    }
    [parsed] = parse_targets({"workspace_id": None, "targets": [row]}, request="GET /analytics/targets")
    assert parsed.last_refreshed_at == dt.datetime(2026, 1, 14, 12, tzinfo=UTC)
    assert parsed.free_refresh_available is True
    assert parsed.raw == row
    assert parsed.describe() == f"tiktok @brand ({T1})"


def test_a_target_without_freshness_fields_says_nothing_rather_than_guessing() -> None:
    parsed = target(last_refreshed_at="2026-01-14T12:00:00", free_refresh_available="yes")
    assert parsed.last_refreshed_at is None  # a naive time proves nothing
    assert parsed.free_refresh_available is None


def test_a_target_row_without_id_is_a_broken_response() -> None:
    with pytest.raises(GenviralRetryableError, match="no id"):
        parse_targets({"targets": [{"platform": "tiktok"}]}, request="GET /analytics/targets")
    with pytest.raises(GenviralRetryableError, match="no targets list"):
        parse_targets({"targets": "none"}, request="GET /analytics/targets")


def test_the_legacy_target_id_alias_is_read() -> None:
    assert AnalyticsTarget.from_api({"target_id": T1}, request="t").id == T1


@pytest.mark.parametrize("bad", ["", " x", "a/b", "../x", "a?b", "é", "x" * 129, None, 7])
def test_ids_that_a_url_path_cannot_carry_are_refused_naming_them(bad: object) -> None:
    with pytest.raises(GenviralInvalidParameterError, match="is not a valid id") as caught:
        check_id("target id", bad)
    assert repr(bad) in str(caught.value)


def test_paths_of_the_refresh_endpoints() -> None:
    assert refresh_target_path(T1) == f"/analytics/targets/{T1}/refresh"
    assert refresh_path("r_1") == "/analytics/refreshes/r_1"


def test_a_refresh_reads_its_lifecycle_and_cost() -> None:
    data = {
        "id": "r1",
        "target_id": T1,
        "status": "pending",
        "free_refresh_used": True,
        "credits_used": 0,
        "started_at": "2026-01-15T00:10:00.000Z",
        "completed_at": None,
        "error": None,
    }
    started = Refresh.from_api(data, request="POST x", was_free=True)
    assert started.status is RefreshStatus.PENDING and not started.status.is_terminal()
    assert not started.paid
    done = started.updated(
        Refresh.from_api({**data, "status": "completed", "completed_at": "2026-01-15T00:11:00Z"}, request="GET")
    )
    assert done.status.is_terminal() and done.was_free is True
    assert done.as_dict()["completed_at"] == "2026-01-15T00:11:00+00:00"
    assert Refresh.from_api({**data, "credits_used": 2}, request="x", was_free=False).paid


def test_a_refresh_with_an_unknown_status_is_a_broken_response() -> None:
    with pytest.raises(GenviralRetryableError, match="unknown status 'queued'"):
        Refresh.from_api({"id": "r1", "status": "queued"}, request="GET x")


def test_a_selection_refuses_ids_the_key_cannot_see_naming_them() -> None:
    selection = TargetSelection.parse(target_ids=["nope"])
    with pytest.raises(GenviralInvalidParameterError, match="'nope' are not visible to this key: it sees " + T1):
        selection.select([target()])


def test_a_selection_by_platform_and_by_default_everything() -> None:
    targets = [target("a", platform="tiktok"), target("b", platform="youtube")]
    assert [t.id for t in TargetSelection.parse(platforms="youtube").select(targets)] == ["b"]
    assert [t.id for t in TargetSelection.parse().select(targets)] == ["a", "b"]
    with pytest.raises(GenviralInvalidParameterError, match="'facebook'"):
        TargetSelection.parse(platforms=["facebook"])


def test_the_policy_spends_free_refreshes_only_by_default() -> None:
    policy = RefreshPolicy.parse()
    assert policy.decide(target(free_refresh_available=True), 0)[0] is RefreshKind.FREE
    kind, reason = policy.decide(target(free_refresh_available=False), 0)
    assert kind is None and "set max_paid_refreshes" in reason


def test_an_unknown_free_refresh_counts_as_paid() -> None:
    kind, reason = RefreshPolicy.parse().decide(target(), 0)
    assert kind is None and "may cost credits" in reason
    assert RefreshPolicy.parse(max_paid_refreshes=1).decide(target(), 0)[0] is RefreshKind.PAID


def test_paid_refreshes_stop_at_the_maximum() -> None:
    policy = RefreshPolicy.parse(max_paid_refreshes="2")
    assert policy.decide(target(free_refresh_available=False), 1)[0] is RefreshKind.PAID
    kind, reason = policy.decide(target(free_refresh_available=False), 2)
    assert kind is None and "already started max_paid_refreshes=2" in reason


@pytest.mark.parametrize("bad", [-1, 1.5, True, "many", 1001])
def test_a_bad_paid_maximum_is_refused_naming_it(bad: object) -> None:
    with pytest.raises(GenviralInvalidParameterError, match=f"max_paid_refreshes {bad!r}"):
        RefreshPolicy.parse(max_paid_refreshes=bad)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (402, "insufficient_credits", GenviralInsufficientCreditsError),
        (404, "target_not_found", GenviralTargetNotFoundError),
        (409, "analytics_conflict", GenviralRefreshConflictError),
        (429, "rate_limited", GenviralRefreshRateLimitedError),
    ],
)
def test_refresh_errors_are_typed_and_name_the_target(status: int, code: str, expected: type) -> None:
    error_class = GenviralRetryableError if status == 429 else GenviralAPIError
    raw = error_class(
        status=status, error_code=code, message="refused", request=f"POST /analytics/targets/{T1}/refresh"
    )
    typed = refresh_error(raw, target_id=T1)
    assert type(typed) is expected
    assert f"analytics target {T1}" in str(typed) and f"HTTP {status} {code}: " in str(typed)
    assert str(pickle.loads(pickle.dumps(typed))) == str(typed)


def test_a_402_for_the_plan_stays_an_auth_error() -> None:
    raw = GenviralAuthError(status=402, error_code="subscription_required", message="plan", request="POST x")
    assert refresh_error(raw, target_id=T1) is raw


def test_the_freshness_summary_names_stale_and_unknown_targets() -> None:
    until = dt.datetime(2026, 1, 15, tzinfo=UTC)
    targets = [
        target("fresh", last_refreshed_at="2026-01-15T01:00:00Z"),
        target("stale", last_refreshed_at="2026-01-14T12:00:00Z"),
        target("unknown"),
    ]
    summary = freshness_summary(targets, until=until)
    assert summary["stale_targets"] == ["stale", "unknown"]
    assert summary["covered"] is False and summary["watermark"] is None
    complete = freshness_summary(targets[:2], until=dt.datetime(2026, 1, 14, tzinfo=UTC))
    assert complete["covered"] is True and complete["watermark"] == "2026-01-14T12:00:00+00:00"
