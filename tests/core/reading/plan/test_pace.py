"""Where rows probably lie and how many dates a query may ask: the guesses that pick offsets, and their margins."""

from __future__ import annotations

import datetime as dt

import pytest

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import MAX_OFFSET, REACHABLE_ROWS, PostsFilter
from genviral_provider.core.reading.plan.pace import FEWER_DATES_FILL, REACH_SLACK, ZONE_STEP, Pace, dates_per_query
from genviral_provider.core.reading.run_window import RunWindow
from tests.core.reading.plan.fake_source import at, rows_between

DAY_QUERY = PostsFilter(start=dt.date(2026, 1, 5), end=dt.date(2026, 1, 6))
EVEN = Pace(zone=0, inclusive=False, per_second=12_000 / 86_400)


@pytest.mark.parametrize("zone_hours", [14, 5.75, 0, -11])
def test_the_apis_midnight_is_the_earliest_rows_time_rounded_down_to_a_zone_step(zone_hours: float) -> None:
    """``ZONE_STEP``: the earliest row comes a few minutes after the API's midnight; whole quarters cancel that."""
    midnight = at(5) - dt.timedelta(hours=zone_hours)
    first = PostsPage(
        rows_between(midnight + dt.timedelta(minutes=7), midnight + dt.timedelta(hours=4), 100), 2400, True
    )

    pace = Pace.estimate(DAY_QUERY, first, includes_end=False)

    assert pace is not None
    assert pace.zone == zone_hours * 3600
    assert pace.zone % ZONE_STEP == 0


def test_the_count_tells_whether_a_query_read_one_date_more() -> None:
    first = PostsPage(rows_between(at(5), at(5, 1), 100), total_count=4800, has_more=True)  # 100 an hour, two days

    pace = Pace.estimate(DAY_QUERY, first, includes_end=None)

    assert pace is not None and pace.inclusive
    assert pace.interval(DAY_QUERY) == (at(5).timestamp(), at(7).timestamp())


@pytest.mark.parametrize(
    ("start", "end", "reach"),
    [(0, 1, False), (22, 23, True), (11, 12, None)],
    ids=["near-the-start", "near-the-end", "in-the-middle"],
)
def test_offsets_reach_a_window_from_the_end_nearest_it(start: float, end: float, reach: bool | None) -> None:
    assert EVEN.reach(DAY_QUERY, RunWindow(at(5, start), at(5, end), "test"), 24_000) is reach


def test_a_window_the_pace_puts_just_inside_the_offset_cap_is_not_trusted_to_be_reached() -> None:
    """``REACH_SLACK``: the pace may misplace the window by a tenth of the query's rows."""
    total = 12_000
    hours_reached = MAX_OFFSET / total * 24  # where the pace puts the row at the offset cap
    slack_hours = REACH_SLACK * total / total * 24
    inside = RunWindow(at(5, 1), at(5, hours_reached - slack_hours / 2), "test")
    clear = RunWindow(at(5, 1), at(5, hours_reached - slack_hours * 1.01), "test")

    assert EVEN.reach(DAY_QUERY, inside, total) is None
    assert EVEN.reach(DAY_QUERY, clear, total) is False


@pytest.mark.parametrize("per_date", [1_000, 2_000, 3_000, 5_000])
def test_fewer_dates_are_planned_to_fill_part_of_what_offsets_reach(per_date: int) -> None:
    """``FEWER_DATES_FILL``: a query cut to fewer dates leaves room for a date busier than the average."""
    span = dates_per_query(7, 7 * per_date)

    assert span * per_date <= FEWER_DATES_FILL * REACHABLE_ROWS < (span + 1) * per_date


def test_fewer_dates_leave_a_fifth_of_the_reach_for_uneven_dates() -> None:
    assert dates_per_query(7, 7 * 2_000) == 4  # 8,000 rows; five dates (10,000) would all but fill the 10,100


def test_a_date_busier_than_offsets_reach_is_asked_alone() -> None:
    assert dates_per_query(3, 3 * 12_000) == 1
