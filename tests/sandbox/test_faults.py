"""Specification of the sandbox's faults: scripted failures, error rate, rate limit, latency, arrivals, stats."""

# Test arguments shadow the fixtures imported below, on purpose: that is how pytest injects them.

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest

from genviral_provider.sandbox import (
    POSTS_PATH,
    SANDBOX_API_KEY,
    TARGETS_PATH,
    Dataset,
    Fault,
    Faults,
    RequestRecord,
    SandboxServer,
    Stats,
    parse_script_entry,
)
from genviral_provider.sandbox.pytest_plugin import SandboxFactory


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)


def call(server: SandboxServer, path: str = POSTS_PATH, params: Mapping[str, Any] | None = None) -> Reply:
    """Send one authorised GET on a fresh connection; return the raw reply."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(
            "GET", f"{path}?{urlencode(params or {})}", headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"}
        )
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def statuses(server: SandboxServer, count: int, path: str = POSTS_PATH) -> list[int]:
    return [call(server, path).status for _ in range(count)]


# ----------------------------------------------------------------------------------------------- script


@pytest.mark.parametrize(
    ("entry", "fault"),
    [
        ("429", Fault("status", 429)),
        ("429:2", Fault("status", 429, retry_after=2)),
        ("500", Fault("status", 500)),
        ("504", Fault("status", 504)),
        ("cut", Fault("cut")),
        ("badjson", Fault("badjson")),
        ("reset", Fault("reset")),
        ("ok", None),
    ],
)
def test_script_entries_name_their_fault(entry: str, fault: Fault | None) -> None:
    assert parse_script_entry(entry) == fault


@pytest.mark.parametrize("entry", ["404", "500:2", "429:soon", "timeout", ""])
def test_unknown_script_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="script entry"):
        parse_script_entry(entry)


def test_scripted_429_has_no_retry_after(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.script = ["429"]
    reply = call(genviral_sandbox)
    assert reply.status == 429
    assert reply.headers["Retry-After"] is None
    assert reply.json() == {"ok": False, "code": 429, "message": "Rate limit exceeded", "error_code": "rate_limited"}


def test_scripted_429_with_seconds_sends_retry_after(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.script = ["429:2"]
    reply = call(genviral_sandbox)
    assert (reply.status, reply.headers["Retry-After"]) == (429, "2")


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_scripted_server_errors_answer_an_internal_error_envelope(genviral_sandbox: SandboxServer, status: int) -> None:
    genviral_sandbox.faults.script = [str(status)]
    reply = call(genviral_sandbox)
    assert reply.status == status
    assert reply.json()["error_code"] == "internal_error"
    assert reply.json()["ok"] is False


def test_scripted_cut_sends_less_body_than_its_content_length(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.script = ["cut"]
    with pytest.raises(http.client.IncompleteRead):
        call(genviral_sandbox)


def test_scripted_badjson_answers_200_with_a_body_that_is_not_json(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.script = ["badjson"]
    reply = call(genviral_sandbox)
    assert reply.status == 200
    with pytest.raises(json.JSONDecodeError):
        reply.json()


def test_scripted_reset_closes_the_connection_without_an_answer(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.script = ["reset"]
    with pytest.raises(ConnectionError):
        call(genviral_sandbox)


def test_script_entries_are_consumed_one_per_request_in_order(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.script = ["503", "ok", "429", "500"]
    assert statuses(genviral_sandbox, 6) == [503, 200, 429, 500, 200, 200]
    assert genviral_sandbox.faults.script == []


def test_the_script_applies_before_authentication(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.script = ["502"]
    connection = http.client.HTTPConnection("127.0.0.1", genviral_sandbox.port, timeout=10)
    connection.request("GET", POSTS_PATH)
    assert connection.getresponse().status == 502
    connection.close()


def test_the_script_leaves_admin_paths_alone(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.script = ["500"]
    assert call(genviral_sandbox, "/_sandbox/stats").status == 200
    assert genviral_sandbox.faults.script == ["500"]


def test_a_path_filter_limits_the_script_to_matching_paths(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.update(script=["503"], path_filter="/targets")
    assert call(genviral_sandbox).status == 200
    assert call(genviral_sandbox, TARGETS_PATH).status == 503


def test_a_connection_survives_error_answers(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.script = ["429", "500"]
    connection = http.client.HTTPConnection("127.0.0.1", genviral_sandbox.port, timeout=10)
    seen = []
    for _ in range(3):
        connection.request("GET", POSTS_PATH, headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"})
        response = connection.getresponse()
        response.read()
        seen.append(response.status)
    connection.close()
    assert seen == [429, 500, 200]


# ------------------------------------------------------------------------------------------- error rate


def test_an_error_rate_of_one_fails_every_request_with_500_502_or_503(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.error_rate = 1.0
    assert set(statuses(genviral_sandbox, 20)) <= {500, 502, 503}


def test_an_error_rate_fails_about_that_share_of_requests(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.error_rate = 0.3
    failures = sum(status != 200 for status in statuses(genviral_sandbox, 100))
    assert 15 <= failures <= 45


def test_the_same_error_seed_gives_the_same_sequence(genviral_sandbox_factory: SandboxFactory) -> None:
    sequences = []
    for _ in range(2):
        server = genviral_sandbox_factory(dataset=Dataset.empty(), faults=Faults(error_rate=0.5, error_seed=9))
        sequences.append(statuses(server, 30))
    assert sequences[0] == sequences[1]
    assert len(set(sequences[0])) > 1


def test_a_new_error_seed_restarts_the_sequence(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.update(error_rate=0.5, error_seed=4)
    first = statuses(genviral_sandbox, 20)
    genviral_sandbox.faults.update(error_seed=5)
    genviral_sandbox.faults.update(error_seed=4)
    assert statuses(genviral_sandbox, 20) == first


# ------------------------------------------------------------------------------------------- rate limit


class ManualClock:
    """A clock that stands still until advanced, so the rate limit's bucket refills only when a test says."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(genviral_sandbox: SandboxServer) -> ManualClock:
    """Drive the default sandbox's rate limit by a manual clock, however long the requests take."""
    manual = ManualClock()
    genviral_sandbox.faults.clock = manual
    return manual


