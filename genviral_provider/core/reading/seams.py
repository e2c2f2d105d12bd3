"""What a seam between two pages proves, and rows that share one ``publishedAt`` across it.

Two pages of one sorted query leave no row unread between them when the later starts strictly before the earlier
ends (:func:`seam_holds`). Ties defeat that check: rows sharing the last row's instant compare equal.

The API documents no tie-breaker for ``sortBy=published_at`` and may list tied rows in a new order on every request,
but the rows before and after a tie keep their offsets. So a tie is read exactly by one page that starts on the row
just before it, when that page also holds the row after it: at most ``MAX_LIMIT - 2`` tied rows. A larger tie
cannot be read in that filter set at all; a reader splits the part by platform, then by analytics target, where
each tie is smaller, and refuses (:func:`refusal`) only when one account's tie is still too large.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import MAX_LIMIT, MAX_OFFSET, PageRequest, PostsFilter
from genviral_provider.core.log import Log
from genviral_provider.core.reading.splits import narrowest_split
from genviral_provider.core.rows import published_at, row_key
from genviral_provider.exceptions import GenviralAPIContradictionError, GenviralIncompleteWindowError

#: The most rows one tie may hold to be read in one filter set: a page holds them with a row on each side.
MAX_TIED_ROWS = MAX_LIMIT - 2


def seam_holds(before: PostsPage, after: PostsPage, *, descending: bool = False) -> bool:
    """Whether no row that existed at both fetches can sort between two pages of an ascending (or descending) read.

    Each page holds every row whose key lies strictly between its first and last keys, so two pages leave
    no gap when the later one starts strictly before the earlier one ends. Comparing keys, not offsets,
    makes the check immune to rows inserted between the fetches and to ties reordered between requests.
    """
    if not before.has_more:
        return True  # `before` reached the end of the list: nothing existed beyond it
    if not before.posts or not after.posts:
        return False
    first, last = published_at(after.posts[0]), published_at(before.posts[-1])
    if first is None or last is None:  # no key to compare: require a shared row instead
        return row_key(before.posts[-1]) in {row_key(row) for row in after.posts}
    return first > last if descending else first < last


class TieBeyondPage(Exception):
    """More than :data:`MAX_TIED_ROWS` rows of ``query`` (of ``total`` rows) share ``instant``, from ``offset`` on in
    the order read (descending or not)."""

    def __init__(
        self, query: PostsFilter, instant: dt.datetime, offset: int, *, total: int, descending: bool = False
    ) -> None:
        super().__init__(f"{query.describe()}: more than {MAX_TIED_ROWS} rows share {instant.isoformat()}")
        self.query = query
        self.instant = instant
        self.offset = offset
        self.total = total
        self.descending = descending


def tie_start(page: PostsPage) -> int | None:
    """Return the offset of ``page``'s first row sharing its last row's ``publishedAt`` (``None``: no time)."""
    last = published_at(page.posts[-1]) if page.posts else None
    if last is None:
        return None
    index = len(page.posts) - 1
    while index > 0 and published_at(page.posts[index - 1]) == last:
        index -= 1
    return page.offset + index


def check_tie(query: PostsFilter, page: PostsPage, *, descending: bool = False) -> None:
    """Raise :class:`TieBeyondPage` when more than :data:`MAX_TIED_ROWS` rows at the end of ``page`` (with more rows
    after it) share one ``publishedAt``: no page can then hold the row before them, all of them and the row after."""
    start = tie_start(page)
    if page.has_more and start is not None and page.offset + len(page.posts) - start > MAX_TIED_ROWS:
        instant = published_at(page.posts[-1])
        assert instant is not None
        raise TieBeyondPage(query, instant, start, total=page.total_count, descending=descending)


def offset_before_tie(page: PostsPage, stride_offset: int) -> int:
    """Return where the page after ``page`` starts: ``stride_offset``, unless rows tied with ``page``'s last row reach
    into the overlap; then on the row just before the first of them (the tie's rows move, that row does not)."""
    start = tie_start(page)
    return start - 1 if start is not None and page.offset < start - 1 < stride_offset else stride_offset


def count_tie(fetch: Callable[[int], PostsPage], tie: TieBeyondPage) -> int:
    """Count the rows sharing ``tie.instant`` from ``tie.offset`` on, reading pages on until a row differs (a tie
    too large to read costs its rows' pages once more, to say how large it is)."""
    count, offset = 0, tie.offset
    while offset <= MAX_OFFSET:
        page = fetch(offset)
        for row in page.posts:
            if published_at(row) != tie.instant:
                return count
            count += 1
        if not page.has_more or not page.posts:
            return count
        offset += len(page.posts)
    return count


def refusal(tie: TieBeyondPage, count: int) -> GenviralIncompleteWindowError:
    """Return the error for a tie too large even in the narrowest filter set (one platform, one account)."""
    return GenviralIncompleteWindowError(
        f"{count} rows of {tie.query.describe()} share one publishedAt, {tie.instant.isoformat()}: more than the "
        f"{MAX_TIED_ROWS} a page of {MAX_LIMIT} can hold with a row on each side, and the filter names one platform "
        "and one account, so it cannot be split further. The API documents no tie-breaker for published_at, so "
        "these rows cannot be paged exactly; report it to Genviral."
    )


def split_tie(
    tie: TieBeyondPage,
    filters: PostsFilter,
    targets: Callable[[], list[dict[str, Any]]],
    fetch: Callable[[int], PostsPage],
    log: Log,
) -> list[PostsFilter]:
    """Return the narrowest filter sets below ``filters`` that split the tie's part in two or more; refuse, counting
    the tie with ``fetch`` (its query's page at an offset, in the order read), when ``filters`` names one platform
    and one account."""
    narrower = narrowest_split(filters, targets)
    if not narrower:
        raise refusal(tie, count_tie(fetch, tie))
    log.info(
        "%s: more than %d rows share %s; reading it again in %d narrower part(s).",
        tie.query.describe(),
        MAX_TIED_ROWS,
        tie.instant.isoformat(),
        len(narrower),
    )
    return narrower


def repeats(previous: PostsPage, page: PostsPage, overlap: int) -> bool:
    """Whether a page repeats every row of the page before it at another offset (pages share ``overlap`` rows)."""
    if page.offset == previous.offset or len(page.posts) <= overlap:
        return False
    return [row_key(row) for row in page.posts] == [row_key(row) for row in previous.posts]


def refuse_repeated_page(request: PageRequest, previous: PostsPage, page: PostsPage, overlap: int) -> None:
    """Refuse a page that repeats the page before it even when read again: the API ignores the offset."""
    if repeats(previous, page, overlap):
        raise GenviralAPIContradictionError(
            f"{request.filter.describe()}: the API sent the same {len(page.posts)} rows at offsets "
            f"{previous.offset} and {page.offset} (totalCount={page.total_count}, "
            f"hasMore={str(page.has_more).lower()}): it ignores the offset, so the window cannot be paged."
        )


def parts_cover(counted: int, total: int, recount: Callable[[], int]) -> bool:
    """Whether narrower parts whose counts add up to ``counted`` hold every row of a part counted ``total`` before
    them, or, when rows left it meanwhile, every row a ``recount`` of the part taken after them finds (rows of no
    known analytics target are in neither part, and still show)."""
    return counted >= total or counted >= recount()


def require_parts_cover(
    part: PostsFilter, total: int, first_pages: Iterable[PostsPage], recount: Callable[[], int]
) -> None:
    """Refuse to split ``part`` (counted ``total``) into the narrower parts whose first pages are given unless their
    counts cover it (:func:`parts_cover`): rows of no known analytics target would be lost."""
    counted = sum(page.total_count for page in first_pages)
    if not parts_cover(counted, total, recount):
        raise GenviralIncompleteWindowError(
            f"{part.describe()} holds {total} rows, but its parts by platform/account add up to {counted}: "
            "some rows belong to no known analytics target, so splitting would lose them."
        )
