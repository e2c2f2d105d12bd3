"""Ties across a seam: where the page after a tie starts, and when a tie is too large for any page."""

from __future__ import annotations

import logging

import pytest

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import PostsFilter
from genviral_provider.core.reading.seams import (
    MAX_TIED_ROWS,
    TieBeyondPage,
    check_tie,
    count_tie,
    offset_before_tie,
    parts_cover,
    refusal,
    require_parts_cover,
    split_tie,
)
from genviral_provider.exceptions import GenviralIncompleteWindowError

QUERY = PostsFilter(platforms=("tiktok",), accounts=("a1",))
TIED = "2026-01-10T12:00:00.000Z"


def _page(offset: int, untied: int, tied: int, *, has_more: bool = True) -> PostsPage:
    rows = [
        {"id": f"u{offset + n}", "publishedAt": f"2026-01-10T11:{n // 60:02d}:{n % 60:02d}.000Z"} for n in range(untied)
    ]
    rows += [{"id": f"t{offset + n}", "publishedAt": TIED} for n in range(tied)]
    return PostsPage(rows, 1000, has_more, offset)


def test_the_page_after_a_tie_in_the_overlap_starts_on_the_row_before_it() -> None:
    assert offset_before_tie(_page(200, 80, 20), 290) == 279
    assert offset_before_tie(_page(200, 99, 1), 290) == 290  # a last row alone: the stride holds it


def test_a_tie_filling_a_page_but_for_its_first_row_is_beyond_a_page() -> None:
    check_tie(QUERY, _page(0, 2, MAX_TIED_ROWS))  # fits: a page holds the row before, the tie and the row after
    with pytest.raises(TieBeyondPage) as raised:
        check_tie(QUERY, _page(300, 1, MAX_TIED_ROWS + 1), descending=True)
    assert (raised.value.offset, raised.value.descending, raised.value.total) == (301, True, 1000)


def test_a_tie_at_the_end_of_the_list_is_not_beyond_a_page() -> None:
    check_tie(QUERY, _page(0, 0, 100, has_more=False))


def test_a_tie_is_counted_up_to_the_first_row_at_another_instant() -> None:
    with pytest.raises(TieBeyondPage) as raised:
        check_tie(QUERY, _page(0, 1, 99))
    pages = {1: _page(1, 0, 100), 101: PostsPage([{"id": "t", "publishedAt": TIED}, {"id": "x"}], 1000, True, 101)}

    count = count_tie(pages.__getitem__, raised.value)

    assert count == 101
    assert "101 rows" in str(refusal(raised.value, count)) and "accounts=a1" in str(refusal(raised.value, count))


def test_parts_whose_counts_cover_the_part_need_no_recount() -> None:
    def recount() -> int:
        raise AssertionError("no recount needed")

    assert parts_cover(150, 150, recount) and parts_cover(152, 150, recount)


def test_parts_short_of_the_part_are_judged_against_a_recount_taken_after_them() -> None:
    # Rows deleted between the part's count and its parts' counts: the recount shows the parts hold them all.
    assert parts_cover(144, 150, lambda: 141)
    # Rows of no known target: the part still holds more than its parts, so splitting would lose them.
    assert not parts_cover(144, 150, lambda: 147)


def test_a_split_whose_counts_fall_short_is_refused_naming_both_counts() -> None:
    pages = [PostsPage([], 70, True, 0), PostsPage([], 74, True, 0)]
    require_parts_cover(QUERY, 144, pages, lambda: 999)  # covered: the recount is not asked

    with pytest.raises(GenviralIncompleteWindowError, match=r"holds 150 rows, but .* add up to 144"):
        require_parts_cover(QUERY, 150, pages, lambda: 147)


def test_a_tie_splits_below_the_filters_given_and_is_refused_counted_in_one_account() -> None:
    with pytest.raises(TieBeyondPage) as raised:
        check_tie(QUERY, _page(0, 1, 99))
    targets = [{"id": "a1", "platform": "tiktok"}, {"id": "a2", "platform": "tiktok"}]
    log = logging.getLogger("test")

    narrower = split_tie(raised.value, PostsFilter(platforms=("tiktok",)), lambda: targets, _no_fetch, log)
    assert [part.accounts for part in narrower] == [("a1",), ("a2",)]

    pages = {1: PostsPage([{"id": "t", "publishedAt": TIED}, {"id": "x"}], 1000, True, 1)}
    with pytest.raises(GenviralIncompleteWindowError, match=r"^1 rows of"):
        split_tie(raised.value, QUERY, lambda: targets, pages.__getitem__, log)


def _no_fetch(offset: int) -> PostsPage:
    raise AssertionError(f"a split needs no page (asked offset {offset})")
