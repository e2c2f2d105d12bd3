"""Specification of the sandbox HTTP server: the documented API, its window readings, and the admin endpoints."""

# Test arguments shadow the fixtures imported below, on purpose: that is how pytest injects them.

from __future__ import annotations

import datetime as dt
import http.client
import itertools
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from genviral_provider.sandbox import (
    POSTS_PATH,
    SANDBOX_API_KEY,
    TARGETS_PATH,
    Dataset,
    PostsQuery,
    SandboxServer,
)
from genviral_provider.sandbox.pytest_plugin import SandboxFactory

UTC = dt.timezone.utc
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: Any


def call(
    server: SandboxServer,
    path: str = POSTS_PATH,
    params: Mapping[str, Any] | None = None,
    *,
    method: str = "GET",
    key: str | None = SANDBOX_API_KEY,
    payload: Any = None,
    connection: http.client.HTTPConnection | None = None,
) -> Reply:
    """Send one request and decode its JSON body."""
    conn = connection or http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    body = None if payload is None else json.dumps(payload)
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, f"{path}?{urlencode(params or {})}", body=body, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    if connection is None:
        conn.close()
    return Reply(response.status, response.headers, json.loads(raw) if raw else None)


def posts(server: SandboxServer, **params: Any) -> dict[str, Any]:
    """Return the ``data`` of a successful posts request."""
    reply = call(server, POSTS_PATH, params)
    assert reply.status == 200, reply.body
    data: dict[str, Any] = reply.body["data"]
    return data


def expected(server: SandboxServer, **fields: Any) -> tuple[list[dict[str, Any]], int]:
    """Return what the dataset itself answers (the dataset tests check it against a plain filter and sort)."""
    return server.dataset.query(
        PostsQuery(**fields),
        now=server.current_time(),
        end_inclusive=server.end_inclusive,
        date_timezone=server.date_timezone,
    )


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


# ------------------------------------------------------------------------------------------------ auth


def test_a_request_without_a_key_gets_the_documented_401(genviral_sandbox: SandboxServer) -> None:
    reply = call(genviral_sandbox, key=None)
    assert reply.status == 401
    assert reply.body == {"ok": False, "code": 401, "message": "API key not found", "error_code": "invalid_token"}


def test_a_request_with_a_wrong_key_gets_401(genviral_sandbox: SandboxServer) -> None:
    assert call(genviral_sandbox, key="gva_live_x1y2z3.wrong").status == 401


def test_the_targets_endpoint_needs_the_key_too(genviral_sandbox: SandboxServer) -> None:
    assert call(genviral_sandbox, TARGETS_PATH, key=None).status == 401


