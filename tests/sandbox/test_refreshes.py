"""Specification of the sandbox's analytics cache: target freshness, refreshes, credits, and their admin controls."""

# Test arguments shadow the fixtures imported below, on purpose: that is how pytest injects them.

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.sandbox import (
    REFRESHES_PATH,
    TARGETS_PATH,
    CacheSettings,
    Dataset,
    RefreshError,
    RefreshLedger,
    SandboxServer,
)
from genviral_provider.sandbox.__main__ import build_server, parse_args
from genviral_provider.sandbox.pytest_plugin import DEFAULT_NOW, SandboxFactory
from tests.sandbox.test_server import Reply, call, posts

UTC = dt.timezone.utc
#: Half of the default dataset's last day (2026-01-14) is not in the cache of a target refreshed at its noon.
NOON_OF_LAST_DAY = dt.datetime(2026, 1, 14, 12, tzinfo=UTC)
CLOCK = "2026-01-15T12:00:00.000Z"  # DEFAULT_NOW, the factory's sandbox clock, as the API formats it
BASE_ROW_KEYS = {"id", "target_id", "platform", "identifier", "display_name", "normalized_identifier"}
#: Upper bound on waiting for a refresh of at most a second to end: generous, so a loaded machine passes too.
WAIT_BOUND_SECONDS = 30.0


def refresh(server: SandboxServer, target_id: str) -> Reply:
    """POST a refresh of one target."""
    return call(server, f"{TARGETS_PATH}/{target_id}/refresh", method="POST")


def refresh_status(server: SandboxServer, refresh_id: str) -> dict[str, Any]:
    """Return a refresh object read through the API."""
    reply = call(server, f"{REFRESHES_PATH}/{refresh_id}")
    assert reply.status == 200, reply.body
    data: dict[str, Any] = reply.body["data"]
    return data


def observe_until_ended(server: SandboxServer, refresh_id: str) -> list[str]:
    """Poll a refresh until it ends (bounded); return the distinct statuses in the order observed."""
    observed: list[str] = []
    deadline = time.monotonic() + WAIT_BOUND_SECONDS
    while time.monotonic() < deadline:
        status = refresh_status(server, refresh_id)["status"]
        if not observed or observed[-1] != status:
            observed.append(status)
        if status in ("completed", "failed"):
            return observed
        time.sleep(0.01)
    raise AssertionError(f"refresh {refresh_id} still {observed[-1]} after {WAIT_BOUND_SECONDS} s")


def targets(server: SandboxServer) -> list[dict[str, Any]]:
    """Return the target rows the API lists."""
    reply = call(server, TARGETS_PATH)
    assert reply.status == 200, reply.body
    rows: list[dict[str, Any]] = reply.body["data"]["targets"]
    return rows


def target_row(server: SandboxServer, target_id: str) -> dict[str, Any]:
    """Return one target's row as the list shows it."""
    return next(row for row in targets(server) if row["id"] == target_id)


def admin(server: SandboxServer, path: str, payload: Any = None) -> Reply:
    """Call an admin path: POST with a payload, GET without."""
    return call(server, f"/_sandbox/{path}", method="GET" if payload is None else "POST", key=None, payload=payload)


def day_rows(server: SandboxServer, day: str) -> tuple[list[dict[str, Any]], int]:
    """Return every row of one day, paged, and the totalCount the first page announced."""
    first = posts(server, start=day, end=day, limit=100)
    rows = list(first["posts"])
    for offset in range(100, first["totalCount"], 100):
        rows += posts(server, start=day, end=day, limit=100, offset=offset)["posts"]
    return rows, first["totalCount"]


@pytest.fixture
def lagging(genviral_sandbox_factory: SandboxFactory) -> SandboxServer:
    """The default sandbox with every target last refreshed at noon of its last day, refreshes done at once."""
    return genviral_sandbox_factory(targets_refreshed_at=NOON_OF_LAST_DAY, refresh_seconds=0)


# ------------------------------------------------------------------------------------------- targets


def test_targets_are_live_by_default_fresh_as_of_the_clock_with_a_free_refresh(
    genviral_sandbox: SandboxServer,
) -> None:
    for row in targets(genviral_sandbox):
        assert (row["last_refreshed_at"], row["free_refresh_available"]) == (CLOCK, True)
        assert row["target_id"] == row["id"]
        assert row["normalized_identifier"] == row["identifier"].lstrip("@").lower()


