"""The date-reading memory: what is known of the API's reading of ``end``, and what reading a window took."""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import PageRequest, PostsFilter
from genviral_provider.core.reading.progress import Progress
from genviral_provider.core.reading.window import PageSource, PartSummary


@dataclass
class DateReading:
    """What is known of the API's reading of ``end``, kept across the windows one hook reads.

    ``inclusive`` is a guess that picks which query to try first (``None``: not known). It is re-proven in every
    window before anything relies on it, so that a change on the API's side costs a request, never a row.
    """

    inclusive: bool | None = None


@dataclass
class PlanStats:
    """What reading a window took: requests, the date ranges asked, the filter sets with their ``totalCount``.

    ``rows`` counts the rows yielded, ``outside`` those of them published outside the window (the operator's
    :class:`~genviral_provider.core.reading.run_window.WindowFilter` drops them); ``target_listings`` the requests
    for the analytics targets among ``requests``.
    """

    requests: int = 0
    dates_read: list[tuple[dt.date, dt.date]] = field(default_factory=list)
    parts: list[PartSummary] = field(default_factory=list)
    inclusive_proven: bool = False
    rows: int = 0
    outside: int = 0
    target_listings: int = 0

    @property
    def pages(self) -> int:
        """Return the page requests sent (the name :class:`~genviral_provider.core.reading.window.ReadStats` uses)."""
        return self.requests - self.target_listings

    def api_dates_read(self) -> list[dict[str, str]]:
        """Return the date ranges asked, in order, as ``{"start", "end"}`` strings."""
        return [{"start": start.isoformat(), "end": end.isoformat()} for start, end in self.dates_read]

    def record(self, query: PostsFilter, total_count: int) -> None:
        """Remember a query asked and the API's ``totalCount`` for it (once per query)."""
        assert query.start is not None and query.end is not None
        if (query.start, query.end) not in self.dates_read:
            self.dates_read.append((query.start, query.end))
        if all(part.filter != query for part in self.parts):
            self.parts.append(PartSummary(query, total_count))


class CountingSource:
    """A page source that counts the requests and records the queries of one window (and says how it goes)."""

    def __init__(self, source: PageSource, stats: PlanStats, progress: Progress | None = None) -> None:
        self.source = source
        self.stats = stats
        self.progress = progress

    def fetch(self, request: PageRequest) -> PostsPage:
        self.stats.requests += 1
        page = self.source.fetch(request)
        self.stats.record(request.filter, page.total_count)
        if self.progress is not None:
            self.progress.tick()
        return page

    def fetch_all(self, requests: Sequence[PageRequest]) -> Generator[PostsPage, None, None]:
        pages = self.source.fetch_all(requests)
        try:
            for request, page in zip(requests, pages, strict=False):
                self.stats.requests += 1
                self.stats.record(request.filter, page.total_count)
                if self.progress is not None:
                    self.progress.tick()
                yield page
        finally:  # a reader that stops early cancels what the source has not sent yet
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    def targets(self) -> list[dict[str, Any]]:
        self.stats.requests += 1
        self.stats.target_listings += 1
        return self.source.targets()
