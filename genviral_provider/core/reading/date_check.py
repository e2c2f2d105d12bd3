"""A page source that refuses pages holding rows no reading of the dates asked can select.

The API reads ``start``/``end`` in an undocumented zone (within ±14 h of UTC), with ``end`` included or not. Under
any such reading a query ``(s, e)`` selects rows published in ``[s 00:00 - 14 h, e+1 00:00 + 14 h)`` (UTC): a row
outside that span shows the API did not filter on the dates at all (a renamed parameter, a default range answered
instead). Reading on would publish other dates' rows as these, or none of them, with every count agreeing: so the
read stops, naming the dates asked and the dates seen. Every reader's source goes through it (the hook builds them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import PageRequest
from genviral_provider.core.reading.run_window import MAX_UTC_OFFSET
from genviral_provider.core.reading.window import PageSource
from genviral_provider.core.rows import UTC, published_at, row_key
from genviral_provider.exceptions import GenviralAPIContradictionError

#: Rows named in the message, at most.
NAMED_ROWS = 3


class DateCheckedSource:
    """Fetch pages through ``source``, refusing a page with a row outside every reading of the dates asked.

    Rows without a readable ``publishedAt`` are not judged here (where rows leave the reader, they are).

    :param source: the source that fetches (the hook's client).
    """

    def __init__(self, source: PageSource) -> None:
        self.source = source

    def fetch(self, request: PageRequest) -> PostsPage:
        """Fetch one page and check its rows against the request's dates."""
        page = self.source.fetch(request)
        check_dates(request, page)
        return page

    def fetch_all(self, requests: Sequence[PageRequest]) -> Iterator[PostsPage]:
        """Fetch pages (possibly concurrently, in the order asked), checking each as it is yielded."""
        for request, page in zip(requests, self.source.fetch_all(requests), strict=False):
            check_dates(request, page)
            yield page

    def targets(self) -> list[dict[str, Any]]:
        """Return the analytics targets (nothing to check)."""
        return self.source.targets()


def selectable_span(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Return ``[low, high)``: where the rows of a query ``(start, end)`` lie under every reading of its dates."""
    low = dt.datetime.combine(start, dt.time(), tzinfo=UTC) - MAX_UTC_OFFSET
    high = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=UTC) + MAX_UTC_OFFSET
    return low, high


def check_dates(request: PageRequest, page: PostsPage) -> None:
    """Raise when ``page`` holds a row that no reading of ``request``'s dates selects (no dates: nothing to check).

    :raises GenviralAPIContradictionError: naming the dates asked, the span they allow and the dates seen.
    """
    query = request.filter
    if query.start is None or query.end is None:
        return
    low, high = selectable_span(query.start, query.end)
    placed = [(row, instant) for row in page.posts if (instant := published_at(row)) is not None]
    outside = [(row, instant) for row, instant in placed if not low <= instant < high]
    if not outside:
        return
    seen = sorted(instant for _, instant in placed)
    named = ", ".join(f"{row_key(row)} at {instant.isoformat()}" for row, instant in outside[:NAMED_ROWS])
    raise GenviralAPIContradictionError(
        f"The API ignored the dates asked: {query.describe()} (start={query.start}, end={query.end}) can select rows "
        f"published from {low.isoformat()} to {high.isoformat()} under any reading of its dates, yet the page at "
        f"offset {page.offset} holds rows published on {seen[0].date()}..{seen[-1].date()}: {len(outside)} of its "
        f"{len(page.posts)} row(s) lie outside (e.g. {named}). The read stops rather than publish other dates' rows "
        "or none: the API may have renamed or dropped the start/end parameters. Report it to Genviral."
    )
