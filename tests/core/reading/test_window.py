"""Window planning: page offsets, seam verification and date splitting (reads over HTTP: tests/hooks)."""

from __future__ import annotations

import datetime as dt

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import MAX_OFFSET, posts_filter
from genviral_provider.core.reading.window import (
    PAGE_STRIDE,
    narrowest_split,
    planned_offsets,
    seam_holds,
    split_by_date,
)


def page(*published: str, offset: int = 0, has_more: bool = True) -> PostsPage:
    posts = [{"id": f"r{offset + i}", "publishedAt": p} for i, p in enumerate(published)]
    return PostsPage(posts=posts, total_count=10_000, has_more=has_more, offset=offset)


def test_one_page_needs_no_more_offsets() -> None:
    assert planned_offsets(0) == [] and planned_offsets(100) == []


def test_pages_overlap_by_the_stride() -> None:
    assert planned_offsets(250) == [PAGE_STRIDE, 2 * PAGE_STRIDE]


def test_the_last_reachable_page_is_planned_at_the_offset_cap() -> None:
    offsets = planned_offsets(10_100)
    assert offsets[-1] == MAX_OFFSET
    assert offsets[-2] + 100 > MAX_OFFSET - PAGE_STRIDE


def test_seam_holds_when_the_next_page_starts_before_the_previous_ends() -> None:
    before = page("2026-01-01T00:00:00.000Z", "2026-01-01T00:05:00.000Z")
    after = page("2026-01-01T00:04:00.000Z", "2026-01-01T00:09:00.000Z", offset=90)
    assert seam_holds(before, after)


def test_seam_breaks_when_pages_only_touch_at_a_tie() -> None:
    # Rows tied at 00:05 may be split between both pages differently in each request.
    before = page("2026-01-01T00:00:00.000Z", "2026-01-01T00:05:00.000Z")
    after = page("2026-01-01T00:05:00.000Z", "2026-01-01T00:09:00.000Z", offset=90)
    assert not seam_holds(before, after)


def test_a_descending_seam_holds_when_the_next_page_starts_after_the_previous_ends() -> None:
    before = page("2026-01-01T00:09:00.000Z", "2026-01-01T00:05:00.000Z")
    assert seam_holds(before, page("2026-01-01T00:06:00.000Z", offset=90), descending=True)
    assert not seam_holds(before, page("2026-01-01T00:05:00.000Z", offset=90), descending=True)
    assert not seam_holds(before, page("2026-01-01T00:04:00.000Z", offset=90), descending=True)


def test_seam_breaks_when_the_next_page_moved_past_the_previous() -> None:
    before = page("2026-01-01T00:00:00.000Z", "2026-01-01T00:05:00.000Z")
    after = page("2026-01-01T00:06:00.000Z", "2026-01-01T00:09:00.000Z", offset=90)
    assert not seam_holds(before, after)


def test_seam_after_the_end_of_the_list_holds() -> None:
    before = page("2026-01-01T00:00:00.000Z", has_more=False)
    assert seam_holds(before, page("2026-01-02T00:00:00.000Z", offset=90))


def test_seam_without_timestamps_needs_a_shared_row() -> None:
    before = PostsPage(posts=[{"id": "a"}, {"id": "b"}], total_count=9, has_more=True)
    assert seam_holds(before, PostsPage(posts=[{"id": "b"}, {"id": "c"}], total_count=9, has_more=True, offset=1))
    assert not seam_holds(before, PostsPage(posts=[{"id": "c"}], total_count=9, has_more=True, offset=2))


def test_date_split_halves_share_their_boundary_date() -> None:
    left, right = split_by_date(posts_filter("2026-01-01", "2026-01-31", platforms=["tiktok"]))
    assert (left.start, left.end) == (dt.date(2026, 1, 1), dt.date(2026, 1, 16))
    assert (right.start, right.end) == (dt.date(2026, 1, 16), dt.date(2026, 1, 31))
    assert left.platforms == right.platforms == ("tiktok",)


TARGETS = [
    {"id": "tt-1", "platform": "tiktok"},
    {"id": "tt-2", "platform": "tiktok"},
    {"id": "ig-1", "platform": "instagram"},
]


def test_the_narrowest_split_passes_over_a_platform_that_holds_every_target() -> None:
    only_tiktok = [t for t in TARGETS if t["platform"] == "tiktok"]
    parts = narrowest_split(posts_filter("2026-01-01", "2026-01-02"), lambda: only_tiktok)
    assert [(p.platforms, p.accounts) for p in parts] == [(("tiktok",), ("tt-1",)), (("tiktok",), ("tt-2",))]


def test_the_narrowest_split_stops_at_the_first_level_that_splits() -> None:
    parts = narrowest_split(posts_filter("2026-01-01", "2026-01-02"), lambda: TARGETS)
    assert [p.platforms for p in parts] == [("instagram",), ("tiktok",)]
    assert all(p.accounts == () for p in parts)


def test_nothing_narrows_one_account_and_a_lone_target_is_the_deepest_split() -> None:
    one = posts_filter("2026-01-01", "2026-01-02", platforms="tiktok", accounts="tt-1")
    assert narrowest_split(one, lambda: TARGETS) == []
    lone = [{"id": "ig-1", "platform": "instagram"}]
    assert narrowest_split(posts_filter("2026-01-01", "2026-01-02"), lambda: lone) == [
        posts_filter("2026-01-01", "2026-01-02", platforms="instagram", accounts="ig-1")
    ]
