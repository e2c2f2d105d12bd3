"""Reading one run's window at the cost of its own rows, exactly, whatever the API's reading of its dates.

The API filters on calendar dates read in an undocumented zone (within ±14 h of UTC), with ``end`` included or
not. Whatever the reading, a query ``(s, t)`` selects the rows published in one interval ``[L, H)`` and, sorted by
``published_at``, lists them in time order. So the rows of a window ``[S, E)`` are one contiguous slice of any
query whose interval contains the window, and a page proves where that slice lies: a row at or before ``S``
shows ``L <= S``, a row at or after ``E`` shows ``H >= E`` — facts about the data, not about the reading.

:class:`WindowPlanReader` reads date queries that cover the window under every reading, each only where it can
hold window rows:

1. the window's own UTC dates, read from the end nearest the window (ascending from its first row, or descending
   from its last), or from the page where the window begins, found by interpolation on offsets, when the window
   lies inside them (an hourly run); when they hold more rows than offsets reach, they are asked again a few dates
   at a time (consecutive queries meet or overlap under every reading, so reading each to its last row leaves no
   row between them), and a single date that still does is read once per platform, then per analytics target;
2. the date before, only when the first query does not prove ``L <= S``: its latest rows, descending, until one
   lies before ``S`` — usually a single page showing there is nothing to read;
3. the date after, only when the last query does not prove ``H >= E``: its earliest rows, ascending, until one
   lies at or after ``E``.

Neighbours are chosen so that they meet or overlap the core under every reading: ``(d, d+1)`` pairs, unless
``end`` is proven inclusive in this window (a single-date query returned rows, or two neighbours overlapped), when
``(d, d)`` pairs tile the timeline. A wrong guess about the reading costs a request, never a row: the guess only
picks which query to ask first, and every conclusion rests on rows seen or on the ±14 h bound.

A slice that still reaches past the offset cap (one date of one analytics target holding more than 10,100 rows) is
read whole by :class:`~genviral_provider.core.reading.window.WindowReader`. Nothing here needs Airflow.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import MAX_LIMIT, MAX_OFFSET, REACHABLE_ROWS, PageRequest, PostsFilter
from genviral_provider.core.log import Log
from genviral_provider.core.reading.run_window import MAX_UTC_OFFSET, RunWindow
from genviral_provider.core.reading.window import PageSource, PartSummary, WindowReader, narrower_filters
from genviral_provider.core.rows import UTC, Row, published_at, row_key
from genviral_provider.exceptions import GenviralAPIContradictionError, GenviralAPIError, GenviralIncompleteWindowError

DAY = dt.timedelta(days=1)
#: Requests one seam repair or one search may spend before the window is declared unreadable.
MAX_REPAIR_REQUESTS = 200
#: Rows shared by consecutive pages of a scan, which fetches each page right after the one before: fewer than a
#: concurrent read needs (``window.PAGE_OVERLAP``), enough for the seam check (a shared row strictly earlier than
#: the previous page's last) with a few rows arriving or tied between two requests; more just cost a request.
SCAN_OVERLAP = 4
SCAN_STRIDE = MAX_LIMIT - SCAN_OVERLAP
#: Rows an interpolated search page starts before its estimate, so that it usually begins before the window.
SEARCH_MARGIN = 10
#: And how many times the spread of the estimate (that of a uniform sample) more: a page that starts past the
#: window's first row costs a request, one that starts too early costs a page of rows outside the window.
SEARCH_SPREAD = 1.5
#: The share of a query's rows by which the pace may misplace the window when judging whether offsets reach it.
REACH_SLACK = 0.1
#: Steps a search takes by the pace of the page it landed on before it falls back to bisecting.
MAX_LOCAL_STEPS = 4
#: How many rows away a page's own pace is trusted to place the window's first row.
LOCAL_REACH = 300
#: What the API's midnight is rounded to when it is estimated from a date's earliest row (zones are whole quarters).
ZONE_STEP = 900


@dataclass
class DateReading:
    """What is known of the API's reading of ``end``, kept across the windows one hook reads.

    ``inclusive`` is a guess that picks which query to try first (``None``: not known). It is re-proven in every
    window before anything relies on it, so that a change on the API's side costs a request, never a row.
    """

    inclusive: bool | None = None


@dataclass
class PlanStats:
    """What reading a window took: requests, the date ranges asked, the filter sets with their ``totalCount``."""

    requests: int = 0
    dates_read: list[tuple[dt.date, dt.date]] = field(default_factory=list)
    parts: list[PartSummary] = field(default_factory=list)
    inclusive_proven: bool = False
    rows: int = 0

    @property
    def pages(self) -> int:
        """Return the requests sent (the name :class:`~genviral_provider.core.reading.window.ReadStats` uses)."""
        return self.requests

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


class _Unreachable(Exception):
    """A slice lies beyond the offset cap: it is read from the query's other end, or (past that too) whole."""


