"""Finding the analytics rows of given posts: which ids to look for, which pages to read, when to stop.

Rows carry ``genviralPostId`` (the id ``POST /posts`` returned) and ``externalId`` (the creator's
``external_id``) once Genviral correlates them — minutes to hours after publication, sometimes never. A
:class:`CorrelationSearch` reads the posts published since a moment, newest first, proving each seam between
pages as the window reader does, and stops as soon as every id is found. It knows nothing of HTTP: the sync hook
and the async trigger drive the same state machine::

    search = CorrelationSearch(CorrelationQuery.parse(genviral_post_ids=["d0e1..."], since=since))
    while (request := search.next_request()) is not None:
        search.consume(client.fetch(request))  # or: await async_client.fetch(request)
    result = search.result()
"""

from __future__ import annotations

import ast
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import (
    MAX_LIMIT,
    MAX_OFFSET,
    PLATFORMS,
    PageRequest,
    PostsFilter,
    filter_values,
    page_request,
    platform_values,
    posts_filter,
)
from genviral_provider.core.reading.run_window import covering_dates
from genviral_provider.core.reading.seams import MAX_TIED_ROWS, TieBeyondPage, check_tie, offset_before_tie, seam_holds
from genviral_provider.core.reading.window import MAX_BRIDGE_REQUESTS, PAGE_OVERLAP, PAGE_STRIDE, narrowest_split
from genviral_provider.core.rows import UTC, Row, parse_utc, published_at, row_key
from genviral_provider.exceptions import GenviralInvalidParameterError

MATCH_MODES = ("all", "any")
#: The longest ``external_id`` the API accepts.
MAX_EXTERNAL_ID_LENGTH = 128
_ONE_DAY = dt.timedelta(days=1)
_TICK = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class CorrelationResult:
    """What one search found.

    :param found: each id found (in the order given) to its rows; a post published to several accounts has
        several rows.
    :param missing: the ids not found, in the order given.
    :param satisfied: whether the ``match`` condition holds (every id found for ``"all"``, one for ``"any"``).
    :param requests: pages fetched.
    :param incomplete: why the window could not be searched to its end, when it could not.
    """

    found: dict[str, list[Row]]
    missing: tuple[str, ...]
    satisfied: bool
    requests: int = 0
    incomplete: str | None = None

    def rows(self, row_keys: Iterable[str] | None = None) -> list[Row]:
        """Each row found once (a row is listed under every id it matches), or only those of ``row_keys``.

        ``row_keys`` are the analytics ids the sensors return (:func:`~genviral_provider.core.rows.row_key`).
        """
        wanted = None if row_keys is None else set(row_keys)
        unique = {row_key(row): row for matched in self.found.values() for row in matched}
        return [row for key, row in unique.items() if wanted is None or key in wanted]


@dataclass(frozen=True)
class CorrelationQuery:
    """What to search for, validated: build one with :meth:`parse`.

    :param genviral_post_ids: ids returned by ``POST /posts``.
    :param external_ids: ``external_id`` values sent when creating posts.
    :param match: ``"all"`` (every id must be found) or ``"any"`` (one suffices).
    :param since: the earliest publication time searched, aware and in UTC.
    :param platforms: only these platforms.
    :param accounts: only these analytics target ids.
    """

    genviral_post_ids: tuple[str, ...]
    external_ids: tuple[str, ...]
    match: str
    since: dt.datetime
    platforms: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()

    @classmethod
    def parse(
        cls,
        *,
        genviral_post_ids: object = None,
        external_ids: object = None,
        match: object = "all",
        since: object,
        platforms: Iterable[str] | str | None = None,
        accounts: Iterable[str] | str | None = None,
    ) -> CorrelationQuery:
        """Validate every argument (see :func:`parse_ids` and :func:`parse_since` for accepted values).

        :raises GenviralInvalidParameterError: naming the bad value.
        """
        post_ids, externals = correlation_ids(genviral_post_ids, external_ids)
        return cls(
            genviral_post_ids=post_ids,
            external_ids=externals,
            match=check_match(match),
            since=parse_since(since),
            platforms=platform_values(platforms),
            accounts=filter_values("accounts", accounts),
        )

    @property
    def ids(self) -> tuple[str, ...]:
        """Every id searched for: the post ids, then the external ids."""
        return self.genviral_post_ids + self.external_ids

    def describe(self, ids: Iterable[str]) -> str:
        """Name some of the ids by kind, for messages: ``genviral_post_ids ['a'] and external_ids ['x']``."""
        return describe_ids(ids, self.genviral_post_ids, self.external_ids)