def test_a_custom_api_key_is_the_only_one_accepted(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(api_key="gva_live_abc.def")
    assert call(server, key="gva_live_abc.def").status == 200
    assert call(server).status == 401


# ------------------------------------------------------------------------------------------- envelopes


def test_a_posts_request_answers_the_documented_envelope(genviral_sandbox: SandboxServer) -> None:
    reply = call(genviral_sandbox)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert {key: reply.body[key] for key in ("ok", "code", "message")} == {
        "ok": True,
        "code": 200,
        "message": "Analytics posts retrieved",
    }
    assert set(reply.body["data"]) == {"posts", "totalCount", "hasMore"}


def test_defaults_are_range_30d_newest_first_50_rows_from_offset_0(genviral_sandbox: SandboxServer) -> None:
    data = posts(genviral_sandbox)
    rows, total = expected(genviral_sandbox, range="30d", sort_by="published_at", sort_order="desc", limit=50)
    assert (data["posts"], data["totalCount"]) == (rows, total)
    assert total == 560
    assert data["hasMore"] is True


def test_the_targets_endpoint_lists_every_target(genviral_sandbox: SandboxServer) -> None:
    reply = call(genviral_sandbox, TARGETS_PATH)
    assert reply.status == 200
    assert reply.body["message"] == "Analytics targets retrieved"
    assert reply.body["data"]["workspace_id"] == "ws_sandbox"
    live = {"free_refresh_available": True, "last_refreshed_at": "2026-01-15T12:00:00.000Z"}  # the sandbox clock
    assert reply.body["data"]["targets"] == [
        {**target.as_json(), **live} for target in genviral_sandbox.dataset.targets
    ]
    assert set(reply.body["data"]["targets"][0]) == {
        "id",
        "target_id",
        "platform",
        "identifier",
        "display_name",
        "normalized_identifier",
        "free_refresh_available",
        "last_refreshed_at",
    }


def test_an_unknown_path_answers_a_404_envelope(genviral_sandbox: SandboxServer) -> None:
    reply = call(genviral_sandbox, "/api/partner/v1/analytics/nothing")
    assert reply.status == 404
    assert reply.body["ok"] is False
    assert reply.body["error_code"] == "not_found"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_a_non_get_request_on_an_api_path_answers_405(genviral_sandbox: SandboxServer, method: str) -> None:
    reply = call(genviral_sandbox, POSTS_PATH, method=method, payload={})
    assert reply.status == 405
    assert reply.headers["Allow"] == "GET"
    assert reply.body["ok"] is False


def test_every_row_survives_the_json_round_trip(genviral_sandbox: SandboxServer) -> None:
    served: list[dict[str, Any]] = []
    for offset in range(0, 560, 100):
        served += posts(genviral_sandbox, range="all", limit=100, offset=offset)["posts"]
    assert {row["id"]: row for row in served} == {row["id"]: row for row in genviral_sandbox.dataset.rows}


# ------------------------------------------------------------------------------------------ parameters


@pytest.mark.parametrize("preset", ["14d", "30d", "90d", "1y", "all"])
def test_each_range_preset_selects_what_it_says_relative_to_now(genviral_sandbox: SandboxServer, preset: str) -> None:
    rows, total = expected(genviral_sandbox, range=preset)
    data = posts(genviral_sandbox, range=preset)
    assert (data["posts"], data["totalCount"]) == (rows, total)


def test_range_14d_excludes_rows_before_now_minus_14_days(genviral_sandbox: SandboxServer) -> None:
    data = posts(genviral_sandbox, range="14d", sortOrder="asc", limit=1)
    assert data["posts"][0]["publishedAt"] >= "2026-01-01T12:00:00.000Z"
    assert data["totalCount"] < 560


def test_range_is_relative_to_the_configurable_now(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.now = dt.datetime(2027, 1, 1, tzinfo=UTC)
    assert posts(genviral_sandbox, range="90d")["totalCount"] == 0


def test_start_and_end_select_calendar_days(genviral_sandbox: SandboxServer) -> None:
    data = posts(genviral_sandbox, start="2026-01-03", end="2026-01-04", limit=100)
    assert data["totalCount"] == 80
    assert {row["publishedAt"][:10] for row in data["posts"]} == {"2026-01-03", "2026-01-04"}


def test_start_and_end_win_over_range(genviral_sandbox: SandboxServer) -> None:
    assert posts(genviral_sandbox, range="14d", start="2026-01-01", end="2026-01-01")["totalCount"] == 40


@pytest.mark.parametrize(("name", "alias"), [("platforms", "platform")])
def test_platforms_and_its_alias_filter_by_platform(genviral_sandbox: SandboxServer, name: str, alias: str) -> None:
    rows, total = expected(genviral_sandbox, platforms=frozenset({"tiktok", "youtube"}))
    for param in (name, alias):
        data = posts(genviral_sandbox, **{param: "tiktok,youtube"})
        assert (data["posts"], data["totalCount"]) == (rows, total)
    assert {row["platform"] for row in rows} == {"tiktok", "youtube"}


@pytest.mark.parametrize("param", ["accounts", "account_ids"])
def test_accounts_and_its_alias_filter_by_analytics_target_id(genviral_sandbox: SandboxServer, param: str) -> None:
    first, second = genviral_sandbox.dataset.targets[0], genviral_sandbox.dataset.targets[3]
    data = posts(genviral_sandbox, limit=100, **{param: f"{first.id},{second.id}"})
    rows, total = expected(genviral_sandbox, limit=100, accounts=frozenset({first.id, second.id}))
    assert (data["posts"], data["totalCount"]) == (rows, total)
    assert {row["accountIdentifier"] for row in data["posts"]} == {first.identifier, second.identifier}


def test_an_unknown_platform_matches_nothing(genviral_sandbox: SandboxServer) -> None:
    data = posts(genviral_sandbox, platforms="facebook")
    assert (data["posts"], data["totalCount"], data["hasMore"]) == ([], 0, False)


@pytest.mark.parametrize("sort_by", ["published_at", "views", "likes", "comments", "shares"])
@pytest.mark.parametrize(("by_name", "order_name"), [("sortBy", "sortOrder"), ("sort_by", "sort_order")])
@pytest.mark.parametrize("sort_order", ["asc", "desc"])
def test_sort_parameters_and_their_aliases_order_rows(
    genviral_sandbox: SandboxServer, sort_by: str, by_name: str, order_name: str, sort_order: str
) -> None:
    data = posts(genviral_sandbox, limit=100, **{by_name: sort_by, order_name: sort_order})
    assert data["posts"] == expected(genviral_sandbox, sort_by=sort_by, sort_order=sort_order, limit=100)[0]


def test_the_canonical_name_wins_over_its_alias(genviral_sandbox: SandboxServer) -> None:
    data = posts(genviral_sandbox, sortOrder="asc", sort_order="desc", limit=1)
    assert data["posts"][0]["publishedAt"] == "2026-01-01T00:00:00.000Z"


def test_rows_with_equal_sort_values_come_back_in_id_order(genviral_sandbox: SandboxServer) -> None:
    rows = posts(genviral_sandbox, limit=100)["posts"]
    ties = [(a, b) for a, b in itertools.pairwise(rows) if a["publishedAt"] == b["publishedAt"]]
    assert ties
    assert all(a["id"] < b["id"] for a, b in ties)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"range": "7d"}, "range"),
        ({"range": ""}, "range"),
        ({"start": "2026-01-01"}, "start"),
        ({"end": "2026-01-01"}, "end"),
        ({"start": "2026-1-1", "end": "2026-01-02"}, "start"),
        ({"start": "2026-01-01", "end": "2026-02-30"}, "end"),
        ({"start": "20260101", "end": "20260102"}, "start"),
        ({"start": "2026-01-03", "end": "2026-01-02"}, "start"),
        ({"sortBy": "saves"}, "sortBy"),
        ({"sort_by": "publishedAt"}, "sort_by"),
        ({"sortOrder": "DESC"}, "sortOrder"),
        ({"sort_order": "up"}, "sort_order"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "10001"}, "offset"),
        ({"offset": "1e3"}, "offset"),
        ({"platforms": "tiktok,,youtube"}, "platforms"),
        ({"platform": ""}, "platform"),
        ({"platforms": " "}, "platforms"),
        ({"accounts": "a,"}, "accounts"),
    ],
)
def test_invalid_parameters_answer_400_naming_the_parameter(
    genviral_sandbox: SandboxServer, params: dict[str, str], named: str
) -> None:
    reply = call(genviral_sandbox, POSTS_PATH, params)
    assert reply.status == 400
    assert reply.body["ok"] is False
    assert reply.body["code"] == 400
    assert reply.body["error_code"] == "invalid_query"
    assert named in reply.body["message"]


