"""The correlation search: which pages, when to stop, and what counts as found."""

from __future__ import annotations

import datetime as dt
from typing import Any

from genviral_provider.core.api.client import GenviralClient
from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import MAX_OFFSET, PageRequest
from genviral_provider.core.api.settings import ClientSettings
from genviral_provider.core.correlation.query import CorrelationQuery
from genviral_provider.core.correlation.search import CorrelationResult, CorrelationSearch, TargetsRequest
from genviral_provider.core.reading.window import MAX_BRIDGE_REQUESTS
from genviral_provider.sandbox import Dataset, SandboxServer

SINCE = dt.datetime(2026, 1, 10, 12, tzinfo=dt.timezone.utc)
TODAY = dt.date(2026, 1, 15)
_counter = iter(range(1_000_000))


def row(published: str = "2026-01-14T10:00:00.000Z", **fields: Any) -> dict[str, Any]:
    """A row as the API returns it (only the keys the search reads, plus an id)."""
    return {"analyticsId": f"row-{next(_counter)}", "publishedAt": published, **fields}


def page(rows: list[dict[str, Any]], *, offset: int = 0, has_more: bool = True) -> PostsPage:
    return PostsPage(
        posts=rows, total_count=offset + len(rows) + (1 if has_more else 0), has_more=has_more, offset=offset
    )


def search(*, today: dt.date = TODAY, **kwargs: Any) -> CorrelationSearch:
    return CorrelationSearch(CorrelationQuery.parse(**{"since": SINCE, **kwargs}), today=today)


def next_page(state: CorrelationSearch) -> PageRequest | None:
    """Return the search's next request, which these tests expect to be a page (a targets request fails them)."""
    request = state.next_request()
    assert not isinstance(request, TargetsRequest), request
    return request


# ------------------------------------------------------------------------------------------ the pages


def test_the_first_request_reads_newest_first_over_the_dates_holding_since_to_the_end_of_today_in_any_zone() -> None:
    # 12:00 UTC on 01-10 is on 01-09 at UTC-14; the end of 01-15 UTC is 01-16 14:00 at UTC+14, which an exclusive
    # `end` only holds as 01-17.
    request = next_page(search(genviral_post_ids=["a"], platforms="tiktok"))

    assert request is not None
    assert request.params() == {
        "start": "2026-01-09",
        "end": "2026-01-17",
        "platforms": "tiktok",
        "sortBy": "published_at",
        "sortOrder": "desc",
        "limit": "100",
        "offset": "0",
    }


def test_rows_match_by_genviral_post_id_or_external_id() -> None:
    state = search(genviral_post_ids=["post-a"], external_ids=["ext-b"])
    by_post, by_external = row(genviralPostId="post-a"), row(genviralPostId="other", externalId="ext-b")

    state.consume(page([row(genviralPostId=None, externalId=None), by_post, row(), by_external]))

    assert state.found == {"post-a": [by_post], "ext-b": [by_external]}
    assert state.missing == ()
    assert state.satisfied and state.done


def test_a_post_on_several_accounts_has_several_rows_each_counted_once() -> None:
    state = search(genviral_post_ids=["post-a", "post-b"])
    first, second = row(genviralPostId="post-a"), row(genviralPostId="post-a")

    state.consume(page([first, second]))
    state.consume(page([second, row()], offset=100))  # rows shifted by new arrivals: `second` seen twice

    assert state.found == {"post-a": [first, second]}
    assert state.missing == ("post-b",)


def test_paging_continues_while_ids_are_missing_and_stops_once_every_id_is_found() -> None:
    state = search(genviral_post_ids=["post-a", "post-b"])

    state.consume(page([row(genviralPostId="post-a"), row()]))
    following = next_page(state)
    assert following is not None and following.offset == 1  # a short page: the next one overlaps its last row

    state.consume(page([row(genviralPostId="post-b")], offset=1))
    assert state.done and state.next_request() is None
    assert state.requests == 2


def test_match_any_is_satisfied_by_one_id_but_keeps_reading_for_the_others() -> None:
    state = search(genviral_post_ids=["post-a", "post-b"], match="any")

    state.consume(page([row(genviralPostId="post-a")]))

    assert state.satisfied and not state.done
    assert state.result().found.keys() == {"post-a"}


def test_paging_stops_at_rows_published_before_since_which_never_match() -> None:
    state = search(genviral_post_ids=["post-a", "post-b"])
    old = row("2026-01-10T11:59:59.999Z", genviralPostId="post-b")

    state.consume(page([row(genviralPostId="post-a"), old]))

    assert state.done
    assert state.missing == ("post-b",)