class CorrelationSearch:
    """Search the posts published since ``since`` for rows of the given ids: a state machine without I/O.

    Pages are read newest first (``sort_by=published_at``, ``sort_order=desc``, 100 rows) over the calendar
    dates that hold ``[since, the end of today)`` under every reading of the API's dates
    (:func:`~genviral_provider.core.reading.run_window.covering_dates`). A row matches when its ``genviralPostId``
    or its ``externalId`` is one of the ids (both keys are optional: older API versions omit them).

    Consecutive pages overlap, and each seam is proven as the window reader proves it
    (:mod:`~genviral_provider.core.reading.seams`): a page must start strictly after the last row of the page
    before it, so rows deleted or ties reordered between two requests cannot hide a row; a seam that does not hold
    is read again nearer the page before. Paging stops when every id is found, or once a proven page reaches rows
    older than ``since`` or the end of the list. At the offset cap (10,000) the window's end is moved back to the
    dates of the oldest row read and paging restarts, so that busy windows are still searched whole. What cannot
    be searched whole ends the search with :attr:`incomplete`: seams that never hold, or more rows sharing one
    ``publishedAt`` than a page holds even once the search is split by platform (and by the accounts asked).

    :param query: what to look for (see :meth:`CorrelationQuery.parse`).
    :param today: the current UTC date (default: from the clock).
    :raises GenviralInvalidParameterError: naming the bad value, before any request.
    """

    def __init__(self, query: CorrelationQuery, *, today: dt.date | None = None) -> None:
        self.query = query
        today = today or dt.datetime.now(UTC).date()
        until = dt.datetime.combine(today + _ONE_DAY, dt.time(), UTC)
        start, end = covering_dates(query.since, max(until, query.since))
        self._filter = posts_filter(start, end, platforms=query.platforms, accounts=query.accounts)
        self._parts: list[PostsFilter] = []  # narrower filters still to search, after a tie split this one
        self._by_post_id = set(query.genviral_post_ids)
        self._by_external_id = set(query.external_ids)
        self._rows: dict[str, dict[str, Row]] = {}  # id -> row key -> row
        self._offset = 0
        self._anchor: PostsPage | None = None  # the last page of the proven run from offset 0
        self._rereads = 0  # requests since a seam last held
        self.requests = 0
        self.incomplete: str | None = None
        self.done = False

    @property
    def ids(self) -> tuple[str, ...]:
        """Every id searched for: the post ids, then the external ids."""
        return self.query.ids

    @property
    def found(self) -> dict[str, list[Row]]:
        """Each id found so far to its rows, in the order the ids were given."""
        return {key: list(self._rows[key].values()) for key in self.ids if key in self._rows}

    @property
    def missing(self) -> tuple[str, ...]:
        """The ids not found so far, in the order given."""
        return tuple(key for key in self.ids if key not in self._rows)

    @property
    def satisfied(self) -> bool:
        """Whether the ``match`` condition holds with what was found so far."""
        return not self.missing if self.query.match == "all" else bool(self._rows)

    def next_request(self) -> PageRequest | None:
        """Return the next page to fetch, or ``None`` when the search is over."""
        if self.done:
            return None
        return page_request(self._filter, limit=MAX_LIMIT, offset=self._offset, sort_by="published_at")

    def consume(self, page: PostsPage) -> None:
        """Take in the page answering the last :meth:`next_request`, and decide what comes next."""
        self.requests += 1
        reached_since = self._take(page)
        if not self.missing:
            self.done = True
        elif self._anchor is not None and not seam_holds(self._anchor, page, descending=True):
            self._read_seam_again(page)
        else:
            self._anchor, self._rereads = page, 0
            if reached_since or not page.posts or not page.has_more:
                self._next_part()
            else:
                self._advance(page)

    def result(self) -> CorrelationResult:
        """Return what was found (complete once :attr:`done`)."""
        return CorrelationResult(
            found=self.found,
            missing=self.missing,
            satisfied=self.satisfied,
            requests=self.requests,
            incomplete=self.incomplete,
        )

    def describe_missing(self) -> str:
        """Name the ids still missing, by kind: ``genviral_post_ids ['a'] and external_ids ['x']``."""
        return self.query.describe(self.missing)

    def _take(self, page: PostsPage) -> bool:
        """Record the page's matching rows; return whether it holds a row published before ``since``."""
        reached_since = False
        for row in page.posts:
            published = published_at(row)
            if published is not None and published < self.query.since:
                reached_since = True
            else:
                self._record(row)
        return reached_since

    def _record(self, row: Row) -> None:
        keys = []
        post_id, external_id = row.get("genviralPostId"), row.get("externalId")
        if isinstance(post_id, str) and post_id in self._by_post_id:
            keys.append(post_id)
        if isinstance(external_id, str) and external_id in self._by_external_id:
            keys.append(external_id)
        for key in keys:
            self._rows.setdefault(key, {})[row_key(row)] = row

    def _advance(self, page: PostsPage) -> None:
        """Ask for the page after ``page``, overlapping it, or restart before the offset cap."""
        if self._tie_too_large(page):
            return
        if page.offset >= MAX_OFFSET:
            self._restart_before_oldest(page)
        else:
            stride = max(1, len(page.posts) - PAGE_OVERLAP)  # PAGE_STRIDE, unless the API sent a short page
            self._offset = offset_before_tie(page, min(page.offset + stride, MAX_OFFSET))

    def _read_seam_again(self, page: PostsPage) -> None:
        """Ask again, nearer the proven run's last page, for the rows between it and ``page``."""
        assert self._anchor is not None
        self._rereads += 1
        if self._rereads > MAX_BRIDGE_REQUESTS:
            self._give_up(
                f"the pages after offset {self._anchor.offset} did not meet it in {MAX_BRIDGE_REQUESTS} requests "
                "(rows arriving or leaving faster than they can be read)"
            )
        else:
            self._offset = max(0, page.offset - PAGE_STRIDE // 2)

    def _tie_too_large(self, page: PostsPage) -> bool:
        """Search narrower filters (by platform, or by the accounts asked) when rows tied at the end of ``page`` are
        more than a page can hold with a row on each side; give up when no filter narrows them."""
        try:
            check_tie(self._filter, page, descending=True)
        except TieBeyondPage as tie:
            narrower = narrowest_split(self._filter, _platforms)
            if not narrower:
                self._give_up(
                    f"more than {MAX_TIED_ROWS} rows share publishedAt {tie.instant.isoformat()}, so they "
                    "cannot be paged exactly"
                )
            else:
                self._parts[:0] = narrower[1:]
                self._search_part(narrower[0])
            return True
        return False

    def _next_part(self) -> None:
        if self._parts:
            self._search_part(self._parts.pop(0))
        else:
            self.done = True

    def _search_part(self, part: PostsFilter) -> None:
        self._filter, self._offset, self._anchor, self._rereads = part, 0, None, 0

    def _restart_before_oldest(self, page: PostsPage) -> None:
        """Move the window's end back to the dates of the oldest row of the proven run, and page again from 0."""
        times = [moment for moment in map(published_at, page.posts) if moment is not None]
        end = self._filter.end
        new_end = covering_dates(self.query.since, min(times) + _TICK)[1] if times else None
        if end is None or new_end is None or new_end >= end:
            oldest = min(times).isoformat() if times else "the same time"
            self._give_up(f"more than {MAX_OFFSET + MAX_LIMIT} rows were published around {oldest}")
            return
        self._search_part(self._filter.replace(end=max(new_end, self._filter.start or new_end)))

    def _give_up(self, why: str) -> None:
        self.incomplete = (
            f"{why} in {self._filter.describe()}: narrow the search with platforms or accounts, or a later since"
        )
        self.done = True


def _platforms() -> list[dict[str, Any]]:
    """Every platform, as analytics targets without ids: a tie splits by platform, or by the accounts asked."""
    return [{"platform": platform} for platform in PLATFORMS]


def check_match(match: object) -> str:
    """Validate ``match``: ``"all"`` or ``"any"``."""
    if match not in MATCH_MODES:
        raise GenviralInvalidParameterError(f"Unknown match {match!r}: allowed are {', '.join(MATCH_MODES)}.")
    return str(match)


def correlation_ids(genviral_post_ids: object, external_ids: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Validate both id lists: at least one id in all, none blank, none twice (within or across the lists).

    :raises GenviralInvalidParameterError: naming the bad value.
    """
    post_ids = parse_ids("genviral_post_ids", genviral_post_ids)
    externals = parse_ids("external_ids", external_ids)
    if not post_ids and not externals:
        raise GenviralInvalidParameterError(
            "No ids to wait for: give at least one of genviral_post_ids or external_ids "
            f"(got genviral_post_ids={genviral_post_ids!r}, external_ids={external_ids!r})."
        )
    for value in externals:
        if len(value) > MAX_EXTERNAL_ID_LENGTH:
            raise GenviralInvalidParameterError(
                f"external_ids value {value!r} is {len(value)} characters long: "
                f"the API allows at most {MAX_EXTERNAL_ID_LENGTH}."
            )
    both = sorted(set(post_ids) & set(externals))
    if both:
        raise GenviralInvalidParameterError(
            f"Id {both[0]!r} is in both genviral_post_ids and external_ids: give each id once, in its own list."
        )
    return post_ids, externals


def parse_ids(name: str, value: object) -> tuple[str, ...]:
    """Validate a list of ids, as given or as rendered by a Jinja template.

    Accepts ``None`` (no ids), a list or tuple of strings, or a string: a rendered list (``"['a', 'b']"`` or
    ``'["a", "b"]'``) is read as that list, ``"None"`` (a template that rendered nothing) is refused, any
    other string is one id.

    :param name: the argument's name, for messages.
    :raises GenviralInvalidParameterError: for a non-string, blank, padded or repeated id.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        if value.strip() in ("None", "null"):
            raise GenviralInvalidParameterError(
                f"{name} is {value!r}: its template rendered nothing (did the upstream task return ids?)."
            )
        value = _rendered_list(name, value)
    if isinstance(value, str):
        items: list[object] = [value]
    elif isinstance(value, Mapping | bytes) or not isinstance(value, Iterable):
        raise GenviralInvalidParameterError(
            f"{name} must be a list of id strings, got {type(value).__name__} {value!r}."
        )
    else:
        items = list(value)
    ids: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise GenviralInvalidParameterError(f"{name} contains {item!r} ({type(item).__name__}): ids are strings.")
        if not item.strip():
            raise GenviralInvalidParameterError(f"{name} contains a blank id {item!r}.")
        if item != item.strip():
            raise GenviralInvalidParameterError(
                f"{name} contains {item!r}, with surrounding spaces: ids are matched exactly."
            )
        if item in ids:
            raise GenviralInvalidParameterError(f"{name} contains {item!r} more than once.")
        ids.append(item)
    return tuple(ids)


def parse_since(value: object) -> dt.datetime:
    """Return ``since`` as an aware UTC datetime.

    Accepts a datetime (a naive one is read as UTC), a date (its midnight, UTC), or an ISO 8601 string such
    as ``2026-01-31T12:00:00Z`` or ``2026-01-31``.

    :raises GenviralInvalidParameterError: for anything else.
    """
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    moment = parse_utc(value, naive=UTC)
    if moment is None:
        raise GenviralInvalidParameterError(
            f"since {value!r} is not a moment: give a datetime, a date or an ISO 8601 string "
            "such as 2026-01-31T12:00:00Z."
        )
    return moment


def describe_ids(ids: Iterable[str], genviral_post_ids: Iterable[str], external_ids: Iterable[str]) -> str:
    """Name ids by kind, for messages: ``genviral_post_ids ['a'] and external_ids ['x']``."""
    wanted = list(ids)
    parts = [
        f"{name} {[key for key in kind if key in wanted]!r}"
        for name, kind in (("genviral_post_ids", list(genviral_post_ids)), ("external_ids", list(external_ids)))
        if any(key in wanted for key in kind)
    ]
    return " and ".join(parts) if parts else "no ids"


def _rendered_list(name: str, text: str) -> Any:
    """Read a list that a template rendered as text; return other text unchanged."""
    stripped = text.strip()
    if not (stripped.startswith("[") and stripped.endswith("]")) and not (
        stripped.startswith("(") and stripped.endswith(")")
    ):
        return text
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as error:
        raise GenviralInvalidParameterError(
            f"{name} {text!r} looks like a rendered list but cannot be read: render it as a native object "
            "(DAG(render_template_as_native_obj=True)) or pass the list itself."
        ) from error
