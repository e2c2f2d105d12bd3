"""Splitting a part of a window that one filter set cannot read whole: by dates, then platform, then target.

One filter set reaches at most ``REACHABLE_ROWS`` rows through offsets, and at most ``MAX_TIED_ROWS`` rows tied at
one ``publishedAt``; a part holding more is read as narrower parts whose union is the part.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from genviral_provider.core.api.query import PostsFilter


def narrower_filters(part: PostsFilter, targets: Callable[[], list[dict[str, Any]]]) -> list[PostsFilter]:
    """Return the filter sets that split ``part`` one level down: by platform, then by analytics target.

    ``targets`` is called only when the key's targets must be known (no platforms or accounts named). Returns an
    empty list when ``part`` names one platform and one account already.
    """
    if len(part.platforms) != 1:
        platforms = part.platforms or tuple(sorted({str(t.get("platform")) for t in targets()}))
        return [part.replace(platforms=(p,)) for p in platforms]
    if len(part.accounts) != 1:
        platform = part.platforms[0]
        accounts = part.accounts or tuple(
            str(t["id"]) for t in targets() if t.get("platform") == platform and t.get("id")
        )
        return [part.replace(accounts=(a,)) for a in accounts]
    return []


def narrowest_split(part: PostsFilter, targets: Callable[[], list[dict[str, Any]]]) -> list[PostsFilter]:
    """Return the narrowest filter sets below ``part`` that split it in two or more (see :func:`narrower_filters`).

    A split that leaves one platform, or one account, holds the same rows as ``part``, so it goes a level deeper.
    Returns an empty list when no filter narrows ``part``.
    """
    narrower = narrower_filters(part, targets)
    while len(narrower) == 1 and (deeper := narrower_filters(narrower[0], targets)):
        narrower = deeper
    return narrower


def split_by_date(window: PostsFilter) -> tuple[PostsFilter, PostsFilter]:
    """Halve a date window into two that share their boundary date.

    ``(a, b)`` becomes ``(a, m)`` and ``(m, b)``: under an inclusive ``end`` they overlap on ``m`` (the reader
    drops the duplicates); under an exclusive one they tile exactly. Either way their union is the window.
    """
    assert window.start is not None and window.end is not None
    middle = window.start + dt.timedelta(days=(window.end - window.start).days // 2)
    return window.replace(end=middle), window.replace(start=middle)