@dataclass
class _Edges:
    """What reading a query showed about its interval ``[L, H)``."""

    low: dt.datetime | None = None  # its earliest row, when seen
    high: dt.datetime | None = None  # its latest row, when seen
    starts_by_window: bool = False  # L <= S proven
    ends_after_window: bool = False  # H >= E proven
    beyond: bool = False  # the pace puts the window past the query's end: nothing read past its first page


@dataclass(frozen=True)
class _Pace:
    """Where the API's rows probably lie, from the first page of the window's first query: a guess that only picks
    which offsets to ask, never a proof.

    ``zone`` is how many seconds the API's midnight lies before UTC's, estimated from that query's earliest row;
    ``inclusive`` whether its count looks like one date more than it asked; ``per_second`` its rows' average pace.
    """

    zone: float
    inclusive: bool
    per_second: float

    @classmethod
    def estimate(cls, query: PostsFilter, first: PostsPage, *, includes_end: bool | None) -> _Pace | None:
        """Guess from ``query``'s first ascending page; ``includes_end`` is what is known of the API's `end`."""
        assert query.start is not None and query.end is not None
        times = [t.timestamp() for t in _times(first)]
        if first.offset != 0 or not first.has_more or len(times) < 2 or times[-1] <= times[0]:
            return None
        midnight = _midnight(query.start).timestamp()
        low = math.floor(times[0] / ZONE_STEP) * ZONE_STEP
        limit = MAX_UTC_OFFSET.total_seconds()
        zone = min(limit, max(-limit, midnight - low))
        dates = (query.end - query.start).days
        candidates = (
            [dates + 1] if includes_end or dates == 0 else [dates] if includes_end is False else [dates, dates + 1]
        )
        span = first.total_count * (times[-1] - times[0]) / (len(times) - 1)  # seconds the count covers at this pace
        days = min(candidates, key=lambda d: abs(math.log(d * DAY.total_seconds() / span)))
        return cls(zone=zone, inclusive=days > dates, per_second=first.total_count / (days * DAY.total_seconds()))

    def interval(self, query: PostsFilter) -> tuple[float, float]:
        """Return where ``query``'s interval probably lies, as POSIX timestamps ``(low, high)``."""
        assert query.start is not None and query.end is not None
        low = _midnight(query.start).timestamp() - self.zone
        days = (query.end - query.start).days + (query.start == query.end or self.inclusive)
        return low, low + days * DAY.total_seconds()


class _CountingSource:
    """A page source that counts the requests and records the queries of one window."""

    def __init__(self, source: PageSource, stats: PlanStats) -> None:
        self.source = source
        self.stats = stats

    def fetch(self, request: PageRequest) -> PostsPage:
        self.stats.requests += 1
        page = self.source.fetch(request)
        self.stats.record(request.filter, page.total_count)
        return page

    def fetch_all(self, requests: Sequence[PageRequest]) -> Iterator[PostsPage]:
        for request, page in zip(requests, self.source.fetch_all(requests), strict=False):
            self.stats.requests += 1
            self.stats.record(request.filter, page.total_count)
            yield page

    def targets(self) -> list[dict[str, Any]]:
        self.stats.requests += 1
        return self.source.targets()


