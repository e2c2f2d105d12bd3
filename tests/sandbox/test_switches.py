"""Specification of the sandbox's two reading switches: tied rows in a new order on every request (``shuffle_ties``,
``tie_seed``), and rows deleted between requests (``deletions_per_request``, ``max_deletions``, ``deletion_seed``).

Each does what it says, is reproducible from its seed, refuses bad values naming them, and changes nothing when off.
"""

# Test arguments shadow the fixtures imported below, on purpose: that is how pytest injects them.

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any

import pytest

from genviral_provider.sandbox import Dataset, Faults, SandboxServer
from genviral_provider.sandbox.__main__ import build_server, parse_args
from genviral_provider.sandbox.pytest_plugin import SandboxFactory
from tests.sandbox.test_server import call, posts

UTC = dt.timezone.utc
TIED_AT = "2026-01-10T10:00:00.000Z"


def _ids(page: dict[str, Any]) -> list[str]:
    return [row["id"] for row in page["posts"]]


def _tied_dataset(tied: int = 40, untied: int = 20) -> Dataset:
    """Return ``tied`` rows at one instant between ``untied`` rows a second apart on either side."""
    dataset = Dataset.empty()
    before = [{"publishedAt": f"2026-01-10T09:59:{second:02d}.000Z"} for second in range(untied)]
    after = [{"publishedAt": f"2026-01-10T10:00:{second + 1:02d}.000Z"} for second in range(untied)]
    dataset.insert([*before, *({"publishedAt": TIED_AT} for _ in range(tied)), *after])
    return dataset


def _orders(server: SandboxServer, requests: int = 6, **params: Any) -> list[list[str]]:
    query = {"start": "2026-01-10", "end": "2026-01-10", "sortOrder": "asc", "limit": 100, **params}
    return [_ids(posts(server, **query)) for _ in range(requests)]


# ---------------------------------------------------------------------------------------- tie order


