"""The correlation search finds every row that exists, whatever the API reorders, deletes or reads its dates as.

The sensors' search pages newest first. With ties listed in a new order on every request (``shuffle_ties``), or rows
deleted between requests (``deletions_per_request``), pages that merely follow each other hide rows: before its seams
were proven, one search over the data below missed 19 to 23 of the 93 ids sought (90 tied, the 3 oldest) with ties
shuffled, and 1 to 3 with rows deleted; now none, in 7 to 25 requests. A post published late today was never found
when the API reads dates in UTC+14 with ``end`` excluded. Every search here is bounded in requests and in time.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from typing import Any

import pytest

from genviral_provider.core.api.client import GenviralClient
from genviral_provider.core.api.settings import ClientSettings
from genviral_provider.core.correlation import CorrelationQuery, CorrelationResult, CorrelationSearch, TargetsRequest
from genviral_provider.sandbox import TARGETS_PATH, Dataset, Faults, SandboxServer
from genviral_provider.sandbox.pytest_plugin import SandboxFactory
from tests.hostile.test_switches import READINGS

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 1, 12, 23, 0, tzinfo=UTC)
SINCE = dt.datetime(2026, 1, 9, tzinfo=UTC)
SWITCHES = ("ties-shuffled", "rows-deleted")
#: Bounds of one search: requests answered by the sandbox (7 to 25 measured here), and seconds (under 0.2).
MAX_REQUESTS = 40
MAX_SECONDS = 30.0


def _stamp(instant: dt.datetime) -> str:
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dataset(tie: int = 90) -> Dataset:
    """Return 120 posts a day from 2026-01-08 to 01-12 (midnight included), a tie of ``tie`` rows at 01-10 12:00
    and one of 40 at 18:00, every row with its own ``genviralPostId``."""
    dataset = Dataset.empty(targets_per_platform=2, seed=3)
    rng = random.Random(11)
    instants = []
    for day in range(8, 13):
        midnight = dt.datetime(2026, 1, day, tzinfo=UTC)
        instants += [midnight] + [midnight + dt.timedelta(seconds=rng.uniform(0, 82_000)) for _ in range(119)]
    instants += [dt.datetime(2026, 1, 10, 12, tzinfo=UTC)] * tie + [dt.datetime(2026, 1, 10, 18, tzinfo=UTC)] * 40
    rows = [{"publishedAt": _stamp(instant), "genviralPostId": f"post-{n}"} for n, instant in enumerate(instants)]
    dataset.insert(rows, rng=random.Random(12))
    return dataset


def _switched_on(switch: str, seed: int) -> dict[str, Any]:
    if switch == "ties-shuffled":
        return {"shuffle_ties": True, "tie_seed": seed}
    return {"faults": Faults(deletions_per_request=3, max_deletions=60, deletion_seed=seed)}


def _search(server: SandboxServer, ids: list[str], since: dt.datetime = SINCE) -> CorrelationResult:
    client = GenviralClient(ClientSettings(base_url=server.url, api_key=server.api_key, max_retry_wait=1))
    search = CorrelationSearch(CorrelationQuery.parse(genviral_post_ids=ids, since=since), today=NOW.date())
    while (request := search.next_request()) is not None:
        if isinstance(request, TargetsRequest):
            search.consume_targets(client.targets())
        else:
            search.consume(client.fetch(request))
    return search.result()


def _tied_ids(server: SandboxServer) -> list[str]:
    return [row["genviralPostId"] for row in server.dataset.rows if row["publishedAt"].endswith("T12:00:00.000Z")]


def _oldest_ids(server: SandboxServer, count: int) -> list[str]:
    rows = [row for row in server.dataset.rows if row["publishedAt"] >= _stamp(SINCE)]
    return [row["genviralPostId"] for row in sorted(rows, key=lambda row: row["publishedAt"])[:count]]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("switch", SWITCHES)
@pytest.mark.parametrize("reading", list(READINGS.values()), ids=list(READINGS))
def test_the_search_finds_every_row_that_existed_with_a_switch_on_under_every_date_reading(
    genviral_sandbox_factory: SandboxFactory, reading: tuple[bool, str], switch: str, seed: int
) -> None:
    end_inclusive, zone = reading
    server = genviral_sandbox_factory(
        dataset=_dataset(), now=NOW, end_inclusive=end_inclusive, date_timezone=zone, **_switched_on(switch, seed)
    )
    wanted = _tied_ids(server) + _oldest_ids(server, 3)  # the oldest keep the search going to `since`
    post_ids = {row["id"]: row["genviralPostId"] for row in server.dataset.rows}
    began = time.monotonic()

    result = _search(server, wanted)

    seconds = time.monotonic() - began
    deleted = {post_ids[row_id] for row_id in server.stats.deleted}
    assert set(result.missing) <= deleted, f"{len(set(result.missing) - deleted)} id(s) that existed were missed"
    assert result.incomplete is None
    assert server.stats.total <= MAX_REQUESTS and seconds < MAX_SECONDS


@pytest.mark.parametrize("reading", list(READINGS.values()), ids=list(READINGS))
def test_a_post_published_late_today_is_found_under_every_date_reading(
    genviral_sandbox_factory: SandboxFactory, reading: tuple[bool, str]
) -> None:
    end_inclusive, zone = reading
    server = genviral_sandbox_factory(dataset=_dataset(), now=NOW, end_inclusive=end_inclusive, date_timezone=zone)
    server.insert_posts([{"genviralPostId": "fresh", "publishedAt": _stamp(NOW - dt.timedelta(minutes=30))}])

    result = _search(server, ["fresh"], since=NOW - dt.timedelta(hours=2))

    assert result.missing == () and result.requests == 1


def test_a_tie_too_large_for_a_page_is_found_whole_one_platform_at_a_time(
    genviral_sandbox_factory: SandboxFactory,
) -> None:
    server = genviral_sandbox_factory(dataset=_dataset(tie=150), now=NOW, shuffle_ties=True, tie_seed=1)
    tied = [row for row in server.dataset.rows if row["publishedAt"].endswith("T12:00:00.000Z")]
    assert max(Counter(row["platform"] for row in tied).values()) <= 98  # each platform's share fits a page

    result = _search(server, _tied_ids(server) + _oldest_ids(server, 1))

    assert result.missing == () and result.incomplete is None
    assert server.stats.total <= MAX_REQUESTS


def _tie_in_one_platform(accounts: int) -> Dataset:
    """Return the days of :func:`_dataset` and 150 rows at 01-10 12:00 on TikTok, spread over ``accounts`` of its
    accounts (two exist)."""
    dataset = _dataset(tie=0)
    tiktok = [target.id for target in dataset.targets if target.platform == "tiktok"][:accounts]
    tie = [
        {"publishedAt": "2026-01-10T12:00:00.000Z", "targetId": tiktok[n % len(tiktok)], "genviralPostId": f"tie-{n}"}
        for n in range(150)
    ]
    dataset.insert(tie, rng=random.Random(13))
    return dataset


@pytest.mark.parametrize("seed", [1, 2])
def test_a_tie_too_large_for_one_platform_is_found_whole_one_account_of_the_keys_targets_at_a_time(
    genviral_sandbox_factory: SandboxFactory, seed: int
) -> None:
    server = genviral_sandbox_factory(dataset=_tie_in_one_platform(2), now=NOW, shuffle_ties=True, tie_seed=seed)

    result = _search(server, _tied_ids(server) + _oldest_ids(server, 1))

    assert result.missing == () and result.incomplete is None
    assert sum(1 for record in server.stats.requests if record.path == TARGETS_PATH) == 1
    assert server.stats.total <= MAX_REQUESTS


def test_a_tie_too_large_for_one_account_ends_the_search_saying_so_rather_than_missing_rows(
    genviral_sandbox_factory: SandboxFactory,
) -> None:
    server = genviral_sandbox_factory(dataset=_tie_in_one_platform(1), now=NOW, shuffle_ties=True, tie_seed=1)

    result = _search(server, _tied_ids(server) + _oldest_ids(server, 1))

    assert result.missing and not result.satisfied
    assert result.incomplete is not None
    assert "more than 98 rows share publishedAt 2026-01-10T12:00:00+00:00" in result.incomplete
    assert (
        "platforms=tiktok" in result.incomplete and "narrow the search with platforms or accounts" in result.incomplete
    )
    assert server.stats.total <= MAX_REQUESTS
