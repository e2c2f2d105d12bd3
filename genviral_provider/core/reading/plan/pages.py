"""What a page proves: its rows' times, the edges of a query they show, and what the ±14 h bound alone shows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import MAX_LIMIT, PageRequest, PostsFilter
from genviral_provider.core.reading.run_window import MAX_UTC_OFFSET, RunWindow
from genviral_provider.core.rows import UTC, published_at

DAY = dt.timedelta(days=1)
#: Requests one seam repair or one search may spend before the window is declared unreadable: an honest search
#: takes about a dozen (log2 of 10,100 rows in pages, and a few steps by a page's pace), a repair one or two, so
#: only rows arriving faster than they can be read exhaust it, and a request never goes unbounded.
MAX_REPAIR_REQUESTS = 200


class Unreachable(Exception):
    """A slice lies beyond the offset cap: it is read from the query's other end, or (past that too) whole."""


@dataclass
class Edges:
    """What reading a query showed about its interval ``[L, H)``."""

    high: dt.datetime | None = None  # its latest row, when seen
    ends_after_window: bool = False  # H >= E proven
    beyond: bool = False  # the pace puts the window past the query's end: nothing read past its first page

    def note(self, page: PostsPage, *, descending: bool) -> None:
        """Record the query's latest row when ``page`` shows it (the first page descending, the last ascending)."""
        shows_latest = page.offset == 0 if descending else not page.has_more
        if shows_latest:
            self.high = self.high or latest(page)


def own_dates(window: RunWindow) -> tuple[dt.date, dt.date]:
    """Return the UTC dates ``(first, end)`` with ``[first 00:00, end 00:00)`` the smallest span holding the window."""
    first = window.start.date()
    last_instant = window.end - dt.timedelta(microseconds=1)
    return first, last_instant.date() + DAY


def sorted_request(query: PostsFilter, *, descending: bool, offset: int = 0) -> PageRequest:
    """Return the request for the page of ``query`` at ``offset``, sorted by ``published_at``."""
    order = "desc" if descending else "asc"
    return PageRequest(filter=query, limit=MAX_LIMIT, offset=offset, sort_by="published_at", sort_order=order)


def starts_by(query: PostsFilter, start: dt.datetime) -> bool:
    """Whether the ±14 h bound alone shows that the query's interval begins at or before ``start``."""
    assert query.start is not None
    return midnight(query.start) + MAX_UTC_OFFSET <= start


def midnight(day: dt.date) -> dt.datetime:
    """Return UTC's midnight at the start of ``day``."""
    return dt.datetime.combine(day, dt.time(), tzinfo=UTC)


def times(page: PostsPage) -> list[dt.datetime]:
    """Return the ``publishedAt`` of ``page``'s rows that have one, in the page's order."""
    return [t for t in (published_at(row) for row in page.posts) if t is not None]


def earliest(page: PostsPage) -> dt.datetime | None:
    """Return ``page``'s earliest ``publishedAt``, if any."""
    found = times(page)
    return min(found) if found else None


def latest(page: PostsPage) -> dt.datetime | None:
    """Return ``page``'s latest ``publishedAt``, if any."""
    found = times(page)
    return max(found) if found else None
