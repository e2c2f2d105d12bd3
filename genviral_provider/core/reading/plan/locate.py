"""The search for the page where the window begins in one query: offsets interpolated, then bisected.

Offsets are interpolated between the nearest rows known (or estimated) on either side, starting a little before the
estimate, and bisected when guesses stop halving the range, so that uneven data cannot make the search slow.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import MAX_LIMIT, MAX_OFFSET, PostsFilter
from genviral_provider.core.reading.plan.pace import Pace
from genviral_provider.core.reading.plan.pages import MAX_REPAIR_REQUESTS, Unreachable, times
from genviral_provider.core.reading.run_window import RunWindow
from genviral_provider.exceptions import GenviralIncompleteWindowError

#: Rows an interpolated search page starts before its estimate, so that it usually begins before the window.
SEARCH_MARGIN = 10
#: And how many times the spread of the estimate (that of a uniform sample) more: a page that starts past the
#: window's first row costs a request, one that starts too early costs a page of rows outside the window.
SEARCH_SPREAD = 1.5
#: How many standard errors a guess from the pace of the rows known so far starts before its estimate: that pace is
#: known to within 1/sqrt(rows known), the rows up to the window vary by sqrt(rows); three make a miss rare.
PACE_ERROR_SIGMAS = 3
#: Interpolation steps in a row that may fail to halve the range before the search bisects: one is bad luck,
#: two in a row say the rows are uneven, and bisection then bounds the search at log2 of the range.
MAX_MISSES = 2
#: Steps a search takes by the pace of the page it landed on before it falls back to bisecting.
MAX_LOCAL_STEPS = 4
#: How many rows away a page's own pace is trusted to place the window's first row.
LOCAL_REACH = 300
#: The share of that distance by which a page's pace may misjudge it (rows bunch within minutes, too).
LOCAL_PACE_ERROR = 0.1

Fetch = Callable[[int], PostsPage]


def locate(
    fetch: Fetch, query: PostsFilter, window: RunWindow, pace: Pace | None, first: PostsPage | None, *, descending: bool
) -> PostsPage | None:
    """Find the page of ``query`` (``fetch`` gets its page at an offset, in the given order) that holds the window's
    first row in that order.

    ``first`` (offset 0), when given, lies wholly before the window in that order; without it the search is blind,
    from where ``pace`` puts this query's rows. A blind search may end on the query's first page although it does
    not lie before the window: then nothing shows where the query's interval begins.

    Returns ``None`` when the window seems to lie past the query's far end; raises
    :class:`~genviral_provider.core.reading.plan.pages.Unreachable` when it lies past the offset cap.
    """
    search = _Search.start(query, window, pace, first, descending=descending)
    if search is None:
        return None
    for _ in range(MAX_REPAIR_REQUESTS):
        offset = search.next_offset()
        if offset is None:
            return None
        page = fetch(offset)
        if search.ends_on(offset, page):
            return page
    raise GenviralIncompleteWindowError(
        f"Could not find where {window.describe()} begins in {query.describe()} after "
        f"{MAX_REPAIR_REQUESTS} requests: rows are arriving faster than they can be searched. Retry later."
    )


def interpolated_offset(lo_index: int, span: int, share: float) -> int:
    """Return where a search page starts when the window's first row lies ``share`` of the way along ``span`` rows
    after ``lo_index``: before the estimate by :data:`SEARCH_SPREAD` times a uniform sample's spread, and more."""
    spread = SEARCH_SPREAD * math.sqrt(span * share * (1 - share))
    return lo_index + round(share * span - spread) - SEARCH_MARGIN


def pace_margin(guess: float, rows_known: int) -> float:
    """Return how many rows before a ``guess`` made from the pace of ``rows_known`` rows a search page starts."""
    return PACE_ERROR_SIGMAS * guess / math.sqrt(rows_known) + PACE_ERROR_SIGMAS * math.sqrt(guess)


