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
read whole by :class:`~genviral_provider.core.reading.window.WindowReader` (:mod:`.scan`). Nothing here needs
Airflow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Iterator

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import REACHABLE_ROWS, PostsFilter
from genviral_provider.core.reading.plan.memory import PlanStats
from genviral_provider.core.reading.plan.pace import Pace, dates_per_query
from genviral_provider.core.reading.plan.pages import DAY, Edges, earliest, latest, sorted_request
from genviral_provider.core.reading.plan.scan import SliceReader
from genviral_provider.core.reading.seams import TieBeyondPage, require_parts_cover, split_tie
from genviral_provider.core.rows import Row


class WindowPlanReader(SliceReader):
    """Yield the rows the API holds for a run's window, each once, reading little beyond the window's own rows.

    Rows outside the window that share a page with window rows are yielded too (a
    :class:`~genviral_provider.core.reading.run_window.WindowFilter` drops and counts them); every row published in the
    window is yielded, in ascending ``publishedAt`` order but for rows outside the window.

    :param source: fetches pages (the hook's client).
    :param window: the run's window.
    :param filters: platforms and accounts (their dates are ignored).
    :param reading: what earlier windows of the same hook learned; updated by this one.
    :param log: where the plan is reported, and every 30 s how far it got (rows and pages so far).
    :param clock: seconds, monotonic, for those progress lines.
    """

    # ------------------------------------------------------------------------------------------- the plan

    def rows(self) -> Generator[Row, None, None]:
        """Yield the rows of the window's dates, of the date before and of the date after where they may hold some."""
        yield from self._window_rows()
        if self.stats.inclusive_proven:
            self.reading.inclusive = True
        stats = self.stats
        self.progress.finished(
            requests=stats.requests,
            kept=stats.rows - stats.outside,
            dropped=stats.outside,
            dropped_what="outside the window",
            details=f", over API dates {', '.join(f'{s}..{e}' for s, e in stats.dates_read)}",
        )

    def _window_rows(self) -> Iterator[Row]:
        """Read the window in this reader's filters (split by platform or account where a tie needs it)."""
        yield from self._tied_apart(self._read_dates(*self._first_query()))

    def _tied_apart(self, rows: Iterator[Row]) -> Iterator[Row]:
        """Yield ``rows``; when a tie too large for a page stops them, read the window again in narrower filters.

        The rows yielded stay yielded: the narrower readers share this one's rows seen, and skip them.
        """
        try:
            yield from rows
        except TieBeyondPage as tie:
            for part in self._split_for_tie(tie):
                yield from self._narrowed(part)._window_rows()

    def _split_for_tie(self, tie: TieBeyondPage) -> list[PostsFilter]:
        """Return the narrowest filter sets below this reader's that split it (:func:`.seams.split_tie`), once their
        counts for the tie's query cover its rows."""
        query = tie.query

        def fetch(offset: int) -> PostsPage:
            return self._fetch(query, descending=tie.descending, offset=offset)

        narrower = split_tie(tie, self.filters, self._known_targets, fetch, self.log)
        probes = [sorted_request(part.replace(start=query.start, end=query.end), descending=False) for part in narrower]
        pages = self.source.fetch_all([probe.at(0, 1) for probe in probes])
        require_parts_cover(query, tie.total, pages, lambda: self._count(query))
        return narrower

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
                self._pace = Pace.estimate(query, first, includes_end=known)
            from_end = False
            if first.total_count > REACHABLE_ROWS and not located:
                reach = None if self._pace is None else self._pace.reach(query, self.window, first.total_count)
                if reach is None and (fewer := self._fewer_dates(query, first.total_count)) is not None:
                    query, first = fewer
                    continue
                if reach is None and (narrower := self._narrower(query)):
                    yield from self._read_narrower(query, first, narrower, left_proven=left_proven)
                    return
                from_end = bool(reach)
            if not left_proven:
                first_row = earliest(first)
                if not self._begins_by_window(query, first_row):
                    yield from self._read_left(query, first_row)
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

    # ------------------------------------------------------------------------------------------- the core dates

    def _next_query(self, query: PostsFilter, edges: Edges) -> tuple[PostsFilter, PostsPage] | None:
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
        first_row = earliest(page)
        if not includes_end and edges.high is not None and first_row is not None and first_row <= edges.high:
            self._prove_inclusive("the dates after overlap the window's dates")
            return None if self._ends_after(query) else self._next_query(query, edges)
        return following, page

    # ------------------------------------------------------------------------------------------- the over-cap split

    def _fewer_dates(self, query: PostsFilter, total: int) -> tuple[PostsFilter, PostsPage] | None:
        """Return ``query`` cut to the dates whose rows offsets likely reach, with its first page (the number of
        dates is kept for the next queries), or ``None`` when it asks for one date only."""
        assert query.start is not None and query.end is not None
        dates = (query.end - query.start).days + self._includes_end(query)
        span = dates_per_query(dates, total)
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

    def _read_narrower(
        self, query: PostsFilter, first: PostsPage, narrower: list[PostsFilter], *, left_proven: bool
    ) -> Iterator[Row]:
        """Read the window from ``query`` on once per narrower filter set, after checking that their counts cover
        ``query``'s (rows of no known target would be lost)."""
        self.log.info("%s holds %d rows; reading it in %d parts.", query.describe(), first.total_count, len(narrower))
        requests = [sorted_request(part, descending=False) for part in narrower]
        pages = list(self.source.fetch_all(requests))
        require_parts_cover(query, first.total_count, pages, lambda: self._count(query))
        for part, page in zip(narrower, pages, strict=True):
            reader = self._narrowed(part)
            yield from reader._tied_apart(reader._read_dates(part, page, left_proven=left_proven))

    # ------------------------------------------------------------------------------------------- the edge before

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
            last_row = latest(page)
            if core_earliest is not None and last_row is not None and last_row >= core_earliest:
                self._prove_inclusive("the date before overlaps the window's dates")
                left = self._dates(day, day)
                page = self._fetch(left, descending=True)
        yield from self._read_slice(left, page, descending=True, located=blind)

    # ------------------------------------------------------------------------------------------- the edge after

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
        if page is not None and (first_row := earliest(page)) is not None and first_row < self.window.start:
            return following, page, True
        self.log.info(
            "%s does not show it begins by the window; reading %s from its end.", following.describe(), query.describe()
        )
        edges = Edges()
        yield from self._read_far_end(query, edges, descending=True)
        edges = self._proven_edges(query, edges)
        next_query = None if edges.ends_after_window else self._next_query(query, edges)
        return None if next_query is None else (*next_query, False)


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