def test_the_largest_limit_and_offset_are_accepted(genviral_sandbox: SandboxServer) -> None:
    assert call(genviral_sandbox, params={"limit": 100, "offset": 10_000}).status == 200


# ------------------------------------------------------------------------------------------ pagination


def test_paging_with_offsets_reads_every_row_once(genviral_sandbox: SandboxServer) -> None:
    seen: list[str] = []
    offset = 0
    while True:
        data = posts(genviral_sandbox, start="2026-01-02", end="2026-01-08", limit=37, offset=offset)
        seen += ids(data["posts"])
        assert data["totalCount"] == 280
        if not data["hasMore"]:
            break
        offset += 37
    assert len(seen) == len(set(seen)) == 280


def test_has_more_is_false_on_the_exactly_full_last_page(genviral_sandbox: SandboxServer) -> None:
    data = posts(genviral_sandbox, start="2026-01-02", end="2026-01-02", limit=20, offset=20)
    assert (len(data["posts"]), data["hasMore"]) == (20, False)


def test_an_offset_past_the_end_answers_no_rows_and_the_total(genviral_sandbox: SandboxServer) -> None:
    data = posts(genviral_sandbox, offset=10_000)
    assert (data["posts"], data["totalCount"], data["hasMore"]) == ([], 560, False)