@dataclass
class _Search:
    """What a search knows: the last row known to lie before the window in its order (``lo_index``, ``lo_key``) and
    the first known not to (``hi_index``, ``hi_key``); keys are timestamps, negated when descending."""

    window: RunWindow
    descending: bool
    origin: float | None  # the key of the query's first row, when known
    total: int  # the query's rows, as first counted or estimated
    lo_index: int
    lo_key: float
    hi_index: int
    hi_key: float | None
    hi_seen: bool  # whether hi_index is the query's count from an answer
    span: int = 0  # hi_index - lo_index when the current step was chosen
    misses: int = 0
    local: float | None = None  # the offset the pace of the last page read puts the window's first row at
    local_steps: int = 0

    @classmethod
    def start(
        cls, query: PostsFilter, window: RunWindow, pace: Pace | None, first: PostsPage | None, *, descending: bool
    ) -> _Search | None:
        """Return the search's first bounds, or ``None`` when nothing places the window or the pace puts it past
        the query's far end (a caller that relies on that checks it with rows)."""
        sign = -1.0 if descending else 1.0
        estimate = pace.interval(query) if pace is not None else None
        near_key = far_key = None
        if estimate is not None:
            near_key, far_key = sorted((sign * estimate[0], sign * estimate[1]))
        if first is not None:
            keys = [sign * t.timestamp() for t in times(first)]
            if len(keys) < 2:
                return None
            origin: float | None = min(keys)
            lo_index, lo_key, total = len(first.posts) - 1, max(keys), first.total_count
        elif estimate is not None and near_key is not None and pace is not None:
            origin, lo_index, lo_key = None, -1, near_key
            total = max(1, round(pace.per_second * (estimate[1] - estimate[0])))
        else:
            return None
        search = cls(window, descending, origin, total, lo_index, lo_key, total, far_key, first is not None)
        return None if far_key is not None and search.target >= far_key else search

    @property
    def target(self) -> float:
        return self.key(self.window.end if self.descending else self.window.start)

    def key(self, instant: dt.datetime) -> float:
        return -instant.timestamp() if self.descending else instant.timestamp()

    def before(self, instant: dt.datetime) -> bool:
        """Whether ``instant`` lies outside the window on the near side, in this order."""
        return instant >= self.window.end if self.descending else instant < self.window.start

    def next_offset(self) -> int | None:
        """Return the offset to ask next, or ``None`` when the pace puts the window past the query's end."""
        self.span = span = self.hi_index - self.lo_index
        if self.local is not None and self.local_steps < MAX_LOCAL_STEPS:
            offset, self.local_steps = round(self.local), self.local_steps + 1
        elif self.hi_key is not None and self.misses < MAX_MISSES and self.hi_key > self.lo_key:
            share = min(1.0, max(0.0, (self.target - self.lo_key) / (self.hi_key - self.lo_key)))
            offset = interpolated_offset(self.lo_index, span, share)
        elif self.origin is not None and self.hi_key is None and self.lo_key > self.origin:
            guess = self.lo_index / (self.lo_key - self.origin) * (self.target - self.lo_key)
            if self.lo_index + guess >= self.total - 1:
                return None
            offset = self.lo_index + round(guess - pace_margin(guess, self.lo_index)) - SEARCH_MARGIN
        else:
            offset = self.lo_index + span // 2 - MAX_LIMIT // 2
        offset = max(0, self.lo_index - SEARCH_MARGIN + 1, min(offset, self.hi_index - 1))
        if offset > MAX_OFFSET:
            raise Unreachable
        return offset

    def ends_on(self, offset: int, page: PostsPage) -> bool:
        """Whether the search ends on ``page`` (at ``offset``); otherwise narrow the bounds by it."""
        if not self.hi_seen:  # a blind search learns the query's count from its first answer
            self.hi_index, self.hi_seen = page.total_count, True
            if offset > 0 and offset >= page.total_count:
                return False  # past the end of a list shorter than the pace said
        found = times(page)
        if not found:
            return True  # no rows (the list shrank) or no times: read on from here, the seams will tell
        first_time, last_time = found[0], found[-1]
        if self.before(first_time) and (not self.before(last_time) or not page.has_more):
            return True
        if offset == 0 and not self.before(first_time):  # a blind search at the query's first row
            return True
        if self.before(last_time):
            self.lo_index, self.lo_key = offset + len(page.posts) - 1, self.key(last_time)
        elif offset <= self.lo_index + 1:  # the page starts right after a row known to lie before the window
            return True
        else:
            self.hi_index, self.hi_key = offset, self.key(first_time)
        if self.local is None:  # a step by interpolation or bisection, which must halve the range
            self.misses = self.misses + 1 if self.hi_index - self.lo_index > self.span // 2 else 0
        self.local = extrapolated(page, self.key, self.target, near_side=self.before(last_time))
        return False


def extrapolated(
    page: PostsPage, key: Callable[[dt.datetime], float], target: float, *, near_side: bool
) -> float | None:
    """Return the offset where ``page``'s own pace puts ``target``, beyond its last row (``near_side``: the page
    lies before the target) or before its first, less a margin for the pace's error; ``None`` without a pace, or
    when the target lies too far for one page's pace to tell.

    Rows are rarely spread evenly over a day, but a page's pace holds for the rows next to it: after a first guess
    from a whole query's count, the page it lands on is the best guide to the rest of the way.
    """
    keys = [key(t) for t in times(page)]
    if len(keys) < 2 or keys[-1] <= keys[0]:
        return None
    per_unit = (len(keys) - 1) / (keys[-1] - keys[0])
    distance = per_unit * abs(target - (keys[-1] if near_side else keys[0]))
    if distance > LOCAL_REACH:
        return None
    margin = SEARCH_SPREAD * math.sqrt(distance) + LOCAL_PACE_ERROR * distance + SEARCH_MARGIN
    if near_side:
        return page.offset + len(page.posts) - 1 + distance - margin
    return page.offset - distance - margin