def test_shuffled_ties_come_in_a_new_order_on_every_request(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(dataset=_tied_dataset(), shuffle_ties=True)
    orders = _orders(server)
    assert all(earlier != later for earlier, later in itertools.pairwise(orders))
    # Only the tied rows move: the rows around them keep their places, and every row is listed once.
    assert all(order[:20] == orders[0][:20] and order[60:] == orders[0][60:] for order in orders)
    assert all(sorted(order) == sorted(orders[0]) for order in orders)


def test_the_same_tie_seed_gives_the_same_orders_and_another_seed_others(
    genviral_sandbox_factory: SandboxFactory,
) -> None:
    seeded = [
        _orders(genviral_sandbox_factory(dataset=_tied_dataset(), shuffle_ties=True, tie_seed=seed))
        for seed in (3, 3, 4)
    ]
    assert seeded[0] == seeded[1]
    assert seeded[0] != seeded[2]


def test_setting_the_tie_seed_restarts_its_orders(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(dataset=_tied_dataset(), shuffle_ties=True, tie_seed=7)
    first = _orders(server, 3)
    reply = call(server, "/_sandbox/settings", method="POST", key=None, payload={"tie_seed": 7})
    assert reply.status == 200 and reply.body["data"]["tie_seed"] == 7
    assert _orders(server, 3) == first


def test_a_page_edge_inside_a_tie_still_lists_each_tied_row_once_across_the_pages(
    genviral_sandbox_factory: SandboxFactory,
) -> None:
    # Within one request the tied rows are shuffled across the page's edges: pages read together may repeat or
    # miss tied rows (what a client must cope with), but each page holds tied rows only where the tie lies.
    server = genviral_sandbox_factory(dataset=_tied_dataset(), shuffle_ties=True)
    first = posts(server, start="2026-01-10", end="2026-01-10", sortOrder="asc", limit=30, offset=0)
    second = posts(server, start="2026-01-10", end="2026-01-10", sortOrder="asc", limit=30, offset=30)
    instants = [row["publishedAt"] for row in first["posts"] + second["posts"]]
    assert instants == sorted(instants)
    assert instants[20:60] == [TIED_AT] * 40


@pytest.mark.parametrize("shuffle_ties", [False, True])
def test_without_ties_shuffling_changes_nothing(genviral_sandbox_factory: SandboxFactory, shuffle_ties: bool) -> None:
    untied = Dataset.empty()
    untied.insert([{"publishedAt": f"2026-01-10T10:{minute:02d}:00.000Z"} for minute in range(60)])
    reference = genviral_sandbox_factory(dataset=untied)
    server = genviral_sandbox_factory(dataset=untied, shuffle_ties=shuffle_ties)
    for offset in (0, 25, 50):
        assert _orders(server, 2, limit=25, offset=offset) == _orders(reference, 2, limit=25, offset=offset)


def test_off_tied_rows_keep_the_id_order_on_every_request(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(dataset=_tied_dataset())
    orders = _orders(server)
    assert all(order == orders[0] for order in orders)
    assert orders[0][20:60] == sorted(orders[0][20:60])


@pytest.mark.parametrize("seed", ["1", 1.5, True, None])
def test_a_bad_tie_seed_is_refused_naming_it(genviral_sandbox: SandboxServer, seed: Any) -> None:
    before = genviral_sandbox.settings()
    reply = call(
        genviral_sandbox, "/_sandbox/settings", method="POST", key=None, payload={"tie_seed": seed, "clamp_limit": True}
    )
    assert reply.status == 400
    assert "tie_seed must be an integer" in reply.body["message"] and repr(seed) in reply.body["message"]
    assert genviral_sandbox.settings() == before
    with pytest.raises(ValueError, match="tie_seed"):
        SandboxServer(tie_seed=seed)


# ---------------------------------------------------------------------------------------- deletions


def _two_days() -> Dataset:
    return Dataset.generate(start=dt.date(2026, 1, 9), days=2, rows_per_day=50, seed=5)


def _day_ids(server: SandboxServer, day: str) -> set[str]:
    return {row["id"] for row in server.dataset.rows if row["publishedAt"].startswith(day)}


def test_deletions_remove_rows_the_answered_query_selected_after_answering_it(
    genviral_sandbox_factory: SandboxFactory,
) -> None:
    server = genviral_sandbox_factory(dataset=_two_days(), faults=Faults(deletions_per_request=3))
    day_before, other_day = _day_ids(server, "2026-01-10"), _day_ids(server, "2026-01-09")

    page = posts(server, start="2026-01-10", end="2026-01-10", limit=100)

    assert page["totalCount"] == 50  # the answer is the data as it was; the rows go after it
    deleted = server.stats.deleted
    assert len(deleted) == 3 and set(deleted) <= day_before
    assert _day_ids(server, "2026-01-10") == day_before - set(deleted)
    assert _day_ids(server, "2026-01-09") == other_day
    assert posts(server, start="2026-01-10", end="2026-01-10", limit=100)["totalCount"] == 47
    assert server.faults.deleted == 6 and json.loads(json.dumps(server.stats.snapshot()))["deleted"] == 6


def test_deletions_follow_the_query_s_filters(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(dataset=_two_days(), faults=Faults(deletions_per_request=4))
    platform_of = {row["id"]: row["platform"] for row in server.dataset.rows}
    for _ in range(3):
        posts(server, start="2026-01-09", end="2026-01-10", platforms="youtube")
    assert len(server.stats.deleted) == 12
    assert {platform_of[row_id] for row_id in server.stats.deleted} == {"youtube"}


def test_deletions_stop_at_max_deletions(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(dataset=_two_days(), faults=Faults(deletions_per_request=4, max_deletions=10))
    for _ in range(5):
        posts(server, range="all")
    assert len(server.stats.deleted) == 10 and len(server.dataset) == 90
    server.faults.update(max_deletions=10)  # setting a deletion setting restarts the count
    posts(server, range="all")
    assert len(server.dataset) == 86


def test_the_same_deletion_seed_deletes_the_same_rows_and_another_seed_others(
    genviral_sandbox_factory: SandboxFactory,
) -> None:
    deleted = []
    for seed in (2, 2, 3):
        server = genviral_sandbox_factory(
            dataset=_two_days(), faults=Faults(deletions_per_request=5, deletion_seed=seed)
        )
        for _ in range(3):
            posts(server, range="all", limit=10)
        deleted.append(server.stats.deleted)
    assert deleted[0] == deleted[1]
    assert deleted[0] != deleted[2]


def test_deletions_follow_only_answered_posts_requests(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(dataset=_two_days(), faults=Faults(deletions_per_request=5, script=["500"]))
    call(server, params={"range": "all"})  # the scripted 500
    call(server, "/api/partner/v1/analytics/targets")
    assert call(server, params={"limit": 0}).status == 400
    assert len(server.dataset) == 100 and server.stats.deleted == []


def test_off_deletions_change_nothing(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(dataset=_two_days(), faults=Faults(max_deletions=50, deletion_seed=9))
    before = [dict(row) for row in server.dataset.rows]
    for offset in (0, 50):
        posts(server, range="all", limit=50, offset=offset)
    assert server.dataset.rows == before and server.stats.deleted == [] and server.faults.deleted == 0


def test_a_reset_restarts_the_deletion_count(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(dataset=_two_days(), faults=Faults(deletions_per_request=2, max_deletions=2))
    posts(server, range="all")
    assert call(server, "/_sandbox/reset", method="POST", key=None).status == 200
    assert server.faults.deleted == 0 and server.faults.deletions_per_request == 0


def test_deletions_are_set_through_the_admin_endpoint(genviral_sandbox_factory: SandboxFactory) -> None:
    server = genviral_sandbox_factory(dataset=_two_days())
    settings = {"deletions_per_request": 2, "max_deletions": 3, "deletion_seed": 1}
    reply = call(server, "/_sandbox/faults", method="POST", key=None, payload=settings)
    assert reply.status == 200 and {name: reply.body["data"][name] for name in settings} == settings
    for _ in range(3):
        posts(server, range="all")
    assert len(server.dataset) == 97


@pytest.mark.parametrize(
    ("name", "value"),
    [("deletions_per_request", -1), ("deletions_per_request", True), ("max_deletions", "10"), ("deletion_seed", 1.5)],
)
def test_a_bad_deletion_setting_is_refused_naming_it_and_what_is_allowed(
    genviral_sandbox: SandboxServer, name: str, value: Any
) -> None:
    reply = call(genviral_sandbox, "/_sandbox/faults", method="POST", key=None, payload={name: value})
    assert reply.status == 400
    message = reply.body["message"]
    assert f"{name}={value!r}" in message and "expected an integer" in message
    assert genviral_sandbox.faults == Faults()


def test_the_command_line_sets_both_switches_seeded_by_seed() -> None:
    args = ["--days", "2", "--rows-per-day", "5", "--seed", "4", "--shuffle-ties", "--deletions-per-request", "2"]
    server = build_server(parse_args([*args, "--max-deletions", "7"]))
    assert server.shuffle_ties and server.tie_seed == 4
    faults = server.faults
    assert (faults.deletions_per_request, faults.max_deletions, faults.deletion_seed) == (2, 7, 4)
    assert build_server(parse_args(["--days", "1"])).faults.deletions_per_request == 0
    with pytest.raises(SystemExit):
        parse_args(["--deletions-per-request", "-1"])
