"""The correlation search: a state machine without I/O that pages the posts published since a moment."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import (
    MAX_LIMIT,
    MAX_OFFSET,
    PLATFORMS,
    PageRequest,
    PostsFilter,
    page_request,
    posts_filter,
)
from genviral_provider.core.correlation.query import CorrelationQuery
from genviral_provider.core.reading.run_window import covering_dates
from genviral_provider.core.reading.seams import MAX_TIED_ROWS, TieBeyondPage, check_tie, offset_before_tie, seam_holds
from genviral_provider.core.reading.splits import narrowest_split
from genviral_provider.core.reading.window import MAX_BRIDGE_REQUESTS, PAGE_OVERLAP, PAGE_STRIDE
from genviral_provider.core.rows import UTC, Row, published_at, row_key

_ONE_DAY = dt.timedelta(days=1)
_TICK = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class TargetsRequest:
    """What :meth:`CorrelationSearch.next_request` asks for when a tie in one platform must be searched one account
    at a time and no accounts were passed: the key's analytics targets, for :meth:`CorrelationSearch.consume_targets`.
    """


@dataclass
class _AccountsCover:
    """A tie's part split by the accounts of the key's targets: their counts must add up to the part's."""

    part: PostsFilter
    total: int
    uncounted: set[PostsFilter]
    counted: int = field(default=0)


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
    ``publishedAt`` than a page holds even once the search is split by platform and by account (those asked, or the
    key's analytics targets, asked for with a :class:`TargetsRequest`).

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
        self._targets: list[dict[str, Any]] | None = None  # the key's analytics targets, once a tie needed them
        self._waiting_tie: TieBeyondPage | None = None  # the tie to split once they come
        self._cover: _AccountsCover | None = None
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

    def next_request(self) -> PageRequest | TargetsRequest | None:
        """Return the next page to fetch, the targets to fetch, or ``None`` when the search is over."""
        if self.done:
            return None
        if self._waiting_tie is not None:
            return TargetsRequest()
        return page_request(self._filter, limit=MAX_LIMIT, offset=self._offset, sort_by="published_at")

    def consume(self, page: PostsPage) -> None:
        """Take in the page answering the last :meth:`next_request`, and decide what comes next."""
        self.requests += 1
        if self._anchor is None:
            self._count_part(page)
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

    def consume_targets(self, targets: list[dict[str, Any]]) -> None:
        """Take in the key's analytics targets answering a :class:`TargetsRequest`, and split the waiting tie."""
        self.requests += 1
        self._targets = [target for target in targets if isinstance(target, dict)]
        tie, self._waiting_tie = self._waiting_tie, None
        if tie is not None:
            self._split_tie(tie)

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
        """Whether rows tied at the end of ``page`` are more than a page can hold with a row on each side (the
        search then goes on in narrower filters, or ends)."""
        try:
            check_tie(self._filter, page, descending=True)
        except TieBeyondPage as tie:
            self._split_tie(tie)
            return True
        return False

    def _split_tie(self, tie: TieBeyondPage) -> None:
        """Search the tie's part again by platform, then by account (those asked, or the key's targets, fetched
        first); give up when no filter narrows it."""
        narrower = narrowest_split(self._filter, self._known_targets)
        if not narrower and self._targets is None and not self._filter.accounts:
            self._waiting_tie = tie
        elif not narrower:
            self._give_up(
                f"more than {MAX_TIED_ROWS} rows share publishedAt {tie.instant.isoformat()}, so they cannot be "
                "paged exactly"
            )
        else:
            if narrower[0].accounts and not self._filter.accounts:  # accounts of the targets: prove they cover
                self._cover = _AccountsCover(self._filter, tie.total, set(narrower))
            self._parts[:0] = narrower[1:]
            self._search_part(narrower[0])

    def _known_targets(self) -> list[dict[str, Any]]:
        """Every platform (as targets without ids), and the key's targets once fetched."""
        targets = [target for target in self._targets or [] if target.get("platform") in PLATFORMS]
        return [{"platform": platform} for platform in PLATFORMS] + targets

    def _count_part(self, first: PostsPage) -> None:
        """Count a part's first page against the split it belongs to; say so when the parts leave rows out."""
        cover = self._cover
        if cover is None or self._filter not in cover.uncounted:
            return
        cover.uncounted.discard(self._filter)
        cover.counted += first.total_count
        if not cover.uncounted and cover.counted < cover.total:
            self.incomplete = (
                f"{cover.part.describe()} held {cover.total} rows, but its accounts' parts add up to {cover.counted}: "
                "rows of no known analytics target were not searched"
            )

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