def test_a_lagging_target_reports_its_last_refresh_in_the_api_format(lagging: SandboxServer) -> None:
    assert {row["last_refreshed_at"] for row in targets(lagging)} == {"2026-01-14T12:00:00.000Z"}


def test_one_target_reads_as_its_row_and_a_summary(lagging: SandboxServer) -> None:
    target = lagging.dataset.targets[2]
    reply = call(lagging, f"{TARGETS_PATH}/{target.id}")
    assert reply.status == 200
    visible = posts(lagging, range="all", accounts=target.id)["totalCount"]
    assert reply.body["data"] == {
        "target": target_row(lagging, target.id),
        "summary": {"refresh_status": None, "last_refresh": None, "totals": {"posts": visible}},
    }


def test_the_summary_names_the_target_s_latest_refresh(lagging: SandboxServer) -> None:
    target_id = lagging.dataset.targets[2].id
    started = refresh(lagging, target_id).body["data"]["refresh"]
    observe_until_ended(lagging, started["id"])
    summary = call(lagging, f"{TARGETS_PATH}/{target_id}").body["data"]["summary"]
    assert summary["refresh_status"] == "completed"
    assert summary["last_refresh"] == refresh_status(lagging, started["id"])


def test_omit_freshness_fields_leaves_both_out_of_the_list_and_the_single_target(
    genviral_sandbox_factory: SandboxFactory,
) -> None:
    server = genviral_sandbox_factory(omit_freshness_fields=True)
    assert all(set(row) == BASE_ROW_KEYS for row in targets(server))
    single = call(server, f"{TARGETS_PATH}/{server.dataset.targets[0].id}").body["data"]["target"]
    assert set(single) == BASE_ROW_KEYS


# ------------------------------------------------------------------------------------------- visibility


def test_a_lagging_target_s_rows_published_after_its_last_refresh_are_hidden(lagging: SandboxServer) -> None:
    rows, total = day_rows(lagging, "2026-01-14")
    every_row = [row for row in lagging.dataset.rows if row["publishedAt"].startswith("2026-01-14")]
    assert total == len(rows) == len({row["id"] for row in rows})
    assert {row["id"] for row in rows} == {r["id"] for r in every_row if r["publishedAt"] <= "2026-01-14T12:00:00.000Z"}
    assert 0 < total < len(every_row) == 40


def test_rows_appear_once_a_refresh_completes_after_their_publication(lagging: SandboxServer) -> None:
    for target in lagging.dataset.targets:
        observe_until_ended(lagging, refresh(lagging, target.id).body["data"]["refresh"]["id"])
    rows, total = day_rows(lagging, "2026-01-14")
    assert total == len(rows) == 40


