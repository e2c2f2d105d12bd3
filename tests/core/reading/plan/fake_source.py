"""A page source over a list of rows, in memory: the API's date filter, sorting and offsets, without HTTP."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import PageRequest
from genviral_provider.core.rows import Row, published_at

UTC = dt.timezone.utc


def at(day: int, hour: float = 0) -> dt.datetime:
    """Return an instant of January 2026, UTC."""
    return dt.datetime(2026, 1, day, tzinfo=UTC) + dt.timedelta(hours=hour)


def rows_between(start: dt.datetime, end: dt.datetime, count: int, *, prefix: str = "r") -> list[Row]:
    """Return ``count`` rows spread evenly over ``[start, end)``."""
    step = (end - start) / count
    return [{"id": f"{prefix}{i}", "publishedAt": (start + i * step).isoformat()} for i in range(count)]


class ListSource:
    """Answer page requests from ``rows`` as the API would, reading dates in UTC with ``end`` included or not.

    :ivar requests: the requests answered, in order.
    :param on_fetch: called with each request before it is answered (to change the rows between requests).
    """

    def __init__(
        self,
        rows: list[Row],
        *,
        end_inclusive: bool = False,
        on_fetch: Callable[[PageRequest], None] | None = None,
    ) -> None:
        self.rows = rows
        self.end_inclusive = end_inclusive
        self.on_fetch = on_fetch
        self.requests: list[PageRequest] = []

    def fetch(self, request: PageRequest) -> PostsPage:
        if self.on_fetch is not None:
            self.on_fetch(request)
        self.requests.append(request)
        query = request.filter
        assert query.start is not None and query.end is not None
        low = dt.datetime.combine(query.start, dt.time(), tzinfo=UTC)
        days = (query.end - query.start).days + (1 if self.end_inclusive else 0)
        high = low + dt.timedelta(days=days)
        chosen = [row for row in self.rows if low <= _time(row) < high]
        chosen.sort(key=lambda row: (_time(row), row["id"]), reverse=request.sort_order == "desc")
        posts = chosen[request.offset : request.offset + request.limit]
        return PostsPage(posts, len(chosen), request.offset + len(posts) < len(chosen), request.offset)

    def fetch_all(self, requests: Sequence[PageRequest]) -> Iterator[PostsPage]:
        for request in requests:
            yield self.fetch(request)

    def targets(self) -> list[dict[str, Any]]:
        return []

    def offsets(self) -> list[int]:
        """Return the offsets asked, in order."""
        return [request.offset for request in self.requests]


def _time(row: Row) -> dt.datetime:
    return _parsed(row["publishedAt"])


@functools.cache
def _parsed(text: str) -> dt.datetime:
    instant = published_at({"publishedAt": text})
    assert instant is not None
    return instant


class SteppingClock:
    """A monotonic clock that moves on by ``step`` seconds each time it is read (no sleeping in tests)."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now