def test_the_rate_limit_admits_a_burst_of_rate_requests_then_answers_429(
    genviral_sandbox: SandboxServer, clock: ManualClock
) -> None:
    genviral_sandbox.faults.rate_limit = 5
    assert statuses(genviral_sandbox, 7) == [200] * 5 + [429] * 2


def test_rate_limit_429s_are_rate_limited_envelopes_without_retry_after(
    genviral_sandbox: SandboxServer, clock: ManualClock
) -> None:
    genviral_sandbox.faults.rate_limit = 1
    call(genviral_sandbox)
    reply = call(genviral_sandbox)
    assert (reply.status, reply.json()["error_code"], reply.headers["Retry-After"]) == (429, "rate_limited", None)


def test_rate_limit_429s_can_carry_retry_after(genviral_sandbox: SandboxServer, clock: ManualClock) -> None:
    genviral_sandbox.faults.update(rate_limit=1, rate_limit_retry_after=True)
    call(genviral_sandbox)
    assert call(genviral_sandbox).headers["Retry-After"] == "1"


def test_the_rate_limit_refills_at_its_rate(genviral_sandbox: SandboxServer, clock: ManualClock) -> None:
    genviral_sandbox.faults.rate_limit = 10
    statuses(genviral_sandbox, 10)
    assert call(genviral_sandbox).status == 429
    clock.advance(0.25)  # 10 per second: two tokens back
    assert statuses(genviral_sandbox, 3) == [200, 200, 429]


def test_the_rate_limit_refills_no_more_than_its_capacity(genviral_sandbox: SandboxServer, clock: ManualClock) -> None:
    genviral_sandbox.faults.rate_limit = 3
    statuses(genviral_sandbox, 3)
    clock.advance(60)
    assert statuses(genviral_sandbox, 4) == [200, 200, 200, 429]


def test_the_rate_limit_runs_on_the_real_clock_by_default() -> None:
    assert Faults().clock is time.monotonic


def test_the_rate_limit_applies_to_every_api_path_despite_a_path_filter(
    genviral_sandbox: SandboxServer, clock: ManualClock
) -> None:
    genviral_sandbox.faults.update(rate_limit=1, path_filter="/summary")
    call(genviral_sandbox)
    assert call(genviral_sandbox, TARGETS_PATH).status == 429


def test_the_stats_count_429s(genviral_sandbox: SandboxServer, clock: ManualClock) -> None:
    genviral_sandbox.faults.rate_limit = 2
    statuses(genviral_sandbox, 5)
    assert genviral_sandbox.stats.rate_limited == 3


def test_the_clock_is_no_setting_and_survives_a_reset(clock: ManualClock) -> None:
    faults = Faults(clock=clock)
    faults.reset()
    assert "clock" not in faults.as_dict()
    assert faults.clock is clock
    with pytest.raises(ValueError, match="unknown fault settings"):
        faults.update(clock=time.time)


# ---------------------------------------------------------------------------------------------- latency