def test_only_the_lagging_target_s_rows_are_hidden(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory()
    lagging_id = server.dataset.targets[0].id
    server.set_targets_refreshed_at(dt.datetime(2026, 1, 1, tzinfo=UTC), [lagging_id])
    rows, total = day_rows(server, "2026-01-14")
    expected = [r for r in server.dataset.rows if r["publishedAt"].startswith("2026-01-14")]
    expected = [r for r in expected if server.dataset.target_of(r["id"]) != server.dataset.targets[0]]
    assert {row["id"] for row in rows} == {row["id"] for row in expected}
    assert total == len(expected) < 40


def test_rows_of_no_known_target_stay_visible(lagging: SandboxServer) -> None:
    (row,) = lagging.insert_posts([{"platform": "facebook", "publishedAt": "2026-01-14T20:00:00.000Z"}])
    assert row["id"] in {r["id"] for r in day_rows(lagging, "2026-01-14")[0]}


def test_a_target_set_live_again_shows_every_row(lagging: SandboxServer) -> None:
    lagging.set_targets_refreshed_at(None)
    assert day_rows(lagging, "2026-01-14")[1] == 40
    assert {row["last_refreshed_at"] for row in targets(lagging)} == {CLOCK}


def test_a_refresh_never_makes_a_live_target_lag(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(refresh_seconds=0)
    target = server.dataset.targets[0]
    observe_until_ended(server, refresh(server, target.id).body["data"]["refresh"]["id"])
    server.now = DEFAULT_NOW + dt.timedelta(hours=1)
    (row,) = server.insert_posts([{"targetId": target.id}])  # published at the clock, after the refresh
    assert row["id"] in {r["id"] for r in posts(server, range="all", accounts=target.id, limit=100)["posts"]}
    assert target_row(server, target.id)["last_refreshed_at"] == "2026-01-15T13:00:00.000Z"


# ------------------------------------------------------------------------------------------- lifecycle


def test_a_refresh_goes_pending_then_processing_then_completed(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(targets_refreshed_at=NOON_OF_LAST_DAY, refresh_seconds=0.3)
    target_id = server.dataset.targets[0].id
    reply = refresh(server, target_id)
    assert (reply.status, reply.body["message"]) == (200, "Analytics refresh queued")
    started = reply.body["data"]["refresh"]
    assert (started["status"], started["completed_at"], started["error"]) == ("pending", None, None)
    assert (started["target_id"], started["workspace_id"], started["started_at"]) == (target_id, "ws_sandbox", CLOCK)
    observed = ["pending", *observe_until_ended(server, started["id"])]
    order = ["pending", "processing", "completed"]
    assert observed[-1] == "completed"
    assert all(order.index(a) <= order.index(b) for a, b in itertools.pairwise(observed))


def test_a_completed_refresh_moves_the_target_up_to_its_completion(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(targets_refreshed_at=NOON_OF_LAST_DAY, refresh_seconds=0.25)
    target_id = server.dataset.targets[0].id
    refresh_id = refresh(server, target_id).body["data"]["refresh"]["id"]
    observe_until_ended(server, refresh_id)
    assert refresh_status(server, refresh_id)["completed_at"] == "2026-01-15T12:00:00.250Z"
    assert target_row(server, target_id)["last_refreshed_at"] == "2026-01-15T12:00:00.250Z"


def test_the_lifecycle_turns_at_a_third_of_the_refresh_time_and_at_its_end() -> None:
    elapsed = [0.0]
    ledger = RefreshLedger(
        Dataset.empty().targets,
        clock=lambda: DEFAULT_NOW,
        settings=CacheSettings(refresh_seconds=3.0),
        monotonic=lambda: elapsed[0],
    )
    target_id = Dataset.empty().targets[0].id
    refresh_id = ledger.start_refresh(target_id)[0]["id"]
    statuses = []
    for elapsed[0] in (0.0, 0.99, 1.0, 2.99, 3.0):
        statuses.append(ledger.refresh(refresh_id)["status"])
    assert statuses == ["pending", "pending", "processing", "processing", "completed"]


def test_a_failing_target_s_refresh_fails_naming_it_and_leaves_its_freshness(
    genviral_sandbox_factory: SandboxFactory,
) -> None:
    target = Dataset.empty(seed=0).targets[0]  # the default dataset's targets come from seed 0 too
    server = genviral_sandbox_factory(
        targets_refreshed_at=NOON_OF_LAST_DAY, refresh_seconds=0, failing_targets=[target.id]
    )
    refresh_id = refresh(server, target.id).body["data"]["refresh"]["id"]
    assert observe_until_ended(server, refresh_id)[-1] == "failed"
    assert refresh_status(server, refresh_id)["error"] == f"Platform fetch failed for {target.identifier}"
    assert target_row(server, target.id)["last_refreshed_at"] == "2026-01-14T12:00:00.000Z"


# ------------------------------------------------------------------------------------------- money


def test_the_first_refresh_of_a_day_is_free_and_the_next_needs_credits(lagging: SandboxServer) -> None:
    target_id = lagging.dataset.targets[0].id
    first = refresh(lagging, target_id).body["data"]
    assert (first["wasFree"], first["refresh"]["free_refresh_used"], first["refresh"]["credits_used"]) == (
        True,
        True,
        0,
    )
    assert target_row(lagging, target_id)["free_refresh_available"] is False
    second = refresh(lagging, target_id)
    assert (second.status, second.body["error_code"]) == (402, "insufficient_credits")
    assert target_id in second.body["message"]


def test_a_paid_refresh_spends_credits_and_says_so(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(refresh_seconds=0, credits=5, refresh_cost=2)
    target_id = server.dataset.targets[0].id
    admin(server, "targets", {"free_refresh_used_today": True, "target_ids": [target_id]})
    data = refresh(server, target_id).body["data"]
    assert (data["wasFree"], data["refresh"]["free_refresh_used"], data["refresh"]["credits_used"]) == (False, False, 2)
    assert server.credits == 3
    assert admin(server, "refreshes").body["data"]["credits"] == 3


def test_the_free_refresh_comes_back_on_the_next_day(lagging: SandboxServer) -> None:
    target_id = lagging.dataset.targets[0].id
    observe_until_ended(lagging, refresh(lagging, target_id).body["data"]["refresh"]["id"])
    lagging.now = DEFAULT_NOW + dt.timedelta(days=1)
    assert target_row(lagging, target_id)["free_refresh_available"] is True
    assert refresh(lagging, target_id).body["data"]["wasFree"] is True


def test_a_second_refresh_while_one_runs_answers_409(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(refresh_seconds=600, credits=5)
    target_id = server.dataset.targets[0].id
    assert refresh(server, target_id).status == 200
    conflict = refresh(server, target_id)
    assert (conflict.status, conflict.body["error_code"]) == (409, "analytics_conflict")
    assert conflict.body["message"] == "A refresh is already running for this target"
    assert server.credits == 5


def test_refreshes_past_the_per_minute_limit_answer_429(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(refresh_seconds=0, credits=10, max_refreshes_per_minute=2)
    target_id, other_id = server.dataset.targets[0].id, server.dataset.targets[1].id
    for _ in range(2):
        observe_until_ended(server, refresh(server, target_id).body["data"]["refresh"]["id"])
    limited = refresh(server, target_id)
    assert (limited.status, limited.body["error_code"]) == (429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert refresh(server, other_id).status == 200  # the limit is per target


def test_the_rate_limit_is_checked_before_the_conflict(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(refresh_seconds=600, max_refreshes_per_minute=1)
    target_id = server.dataset.targets[0].id
    assert refresh(server, target_id).status == 200
    assert refresh(server, target_id).status == 429


# ------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("method", "path", "error_code"),
    [
        ("GET", f"{TARGETS_PATH}/no-such-target", "target_not_found"),
        ("POST", f"{TARGETS_PATH}/no-such-target/refresh", "target_not_found"),
        ("GET", f"{REFRESHES_PATH}/no-such-refresh", "refresh_not_found"),
    ],
)
def test_unknown_ids_answer_404_naming_them(
    genviral_sandbox: SandboxServer, method: str, path: str, error_code: str
) -> None:
    reply = call(genviral_sandbox, path, method=method)
    assert (reply.status, reply.body["error_code"]) == (404, error_code)
    assert path.rsplit("/no-such-", 1)[1].split("/")[0] in reply.body["message"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("GET", "/refresh", "POST"), ("POST", "", "GET"), ("DELETE", "", "GET")],
)
def test_other_methods_on_target_paths_answer_405(
    genviral_sandbox: SandboxServer, method: str, path: str, allowed: str
) -> None:
    reply = call(genviral_sandbox, f"{TARGETS_PATH}/{genviral_sandbox.dataset.targets[0].id}{path}", method=method)
    assert (reply.status, reply.headers["Allow"]) == (405, allowed)


def test_refreshing_needs_the_key(genviral_sandbox: SandboxServer) -> None:
    path = f"{TARGETS_PATH}/{genviral_sandbox.dataset.targets[0].id}/refresh"
    assert call(genviral_sandbox, path, method="POST", key=None).status == 401
    assert genviral_sandbox.refreshes() == []


# ------------------------------------------------------------------------------------------- schedule


def test_scheduled_refreshes_advance_freshness_without_credits_or_the_free_refresh(
    genviral_sandbox_factory: SandboxFactory,
) -> None:
    server = genviral_sandbox_factory(targets_refreshed_at=NOON_OF_LAST_DAY, scheduled_refresh_seconds=0.05, credits=3)
    deadline = time.monotonic() + WAIT_BOUND_SECONDS
    while any(row["last_refreshed_at"] != CLOCK for row in targets(server)) and time.monotonic() < deadline:
        time.sleep(0.01)
    rows = targets(server)
    assert {row["last_refreshed_at"] for row in rows} == {CLOCK}
    assert all(row["free_refresh_available"] for row in rows) and server.credits == 3
    scheduled = server.refreshes()
    assert {record["target_id"] for record in scheduled} == {target.id for target in server.dataset.targets}
    assert {(r["scheduled"], r["wasFree"], r["free_refresh_used"], r["credits_used"]) for r in scheduled} == {
        (True, True, False, 0)
    }
    assert call(server, f"{REFRESHES_PATH}/{scheduled[0]['id']}").status == 404


def test_without_a_schedule_a_lagging_target_stays_lagging(lagging: SandboxServer) -> None:
    assert day_rows(lagging, "2026-01-14")[1] == day_rows(lagging, "2026-01-14")[1] < 40
    assert lagging.refreshes() == []


# ------------------------------------------------------------------------------------------- admin


def test_the_admin_settings_read_and_change_the_cache(genviral_sandbox: SandboxServer) -> None:
    target_id = genviral_sandbox.dataset.targets[0].id
    changes = {
        "credits": 7,
        "refresh_cost": 3,
        "refresh_seconds": 0.5,
        "max_refreshes_per_minute": 2,
        "scheduled_refresh_seconds": 120,
        "omit_freshness_fields": True,
        "failing_targets": [target_id],
    }
    assert admin(genviral_sandbox, "settings", changes).status == 200
    settings = admin(genviral_sandbox, "settings").body["data"]
    assert {name: settings[name] for name in changes} == changes
    assert genviral_sandbox.credits == 7


@pytest.mark.parametrize(
    "settings",
    [
        {"credits": -1},
        {"credits": "5"},
        {"refresh_cost": 1.5},
        {"refresh_seconds": -0.1},
        {"refresh_seconds": True},
        {"max_refreshes_per_minute": None},
        {"scheduled_refresh_seconds": 0},
        {"omit_freshness_fields": "yes"},
        {"failing_targets": "abc"},
        {"failing_targets": ["no-such-target"]},
    ],
)
def test_the_admin_settings_refuse_bad_values_naming_the_field(
    genviral_sandbox: SandboxServer, settings: dict[str, Any]
) -> None:
    before = genviral_sandbox.settings()
    reply = admin(genviral_sandbox, "settings", {"credits": 9, **settings})
    assert (reply.status, reply.body["error_code"]) == (400, "invalid_request")
    assert next(iter(settings)) in reply.body["message"]
    assert genviral_sandbox.settings() == before  # nothing applied, the valid credits included


def test_the_admin_targets_endpoint_sets_freshness_and_live_again(genviral_sandbox: SandboxServer) -> None:
    target_id = genviral_sandbox.dataset.targets[0].id
    reply = admin(genviral_sandbox, "targets", {"last_refreshed_at": "2026-01-14T12:00:00Z", "target_ids": [target_id]})
    assert reply.status == 200
    assert [row["last_refreshed_at"] for row in reply.body["data"]["targets"]] == ["2026-01-14T12:00:00.000Z"]
    assert day_rows(genviral_sandbox, "2026-01-14")[1] < 40
    admin(genviral_sandbox, "targets", {"last_refreshed_at": None})
    assert day_rows(genviral_sandbox, "2026-01-14")[1] == 40


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"last_refreshed_at": "yesterday"}, "last_refreshed_at"),
        ({"last_refreshed_at": 5}, "last_refreshed_at"),
        ({"last_refreshed_at": None, "target_ids": ["no-such-target"]}, "target_ids"),
        ({"last_refreshed_at": None, "target_ids": "abc"}, "target_ids"),
        ({"free_refresh_used_today": "yes"}, "free_refresh_used_today"),
        ({"last_refreshed_at": None, "colour": "red"}, "colour"),
        ({}, "last_refreshed_at"),
        ([], "last_refreshed_at"),
    ],
)
def test_the_admin_targets_endpoint_refuses_bad_bodies_naming_the_field(
    genviral_sandbox: SandboxServer, body: Any, named: str
) -> None:
    reply = call(genviral_sandbox, "/_sandbox/targets", method="POST", key=None, payload=body)
    assert (reply.status, reply.body["error_code"]) == (400, "invalid_request")
    assert named in reply.body["message"]
    assert {row["last_refreshed_at"] for row in targets(genviral_sandbox)} == {CLOCK}


def test_the_admin_refreshes_endpoint_lists_every_refresh_and_the_credits(lagging: SandboxServer) -> None:
    target_id = lagging.dataset.targets[0].id
    started = refresh(lagging, target_id).body["data"]["refresh"]
    observe_until_ended(lagging, started["id"])
    listing = admin(lagging, "refreshes").body["data"]
    assert listing["credits"] == 0
    assert listing["refreshes"] == [{**refresh_status(lagging, started["id"]), "wasFree": True, "scheduled": False}]
    assert listing["refreshes"] == lagging.refreshes()


def test_the_admin_reset_restores_the_constructor_s_cache(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(targets_refreshed_at=NOON_OF_LAST_DAY, refresh_seconds=0, credits=2)
    target_id = server.dataset.targets[0].id
    admin(server, "settings", {"refresh_cost": 2, "omit_freshness_fields": True})
    admin(server, "targets", {"free_refresh_used_today": True, "last_refreshed_at": None})
    observe_until_ended(server, refresh(server, target_id).body["data"]["refresh"]["id"])
    assert admin(server, "reset", {}).status == 200
    assert (server.refreshes(), server.credits) == ([], 2)
    assert (server.settings()["refresh_cost"], server.settings()["omit_freshness_fields"]) == (1, False)
    rows = targets(server)
    assert {(row["last_refreshed_at"], row["free_refresh_available"]) for row in rows} == {
        ("2026-01-14T12:00:00.000Z", True)
    }


# ------------------------------------------------------------------------------------------- configuration


def test_the_constructor_refuses_unknown_targets_and_bad_settings() -> None:
    with pytest.raises(ValueError, match="no-such-target"):
        SandboxServer(targets_refreshed_at={"no-such-target": NOON_OF_LAST_DAY})
    with pytest.raises(ValueError, match="refresh_seconds"):
        SandboxServer(refresh_seconds=-1)
    with pytest.raises(ValueError, match="failing_targets"):
        SandboxServer(failing_targets=["no-such-target"])
    with pytest.raises(ValueError, match="failing_targets"):
        SandboxServer(failing_targets="no-such-target")


def test_targets_refreshed_at_may_name_targets_one_by_one(genviral_sandbox_factory: SandboxFactory) -> None:
    first, second = Dataset.empty(seed=0).targets[:2]
    server = genviral_sandbox_factory(targets_refreshed_at={first.id: NOON_OF_LAST_DAY, second.id: None})
    assert target_row(server, first.id)["last_refreshed_at"] == "2026-01-14T12:00:00.000Z"
    assert target_row(server, second.id)["last_refreshed_at"] == CLOCK


def test_a_ledger_refusal_carries_the_api_status_and_code() -> None:
    ledger = RefreshLedger(Dataset.empty().targets, clock=lambda: DEFAULT_NOW)
    with pytest.raises(RefreshError) as refused:
        ledger.start_refresh("no-such-target")
    assert (refused.value.status, refused.value.error_code) == (404, "target_not_found")


CommandLine = Callable[..., SandboxServer]


@pytest.fixture
def command_line() -> CommandLine:
    """Return a function building (not starting) the sandbox a command line describes, over two small days."""

    def build(*flags: str) -> SandboxServer:
        return build_server(parse_args(["--start", "2026-01-01", "--days", "2", "--rows-per-day", "5", *flags]))

    return build


def test_the_command_line_lag_hours_count_back_from_the_end_of_the_data(command_line: CommandLine) -> None:
    server = command_line("--lag-hours", "12")
    rows = server.refresh_ledger.target_rows(with_freshness=True)
    assert {row["last_refreshed_at"] for row in rows} == {"2026-01-02T12:00:00.000Z"}


def test_the_command_line_sets_the_cache_options(command_line: CommandLine) -> None:
    server = command_line(
        "--credits", "3", "--refresh-seconds", "0.5", "--scheduled-refresh-seconds", "30", "--omit-freshness-fields"
    )
    settings = server.settings()
    assert (settings["credits"], settings["refresh_seconds"], settings["scheduled_refresh_seconds"]) == (3, 0.5, 30)
    assert settings["omit_freshness_fields"] is True
    assert server.refresh_ledger.cache_cutoffs() is None  # no --lag-hours: live


@pytest.mark.parametrize(
    "flags",
    [("--lag-hours", "-1"), ("--lag-hours", "soon"), ("--credits", "1.5"), ("--scheduled-refresh-seconds", "0")],
)
def test_the_command_line_refuses_bad_cache_options(command_line: CommandLine, flags: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit):
        command_line(*flags)
