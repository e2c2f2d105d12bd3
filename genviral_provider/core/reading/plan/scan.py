"""One query's slice of the window: read from the end nearest it, page by page, past the offset cap too."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Generator, Iterator

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import MAX_LIMIT, MAX_OFFSET, PostsFilter
from genviral_provider.core.reading.plan.pace import ZONE_STEP
from genviral_provider.core.reading.plan.pages import (
    DAY,
    MAX_REPAIR_REQUESTS,
    Edges,
    Unreachable,
    earliest,
    latest,
    sorted_request,
)
from genviral_provider.core.reading.plan.state import PlanState
from genviral_provider.core.reading.run_window import RunWindow
from genviral_provider.core.reading.seams import check_tie, offset_before_tie, seam_holds
from genviral_provider.core.reading.window import WindowReader
from genviral_provider.core.rows import Row
from genviral_provider.exceptions import GenviralIncompleteWindowError

#: Rows shared by consecutive pages of a scan, which fetches each page right after the one before: fewer than a
#: concurrent read needs (``window.PAGE_OVERLAP``), enough for the seam check (a shared row strictly earlier than
#: the previous page's last) with a few rows arriving or tied between two requests; more just cost a request.
SCAN_OVERLAP = 4
SCAN_STRIDE = MAX_LIMIT - SCAN_OVERLAP
#: Pages a scan asks for at once when it knows it needs them all: the client sends at most ``max_concurrency`` at a
#: time; a longer run would only hold more requests ready while the first are checked.
MAX_RUN_PAGES = 32


class SliceReader(PlanState):
    """Read the rows one query holds in the window, from the end nearest it."""

    def _read_slice(
        self, query: PostsFilter, first: PostsPage, *, descending: bool, located: bool = False, from_end: bool = False
    ) -> Generator[Row, None, Edges]:
        """Read the rows of ``query`` in the window, from the end nearest it; return what it showed.

        ``first`` is the query's first page in its order (ascending for the window's dates and the date after,
        descending for the date before), or with ``located`` the page a search found. If it does not reach the
        window, the page where the window begins is searched for in the same order; if the search puts the window
        beyond the query's far end, the pace leaves it to the next query to show (an ascending read), or that end
        is read. With ``from_end``, the window lies beyond the offsets' reach of ``first``: it is read from the
        query's other end at once.
        """
        edges = Edges()
        edges.note(first, descending=descending)
        if from_end:
            yield from self._yield_page(first)
            yield from self._read_far_end(query, edges, descending=not descending)
            return self._proven_edges(query, edges)
        start_page: PostsPage | None = first
        if not located and not self._reaches(first, descending=descending):
            yield from self._yield_page(first)
            start_page = self._search(query, first, descending=descending)
            if start_page is None and not descending and self._pace is not None and not self._ends_after(query):
                edges.beyond = True
                return self._proven_edges(query, edges)
            if start_page is None:  # the window lies past the far end, or past the offset cap
                yield from self._read_far_end(query, edges, descending=not descending)
                return self._proven_edges(query, edges)
        assert start_page is not None
        last = yield from self._scan(query, start_page, descending=descending)
        edges.note(last, descending=descending)
        return self._proven_edges(query, edges)

    def _read_far_end(self, query: PostsFilter, edges: Edges, *, descending: bool) -> Iterator[Row]:
        """Read the window's rows of ``query`` from its other end, in the order given; note what they show."""
        page: PostsPage | None = self._fetch(query, descending=descending)
        assert page is not None
        edges.note(page, descending=descending)
        if not self._reaches(page, descending=descending):  # then the window lies between both ends
            yield from self._yield_page(page)
            page = self._search(query, page, descending=descending)
            if page is None:  # past the offset cap
                yield from self._read_whole(query)
                return
        last = yield from self._scan(query, page, descending=descending)
        edges.note(last, descending=descending)

    def _scan(self, query: PostsFilter, first: PostsPage, *, descending: bool) -> Generator[Row, None, PostsPage]:
        """Page on from ``first`` until a row lies outside the window on the far side, or the list ends.

        Rows come out in ascending ``publishedAt`` order: ascending pages as they arrive, descending ones kept and
        turned round at the end (the offset cap bounds them to 10,100 rows). Returns the last page read. What a scan
        cannot reach past the offset cap is read from the query's other end.
        """
        stop: Callable[[PostsPage], bool]
        if descending:
            stop = lambda page: (t := earliest(page)) is not None and t < self.window.start  # noqa: E731
        else:
            stop = lambda page: (t := latest(page)) is not None and t >= self.window.end  # noqa: E731
        kept: list[PostsPage] = []
        page, pages, done = first, [first], False
        try:
            while not done:
                for page in pages:
                    if descending:
                        kept.append(page)
                    else:
                        yield from self._yield_page(page)
                    done = not page.has_more or stop(page)
                    if done:
                        break
                else:
                    pages = self._next_pages(query, page, descending=descending)
        except Unreachable:
            if self._from_other_end:
                self.log.info("%s: the window's rows lie past the offset cap; reading it whole.", query.describe())
                kept.clear()
                yield from self._read_whole(query)
            else:
                yield from self._read_rest(query, page, descending=descending)
        for earlier in reversed(kept):
            yield from self._yield_rows(reversed(earlier.posts))
        return page

    def _next_pages(self, query: PostsFilter, previous: PostsPage, *, descending: bool) -> list[PostsPage]:
        """Fetch the pages after ``previous``: at once (up to the client's concurrency) those the window surely
        holds rows of, keeping them up to the first seam that does not hold; else the next one (:meth:`_next_page`)."""
        offsets = self._run_offsets(query, previous, descending=descending)
        pages: list[PostsPage] = []
        moved = len(offsets) < 2  # a run of one is the next page: read as a repair would
        if not moved:
            fetched = self.source.fetch_all([sorted_request(query, descending=descending, offset=o) for o in offsets])
            try:
                for page in fetched:
                    if moved := not seam_holds(pages[-1] if pages else previous, page, descending=descending):
                        break  # rows arrived or ties moved: repaired from the last page that holds
                    pages.append(page)
            finally:
                fetched.close()  # cancels the pages not sent yet
        if moved:
            pages.append(self._next_page(query, pages[-1] if pages else previous, descending=descending))
        return pages

    def _run_offsets(self, query: PostsFilter, previous: PostsPage, *, descending: bool) -> list[int]:
        """Return the offsets of the pages after ``previous`` up to the query's end or the offset cap, when the pace
        puts the query's far end within the window (every one of them then holds window rows); else none."""
        if self._pace is None:
            return []
        low, _ = self._pace.interval(query)
        assert query.start is not None and query.end is not None
        dates = (query.end - query.start).days
        # `end` is read as proven, else as the pace guessed it from a count, which tells d dates from d + 1 only
        # when they differ by half or more: past two dates an unproven `end` may be included.
        ends_later = self._includes_end(query) or self._pace.inclusive or dates > 2
        high = low + (dates + ends_later) * DAY.total_seconds()
        if descending:
            within = low >= self.window.start.timestamp() - ZONE_STEP
        else:
            within = high <= self.window.end.timestamp() + ZONE_STEP
        offsets: list[int] = []
        offset = previous.offset
        while within and offset + MAX_LIMIT < previous.total_count and offset < MAX_OFFSET:
            offset = min(offset + SCAN_STRIDE, MAX_OFFSET)
            offsets.append(offset)
        return offsets[:MAX_RUN_PAGES]

    def _next_page(self, query: PostsFilter, previous: PostsPage, *, descending: bool) -> PostsPage:
        """Fetch the page after ``previous``, stepping back until its seam with ``previous`` holds."""
        if previous.offset >= MAX_OFFSET:
            raise Unreachable
        check_tie(query, previous, descending=descending)
        # A tie reaching into the overlap is read from the row just before it, which holds still while ties move.
        offset = offset_before_tie(previous, min(previous.offset + SCAN_STRIDE, MAX_OFFSET))
        for _ in range(MAX_REPAIR_REQUESTS):
            page = self._fetch(query, descending=descending, offset=offset)
            if seam_holds(previous, page, descending=descending):
                return page
            self.log.info("Seam at offset %d of %s moved; reading it again.", offset, query.describe())
            offset = max(previous.offset + 1, offset - SCAN_STRIDE // 2)
        raise GenviralIncompleteWindowError(
            f"Could not verify {query.describe()} around offset {previous.offset} after {MAX_REPAIR_REQUESTS} "
            "requests: rows are arriving faster than they can be read. Retry later."
        )

    def _read_rest(self, query: PostsFilter, last: PostsPage, *, descending: bool) -> Iterator[Row]:
        """Read what a scan that reached the offset cap at ``last`` left of the window, from the query's other end.

        Ascending, the rest lies from ``last``'s latest row to the window's end; descending, from the window's start
        to ``last``'s earliest row (yielded before the rows kept, which come after it). A rest that reaches past the
        cap from that end too is read whole.
        """
        edge = latest(last) if not descending else earliest(last)
        assert edge is not None  # a scan goes on only from pages with rows
        if descending:
            rest = RunWindow(self.window.start, edge + dt.timedelta(microseconds=1), self.window.source)
        else:
            rest = RunWindow(edge, self.window.end, self.window.source)
        self.log.info(
            "%s: the window's rows lie past the offset cap; reading %s from its other end.",
            query.describe(),
            rest.describe(),
        )
        reader = self._narrowed(query, rest)
        reader._from_other_end = True
        yield from reader._read_far_end(query, Edges(), descending=not descending)
        if descending:
            self._seen_at_or_before_start |= reader._seen_at_or_before_start
        else:
            self._seen_at_or_after_end |= reader._seen_at_or_after_end

    def _read_whole(self, query: PostsFilter) -> Iterator[Row]:
        """Read a query completely, split as needed, keeping the rows not yielded yet."""
        reader = WindowReader(self.source, log=self.log)
        yield from self._yield_rows(reader.rows(query))
        self.stats.parts.extend(part for part in reader.stats.parts if part not in self.stats.parts)
