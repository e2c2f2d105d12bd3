"""Reading a whole window of posts: split it until every part is reachable, page each part, verify.

One filter set reaches at most :data:`REACHABLE_ROWS` rows through offsets, so a larger window is split:
by dates (halving), then by platform, then by analytics target. Each part is read in ascending
``publishedAt`` order with pages that overlap, and every seam between two pages is verified — the first row
of a page must sort strictly before the last row of the previous one — so that rows arriving mid-read (which
shift offsets) and ties in the sort (the API documents no tie-breaker) can neither hide a row nor go
unnoticed. A seam that does not hold is bridged by reading again from the last verified page.

The reader knows nothing of HTTP: a :class:`PageSource` fetches pages, sequentially or concurrently.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import MAX_LIMIT, MAX_OFFSET, REACHABLE_ROWS, PageRequest, PostsFilter
from genviral_provider.core.log import Log
from genviral_provider.core.reading.progress import Progress
from genviral_provider.core.reading.seams import (
    TieBeyondPage,
    check_tie,
    offset_before_tie,
    refuse_repeated_page,
    repeats,
    require_parts_cover,
    seam_holds,
    split_tie,
)
from genviral_provider.core.reading.splits import narrower_filters, split_by_date
from genviral_provider.core.rows import Row, row_key
from genviral_provider.exceptions import (
    GenviralAPIContradictionError,
    GenviralAPIError,
    GenviralIncompleteWindowError,
)

#: Rows shared by consecutive pages: tolerates this many rows arriving between two concurrent fetches, and
#: tie groups this large at a seam, before a seam needs bridging.
PAGE_OVERLAP = 10
PAGE_STRIDE = MAX_LIMIT - PAGE_OVERLAP
#: Sequential requests one bridge may spend before the part is declared unreadable.
MAX_BRIDGE_REQUESTS = 200
#: A read's request budget: this many requests, plus :data:`BUDGET_FACTOR` times the pages that the
#: ``totalCount`` of each part read needs. An API whose answers keep a read going past it contradicts itself.
BUDGET_BASE_REQUESTS = MAX_BRIDGE_REQUESTS + 50
BUDGET_FACTOR = 3
#: Pages of a part read before its growth is weighed against the read's progress (see ``WindowReader._credit``).
GROWTH_GRACE_PAGES = 20
#: How often a part that outgrew the offset cap while it was read is read again (split) before giving up.
MAX_PART_REREADS = 3


class PageSource(Protocol):
    """Fetches pages of the posts endpoint (retries and rate limits are its business)."""

    def fetch(self, request: PageRequest) -> PostsPage:
        """Fetch one page."""

    def fetch_all(self, requests: Sequence[PageRequest]) -> Iterator[PostsPage]:
        """Fetch pages, possibly concurrently, yielding them in the order asked."""

    def targets(self) -> list[dict[str, Any]]:
        """Return the analytics targets (tracked accounts) of the key's workspace."""


@dataclass
class PartSummary:
    """A part of the window read with one filter set, and the ``totalCount`` the API gave for it."""

    filter: PostsFilter
    total_count: int

    def as_dict(self) -> dict[str, Any]:
        """Return the part as JSON-ready data (for manifests)."""
        return {"filter": self.filter.params(), "totalCount": self.total_count}


@dataclass
class ReadStats:
    """What reading a window took: parts, requests, seams bridged, duplicates dropped."""

    parts: list[PartSummary] = field(default_factory=list)
    pages: int = 0
    bridged_seams: int = 0
    duplicates_dropped: int = 0
    rows: int = 0


