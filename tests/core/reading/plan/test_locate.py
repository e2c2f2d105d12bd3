"""The search for the page where a window begins in one query, against rows in memory, and the margins it keeps."""

from __future__ import annotations

import datetime as dt
import math
import random

import pytest

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import MAX_LIMIT, PostsFilter
from genviral_provider.core.reading.plan.locate import (
    LOCAL_PACE_ERROR,
    LOCAL_REACH,
    MAX_LOCAL_STEPS,
    MAX_MISSES,
    SEARCH_MARGIN,
    SEARCH_SPREAD,
    _Search,
    extrapolated,
    interpolated_offset,
    locate,
    pace_margin,
)
from genviral_provider.core.reading.plan.pace import Pace
from genviral_provider.core.reading.plan.pages import Unreachable, sorted_request, times
from genviral_provider.core.reading.run_window import RunWindow
from genviral_provider.core.rows import Row
from tests.core.reading.plan.fake_source import ListSource, at, rows_between

DAY_QUERY = PostsFilter(start=dt.date(2026, 1, 5), end=dt.date(2026, 1, 6))


def search(rows: list[Row], window: RunWindow, *, descending: bool = False) -> tuple[PostsPage | None, ListSource]:
    """Locate ``window`` in the day's rows from the query's first page, as the reader does; return the page found."""
    source = ListSource(rows)

    def fetch(offset: int) -> PostsPage:
        return source.fetch(sorted_request(DAY_QUERY, descending=descending, offset=offset))

    return locate(fetch, DAY_QUERY, window, None, fetch(0), descending=descending), source


def test_an_ascending_search_ends_on_the_page_where_the_window_begins() -> None:
    span = RunWindow(at(5, 10), at(5, 11), "test")
    page, source = search(rows_between(at(5), at(6), 3000), span)
    assert page is not None
    found = times(page)
    assert found[0] < span.start <= found[-1]
    assert len(source.requests) <= 4  # the first page, then interpolation by the query's count and a page's pace


def test_a_descending_search_ends_on_the_page_where_the_window_ends() -> None:
    span = RunWindow(at(5, 10), at(5, 11), "test")
    page, source = search(rows_between(at(5), at(6), 3000), span, descending=True)
    assert page is not None
    found = times(page)
    assert found[0] >= span.end > found[-1]
    assert len(source.requests) <= 4


def test_uneven_rows_cannot_make_the_search_slow() -> None:
    """After ``MAX_MISSES`` interpolation steps that fail to halve the range the search bisects (interpolating all
    the way, this search takes 44 requests)."""
    # 4,800 of a day's 5,000 rows in one minute just after the window: the average pace misplaces it every time.
    rows = rows_between(at(5), at(6), 200, prefix="s") + rows_between(at(5, 21), at(5, 21 + 1 / 60), 4800)
    span = RunWindow(at(5, 20), at(5, 21), "test")
    source = ListSource(rows)

    def fetch(offset: int) -> PostsPage:
        return source.fetch(sorted_request(DAY_QUERY, descending=False, offset=offset))

    page = locate(
        fetch, DAY_QUERY, span, Pace(zone=0, inclusive=False, per_second=5000 / 86400), None, descending=False
    )

    assert page is not None
    found = times(page)
    assert found[0] < span.start <= found[-1]
    assert len(source.requests) <= MAX_MISSES + MAX_LOCAL_STEPS + math.ceil(math.log2(5000 / MAX_LIMIT)) + 2


def test_a_window_past_the_querys_rows_is_left_to_the_next_query() -> None:
    page, source = search(rows_between(at(5), at(5, 12), 3000), RunWindow(at(5, 23), at(6), "test"))
    assert page is None
    assert len(source.requests) == 1  # the pace of the first page already puts it past the query's 3,000 rows


def test_a_window_past_the_offset_cap_is_unreachable() -> None:
    with pytest.raises(Unreachable):
        search(rows_between(at(5), at(6), 12_000), RunWindow(at(5, 23), at(6), "test"))


def test_an_interpolated_page_starts_before_the_window_and_still_holds_its_first_row() -> None:
    """``SEARCH_SPREAD`` spreads plus ``SEARCH_MARGIN`` rows before the estimate: rarely past the window's first row
    (a request lost), seldom a whole page early (a page of rows outside the window read)."""
    rng = random.Random(7)
    span, share, trials = 2000, 0.4, 2000
    late = early = 0
    for _ in range(trials):
        before = sum(rng.random() < share for _ in range(span))  # rows before the window: binomial, as if uniform
        offset = interpolated_offset(0, span, share)
        late += offset > before
        early += before - offset >= MAX_LIMIT
    assert late / trials < 0.05
    assert early / trials < 0.01
    assert offset == round(share * span - SEARCH_SPREAD * math.sqrt(span * share * (1 - share))) - SEARCH_MARGIN


def test_a_guess_from_the_pace_so_far_starts_before_the_window_within_a_page() -> None:
    """``PACE_ERROR_SIGMAS`` errors before the guess: a page started there rarely passes the window's first row
    (the pace of the rows known and the rows still to come both vary), and it starts less than a page early."""
    rng = random.Random(3)
    rows_known, rows_to_window, trials, late = 1000, 200, 1000, 0
    for _ in range(trials):
        known_span = sum(rng.expovariate(1.0) for _ in range(rows_known))  # rows arriving at one a second
        actual, elapsed = 0, rng.expovariate(1.0)
        while elapsed < rows_to_window:  # the rows between the last known one and the window's start
            actual, elapsed = actual + 1, elapsed + rng.expovariate(1.0)
        guess = rows_known / known_span * rows_to_window
        late += guess - pace_margin(guess, rows_known) > actual
    assert late / trials < 0.01
    assert pace_margin(LOCAL_REACH, 2000) < MAX_LIMIT


def test_a_pages_own_pace_places_a_near_window_less_its_margin() -> None:
    page = PostsPage(rows_between(at(5), at(5, 1), 100), total_count=3000, has_more=True, offset=500)
    target = at(5, 1.5).timestamp()  # 50 rows past the page's last at its pace of 100 an hour

    offset = extrapolated(page, lambda t: t.timestamp(), target, near_side=True)

    distance = 99 / 3564 * (target - at(5, 0.99).timestamp())  # rows per second between its first and last rows
    margin = SEARCH_SPREAD * math.sqrt(distance) + LOCAL_PACE_ERROR * distance + SEARCH_MARGIN
    assert offset is not None and offset == pytest.approx(599 + distance - margin)
    assert 599 < offset < 599 + distance


def test_a_pages_own_pace_is_not_trusted_beyond_local_reach() -> None:
    page = PostsPage(rows_between(at(5), at(5, 1), 100), total_count=3000, has_more=True, offset=500)
    hours = (LOCAL_REACH + 10) / 100

    assert extrapolated(page, lambda t: t.timestamp(), at(5, 1 + hours).timestamp(), near_side=True) is None


def test_a_search_follows_a_pages_pace_at_most_max_local_steps_times() -> None:
    span = RunWindow(at(5, 10), at(5, 11), "test")
    state = _Search(span, False, 0.0, 3000, 99, at(5, 1).timestamp(), 3000, at(6).timestamp(), True, local=1234.0)
    assert state.next_offset() == 1234
    state.local_steps = MAX_LOCAL_STEPS
    assert state.next_offset() != 1234
