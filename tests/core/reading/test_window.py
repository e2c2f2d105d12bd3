"""The window reader's pages: offsets planned with overlap, and what a seam between two pages proves."""

from __future__ import annotations

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import MAX_OFFSET
from genviral_provider.core.reading.seams import seam_holds
from genviral_provider.core.reading.window import PAGE_STRIDE, planned_offsets


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