class WindowReader:
    """Yield every row of a window exactly once, whatever its size.

    :param source: fetches pages.
    :param log: where splits and bridges are reported, every 30 s the progress, and the read's closing line.
    :param clock: seconds, monotonic, for those lines.
    """

    def __init__(
        self, source: PageSource, *, log: Log | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.source = source
        self.log: Log = log or logging.getLogger(__name__)
        self.clock = clock
        self.stats = ReadStats()
        self._progress: Progress | None = None
        self._estimate: int | None = None  # the window's first totalCount
        self._targets: list[dict[str, Any]] | None = None
        self._end_inclusive = False  # proven by a probe, see _date_halves
        self.request_budget = BUDGET_BASE_REQUESTS
        self._last_page: PostsPage | None = None
        #: Per part: its first totalCount, the largest it announced since, and the requests spent before it.
        self._announced: dict[PostsFilter, tuple[int, int, int]] = {}

    def rows(self, window: PostsFilter) -> Iterator[Row]:
        """Yield the rows of ``window``, each once, in ascending ``publishedAt`` order within each part.

        Adjacent date parts share their boundary date (so that they cover the window whether the API reads
        ``end`` as inclusive or exclusive); rows seen in the previous date part are remembered to drop the
        overlap. Memory holds the row ids of two date parts, never the rows of the window.
        """
        self._progress = progress = Progress(
            self.log, window.describe(), self.stats, estimate=lambda: self._estimate, clock=self.clock
        )
        previous_ids: set[str] = set()
        for part, first in self._date_parts(window):
            ids: set[str] = set()
            for row in self._read_part(part, first):
                key = row_key(row)
                if key in ids or key in previous_ids:
                    self.stats.duplicates_dropped += 1
                    continue
                ids.add(key)
                self.stats.rows += 1
                yield row
            previous_ids = ids
        progress.finished(
            requests=self.stats.pages + (self._targets is not None),
            kept=self.stats.rows,
            dropped=self.stats.duplicates_dropped,
            dropped_what="repeated row(s)",
        )

    def _first_page(self, part: PostsFilter) -> PostsPage:
        self._spend(1, part)
        page = self.source.fetch(_ascending(part))
        self.request_budget += BUDGET_FACTOR
        self._credit(part, page)
        return page

    def _credit(self, part: PostsFilter, page: PostsPage) -> None:
        """Grow the budget by the pages a part's newly announced rows need; remember the page for messages.

        Rows may arrive while a part is read, but a list that grows as fast as its pages are read never ends:
        past :data:`GROWTH_GRACE_PAGES` requests, a part whose count grew by nearly a page per request is refused.
        """
        self._last_page = page
        self._estimate = page.total_count if self._estimate is None else self._estimate
        first, announced, started = self._announced.get(part, (page.total_count, 0, self.stats.pages))
        self._announced[part] = (first, max(announced, page.total_count), started)
        if page.total_count > announced:
            self.request_budget += BUDGET_FACTOR * (
                len(planned_offsets(page.total_count)) - len(planned_offsets(announced))
            )
        requests = self.stats.pages - started
        if requests >= GROWTH_GRACE_PAGES and page.total_count - first >= 0.9 * requests * PAGE_STRIDE:
            self._refuse(
                part,
                f"its count grew from {first} to {page.total_count} in {requests} requests: rows arrive as fast as "
                "they are read",
            )

    def _spend(self, requests: int, part: PostsFilter) -> None:
        """Count requests; past the budget the API's answers contradict its counts: stop, saying what it said."""
        self.stats.pages += requests
        if self._progress is not None:
            self._progress.tick()
        if self.stats.pages > self.request_budget:
            self._refuse(
                part,
                f"it took more than {self.request_budget} requests, more than the row counts the API gave justify "
                f"({BUDGET_FACTOR} x the pages they need + {BUDGET_BASE_REQUESTS})",
            )

    def _refuse(self, part: PostsFilter, why: str) -> NoReturn:
        last = self._last_page
        said = (
            f"its last page at offset {last.offset} had {len(last.posts)} row(s), totalCount={last.total_count}, "
            f"hasMore={str(last.has_more).lower()}"
            if last is not None
            else "no page yet"
        )
        raise GenviralAPIContradictionError(
            f"Reading {part.describe()} stopped: {why}; {said}. The API keeps announcing rows it does not "
            "deliver, or more than can be read (hasMore true, or a totalCount that keeps growing): retry later, "
            "and report it to Genviral if it persists."
        )

    def _date_parts(
        self, window: PostsFilter, first: PostsPage | None = None
    ) -> Iterator[tuple[PostsFilter, PostsPage]]:
        first = first or self._first_page(window)
        if first.total_count <= REACHABLE_ROWS or not self._splittable_by_date(window):
            yield window, first
            return
        self.log.info("Splitting %s (%d rows) by date.", window.describe(), first.total_count)
        for half, half_first in self._date_halves(window, first.total_count):
            yield from self._date_parts(half, half_first)

    def _date_halves(self, window: PostsFilter, total: int) -> list[tuple[PostsFilter, PostsPage | None]]:
        """Halve a date window; without overlap once the API is known to read ``end`` inclusively.

        The overlapping halves of :func:`~genviral_provider.core.reading.splits.split_by_date` are right under every
        reading, but under an inclusive one they read their shared date twice, which is costly when that date is a
        large one. So the reader checks, from the counts, whether the disjoint halves ``(a, m)`` and ``(m + 1, b)``
        cover the window: a same-day range ``(m, m)`` holding rows shows ``end`` is inclusive, and the halves'
        counts must add up to the window's.
        """
        left, right = split_by_date(window)
        assert left.end is not None and right.end is not None
        if left.end == right.end:  # a two-date window: its halves are single dates
            left, right = window.replace(end=window.start), window.replace(start=window.end)
        assert left.end is not None
        disjoint = right.replace(start=left.end + dt.timedelta(days=1))
        if self._end_inclusive or self._reads_end_inclusively(left.replace(start=left.end)):
            left_first, right_first = self._first_page(left), self._first_page(disjoint)
            if left_first.total_count + right_first.total_count >= total:
                return [(left, left_first), (disjoint, right_first)]
        return [(left, None), (right, None)]

    def _reads_end_inclusively(self, one_day: PostsFilter) -> bool:
        """Probe a range ``(d, d)``: rows there show that the API includes ``end`` (an exclusive end gives none)."""
        try:
            probe = self.source.fetch(_ascending(one_day, limit=1))
        except GenviralAPIError as error:
            if error.status != 400:  # an API that refuses start == end simply reads `end` exclusively
                raise
            return False
        self._spend(1, one_day)
        self._end_inclusive = probe.total_count > 0
        return self._end_inclusive

    def _splittable_by_date(self, window: PostsFilter) -> bool:
        if window.start is None or window.end is None:
            return False
        days = (window.end - window.start).days
        return days >= 2 or (days == 1 and self._end_inclusive)

    def _read_part(self, part: PostsFilter, first: PostsPage, rereads: int = 0) -> Iterator[Row]:
        if first.total_count > REACHABLE_ROWS:
            for narrower in self._split_by_platform_or_account(part, first.total_count):
                yield from self._read_part(narrower, self._first_page(narrower), rereads)
            return
        self.stats.parts.append(PartSummary(part, first.total_count))
        try:
            yield from self._page_through(part, first)
        except TieBeyondPage as tie:  # the rows read stay read: rows() drops them when the narrower parts repeat them
            for narrower in self._split_for_tie(tie, first.total_count):
                yield from self._read_part(narrower, self._first_page(narrower), rereads)
        except _PartOutgrown:  # rows arrived faster than they were read: read the part again, split
            if rereads >= MAX_PART_REREADS:
                raise GenviralAPIContradictionError(
                    f"{part.describe()} said totalCount={first.total_count} (within the {REACHABLE_ROWS} rows "
                    f"offsets reach), yet its pages ran past offset {MAX_OFFSET} with hasMore=true, "
                    f"{rereads + 1} times: the API's counts and pages contradict each other."
                ) from None
            self.log.info("%s outgrew the offset cap while it was read; reading it again, split.", part.describe())
            for narrower, narrower_first in self._date_parts(part):
                yield from self._read_part(narrower, narrower_first, rereads + 1)

    def _page_through(self, part: PostsFilter, first: PostsPage) -> Iterator[Row]:
        """Yield the rows of a part's pages, verifying every seam; raise _PartOutgrown past the offset cap."""
        request = _ascending(part)
        yield from first.posts
        previous = first
        planned = [request.at(offset) for offset in planned_offsets(first.total_count)]
        for page in self.source.fetch_all(planned):
            yield from self._verified(request, previous, page)
            previous = page
        while previous.has_more:  # rows arrived behind the last planned page
            page = self.source.fetch(request.at(_next_offset(previous)))
            yield from self._verified(request, previous, page)
            previous = page

    def _verified(self, request: PageRequest, previous: PostsPage, page: PostsPage) -> Iterator[Row]:
        """Yield a page's rows, first bridging its seam with the previous page if the seam does not hold."""
        self._spend(1, request.filter)
        self._credit(request.filter, page)
        if repeats(previous, page, PAGE_OVERLAP):
            # Rows arriving before a page can shift it onto the previous one, once: read it again before judging.
            page = self.source.fetch(request.at(page.offset))
            self._spend(1, request.filter)
            self._credit(request.filter, page)
            refuse_repeated_page(request, previous, page, PAGE_OVERLAP)
        if not seam_holds(previous, page):
            for bridge in self._bridge(request, previous, page):
                yield from bridge.posts
        yield from page.posts

    def _bridge(self, request: PageRequest, anchor: PostsPage, target: PostsPage) -> Iterator[PostsPage]:
        """Read sequentially from ``anchor`` until a page's seam with ``target`` holds (or the list ends)."""
        self.stats.bridged_seams += 1
        self.log.info(
            "Seam between offsets %d and %d moved (rows arrived or ties reordered); re-reading it.",
            anchor.offset,
            target.offset,
        )
        check_tie(request.filter, anchor)
        offset = _after(anchor)
        for _ in range(MAX_BRIDGE_REQUESTS):
            self._spend(1, request.filter)
            page = self.source.fetch(request.at(offset))
            self._last_page = page
            if not seam_holds(anchor, page):
                offset = max(0, offset - PAGE_STRIDE // 2)
                continue
            yield page
            if not page.has_more or seam_holds(page, target):
                return
            check_tie(request.filter, page)
            anchor, offset = page, _after(page)
        raise GenviralIncompleteWindowError(
            f"Could not verify {request.filter.describe()} around offset {anchor.offset} after "
            f"{MAX_BRIDGE_REQUESTS} requests: more than {MAX_LIMIT - 2} rows share one publishedAt (a page of "
            f"{MAX_LIMIT} must hold them with a row on each side), or rows are arriving faster than they can be "
            "read. Filter by platform or account, or retry later."
        )

    def _split_for_tie(self, tie: TieBeyondPage, total: int) -> list[PostsFilter]:
        """Return the narrowest filter sets below the tie's part that split it (:func:`.seams.split_tie`)."""
        request = _ascending(tie.query)

        def fetch(offset: int) -> PostsPage:
            self._spend(1, tie.query)
            return self.source.fetch(request.at(offset))

        narrower = split_tie(tie, tie.query, self._known_targets, fetch, self.log)
        return self._checked_split(tie.query, total, narrower)

    def _split_by_platform_or_account(self, part: PostsFilter, total: int) -> list[PostsFilter]:
        narrower = self._narrower_filters(part)
        if not narrower:
            raise GenviralIncompleteWindowError(
                f"{part.describe()} holds {total} rows, more than the {REACHABLE_ROWS} one filter set can reach "
                "through offsets, and cannot be split further (one date range, one platform, one account)."
            )
        self.log.info("Splitting %s (%d rows) into %d parts.", part.describe(), total, len(narrower))
        return self._checked_split(part, total, narrower)

    def _checked_split(self, part: PostsFilter, total: int, narrower: list[PostsFilter]) -> list[PostsFilter]:
        """Return ``narrower`` once their counts are seen to cover ``part``'s ``total`` rows."""
        self._spend(len(narrower), part)
        probes = self.source.fetch_all([_ascending(f, limit=1) for f in narrower])
        require_parts_cover(part, total, probes, lambda: self._first_page(part).total_count)
        return narrower

    def _narrower_filters(self, part: PostsFilter) -> list[PostsFilter]:
        return narrower_filters(part, self._known_targets)

    def _known_targets(self) -> list[dict[str, Any]]:
        if self._targets is None:
            self._targets = self.source.targets()
        return self._targets


class _PartOutgrown(Exception):
    """Rows arrived in a part while it was read until they no longer fit under the offset cap."""


def _next_offset(page: PostsPage) -> int:
    if page.offset >= MAX_OFFSET:
        raise _PartOutgrown
    return min(page.offset + PAGE_STRIDE, MAX_OFFSET)


def _after(anchor: PostsPage) -> int:
    """Return the offset of the page to read after ``anchor`` in a bridge: a stride on, or the row before a tie that
    reaches into the overlap (see :func:`~genviral_provider.core.reading.seams.offset_before_tie`)."""
    return offset_before_tie(anchor, _next_offset(anchor))


def planned_offsets(total_count: int) -> list[int]:
    """Return the offsets of the pages after the first that cover ``total_count`` rows with overlap."""
    offsets: list[int] = []
    offset, covered = 0, MAX_LIMIT
    while covered < total_count and offset < MAX_OFFSET:
        offset = min(offset + PAGE_STRIDE, MAX_OFFSET)
        offsets.append(offset)
        covered = offset + MAX_LIMIT
    return offsets


def _ascending(part: PostsFilter, *, limit: int = MAX_LIMIT) -> PageRequest:
    # Ascending publishedAt: posts published during the read land at the end, behind the pages being read.
    return PageRequest(filter=part, limit=limit, sort_by="published_at", sort_order="asc")