def test_latency_delays_every_api_request(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.latency = 0.15
    began = time.monotonic()
    call(genviral_sandbox)
    assert time.monotonic() - began >= 0.15  # a lower bound: holds however slow the machine


def test_concurrent_requests_are_served_in_parallel(genviral_sandbox: SandboxServer) -> None:
    # Each request stays in the server for a second: a server that serves one at a time never has two in flight.
    genviral_sandbox.faults.latency = 1.0
    threads = [threading.Thread(target=call, args=(genviral_sandbox,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert genviral_sandbox.stats.max_in_flight == 4


# --------------------------------------------------------------------------------------------- arrivals


def test_newest_arrivals_land_on_the_first_page_of_a_newest_first_read(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.update(arrivals_per_request=3, arrival_mode="newest")
    first_page = call(genviral_sandbox, params={"limit": 10}).json()["data"]
    second_page = call(genviral_sandbox, params={"limit": 10}).json()["data"]
    assert second_page["totalCount"] == first_page["totalCount"] + 3
    assert [row["id"] for row in second_page["posts"][3:]] == [row["id"] for row in first_page["posts"][:7]]
    assert {row["publishedAt"] for row in second_page["posts"][:3]} >= {"2026-01-15T12:00:00.000Z"}


def test_random_arrivals_shift_the_offsets_of_existing_rows(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.update(arrivals_per_request=20, arrival_mode="random")
    params = {"range": "all", "sortOrder": "asc", "limit": 100, "offset": 300}
    first = [row["id"] for row in call(genviral_sandbox, params=params).json()["data"]["posts"]]
    second = [row["id"] for row in call(genviral_sandbox, params=params).json()["data"]["posts"]]
    assert first != second
    assert len(genviral_sandbox.dataset) == 600


def test_arrivals_follow_only_successful_posts_requests(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.update(arrivals_per_request=5, script=["500"])
    call(genviral_sandbox)
    call(genviral_sandbox, TARGETS_PATH)
    call(genviral_sandbox, params={"limit": 0})
    assert len(genviral_sandbox.dataset) == 560


def test_the_same_arrival_seed_gives_the_same_rows(genviral_sandbox_factory: SandboxFactory) -> None:
    arrived = []
    for _ in range(2):
        server = genviral_sandbox_factory(faults=Faults(arrivals_per_request=4, arrival_mode="random", arrival_seed=3))
        call(server)
        arrived.append(sorted((row["id"], row["publishedAt"]) for row in server.dataset.rows))
    assert arrived[0] == arrived[1]


# ----------------------------------------------------------------------------------------- settings


def test_faults_refuse_an_unknown_setting() -> None:
    with pytest.raises(ValueError, match="unknown fault settings"):
        Faults().update(chaos=True)


@pytest.mark.parametrize(
    "settings",
    [
        {"latency": -1},
        {"error_rate": 1.5},
        {"rate_limit": 0},
        {"arrivals_per_request": -1},
        {"arrival_mode": "oldest"},
        {"script": ["500", "teapot"]},
        {"script": "500"},
        {"rate_limit_retry_after": "yes"},
        {"deletions_per_request": -2},
        {"max_deletions": None},
        {"deletion_seed": "seed"},
    ],
)
def test_faults_refuse_invalid_values_and_keep_the_old_ones(settings: dict[str, Any]) -> None:
    faults = Faults(latency=0.5)
    with pytest.raises(ValueError, match="invalid fault") as refused:
        faults.update(**settings)
    assert next(iter(settings)) in str(refused.value) and "expected" in str(refused.value)
    assert faults == Faults(latency=0.5)


def test_reset_clears_every_fault() -> None:
    faults = Faults(
        latency=1, script=["500"], error_rate=0.5, rate_limit=3, arrivals_per_request=2, deletions_per_request=3
    )
    faults.reset()
    assert faults == Faults()


def test_an_invalid_entry_assigned_directly_answers_500_and_is_consumed(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.script = ["teapot"]
    reply = call(genviral_sandbox)
    assert reply.status == 500
    assert "teapot" in reply.json()["message"]
    assert call(genviral_sandbox).status == 200


# -------------------------------------------------------------------------------------------- stats


def test_stats_record_each_request_s_path_query_and_status(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.script = ["cut"]
    with pytest.raises(http.client.IncompleteRead):
        call(genviral_sandbox)
    call(genviral_sandbox, params={"limit": 5, "platform": "tiktok"})
    call(genviral_sandbox, TARGETS_PATH)
    records = genviral_sandbox.stats.requests
    assert [(r.path, r.query, r.status) for r in records] == [
        (POSTS_PATH, {}, 0),
        (POSTS_PATH, {"limit": "5", "platform": "tiktok"}, 200),
        (TARGETS_PATH, {}, 200),
    ]
    assert records[0].time <= records[1].time <= records[2].time <= time.monotonic()
    assert genviral_sandbox.stats.by_status == {0: 1, 200: 2}
    assert genviral_sandbox.stats.total == 3


def test_reset_stats_clears_the_counters(genviral_sandbox: SandboxServer) -> None:
    call(genviral_sandbox)
    genviral_sandbox.reset_stats()
    assert (genviral_sandbox.stats.total, genviral_sandbox.stats.requests) == (0, [])


def test_the_request_log_is_capped() -> None:
    stats = Stats(max_records=3)
    for index in range(5):
        stats.begin()
        stats.finish(RequestRecord(f"/p{index}", {}, 200, float(index)))
    assert [record.path for record in stats.requests] == ["/p2", "/p3", "/p4"]
    assert stats.total == 5
