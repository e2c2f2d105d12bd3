"""Where the API's rows probably lie, and how many dates a query may ask: guesses that pick offsets, never proofs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import MAX_OFFSET, REACHABLE_ROWS, PostsFilter
from genviral_provider.core.reading.plan.pages import DAY, midnight, times
from genviral_provider.core.reading.run_window import MAX_UTC_OFFSET, RunWindow

#: What the API's midnight is rounded to when it is estimated from a date's earliest row, in seconds: every zone
#: in use lies a whole number of quarter hours from UTC, so rounding down to one cancels the earliest row's delay.
ZONE_STEP = 900
#: The share of a query's rows by which the pace may misplace the window when judging whether offsets reach it:
#: rows are not spread evenly over a day, and a wrong "reachable" costs a scan that stops at the offset cap.
REACH_SLACK = 0.1
#: The share of the rows offsets reach that a query cut to fewer dates is planned to hold: dates are not equally
#: busy, and a query that still held more than offsets reach would be cut again, at the cost of a request.
FEWER_DATES_FILL = 0.8


def dates_per_query(dates: int, total: int) -> int:
    """Return how many of a query's ``dates`` to ask at a time, when together they hold ``total`` rows."""
    return max(1, int(dates * FEWER_DATES_FILL * REACHABLE_ROWS / total))


@dataclass(frozen=True)
class Pace:
    """Where the API's rows probably lie, from the first page of the window's first query.

    ``zone`` is how many seconds the API's midnight lies before UTC's, estimated from that query's earliest row;
    ``inclusive`` whether its count looks like one date more than it asked; ``per_second`` its rows' average pace.
    """

    zone: float
    inclusive: bool
    per_second: float

    @classmethod
    def estimate(cls, query: PostsFilter, first: PostsPage, *, includes_end: bool | None) -> Pace | None:
        """Guess from ``query``'s first ascending page; ``includes_end`` is what is known of the API's `end`."""
        assert query.start is not None and query.end is not None
        seen = [t.timestamp() for t in times(first)]
        if first.offset != 0 or not first.has_more or len(seen) < 2 or seen[-1] <= seen[0]:
            return None
        low = math.floor(seen[0] / ZONE_STEP) * ZONE_STEP
        limit = MAX_UTC_OFFSET.total_seconds()
        zone = min(limit, max(-limit, midnight(query.start).timestamp() - low))
        dates = (query.end - query.start).days
        candidates = (
            [dates + 1] if includes_end or dates == 0 else [dates] if includes_end is False else [dates, dates + 1]
        )
        span = first.total_count * (seen[-1] - seen[0]) / (len(seen) - 1)  # seconds the count covers at this pace
        days = min(candidates, key=lambda d: abs(math.log(d * DAY.total_seconds() / span)))
        return cls(zone=zone, inclusive=days > dates, per_second=first.total_count / (days * DAY.total_seconds()))

    def interval(self, query: PostsFilter) -> tuple[float, float]:
        """Return where ``query``'s interval probably lies, as POSIX timestamps ``(low, high)``."""
        assert query.start is not None and query.end is not None
        low = midnight(query.start).timestamp() - self.zone
        days = (query.end - query.start).days + (query.start == query.end or self.inclusive)
        return low, low + days * DAY.total_seconds()

    def reach(self, query: PostsFilter, window: RunWindow, total: int) -> bool | None:
        """Return how offsets reach the whole window in ``query`` of ``total`` rows, as this pace places it:
        ascending from its start (``False``), descending from its end (``True``), or neither (``None``)."""
        low, high = self.interval(query)
        share_start = max(0.0, (window.start.timestamp() - low) / (high - low))
        share_end = min(1.0, (window.end.timestamp() - low) / (high - low))
        reach = MAX_OFFSET - REACH_SLACK * total
        if share_end * total <= reach or share_start >= 1:  # past the end: the search says so, the next date is read
            return False
        if (1 - share_start) * total <= reach:
            return True
        return None
