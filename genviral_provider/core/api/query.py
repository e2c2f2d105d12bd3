"""The contract of ``GET /analytics/summary/posts``: its parameters, their limits, and their validation.

Everything here is checked before a request is sent, so that bad input fails with a message naming the
value and what is allowed, and never costs a request or a partial load.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from genviral_provider.exceptions import GenviralInvalidParameterError

POSTS_PATH = "/analytics/summary/posts"
TARGETS_PATH = "/analytics/targets"

DATE_RANGE_PRESETS = ("14d", "30d", "90d", "1y", "all")
SORT_FIELDS = ("published_at", "views", "likes", "comments", "shares")
SORT_ORDERS = ("asc", "desc")
MAX_LIMIT = 100
MAX_OFFSET = 10_000
#: The most rows one filter set reaches through offsets: the page at the highest offset, full.
REACHABLE_ROWS = MAX_OFFSET + MAX_LIMIT
_SEPARATORS = (",", "\n", "\r", "\t")


@dataclass(frozen=True)
class PostsFilter:
    """Which rows to read: a window (dates or a preset) and optional platform and account filters.

    ``start`` and ``end`` are calendar dates sent as they are: the API reads them, inclusive or not,
    in its own time zone. Build one with :func:`posts_filter`, which validates.
    """

    start: dt.date | None = None
    end: dt.date | None = None
    date_range: str | None = None
    platforms: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()

    def params(self) -> dict[str, str]:
        """Return the query parameters that select these rows."""
        params: dict[str, str] = {}
        if self.start is not None and self.end is not None:
            params["start"] = self.start.isoformat()
            params["end"] = self.end.isoformat()
        if self.date_range is not None:
            params["range"] = self.date_range
        if self.platforms:
            params["platforms"] = ",".join(self.platforms)
        if self.accounts:
            params["accounts"] = ",".join(self.accounts)
        return params

    def replace(self, **changes: object) -> PostsFilter:
        """Return a copy with some fields changed (used to split a window into parts)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def describe(self) -> str:
        """Say which rows these are, for messages: ``2026-01-01..2026-01-31 platforms=tiktok``."""
        if self.start is not None:
            parts = [f"{self.start.isoformat()}..{self.end.isoformat() if self.end else '?'}"]
        else:
            parts = [f"range={self.date_range or '30d (API default)'}"]
        if self.platforms:
            parts.append(f"platforms={','.join(self.platforms)}")
        if self.accounts:
            parts.append(f"accounts={','.join(self.accounts)}")
        return " ".join(parts)


@dataclass(frozen=True)
class PageRequest:
    """One request of the posts endpoint: a filter, a page and an order."""

    filter: PostsFilter
    limit: int = 50
    offset: int = 0
    sort_by: str = "published_at"
    sort_order: str = "desc"

    def params(self) -> dict[str, str]:
        """Return the full query string of this request as a dict."""
        return {
            **self.filter.params(),
            "sortBy": self.sort_by,
            "sortOrder": self.sort_order,
            "limit": str(self.limit),
            "offset": str(self.offset),
        }

    def at(self, offset: int, limit: int | None = None) -> PageRequest:
        """Return the same request at another offset (and optionally page size)."""
        return dataclasses.replace(self, offset=offset, limit=self.limit if limit is None else limit)


