"""Reading one query's slice of the window page by page, against rows in memory: seams, order, the offset cap."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import MAX_LIMIT, MAX_OFFSET, PageRequest, PostsFilter
from genviral_provider.core.reading.plan import WindowPlanReader
from genviral_provider.core.reading.plan.pace import Pace
from genviral_provider.core.reading.plan.pages import MAX_REPAIR_REQUESTS
from genviral_provider.core.reading.plan.scan import SCAN_OVERLAP, SCAN_STRIDE
from genviral_provider.core.reading.run_window import RunWindow
from genviral_provider.core.rows import Row, published_at, row_key
from genviral_provider.exceptions import GenviralIncompleteWindowError
from tests.core.reading.plan.fake_source import ListSource, at, rows_between

DAY_QUERY = PostsFilter(start=dt.date(2026, 1, 5), end=dt.date(2026, 1, 6))


def scan(source: Any, span: RunWindow, *, descending: bool = False) -> tuple[list[Row], WindowPlanReader]:
    """Scan the day's query from its first page in the given order; return the rows yielded and the reader."""
    reader = WindowPlanReader(source, span, PostsFilter())
    first = reader._fetch(DAY_QUERY, descending=descending)
    return list(reader._scan(DAY_QUERY, first, descending=descending)), reader


def in_window(rows: list[Row], span: RunWindow) -> list[str]:
    return [row_key(row) for row in rows if (t := published_at(row)) is not None and span.contains(t)]


def test_an_ascending_scan_yields_the_window_in_order_and_stops_at_its_end() -> None:
    rows = rows_between(at(5), at(6), 1000)
    span = RunWindow(at(5, 2), at(5, 4), "test")
    source = ListSource(rows)

    kept, _ = scan(source, span)

    assert in_window(kept, span) == in_window(rows, span)
    last_page = (len(in_window(rows[: round(1000 * 4 / 24)], RunWindow(at(5), span.end, "test")))) // SCAN_STRIDE
    assert source.offsets() == [SCAN_STRIDE * page for page in range(last_page + 1)]


@pytest.mark.parametrize("tied", [SCAN_OVERLAP - 1, SCAN_OVERLAP, 60, MAX_LIMIT - 2])
def test_rows_tied_at_a_seam_are_read_from_the_row_before_them_at_no_extra_cost(tied: int) -> None:
    """``SCAN_OVERLAP``: the seam holds when the next page begins with a row strictly earlier than the previous
    page's last; rows tied there take that proof away, so the next page starts on the row just before them (which
    holds still while tied rows move), instead of stepping back until a seam holds."""
    rows = rows_between(at(5), at(6), 1000)
    for row in rows[MAX_LIMIT - tied : MAX_LIMIT]:
        row["publishedAt"] = rows[MAX_LIMIT - 1]["publishedAt"]
    source = ListSource(rows)

    kept, _ = scan(source, RunWindow(at(5), at(5, 3), "test"))

    assert SCAN_STRIDE == MAX_LIMIT - SCAN_OVERLAP
    assert source.offsets()[:2] == [0, min(SCAN_STRIDE, MAX_LIMIT - tied - 1)]
    assert source.offsets() == sorted(set(source.offsets()))  # never a page read again, never a step back
    assert len(kept) == len(set(map(row_key, kept))) >= 125


def test_a_descending_scan_yields_the_window_in_ascending_order() -> None:
    rows = rows_between(at(5), at(6), 1000)
    span = RunWindow(at(5, 20), at(5, 22), "test")
    source = ListSource(rows)

    kept, _ = scan(source, span, descending=True)

    assert in_window(kept, span) == in_window(rows, span)
    assert all(request.sort_order == "desc" for request in source.requests)


