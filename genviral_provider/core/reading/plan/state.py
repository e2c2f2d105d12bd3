"""One window's reading state: its requests, the rows it yielded, and what they proved about the API's dates."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import REACHABLE_ROWS, PostsFilter
from genviral_provider.core.log import Log
from genviral_provider.core.reading.plan.locate import locate
from genviral_provider.core.reading.plan.memory import CountingSource, DateReading, PlanStats
from genviral_provider.core.reading.plan.pace import Pace
from genviral_provider.core.reading.plan.pages import (
    DAY,
    Edges,
    Unreachable,
    earliest,
    latest,
    midnight,
    own_dates,
    sorted_request,
    starts_by,
)
from genviral_provider.core.reading.progress import Progress
from genviral_provider.core.reading.run_window import MAX_UTC_OFFSET, RunWindow
from genviral_provider.core.reading.splits import narrower_filters
from genviral_provider.core.reading.window import PageSource
from genviral_provider.core.rows import Row, published_at, row_key
from genviral_provider.exceptions import GenviralAPIContradictionError, GenviralAPIError

_State = TypeVar("_State", bound="PlanState")


class PlanState:
    """What one window's reader shares with the readers it hands parts to: counts, rows seen, targets, proofs.

    The parameters are :class:`~genviral_provider.core.reading.plan.reader.WindowPlanReader`'s.
    """

    def __init__(
        self,
        source: PageSource,
        window: RunWindow,
        filters: PostsFilter,
        *,
        reading: DateReading | None = None,
        log: Log | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stats = PlanStats()
        self.window = window
        self.filters = filters.replace(start=None, end=None, date_range=None)
        self.reading = reading if reading is not None else DateReading()
        self.log: Log = log or logging.getLogger(__name__)
        self.progress = Progress(self.log, window.describe(), self.stats, clock=clock)
        self.source = CountingSource(source, self.stats, self.progress)
        self._seen: set[str] = set()
        self._targets: list[dict[str, Any]] | None = None
        self._own_dates = own_dates(window)
        self._span: int | None = None  # dates per query once the window's own dates proved too many rows for one
        self._pace: Pace | None = None
        self._heads: dict[PostsFilter, PostsPage] = {}  # each query's first ascending page, fetched once
        self._from_other_end = False  # reading what a scan past the offset cap left: no further turn
        # Whether the query being read showed a row at or before S (so it begins by then) or at or after E.
        self._seen_at_or_before_start = False
        self._seen_at_or_after_end = False

    def _narrowed(self: _State, filters: PostsFilter, window: RunWindow | None = None) -> _State:
        """Return a reader for narrower filters, or of part of the window with the same filters (and pace), sharing
        this one's counts, rows and targets."""
        reader = type(self)(self.source.source, window or self.window, filters, reading=self.reading, log=self.log)
        reader.stats, reader.source, reader._seen, reader._targets = self.stats, self.source, self._seen, self._targets
        reader.progress = self.progress
        if window is not None:
            reader._pace, reader._heads = self._pace, self._heads
        return reader

    def _narrower(self, query: PostsFilter) -> list[PostsFilter]:
        return narrower_filters(query, self._known_targets)

    def _known_targets(self) -> list[dict[str, Any]]:
        if self._targets is None:
            self._targets = self.source.targets()
        return self._targets

    # ------------------------------------------------------------------------------------------- dates

    def _dates(self, start: dt.date, end: dt.date) -> PostsFilter:
        return self.filters.replace(start=start, end=end)

    def _query_from(self, day: dt.date, dates: int) -> PostsFilter:
        """Return the query of ``dates`` dates from ``day``: ``(day, day + dates)``, or ``(day, day + dates - 1)``
        once `end` is proven inclusive."""
        return self._dates(day, day + (dates - 1) * DAY if self.stats.inclusive_proven else day + dates * DAY)

    def _includes_end(self, query: PostsFilter) -> bool:
        return query.start == query.end or self.stats.inclusive_proven

    def _date_after(self, query: PostsFilter) -> dt.date:
        """Return the first date ``query`` leaves out: its `end`, or the date after once `end` is included."""
        assert query.end is not None
        return query.end + DAY if self._includes_end(query) else query.end

    def _prove_inclusive(self, why: str) -> None:
        if not self.stats.inclusive_proven:
            self.log.info("The API includes `end` dates: %s.", why)
        self.stats.inclusive_proven = True
        self.reading.inclusive = True

    # ------------------------------------------------------------------------------------------- proofs

    def _begins_by_window(self, query: PostsFilter, first_row: dt.datetime | None) -> bool:
        """Whether ``query``'s earliest row, or the ±14 h bound, shows that its interval begins by the window."""
        return (first_row is not None and first_row <= self.window.start) or starts_by(query, self.window.start)

    def _ends_after(self, query: PostsFilter) -> bool:
        """Whether the ±14 h bound alone shows that the query's interval reaches the window's end."""
        return midnight(self._date_after(query)) - MAX_UTC_OFFSET >= self.window.end

    def _proven_edges(self, query: PostsFilter, edges: Edges | None = None) -> Edges:
        """Record whether the rows just read of ``query`` (or the ±14 h bound) prove it reaches the window's end;
        start afresh for the next query."""
        edges = edges or Edges()
        edges.ends_after_window = self._seen_at_or_after_end or self._ends_after(query)
        self._seen_at_or_before_start = self._seen_at_or_after_end = False
        return edges

    def _reaches(self, page: PostsPage, *, descending: bool) -> bool:
        """Whether paging on from ``page`` reaches the window without skipping past any of its rows."""
        if not page.has_more:
            return True
        if descending:
            first_row = earliest(page)
            return first_row is not None and first_row < self.window.end
        last_row = latest(page)
        return last_row is not None and last_row >= self.window.start

    # ------------------------------------------------------------------------------------------- requests

    def _fetch(self, query: PostsFilter, *, descending: bool, offset: int = 0) -> PostsPage:
        head = offset == 0 and not descending
        if head and query in self._heads:  # a search that ended on a query's first page has fetched it already
            return self._heads[query]
        page = self.source.fetch(sorted_request(query, descending=descending, offset=offset))
        if head:
            self._heads[query] = page
        if query.start != query.end and offset == 0 and page.total_count > REACHABLE_ROWS:
            self.log.info("%s holds %d rows, more than offsets reach.", query.describe(), page.total_count)
        return page

    def _count(self, query: PostsFilter) -> int:
        """Return the API's ``totalCount`` of ``query`` now (one request of one row)."""
        return self.source.fetch(sorted_request(query, descending=False).at(0, 1)).total_count

    def _search(self, query: PostsFilter, first: PostsPage | None, *, descending: bool) -> PostsPage | None:
        """Return the page where the window begins in ``query`` (see :func:`.locate.locate`), ``None`` when the
        window seems to lie past the query's far end or past the offset cap."""

        def fetch(offset: int) -> PostsPage:
            return self._fetch(query, descending=descending, offset=offset)

        try:
            return locate(fetch, query, self.window, self._pace, first, descending=descending)
        except Unreachable:
            return None

    def _fetch_single_date(self, query: PostsFilter, *, descending: bool, blind: bool = False) -> PostsPage | None:
        """Fetch a ``(d, d)`` query's first page, or with ``blind`` the page where the window begins in it: rows
        prove that ``end`` is inclusive; ``None`` when it shows nothing."""
        try:
            page = (
                self._search(query, None, descending=descending) if blind else self._fetch(query, descending=descending)
            )
        except GenviralAPIError as error:
            if error.status != 400:  # an API that refuses start == end reads `end` exclusively
                raise
            if self.stats.inclusive_proven:
                raise GenviralAPIContradictionError(
                    f"{query.describe()} was refused ({error}), yet single dates returned rows earlier in this "
                    "window: the API changed how it reads `end` while the window was read. Retry later."
                ) from error
            self.reading.inclusive = False
            return None
        if page is None or page.total_count == 0:
            return None
        self._prove_inclusive(f"{query.describe()} holds rows")
        return page

    # ------------------------------------------------------------------------------------------- rows

    def _yield_page(self, page: PostsPage) -> Iterator[Row]:
        yield from self._yield_rows(page.posts)

    def _yield_rows(self, rows: Iterable[Row]) -> Iterator[Row]:
        for row in rows:
            instant = published_at(row)
            if instant is not None:
                self._seen_at_or_before_start |= instant <= self.window.start
                self._seen_at_or_after_end |= instant >= self.window.end
            key = row_key(row)
            if key not in self._seen:
                self._seen.add(key)
                self.stats.rows += 1
                self.stats.outside += int(instant is not None and not self.window.start <= instant < self.window.end)
                yield row