def test_paging_stops_when_the_api_has_no_more_rows() -> None:
    state = search(genviral_post_ids=["post-a"])

    state.consume(page([row()], has_more=False))

    assert state.done and not state.satisfied
    assert state.result().missing == ("post-a",)


def test_rows_of_older_api_versions_without_the_correlation_keys_are_skipped() -> None:
    state = search(genviral_post_ids=["post-a"])

    state.consume(page([{"id": "legacy", "publishedAt": "2026-01-14T10:00:00.000Z"}, {"id": "no-date"}]))

    assert state.found == {} and not state.done


def newest_first(latest: str, count: int = 100) -> list[dict[str, Any]]:
    """``count`` rows one second apart, newest first from ``latest``."""
    top = dt.datetime.fromisoformat(latest)
    return [row((top - dt.timedelta(seconds=n)).isoformat()) for n in range(count)]


def test_pages_overlap_by_ten_rows() -> None:
    state = search(genviral_post_ids=["post-a"])

    state.consume(page(newest_first("2026-01-14T10:00:00+00:00")))

    assert state.next_request().offset == 90  # type: ignore[union-attr]


def test_a_tie_reaching_into_the_overlap_is_read_from_the_row_before_it() -> None:
    state = search(genviral_post_ids=["post-a"])
    rows = newest_first("2026-01-14T10:00:00+00:00", 80) + [row("2026-01-14T09:00:00+00:00")] * 20

    state.consume(page(rows))

    assert state.next_request().offset == 79  # type: ignore[union-attr]


def test_a_seam_that_does_not_hold_is_read_again_nearer_the_page_before_and_proves_nothing_until_it_does() -> None:
    state = search(genviral_post_ids=["post-a"])
    state.consume(page(newest_first("2026-01-14T10:00:00+00:00")))
    gap = page([row("2026-01-11T00:00:00.000Z"), row("2026-01-10T00:00:00.000Z")], offset=90, has_more=False)

    state.consume(gap)  # starts after the first page's last row (rows deleted between): the rows between are unread

    assert not state.done  # neither its end of the list nor its row before `since` proves anything
    assert state.next_request().offset == 45  # type: ignore[union-attr]
    state.consume(page(newest_first("2026-01-14T09:59:15+00:00", 55), offset=45))
    assert not state.done and state.next_request().offset == 90  # type: ignore[union-attr]


def test_seams_that_never_hold_end_the_search_saying_so() -> None:
    state = search(genviral_post_ids=["post-a"])
    state.consume(page(newest_first("2026-01-14T10:00:00+00:00")))
    requests = 0
    while (request := next_page(state)) is not None and requests < 1_000:
        state.consume(page(newest_first("2026-01-12T10:00:00+00:00"), offset=request.offset))
        requests += 1

    assert requests == MAX_BRIDGE_REQUESTS + 1
    assert state.incomplete is not None and "did not meet it in 200 requests" in state.incomplete


def tie_page() -> PostsPage:
    return page([row("2026-01-14T09:00:00+00:00")] + [row("2026-01-14T08:00:00+00:00")] * 99)


def test_a_tie_too_large_for_a_page_is_searched_again_one_platform_at_a_time() -> None:
    state = search(genviral_post_ids=["post-a"])
    state.consume(tie_page())
    platforms = []

    while (request := next_page(state)) is not None:
        platforms.append((request.filter.platforms, request.offset))
        state.consume(page([row()], has_more=False))

    assert platforms == [(("instagram",), 0), (("tiktok",), 0), (("youtube",), 0)]
    assert state.incomplete is None and state.missing == ("post-a",)


def test_a_tie_too_large_in_one_platform_is_searched_again_by_the_accounts_asked() -> None:
    state = search(genviral_post_ids=["post-a"], platforms="tiktok", accounts=["acc-1", "acc-2"])
    state.consume(tie_page())

    request = next_page(state)

    assert request is not None and (request.filter.accounts, request.offset) == (("acc-1",), 0)


TARGETS = [
    {"id": "tt-1", "platform": "tiktok"},
    {"id": "tt-2", "platform": "tiktok"},
    {"id": "ig-1", "platform": "instagram"},
    {"platform": "tiktok"},  # no id: cannot be asked for
]