def test_clamp_limit_serves_100_rows_for_a_larger_limit(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(clamp_limit=True)
    assert len(posts(server, limit=1000)["posts"]) == 100


def test_clamp_limit_can_be_switched_on_while_running(genviral_sandbox: SandboxServer) -> None:
    assert call(genviral_sandbox, params={"limit": 101}).status == 400
    genviral_sandbox.clamp_limit = True
    assert call(genviral_sandbox, params={"limit": 101}).status == 200


# ------------------------------------------------------------------------------- window readings


def boundary_rows(server: SandboxServer, day: str) -> set[str]:
    return {row["id"] for row in server.dataset.rows if row["publishedAt"] == f"{day}T00:00:00.000Z"}


def test_an_inclusive_end_includes_rows_on_the_end_date(genviral_sandbox: SandboxServer) -> None:
    data = posts(genviral_sandbox, start="2026-01-05", end="2026-01-06", limit=100)
    assert data["totalCount"] == 80
    assert boundary_rows(genviral_sandbox, "2026-01-06") <= set(ids(data["posts"]))


def test_an_exclusive_end_excludes_rows_on_the_end_date(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.end_inclusive = False
    data = posts(genviral_sandbox, start="2026-01-05", end="2026-01-06", limit=100)
    assert data["totalCount"] == 40
    assert {row["publishedAt"][:10] for row in data["posts"]} == {"2026-01-05"}


def test_an_exclusive_end_on_the_start_date_selects_nothing(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.end_inclusive = False
    assert posts(genviral_sandbox, start="2026-01-05", end="2026-01-05")["totalCount"] == 0


def test_dates_read_in_another_time_zone_shift_the_window(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.date_timezone = "Asia/Tokyo"
    data = posts(genviral_sandbox, start="2026-01-05", end="2026-01-05", limit=100, sortOrder="asc")
    instants = [row["publishedAt"] for row in data["posts"]]
    assert instants[0] >= "2026-01-04T15:00:00.000Z"
    assert instants[-1] < "2026-01-05T15:00:00.000Z"
    assert "2026-01-04T23:59:59.999Z" in instants
    assert data["totalCount"] == expected(genviral_sandbox, start=dt.date(2026, 1, 5), end=dt.date(2026, 1, 5))[1]


def test_an_unknown_time_zone_is_refused_when_set(genviral_sandbox: SandboxServer) -> None:
    with pytest.raises(Exception, match="Mars"):
        genviral_sandbox.date_timezone = "Mars/Olympus"


def test_shuffle_ties_returns_tied_rows_in_changing_orders(genviral_sandbox_factory: SandboxFactory) -> None:
    dataset = Dataset.empty()
    dataset.insert([{"publishedAt": "2026-01-10T10:00:00Z"} for _ in range(30)])
    server = genviral_sandbox_factory(dataset=dataset, shuffle_ties=True)
    orders = {tuple(ids(posts(server, limit=10)["posts"])) for _ in range(5)}
    assert len(orders) > 1


def test_without_shuffle_ties_tied_rows_keep_one_order(genviral_sandbox_factory: SandboxFactory) -> None:
    dataset = Dataset.empty()
    dataset.insert([{"publishedAt": "2026-01-10T10:00:00Z"} for _ in range(30)])
    server = genviral_sandbox_factory(dataset=dataset)
    orders = {tuple(ids(posts(server, limit=10)["posts"])) for _ in range(5)}
    assert len(orders) == 1


# ---------------------------------------------------------------------------------------- connections


def test_one_keep_alive_connection_serves_many_requests(genviral_sandbox: SandboxServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", genviral_sandbox.port, timeout=10)
    for offset in (0, 50, 100):
        assert call(genviral_sandbox, params={"offset": offset}, connection=connection).status == 200
    assert call(genviral_sandbox, "/nowhere", connection=connection).status == 404
    assert call(genviral_sandbox, params={"limit": 0}, connection=connection).status == 400
    assert call(genviral_sandbox, TARGETS_PATH, connection=connection).status == 200
    connection.close()


def test_stop_closes_idle_keep_alive_connections(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    call(server, connection=connection)
    server.stop()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        call(server, connection=connection)


def test_the_url_names_the_bound_port(genviral_sandbox: SandboxServer) -> None:
    parts = urlsplit(genviral_sandbox.url)
    assert (parts.scheme, parts.hostname, parts.port) == ("http", "127.0.0.1", genviral_sandbox.port)


def test_the_url_is_unknown_before_start() -> None:
    with pytest.raises(RuntimeError, match="start"):
        _ = SandboxServer(dataset=Dataset.empty()).url


def test_requests_are_not_logged_unless_verbose(
    genviral_sandbox: SandboxServer, capfd: pytest.CaptureFixture[str]
) -> None:
    call(genviral_sandbox)
    call(genviral_sandbox, "/nowhere")
    assert capfd.readouterr().err == ""


# ------------------------------------------------------------------------------------------- inserting


def test_insert_posts_from_python_makes_rows_queryable(genviral_sandbox: SandboxServer) -> None:
    (row,) = genviral_sandbox.insert_posts([{"externalId": "ext-42", "publishedAt": "2026-01-14T08:00:00.000Z"}])
    data = posts(genviral_sandbox, start="2026-01-14", end="2026-01-14", limit=100)
    assert row in data["posts"]
    assert data["totalCount"] == 41


def test_insert_posts_defaults_published_at_to_the_server_clock(genviral_sandbox: SandboxServer) -> None:
    (row,) = genviral_sandbox.insert_posts([{}])
    assert row["publishedAt"] == "2026-01-15T12:00:00.000Z"


def test_the_admin_endpoint_inserts_partial_rows(genviral_sandbox: SandboxServer) -> None:
    partials = [
        {
            "genviralPostId": "gv-1",
            "externalId": "ext-1",
            "platform": "instagram",
            "publishedAt": "2026-01-20T00:00:00Z",
        },
        {"genviralPostId": "gv-2", "platform": "youtube", "publishedAt": "2026-01-20T00:00:01Z"},
    ]
    reply = call(genviral_sandbox, "/_sandbox/posts", method="POST", key=None, payload=partials)
    assert reply.status == 200
    inserted = reply.body["data"]["posts"]
    assert [(row["genviralPostId"], row["platform"]) for row in inserted] == [
        ("gv-1", "instagram"),
        ("gv-2", "youtube"),
    ]
    assert ids(posts(genviral_sandbox, start="2026-01-20", end="2026-01-20")["posts"]) == ids(inserted[::-1])


def test_the_admin_endpoint_refuses_rows_it_cannot_read(genviral_sandbox: SandboxServer) -> None:
    reply = call(genviral_sandbox, "/_sandbox/posts", method="POST", key=None, payload=[{"publishedAt": "soon"}])
    assert reply.status == 400
    assert reply.body["error_code"] == "invalid_request"


def test_the_admin_endpoint_refuses_a_body_that_is_not_rows(genviral_sandbox: SandboxServer) -> None:
    assert call(genviral_sandbox, "/_sandbox/posts", method="POST", key=None, payload="rows").status == 400


def test_the_admin_endpoint_sets_faults(genviral_sandbox: SandboxServer) -> None:
    reply = call(genviral_sandbox, "/_sandbox/faults", method="POST", key=None, payload={"script": ["503"]})
    assert reply.status == 200
    assert reply.body["data"]["script"] == ["503"]
    assert call(genviral_sandbox).status == 503
    assert call(genviral_sandbox).status == 200


def test_the_admin_endpoint_refuses_unknown_fault_settings(genviral_sandbox: SandboxServer) -> None:
    reply = call(genviral_sandbox, "/_sandbox/faults", method="POST", key=None, payload={"chaos": True})
    assert reply.status == 400
    assert "chaos" in reply.body["message"]


def test_the_admin_endpoint_reports_request_counters(genviral_sandbox: SandboxServer) -> None:
    call(genviral_sandbox)
    call(genviral_sandbox, key=None)
    stats = call(genviral_sandbox, "/_sandbox/stats", key=None).body["data"]
    assert (stats["total"], stats["by_status"]) == (2, {"200": 1, "401": 1})
    assert [record["status"] for record in stats["recent"]] == [200, 401]


def test_the_admin_reset_clears_faults_and_counters(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.script = ["500", "500"]
    call(genviral_sandbox)
    assert call(genviral_sandbox, "/_sandbox/reset", method="POST", key=None).status == 200
    assert genviral_sandbox.stats.total == 0
    assert call(genviral_sandbox).status == 200


def test_the_admin_endpoint_changes_window_readings(genviral_sandbox: SandboxServer) -> None:
    settings = {"end_inclusive": False, "date_timezone": "Europe/Paris", "now": "2026-01-10T00:00:00Z"}
    reply = call(genviral_sandbox, "/_sandbox/settings", method="POST", key=None, payload=settings)
    assert reply.status == 200
    assert (genviral_sandbox.end_inclusive, genviral_sandbox.date_timezone) == (False, "Europe/Paris")
    assert genviral_sandbox.current_time() == dt.datetime(2026, 1, 10, tzinfo=UTC)


def test_an_unknown_admin_path_answers_404(genviral_sandbox: SandboxServer) -> None:
    assert call(genviral_sandbox, "/_sandbox/nothing", key=None).status == 404


# ------------------------------------------------------------------------------------------------- CLI


def test_the_command_line_prints_its_url_and_serves_until_terminated() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "genviral_provider.sandbox", "--port", "0", "--days", "2", "--rows-per-day", "5"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline().strip()
        assert first_line.startswith("Genviral sandbox listening on http://127.0.0.1:")
        url = first_line.rsplit(" ", 1)[1]
        assert process.stdout.readline().strip() == f"API key: {SANDBOX_API_KEY}"
        connection_line = process.stdout.readline().strip()
        assert connection_line.startswith("AIRFLOW_CONN_GENVIRAL_DEFAULT=")
        assert json.loads(connection_line.split("=", 1)[1].strip("'")) == {
            "conn_type": "genviral",
            "host": url,
            "password": SANDBOX_API_KEY,
        }
        served = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=10)
        served.request("GET", POSTS_PATH, headers={"Authorization": f"Bearer {SANDBOX_API_KEY}"})
        assert json.loads(served.getresponse().read())["data"]["totalCount"] == 10
        served.close()
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
