"""Splitting a part too large for one filter set: date halves, and the narrowest split by platform or account."""

from __future__ import annotations

import datetime as dt

from genviral_provider.core.api.query import posts_filter
from genviral_provider.core.reading.splits import narrowest_split, split_by_date


def test_date_split_halves_share_their_boundary_date() -> None:
    left, right = split_by_date(posts_filter("2026-01-01", "2026-01-31", platforms=["tiktok"]))
    assert (left.start, left.end) == (dt.date(2026, 1, 1), dt.date(2026, 1, 16))
    assert (right.start, right.end) == (dt.date(2026, 1, 16), dt.date(2026, 1, 31))
    assert left.platforms == right.platforms == ("tiktok",)


TARGETS = [
    {"id": "tt-1", "platform": "tiktok"},
    {"id": "tt-2", "platform": "tiktok"},
    {"id": "ig-1", "platform": "instagram"},
]


def test_the_narrowest_split_passes_over_a_platform_that_holds_every_target() -> None:
    only_tiktok = [t for t in TARGETS if t["platform"] == "tiktok"]
    parts = narrowest_split(posts_filter("2026-01-01", "2026-01-02"), lambda: only_tiktok)
    assert [(p.platforms, p.accounts) for p in parts] == [(("tiktok",), ("tt-1",)), (("tiktok",), ("tt-2",))]


def test_the_narrowest_split_stops_at_the_first_level_that_splits() -> None:
    parts = narrowest_split(posts_filter("2026-01-01", "2026-01-02"), lambda: TARGETS)
    assert [p.platforms for p in parts] == [("instagram",), ("tiktok",)]
    assert all(p.accounts == () for p in parts)


def test_nothing_narrows_one_account_and_a_lone_target_is_the_deepest_split() -> None:
    one = posts_filter("2026-01-01", "2026-01-02", platforms="tiktok", accounts="tt-1")
    assert narrowest_split(one, lambda: TARGETS) == []
    lone = [{"id": "ig-1", "platform": "instagram"}]
    assert narrowest_split(posts_filter("2026-01-01", "2026-01-02"), lambda: lone) == [
        posts_filter("2026-01-01", "2026-01-02", platforms="instagram", accounts="ig-1")
    ]