def test_a_seam_that_moved_is_read_again_without_losing_a_row() -> None:
    rows = rows_between(at(5), at(6), 1000)
    span = RunWindow(at(5), at(5, 5), "test")

    def delete_early_rows(request: PageRequest) -> None:
        if request.offset == SCAN_STRIDE and rows[0]["id"] == "r0":
            del rows[:10]  # rows deleted before the next page: it would begin 10 rows too late

    source = ListSource(rows, on_fetch=delete_early_rows)
    expected = in_window(list(rows), span)

    kept, _ = scan(source, span)

    assert set(in_window(kept, span)) >= set(expected[10:])
    assert source.offsets()[:3] == [0, SCAN_STRIDE, SCAN_STRIDE // 2]


class _Drifting:
    """A list whose rows move on faster than it can be read: every page begins after the one before ends."""

    def __init__(self) -> None:
        self.requests = 0

    def fetch(self, request: PageRequest) -> PostsPage:
        self.requests += 1
        start = at(5) + dt.timedelta(minutes=self.requests * 10)
        return PostsPage(
            rows_between(start, start + dt.timedelta(minutes=5), MAX_LIMIT, prefix=f"{self.requests}-"),
            5000,
            True,
            request.offset,
        )

    def fetch_all(self, requests: Sequence[PageRequest]) -> Iterator[PostsPage]:
        return (self.fetch(request) for request in requests)

    def targets(self) -> list[dict[str, Any]]:
        return []


def test_a_seam_that_never_holds_ends_the_window_after_max_repair_requests() -> None:
    source = _Drifting()
    with pytest.raises(GenviralIncompleteWindowError, match=f"after {MAX_REPAIR_REQUESTS} requests"):
        scan(source, RunWindow(at(5), at(6), "test"))
    assert source.requests == 1 + MAX_REPAIR_REQUESTS


def test_a_scan_that_reaches_the_offset_cap_reads_the_rest_from_the_other_end() -> None:
    rows = rows_between(at(5), at(6), 12_000)
    span = RunWindow(at(5, 1), at(5, 23), "test")
    source = ListSource(rows)

    kept, _ = scan(source, span)

    assert sorted(in_window(kept, span)) == sorted(in_window(rows, span))
    assert len(kept) == len(set(map(row_key, kept)))
    ascending = [r.offset for r in source.requests if r.sort_order == "asc"]
    assert max(ascending) == MAX_OFFSET
    assert any(r.sort_order == "desc" for r in source.requests)


@pytest.mark.parametrize("end_inclusive", [True, False], ids=["end-inclusive", "end-exclusive"])
def test_the_reader_keeps_exactly_the_windows_rows_from_a_list(end_inclusive: bool) -> None:
    rows = [row for day in range(3, 8) for row in rows_between(at(day), at(day + 1), 300, prefix=f"{day}-")]
    span = RunWindow(at(5, 6), at(5, 7), "test")
    reader = WindowPlanReader(ListSource(rows, end_inclusive=end_inclusive), span, PostsFilter())

    kept = [row for row in reader.rows() if span.contains(published_at(row) or at(1))]

    assert [row_key(row) for row in kept] == in_window(rows, span)
    assert reader.stats.requests <= 4


class _Runs(ListSource):
    """A list source that records the offsets of each run of pages asked at once."""

    def __init__(self, rows: list[Row], **kwargs: Any) -> None:
        super().__init__(rows, **kwargs)
        self.runs: list[list[int]] = []

    def fetch_all(self, requests: Sequence[PageRequest]) -> Iterator[PostsPage]:
        self.runs.append([request.offset for request in requests])
        yield from super().fetch_all(requests)


def paced_scan(source: ListSource, span: RunWindow) -> list[Row]:
    """Scan the day's query ascending, with the pace its first page gives (as the reader has by then)."""
    reader = WindowPlanReader(source, span, PostsFilter())
    first = reader._fetch(DAY_QUERY, descending=False)
    reader._pace = Pace.estimate(DAY_QUERY, first, includes_end=False)
    return list(reader._scan(DAY_QUERY, first, descending=False))


def test_a_scan_whose_query_ends_within_the_window_asks_its_pages_at_once() -> None:
    rows = rows_between(at(5), at(6), 1000)
    source = _Runs(rows)
    span = RunWindow(at(5), at(6), "test")

    kept = paced_scan(source, span)

    assert source.runs == [[SCAN_STRIDE * page for page in range(1, 11)]]  # up to the page holding the last row
    assert len(source.requests) == 11
    assert in_window(kept, span) == in_window(rows, span)


def test_a_scan_that_ends_inside_its_query_asks_page_by_page() -> None:
    source = _Runs(rows_between(at(5), at(6), 1000))

    paced_scan(source, RunWindow(at(5, 2), at(5, 12), "test"))

    assert source.runs == []


def test_a_seam_that_moved_inside_a_run_is_read_again_without_losing_a_row() -> None:
    rows = rows_between(at(5), at(6), 1000)
    span = RunWindow(at(5), at(6), "test")
    expected = in_window(list(rows), span)

    def delete_early_rows(request: PageRequest) -> None:
        if request.offset == 3 * SCAN_STRIDE and rows[0]["id"] == "r0":
            del rows[:10]  # the run's fourth page begins 10 rows too late: its seam with the third fails

    source = _Runs(rows, on_fetch=delete_early_rows)

    kept = paced_scan(source, span)

    assert len(kept) == len(set(map(row_key, kept)))
    assert set(in_window(kept, span)) >= set(expected[10:])
    assert len(source.runs) == 2 and source.runs[1][0] > 3 * SCAN_STRIDE  # one repair, then a run again