def test_a_tie_too_large_in_one_platform_without_accounts_is_searched_again_by_the_keys_targets() -> None:
    state = search(genviral_post_ids=["post-a"], platforms="tiktok")
    state.consume(tie_page())

    assert isinstance(state.next_request(), TargetsRequest)
    state.consume_targets(TARGETS)
    asked, totals = [], iter([60, 41])  # the tie page's 101 rows, between the two accounts
    while (request := state.next_request()) is not None:
        assert isinstance(request, PageRequest)
        asked.append((request.filter.accounts, request.offset))
        state.consume(PostsPage(posts=[row()], total_count=next(totals), has_more=False))

    assert asked == [(("tt-1",), 0), (("tt-2",), 0)]
    assert state.requests == 4 and state.incomplete is None


def test_accounts_of_the_targets_whose_counts_leave_tied_rows_out_are_named_as_incomplete() -> None:
    state = search(genviral_post_ids=["post-a"], platforms="tiktok")
    state.consume(tie_page())  # totalCount 101
    state.consume_targets(TARGETS)

    state.consume(PostsPage(posts=[row()], total_count=60, has_more=False))
    assert state.incomplete is None
    state.consume(PostsPage(posts=[row()], total_count=40, has_more=False))

    assert state.done and state.incomplete is not None
    assert "held 101 rows, but its accounts' parts add up to 100" in state.incomplete


def test_a_tie_too_large_for_one_platform_without_targets_ends_the_search_saying_so() -> None:
    state = search(genviral_post_ids=["post-a"], platforms="youtube")
    state.consume(tie_page())

    state.consume_targets(TARGETS)  # none on youtube

    assert state.done and state.next_request() is None and state.incomplete is not None
    assert "more than 98 rows share publishedAt 2026-01-14T08:00:00+00:00" in state.incomplete
    assert "narrow the search with platforms or accounts" in state.incomplete


def test_a_tie_too_large_for_one_account_ends_the_search_without_asking_for_targets() -> None:
    state = search(genviral_post_ids=["post-a"], platforms="tiktok", accounts="tt-1")

    state.consume(tie_page())

    assert state.done and state.requests == 1 and state.incomplete is not None


def test_at_the_offset_cap_the_window_ends_earlier_and_paging_restarts() -> None:
    state = search(genviral_post_ids=["post-a"])
    state.consume(page(newest_first("2026-01-12T08:00:00+00:00"), offset=MAX_OFFSET))

    request = next_page(state)

    assert request is not None
    assert (request.offset, request.filter.end) == (0, dt.date(2026, 1, 13))
    assert state.incomplete is None


def test_at_the_offset_cap_the_new_end_holds_the_oldest_row_in_every_zone() -> None:
    # 01-12 20:00 UTC is on 01-13 at UTC+14, which an exclusive `end` holds only as 01-14.
    state = search(genviral_post_ids=["post-a"])
    state.consume(page(newest_first("2026-01-12T20:01:40+00:00"), offset=MAX_OFFSET))

    assert state.next_request().filter.end == dt.date(2026, 1, 14)  # type: ignore[union-attr]


def test_at_the_offset_cap_without_progress_the_search_ends_saying_so() -> None:
    state = search(genviral_post_ids=["post-a"], today=dt.date(2026, 1, 11))
    state.consume(page(newest_first("2026-01-11T21:00:00+00:00"), offset=MAX_OFFSET))

    assert state.done
    assert state.incomplete is not None and "narrow the search" in state.incomplete
    assert state.result().incomplete == state.incomplete


# ------------------------------------------------------------------------------ through a real client


def test_a_search_through_the_sync_client_stops_paging_once_every_id_is_found() -> None:
    dataset = Dataset.generate(start=dt.date(2026, 1, 12), days=3, rows_per_day=200, seed=1)
    now = dt.datetime(2026, 1, 15, 12, tzinfo=dt.timezone.utc)
    with SandboxServer(dataset=dataset, now=now) as server:
        server.insert_posts([{"genviralPostId": "post-a", "publishedAt": "2026-01-14T20:00:00Z"}] * 2)
        client = GenviralClient(ClientSettings(base_url=server.url, api_key=server.api_key))
        state = search(genviral_post_ids=["post-a"], today=now.date())

        while (request := next_page(state)) is not None:
            state.consume(client.fetch(request))

    assert [len(rows) for rows in state.found.values()] == [2]
    assert state.requests == server.stats.total == 1  # 600 rows in the window: it stopped at the first page


def test_result_rows_are_each_row_once_and_only_the_keys_asked() -> None:
    both = {"analyticsId": "a1", "genviralPostId": "p", "externalId": "x"}
    other = {"analyticsId": "a2", "genviralPostId": "p"}
    result = CorrelationResult(found={"p": [both, other], "x": [both]}, missing=(), satisfied=True)

    assert result.rows() == [both, other]
    assert result.rows(["a2"]) == [other]
    assert result.rows([]) == []