class WindowPlanReader:
    """Yield the rows the API holds for a run's window, each once, reading little beyond the window's own rows.

    Rows outside the window that share a page with window rows are yielded too (a
    :class:`~genviral_provider.core.reading.run_window.WindowFilter` drops and counts them); every row published in the
    window is yielded, in ascending ``publishedAt`` order but for rows outside the window.

    :param source: fetches pages (the hook's client).
    :param window: the run's window.
    :param filters: platforms and accounts (their dates are ignored).
    :param reading: what earlier windows of the same hook learned; updated by this one.
    :param log: where the plan is reported.
    """

    def __init__(
        self,
        source: PageSource,
        window: RunWindow,
        filters: PostsFilter,
        *,
        reading: DateReading | None = None,
        log: Log | None = None,
    ) -> None:
        self.stats = PlanStats()
        self.source = _CountingSource(source, self.stats)
        self.window = window
        self.filters = filters.replace(start=None, end=None, date_range=None)
        self.reading = reading if reading is not None else DateReading()
        self.log: Log = log or logging.getLogger(__name__)
        self._seen: set[str] = set()
        self._targets: list[dict[str, Any]] | None = None
        self._own_dates = own_dates(window)
        self._span: int | None = None  # dates per query once the window's own dates proved too many rows for one
        self._pace: _Pace | None = None
        self._heads: dict[PostsFilter, PostsPage] = {}  # each query's first ascending page, fetched once
        self._from_other_end = False  # reading what a scan past the offset cap left: no further turn
        # Whether the query being read showed a row at or before S (so it begins by then) or at or after E.
        self._seen_at_or_before_start = False
        self._seen_at_or_after_end = False

    # ------------------------------------------------------------------------------------------- the plan

    def rows(self) -> Generator[Row, None, None]:
        """Yield the rows of the window's dates, of the date before and of the date after where they may hold some."""
        query, first = self._first_query()
        yield from self._read_dates(query, first)
        if self.stats.inclusive_proven:
            self.reading.inclusive = True
        self.log.info(
            "Read %s with %d request(s) over API dates %s.",
            self.window.describe(),
            self.stats.requests,
            ", ".join(f"{s}..{e}" for s, e in self.stats.dates_read),
        )

    def _first_query(self) -> tuple[PostsFilter, PostsPage]:
        """Ask for the window's own dates; return the query and its first ascending page."""
        first, end = self._own_dates
        if self.reading.inclusive and end - first == DAY:  # a guess: (d, d) proves itself by returning rows
            query = self._dates(first, first)
            page = self._fetch_single_date(query, descending=False)
            if page is not None:
                return query, page
            if self.reading.inclusive:  # no rows: an exclusive `end`, or an empty date; unknown again
                self.reading.inclusive = None
        query = self._dates(first, end)
        return query, self._fetch(query, descending=False)

    def _read_dates(
        self, query: PostsFilter, first: PostsPage, *, left_proven: bool = False
    ) -> Generator[Row, None, None]:
        """Read the window from ``query`` on, query after query, until rows (or the ±14 h bound) show its end.

        Consecutive date queries meet or overlap under every reading, so a query read to its last row leaves no
        window row unread before the next one. A query holding more rows than offsets reach is asked again for
        fewer dates; a single date that still does is read once per platform (then per target).
        """
        located = False
        while True:
            if self._pace is None:
                known = True if self._includes_end(query) else (False if self.reading.inclusive is False else None)
                self._pace = _Pace.estimate(query, first, includes_end=known)
            from_end = False
            if first.total_count > REACHABLE_ROWS and not located:
                reach = self._reach(query, first.total_count)
                if reach is None and (fewer := self._fewer_dates(query, first.total_count)) is not None:
                    query, first = fewer
                    continue
                if reach is None and (narrower := self._narrower(query)):
                    yield from self._read_narrower(query, first, narrower, left_proven=left_proven)
                    return
                from_end = bool(reach)
            if not left_proven:
                earliest = _earliest(first)
                if not self._begins_by_window(query, earliest):
                    yield from self._read_left(query, earliest)
                left_proven = True
            edges = yield from self._read_slice(query, first, descending=False, located=located, from_end=from_end)
            if edges.ends_after_window:
                return
            if edges.beyond:
                following = yield from self._past_end(query)
            else:
                next_query = self._next_query(query, edges)
                following = None if next_query is None else (*next_query, False)
            if following is None:
                return
            query, first, located = following

    def _reach(self, query: PostsFilter, total: int) -> bool | None:
        """Return how offsets reach the whole window in ``query``, as the pace places it: ascending from its start
        (``False``), descending from its end (``True``), or neither (``None``)."""
        if self._pace is None:
            return None
        low, high = self._pace.interval(query)
        share_start = max(0.0, (self.window.start.timestamp() - low) / (high - low))
        share_end = min(1.0, (self.window.end.timestamp() - low) / (high - low))
        reach = MAX_OFFSET - REACH_SLACK * total
        if share_end * total <= reach or share_start >= 1:  # past the end: the search says so, the next date is read
            return False
        if (1 - share_start) * total <= reach:
            return True
        return None

    def _fewer_dates(self, query: PostsFilter, total: int) -> tuple[PostsFilter, PostsPage] | None:
        """Return ``query`` cut to the dates whose rows offsets likely reach, with its first page (the number of
        dates is kept for the next queries), or ``None`` when it asks for one date only."""
        assert query.start is not None and query.end is not None
        dates = (query.end - query.start).days + self._includes_end(query)
        span = max(1, int(dates * 0.8 * REACHABLE_ROWS / total))
        if span == 1 and not self._includes_end(query) and self.reading.inclusive is not False:
            single = self._dates(query.start, query.start)  # fewer rows still if `end` is included
            page = self._fetch_single_date(single, descending=False)
            if page is not None:
                self._span = 1
                return single, page
        if dates <= 1:
            return None
        self._span = span
        self.log.info("%s holds %d rows; reading it %d date(s) at a time.", query.describe(), total, span)
        fewer = self._query_from(query.start, span)
        return fewer, self._fetch(fewer, descending=False)

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

    def _begins_by_window(self, query: PostsFilter, earliest: dt.datetime | None) -> bool:
        """Whether ``query``'s earliest row, or the ±14 h bound, shows that its interval begins by the window."""
        return (earliest is not None and earliest <= self.window.start) or _starts_by(query, self.window.start)

    def _next_query(self, query: PostsFilter, edges: _Edges) -> tuple[PostsFilter, PostsPage] | None:
        """Return the dates after ``query`` (the rest of the window's, or the date after them) and their first
        ascending page, or ``None`` when that page shows ``query`` included its `end` date, reaching past the window."""
        includes_end = self._includes_end(query)
        day = self._date_after(query)
        own_end = self._own_dates[1]
        dates = max(1, (own_end - day).days if self._span is None else min(self._span, (own_end - day).days))
        if self.stats.inclusive_proven and dates == 1:  # single dates tile
            single = self._dates(day, day)
            page = self._fetch_single_date(single, descending=False)
            if page is not None:
                return single, page
        following = self._query_from(day, dates) if dates > 1 else self._dates(day, day + DAY)
        page = self._fetch(following, descending=False)
        earliest = _earliest(page)
        if not includes_end and edges.high is not None and earliest is not None and earliest <= edges.high:
            self._prove_inclusive("the dates after overlap the window's dates")
            return None if self._ends_after(query) else self._next_query(query, edges)
        return following, page

    def _read_narrower(
        self, query: PostsFilter, first: PostsPage, narrower: list[PostsFilter], *, left_proven: bool
    ) -> Iterator[Row]:
        """Read the window from ``query`` on once per narrower filter set, after checking that their counts cover
        ``query``'s (rows of no known target would be lost)."""
        self.log.info("%s holds %d rows; reading it in %d parts.", query.describe(), first.total_count, len(narrower))
        requests = [_sorted_request(part, descending=False) for part in narrower]
        pages = list(self.source.fetch_all(requests))
        counted = sum(page.total_count for page in pages)
        if counted < first.total_count:
            raise GenviralIncompleteWindowError(
                f"{query.describe()} holds {first.total_count} rows, but its parts by platform/account add up to "
                f"{counted}: some rows belong to no known analytics target, so splitting would lose them."
            )
        for part, page in zip(narrower, pages, strict=True):
            yield from self._narrowed(part)._read_dates(part, page, left_proven=left_proven)

    def _narrower(self, query: PostsFilter) -> list[PostsFilter]:
        return narrower_filters(query, self._known_targets)

    def _known_targets(self) -> list[dict[str, Any]]:
        if self._targets is None:
            self._targets = self.source.targets()
        return self._targets

    def _narrowed(self, filters: PostsFilter, window: RunWindow | None = None) -> WindowPlanReader:
        """Return a reader for narrower filters, or of part of the window with the same filters (and pace), sharing
        this one's counts, rows and targets."""
        reader = WindowPlanReader(
            self.source.source, window or self.window, filters, reading=self.reading, log=self.log
        )
        reader.stats, reader.source, reader._seen, reader._targets = self.stats, self.source, self._seen, self._targets
        if window is not None:
            reader._pace, reader._heads = self._pace, self._heads
        return reader

    def _read_left(self, core: PostsFilter, core_earliest: dt.datetime | None) -> Iterator[Row]:
        """Read the date before the core where it may hold window rows (its latest rows, usually)."""
        assert core.start is not None
        day = core.start - DAY
        page: PostsPage | None = None
        pace_says_single = self._pace is not None and self._pace.inclusive and self.reading.inclusive is not False
        blind = self._pace is not None
        if self.stats.inclusive_proven or self.reading.inclusive or pace_says_single:
            left = self._dates(day, day)  # a single date cannot overlap the core
            page = self._fetch_single_date(left, descending=True, blind=blind)
        if page is None:
            blind = False
            left = self._dates(day, core.start)  # meets the core if `end` is exclusive, overlaps it otherwise
            page = self._fetch(left, descending=True)
            latest = _latest(page)
            if core_earliest is not None and latest is not None and latest >= core_earliest:
                self._prove_inclusive("the date before overlaps the window's dates")
                left = self._dates(day, day)
                page = self._fetch(left, descending=True)
        yield from self._read_slice(left, page, descending=True, located=blind)

    def _prove_inclusive(self, why: str) -> None:
        if not self.stats.inclusive_proven:
            self.log.info("The API includes `end` dates: %s.", why)
        self.stats.inclusive_proven = True
        self.reading.inclusive = True

    # ------------------------------------------------------------------------------------------- a slice

    def _read_slice(
        self, query: PostsFilter, first: PostsPage, *, descending: bool, located: bool = False, from_end: bool = False
    ) -> Generator[Row, None, _Edges]:
        """Read the rows of ``query`` in the window, from the end nearest it; return what it showed.

        ``first`` is the query's first page in its order (ascending for the window's dates and the date after,
        descending for the date before), or with ``located`` the page a search found. If it does not reach the
        window, the page where the window begins is searched for in the same order; if the search puts the window
        beyond the query's far end, the pace leaves it to the next query to show (an ascending read), or that end
        is read. With ``from_end``, the window lies beyond the offsets' reach of ``first``: it is read from the
        query's other end at once.
        """
        edges = _Edges()
        self._note_extremes(edges, first, descending=descending)
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
        self._note_extremes(edges, last, descending=descending)
        return self._proven_edges(query, edges)

    def _read_far_end(self, query: PostsFilter, edges: _Edges, *, descending: bool) -> Iterator[Row]:
        """Read the window's rows of ``query`` from its other end, in the order given; note what they show."""
        page: PostsPage | None = self._fetch(query, descending=descending)
        assert page is not None
        self._note_extremes(edges, page, descending=descending)
        if not self._reaches(page, descending=descending):  # then the window lies between both ends
            yield from self._yield_page(page)
            page = self._search(query, page, descending=descending)
            if page is None:  # past the offset cap
                yield from self._read_whole(query)
                return
        last = yield from self._scan(query, page, descending=descending)
        self._note_extremes(edges, last, descending=descending)

    def _past_end(self, query: PostsFilter) -> Generator[Row, None, tuple[PostsFilter, PostsPage, bool] | None]:
        """Go on past ``query``, whose pace puts the window beyond its end: search the dates after it blind.

        A page found there with a row before the window shows that those dates begin by the window, so they hold
        every window row ``query`` may hold (they end later). Otherwise ``query``'s far end is read first. Returns
        the next query, the page to read it from, and whether that page was found by the search.
        """
        day = self._date_after(query)
        if self.stats.inclusive_proven:
            following = self._dates(day, day)
            page = self._fetch_single_date(following, descending=False, blind=True)
        else:
            following = self._dates(day, day + DAY)
            page = self._search(following, None, descending=False)
        if page is not None and (earliest := _earliest(page)) is not None and earliest < self.window.start:
            return following, page, True
        self.log.info(
            "%s does not show it begins by the window; reading %s from its end.", following.describe(), query.describe()
        )
        edges = _Edges()
        yield from self._read_far_end(query, edges, descending=True)
        edges = self._proven_edges(query, edges)
        next_query = None if edges.ends_after_window else self._next_query(query, edges)
        return None if next_query is None else (*next_query, False)

    def _search(self, query: PostsFilter, first: PostsPage | None, *, descending: bool) -> PostsPage | None:
        try:
            return self._locate(query, first, descending=descending)
        except _Unreachable:
            return None

    def _proven_edges(self, query: PostsFilter, edges: _Edges | None = None) -> _Edges:
        """Record what the rows just read of ``query`` (or the ±14 h bound) prove about its interval's edges."""
        edges = edges or _Edges()
        edges.starts_by_window = self._seen_at_or_before_start or _starts_by(query, self.window.start)
        edges.ends_after_window = self._seen_at_or_after_end or self._ends_after(query)
        self._seen_at_or_before_start = self._seen_at_or_after_end = False
        return edges

    @staticmethod
    def _note_extremes(edges: _Edges, page: PostsPage, *, descending: bool) -> None:
        """Record the query's earliest and latest rows when ``page`` shows them (first or last page of its order)."""
        if page.offset == 0:
            if descending:
                edges.high = edges.high or _latest(page)
            else:
                edges.low = edges.low or _earliest(page)
        if not page.has_more:
            if descending:
                edges.low = edges.low or _earliest(page)
            else:
                edges.high = edges.high or _latest(page)

    def _reaches(self, page: PostsPage, *, descending: bool) -> bool:
        """Whether paging on from ``page`` reaches the window without skipping past any of its rows."""
        if not page.has_more:
            return True
        if descending:
            earliest = _earliest(page)
            return earliest is not None and earliest < self.window.end
        latest = _latest(page)
        return latest is not None and latest >= self.window.start

    def _ends_after(self, query: PostsFilter) -> bool:
        """Whether the ±14 h bound alone shows that the query's interval reaches the window's end."""
        return _midnight(self._date_after(query)) - MAX_UTC_OFFSET >= self.window.end

    def _locate(self, query: PostsFilter, first: PostsPage | None, *, descending: bool) -> PostsPage | None:
        """Find the page, in the given order, that holds the window's first row in that order.

        ``first`` (offset 0), when given, lies wholly before the window in that order; without it the search is
        blind, from where the pace of the first query's rows puts this query's rows. Offsets are interpolated
        between the nearest rows known (or estimated) on either side, starting a little before the estimate (by
        :data:`SEARCH_SPREAD` times the spread of a uniform sample), and bisected when guesses stop halving the
        range, so that uneven data cannot make the search slow. A blind search may end on the query's first page
        although it does not lie before the window: then nothing shows where the query's interval begins.

        Returns ``None`` when the window seems to lie past the query's far end; raises :class:`_Unreachable`
        when it lies past the offset cap.
        """
        sign = -1.0 if descending else 1.0
        target = sign * (self.window.end if descending else self.window.start).timestamp()

        def key(instant: dt.datetime) -> float:
            return sign * instant.timestamp()

        def before(instant: dt.datetime) -> bool:  # outside the window on the near side, in this order
            return instant >= self.window.end if descending else instant < self.window.start

        estimate = self._pace.interval(query) if self._pace is not None else None
        near_key = far_key = None
        if estimate is not None:
            near_key, far_key = sorted((sign * estimate[0], sign * estimate[1]))
        if first is not None:
            times = [key(t) for t in _times(first)]
            if len(times) < 2:
                return None
            origin: float | None = min(times)
            lo_index, lo_key = len(first.posts) - 1, max(times)
            total = first.total_count
        elif estimate is not None and near_key is not None and self._pace is not None:
            origin = None
            lo_index, lo_key = -1, near_key
            total = max(1, round(self._pace.per_second * (estimate[1] - estimate[0])))
        else:
            return None
        hi_index, hi_key, hi_seen = total, far_key, first is not None
        if hi_key is not None and target >= hi_key:
            return None  # the pace says so; a caller that relies on it checks it with rows
        misses = 0
        local: float | None = None  # the offset the pace of the last page read puts the window's first row at
        local_steps = 0
        for _ in range(MAX_REPAIR_REQUESTS):
            span = hi_index - lo_index
            if local is not None and local_steps < MAX_LOCAL_STEPS:
                offset, local_steps = round(local), local_steps + 1
            elif hi_key is not None and misses < 2 and hi_key > lo_key:
                share = min(1.0, max(0.0, (target - lo_key) / (hi_key - lo_key)))
                spread = SEARCH_SPREAD * math.sqrt(span * share * (1 - share))
                offset = lo_index + round(share * span - spread) - SEARCH_MARGIN
            elif origin is not None and hi_key is None and lo_key > origin:
                # The pace of the rows known so far; its error shrinks as 1/sqrt(rows), hence the margin.
                guess = lo_index / (lo_key - origin) * (target - lo_key)
                if lo_index + guess >= total - 1:
                    return None
                margin = 3 * guess / math.sqrt(lo_index) + 3 * math.sqrt(guess)
                offset = lo_index + round(guess - margin) - SEARCH_MARGIN
            else:
                offset = lo_index + span // 2 - MAX_LIMIT // 2
            offset = max(0, lo_index - SEARCH_MARGIN + 1, min(offset, hi_index - 1))
            if offset > MAX_OFFSET:
                raise _Unreachable
            page = self._fetch(query, descending=descending, offset=offset)
            if not hi_seen:  # a blind search learns the query's count from its first answer
                hi_index, hi_seen = page.total_count, True
                if offset > 0 and offset >= page.total_count:
                    continue  # past the end of a list shorter than the pace said
            found = _times(page)
            if not found:
                return page  # no rows (the list shrank) or no times: read on from here, the seams will tell
            first_time, last_time = found[0], found[-1]
            if before(first_time) and (not before(last_time) or not page.has_more):
                return page
            if offset == 0 and not before(first_time):  # a blind search at the query's first row
                return page
            if before(last_time):
                lo_index, lo_key = offset + len(page.posts) - 1, key(last_time)
            elif offset <= lo_index + 1:  # the page starts right after a row known to lie before the window
                return page
            else:
                hi_index, hi_key = offset, key(first_time)
            if local is None:  # a step by interpolation or bisection, which must halve the range
                misses = misses + 1 if hi_index - lo_index > span // 2 else 0
            local = _extrapolated(page, key, target, near_side=before(last_time))
        raise GenviralIncompleteWindowError(
            f"Could not find where {self.window.describe()} begins in {query.describe()} after "
            f"{MAX_REPAIR_REQUESTS} requests: rows are arriving faster than they can be searched. Retry later."
        )

    # ------------------------------------------------------------------------------------------- scanning

    def _scan(self, query: PostsFilter, first: PostsPage, *, descending: bool) -> Generator[Row, None, PostsPage]:
        """Page on from ``first`` until a row lies outside the window on the far side, or the list ends.

        Rows come out in ascending ``publishedAt`` order: ascending pages as they arrive, descending ones kept and
        turned round at the end (the offset cap bounds them to 10,100 rows). Returns the last page read. What a scan
        cannot reach past the offset cap is read from the query's other end.
        """
        stop: Callable[[PostsPage], bool]
        if descending:
            stop = lambda page: (t := _earliest(page)) is not None and t < self.window.start  # noqa: E731
        else:
            stop = lambda page: (t := _latest(page)) is not None and t >= self.window.end  # noqa: E731
        kept: list[PostsPage] = []
        page = first
        try:
            while True:
                if descending:
                    kept.append(page)
                else:
                    yield from self._yield_page(page)
                if not page.has_more or stop(page):
                    break
                page = self._next_page(query, page, descending=descending)
        except _Unreachable:
            if self._from_other_end:
                self.log.info("%s: the window's rows lie past the offset cap; reading it whole.", query.describe())
                kept.clear()
                yield from self._read_whole(query)
            else:
                yield from self._read_rest(query, page, descending=descending)
        for earlier in reversed(kept):
            yield from self._yield_rows(reversed(earlier.posts))
        return page

    def _read_rest(self, query: PostsFilter, last: PostsPage, *, descending: bool) -> Iterator[Row]:
        """Read what a scan that reached the offset cap at ``last`` left of the window, from the query's other end.

        Ascending, the rest lies from ``last``'s latest row to the window's end; descending, from the window's start
        to ``last``'s earliest row (yielded before the rows kept, which come after it). A rest that reaches past the
        cap from that end too is read whole.
        """
        edge = _latest(last) if not descending else _earliest(last)
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
        yield from reader._read_far_end(query, _Edges(), descending=not descending)
        if descending:
            self._seen_at_or_before_start |= reader._seen_at_or_before_start
        else:
            self._seen_at_or_after_end |= reader._seen_at_or_after_end

    def _next_page(self, query: PostsFilter, previous: PostsPage, *, descending: bool) -> PostsPage:
        """Fetch the page after ``previous``, stepping back until its seam with ``previous`` holds."""
        if previous.offset >= MAX_OFFSET:
            raise _Unreachable
        offset = min(previous.offset + SCAN_STRIDE, MAX_OFFSET)
        for _ in range(MAX_REPAIR_REQUESTS):
            page = self._fetch(query, descending=descending, offset=offset)
            if _seam_holds(previous, page, descending=descending):
                return page
            self.log.info("Seam at offset %d of %s moved; reading it again.", offset, query.describe())
            offset = max(previous.offset + 1, offset - SCAN_STRIDE // 2)
        raise GenviralIncompleteWindowError(
            f"Could not verify {query.describe()} around offset {previous.offset} after {MAX_REPAIR_REQUESTS} "
            f"requests: more than {MAX_LIMIT} rows share one publishedAt, or rows are arriving faster than they can "
            "be read. Filter by platform or account, or retry later."
        )

    def _read_whole(self, query: PostsFilter) -> Generator[Row, None, tuple[dt.datetime | None, dt.datetime | None]]:
        """Read a query completely, split as needed, keeping the rows not yielded yet; return its earliest and
        latest rows' ``publishedAt``."""
        reader = WindowReader(self.source, log=self.log)
        low: dt.datetime | None = None
        high: dt.datetime | None = None
        for row in reader.rows(query):
            instant = published_at(row)
            if instant is not None:
                low = instant if low is None else min(low, instant)
                high = instant if high is None else max(high, instant)
            yield from self._yield_rows([row])
        self.stats.parts.extend(part for part in reader.stats.parts if part not in self.stats.parts)
        return low, high

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
                yield row

    # ------------------------------------------------------------------------------------------- requests

    def _dates(self, start: dt.date, end: dt.date) -> PostsFilter:
        return self.filters.replace(start=start, end=end)

    def _fetch(self, query: PostsFilter, *, descending: bool, offset: int = 0) -> PostsPage:
        head = offset == 0 and not descending
        if head and query in self._heads:  # a search that ended on a query's first page has fetched it already
            return self._heads[query]
        page = self.source.fetch(_sorted_request(query, descending=descending, offset=offset))
        if head:
            self._heads[query] = page
        if query.start != query.end and offset == 0 and page.total_count > REACHABLE_ROWS:
            self.log.info("%s holds %d rows, more than offsets reach.", query.describe(), page.total_count)
        return page

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


class WindowStream(Iterator[Row]):
    """The rows of a run's window, fetched as they are consumed; ``stats`` grows as they are.

    :ivar stats: requests sent, the API dates asked, the filter sets with their ``totalCount``.
    """

    def __init__(self, reader: WindowPlanReader) -> None:
        self._rows: Generator[Row, None, None] = reader.rows()
        self.stats: PlanStats = reader.stats

    def __next__(self) -> Row:
        return next(self._rows)

    def close(self) -> None:
        """Stop reading."""
        self._rows.close()


def own_dates(window: RunWindow) -> tuple[dt.date, dt.date]:
    """Return the UTC dates ``(first, end)`` with ``[first 00:00, end 00:00)`` the smallest span holding the window."""
    first = window.start.date()
    last_instant = window.end - dt.timedelta(microseconds=1)
    return first, last_instant.date() + DAY


def _sorted_request(query: PostsFilter, *, descending: bool, offset: int = 0) -> PageRequest:
    order = "desc" if descending else "asc"
    return PageRequest(filter=query, limit=MAX_LIMIT, offset=offset, sort_by="published_at", sort_order=order)


def _starts_by(query: PostsFilter, start: dt.datetime) -> bool:
    """Whether the ±14 h bound alone shows that the query's interval begins at or before ``start``."""
    assert query.start is not None
    return _midnight(query.start) + MAX_UTC_OFFSET <= start


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=UTC)