def posts_filter(
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    *,
    date_range: str | None = None,
    platforms: Iterable[str] | str | None = None,
    accounts: Iterable[str] | str | None = None,
) -> PostsFilter:
    """Validate a window and filters, and return them as a :class:`PostsFilter`.

    :param start: first calendar date (``datetime.date`` or ``YYYY-MM-DD``); requires ``end``.
    :param end: last calendar date; requires ``start``.
    :param date_range: a preset (``14d``, ``30d``, ``90d``, ``1y``, ``all``) instead of dates.
    :param platforms: platform names, e.g. ``["tiktok", "instagram"]``.
    :param accounts: analytics target ids (from ``GET /analytics/targets``).
    :raises GenviralInvalidParameterError: naming the bad value and what is allowed.
    """
    start_date = _parse_date("start", start)
    end_date = _parse_date("end", end)
    if (start_date is None) != (end_date is None):
        given, missing = ("start", "end") if start_date is not None else ("end", "start")
        raise GenviralInvalidParameterError(
            f"'{given}' was given without '{missing}': the API takes both dates or neither."
        )
    if start_date is not None and end_date is not None and start_date > end_date:
        raise GenviralInvalidParameterError(
            f"start {start_date.isoformat()} is after end {end_date.isoformat()}: start must be on or before end."
        )
    if date_range is not None:
        if date_range not in DATE_RANGE_PRESETS:
            raise GenviralInvalidParameterError(
                f"Unknown date_range {date_range!r}: allowed presets are {', '.join(DATE_RANGE_PRESETS)}."
            )
        if start_date is not None:
            raise GenviralInvalidParameterError(
                f"date_range {date_range!r} was given together with start/end: give one or the other."
            )
    return PostsFilter(
        start=start_date,
        end=end_date,
        date_range=date_range,
        platforms=platform_values(platforms),
        accounts=filter_values("accounts", accounts),
    )


def page_request(
    posts: PostsFilter,
    *,
    limit: int = 50,
    offset: int = 0,
    sort_by: str = "published_at",
    sort_order: str = "desc",
) -> PageRequest:
    """Validate paging and order, and return one request of the posts endpoint.

    :raises GenviralInvalidParameterError: naming the bad value and what is allowed.
    """
    _check_int("limit", limit, 1, MAX_LIMIT)
    _check_int("offset", offset, 0, MAX_OFFSET)
    if sort_by not in SORT_FIELDS:
        raise GenviralInvalidParameterError(f"Unknown sort_by {sort_by!r}: allowed are {', '.join(SORT_FIELDS)}.")
    if sort_order not in SORT_ORDERS:
        raise GenviralInvalidParameterError(f"Unknown sort_order {sort_order!r}: allowed are {', '.join(SORT_ORDERS)}.")
    return PageRequest(filter=posts, limit=limit, offset=offset, sort_by=sort_by, sort_order=sort_order)


#: The platforms the API has analytics targets for: a filter on any other silently returns no rows.
PLATFORMS = ("tiktok", "instagram", "youtube")


def platform_values(platforms: Iterable[str] | str | None) -> tuple[str, ...]:
    """Validate a platform filter as :func:`filter_values` does, and refuse platforms the API does not know.

    :raises GenviralInvalidParameterError: naming the unknown platform(s) and the known ones.
    """
    chosen = filter_values("platforms", platforms)
    unknown = [name for name in chosen if name not in PLATFORMS]
    if unknown:
        raise GenviralInvalidParameterError(
            f"Unknown platform(s) {', '.join(map(repr, unknown))}: analytics targets exist for {', '.join(PLATFORMS)}."
        )
    return chosen


def filter_values(name: str, values: Iterable[str] | str | None) -> tuple[str, ...]:
    """Validate platform or account values: each a non-blank string without separators.

    A comma-separated string is accepted as a convenience (``"tiktok,instagram"``); inside a list, a comma
    would silently change the filter and is refused.
    """
    if values is None:
        return ()
    items = values.split(",") if isinstance(values, str) else list(values)
    checked: list[str] = []
    for value in items:
        if not isinstance(value, str) or not value.strip():
            raise GenviralInvalidParameterError(f"{name} contains a blank or non-string value {value!r}.")
        if value != value.strip() or any(sep in value for sep in _SEPARATORS):
            raise GenviralInvalidParameterError(
                f"{name} value {value!r} contains a separator or surrounding spaces: give one value per item."
            )
        if value not in checked:
            checked.append(value)
    return tuple(checked)


def _parse_date(name: str, value: dt.date | str | None) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        raise GenviralInvalidParameterError(
            f"{name} {value.isoformat()!r} is a datetime: give a calendar date (datetime.date or YYYY-MM-DD)."
        )
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            if len(value) == 10:
                return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise GenviralInvalidParameterError(f"{name} {value!r} is not a date: expected YYYY-MM-DD, e.g. 2026-01-31.")


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise GenviralInvalidParameterError(f"{name} {value!r} is out of range: allowed are integers {low}..{high}.")
