"""The date check: rows within ±14 h of the dates asked pass, any row beyond fails, naming dates."""

from __future__ import annotations

import datetime as dt

import pytest

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import PageRequest, PostsFilter
from genviral_provider.core.reading.date_check import check_dates, selectable_span
from genviral_provider.exceptions import GenviralAPIContradictionError

UTC = dt.timezone.utc
QUERY = PostsFilter(start=dt.date(2026, 1, 10), end=dt.date(2026, 1, 11))


def _page(*instants: dt.datetime | str | None) -> PostsPage:
    rows = [
        {"id": f"r{n}", "publishedAt": t.isoformat() if isinstance(t, dt.datetime) else t}
        for n, t in enumerate(instants)
    ]
    return PostsPage(posts=rows, total_count=len(rows), has_more=False)


def test_the_span_allows_every_zone_and_an_inclusive_end() -> None:
    assert selectable_span(QUERY.start, QUERY.end) == (  # type: ignore[arg-type]
        dt.datetime(2026, 1, 9, 10, tzinfo=UTC),
        dt.datetime(2026, 1, 12, 14, tzinfo=UTC),
    )


def test_rows_at_the_edges_of_the_span_pass() -> None:
    low, high = selectable_span(dt.date(2026, 1, 10), dt.date(2026, 1, 11))
    check_dates(PageRequest(filter=QUERY), _page(low, high - dt.timedelta(microseconds=1), None, "unreadable"))


@pytest.mark.parametrize("delta", [dt.timedelta(microseconds=-1), dt.timedelta(days=4, hours=4)])
def test_a_row_beyond_the_span_fails_naming_the_dates(delta: dt.timedelta) -> None:
    low, _ = selectable_span(dt.date(2026, 1, 10), dt.date(2026, 1, 11))
    page = _page(dt.datetime(2026, 1, 10, 12, tzinfo=UTC), low + delta)
    with pytest.raises(GenviralAPIContradictionError, match=r"2026-01-10\.\.2026-01-11 .* 1 of its 2 row\(s\)"):
        check_dates(PageRequest(filter=QUERY), page)


def test_a_query_without_dates_is_not_checked() -> None:
    check_dates(PageRequest(filter=PostsFilter(date_range="30d")), _page(dt.datetime(2020, 1, 1, tzinfo=UTC)))