def _seam_holds(before: PostsPage, after: PostsPage, *, descending: bool) -> bool:
    """Whether two consecutive pages of one sorted read leave no row between them (see ``window.seam_holds``)."""
    if not before.has_more:
        return True
    if not before.posts or not after.posts:
        return False
    first, last = published_at(after.posts[0]), published_at(before.posts[-1])
    if first is None or last is None:
        return row_key(before.posts[-1]) in {row_key(row) for row in after.posts}
    return first > last if descending else first < last


def _extrapolated(
    page: PostsPage, key: Callable[[dt.datetime], float], target: float, *, near_side: bool
) -> float | None:
    """Return the offset where ``page``'s own pace puts ``target``, beyond its last row (``near_side``: the page
    lies before the target) or before its first, less a margin for the pace's error; ``None`` without a pace, or
    when the target lies too far for one page's pace to tell.

    Rows are rarely spread evenly over a day, but a page's pace holds for the rows next to it: after a first guess
    from a whole query's count, the page it lands on is the best guide to the rest of the way.
    """
    keys = [key(t) for t in _times(page)]
    if len(keys) < 2 or keys[-1] <= keys[0]:
        return None
    per_unit = (len(keys) - 1) / (keys[-1] - keys[0])
    distance = per_unit * abs(target - (keys[-1] if near_side else keys[0]))
    if distance > LOCAL_REACH:
        return None
    margin = SEARCH_SPREAD * math.sqrt(distance) + distance / 10 + SEARCH_MARGIN
    if near_side:
        return page.offset + len(page.posts) - 1 + distance - margin
    return page.offset - distance - margin


def _times(page: PostsPage) -> list[dt.datetime]:
    return [t for t in (published_at(row) for row in page.posts) if t is not None]


def _earliest(page: PostsPage) -> dt.datetime | None:
    times = _times(page)
    return min(times) if times else None


def _latest(page: PostsPage) -> dt.datetime | None:
    times = _times(page)
    return max(times) if times else None
