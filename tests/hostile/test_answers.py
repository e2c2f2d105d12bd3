"""Items 4-5: pages whose counts or types are wrong are read again, then refused naming what the API said."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.core.api.client import GenviralClient
from genviral_provider.core.api.query import PageRequest, posts_filter
from genviral_provider.core.reading.window import WindowReader
from genviral_provider.exceptions import GenviralRetryableError
from genviral_provider.hooks.genviral import GenviralHook
from tests.hostile.conftest import LeakCheck, fast_settings
from tests.hostile.server import Exchange, HostileServer, rows

Start = Callable[..., HostileServer]
WINDOW = posts_filter("2026-01-01", "2026-01-01")


@pytest.mark.parametrize(
    ("posts", "total", "has_more", "message"),
    [
        ([], 500, False, r"totalCount=500, hasMore=false, 0 row\(s\) at offset 0\): the page ends at row 0 of 500"),
        (rows(0, 100), 50, False, r"totalCount=50, hasMore=false, 100 row\(s\) .* room for at most 50 row\(s\)"),
        ([], 0, True, r"totalCount=0, hasMore=true, 0 row\(s\) at offset 0\): an empty page cannot have more"),
    ],
)
def test_counts_that_contradict_the_page_are_read_again_then_refused(
    hostile: Start, leaks: LeakCheck, posts: list[Any], total: int, has_more: bool, message: str
) -> None:
    server = hostile(lambda ex: ex.page(posts, total, has_more))
    client = GenviralClient(fast_settings(server, max_retries=2, max_retry_wait=10))

    with pytest.raises(GenviralRetryableError, match=r"the API contradicts itself \(" + message) as caught:
        client.fetch(PageRequest(filter=WINDOW, limit=100))
    assert server.requests == 3  # read again twice: a second answer may be consistent
    leaks.error(caught.value)
    leaks.assert_clean()


def test_a_contradiction_that_passes_is_read_correctly(hostile: Start, leaks: LeakCheck) -> None:
    def behave(ex: Exchange) -> None:
        if ex.number == 1:
            ex.page([], 3, False)
        else:
            ex.page(rows(0, 3), 3, False)

    server = hostile(behave)
    reader = WindowReader(GenviralClient(fast_settings(server)))
    assert [row["id"] for row in reader.rows(WINDOW)] == ["row-0", "row-1", "row-2"]
    assert server.requests == 2
    leaks.assert_clean()


def test_iter_posts_never_returns_short_when_the_total_says_more(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck
) -> None:
    server = hostile(lambda ex: ex.page([], 500, False))
    hook = GenviralHook(genviral_conn_id=genviral_connection(server, max_retries=1, max_retry_wait=1))

    with pytest.raises(GenviralRetryableError, match=r"totalCount=500, hasMore=false, 0 row\(s\)") as caught:
        list(hook.iter_posts("2026-01-01", "2026-01-01"))
    leaks.error(caught.value)
    leaks.text(repr(hook), repr(hook.settings))
    leaks.assert_clean()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"posts": rows(0, 2), "totalCount": 2, "hasMore": "false"}, r"'hasMore' is str \"false\", not true or false"),
        ({"posts": [1, 2], "totalCount": 2, "hasMore": False}, r"posts\[0\] is int 1, not an object"),
        ({"posts": rows(0, 2), "totalCount": "2", "hasMore": False}, r"'totalCount' is str \"2\", not a non-negative"),
        ({"posts": rows(0, 2), "totalCount": True, "hasMore": False}, r"'totalCount' is bool true, not a non-negative"),
        ({"posts": rows(0, 2), "totalCount": -1, "hasMore": False}, r"'totalCount' is int -1, not a non-negative"),
        ({"posts": {"a": 1}, "totalCount": 1, "hasMore": False}, r"'posts' is an object, not a list"),
        ([], r"data is an array, not an object"),
    ],
)
def test_envelope_types_are_checked_and_named(hostile: Start, leaks: LeakCheck, data: Any, message: str) -> None:
    server = hostile(lambda ex: ex.ok(data))
    client = GenviralClient(fast_settings(server, max_retries=0))

    with pytest.raises(GenviralRetryableError, match=r"response data is not a page of posts: " + message) as caught:
        client.fetch(PageRequest(filter=WINDOW))
    assert server.requests == 1
    leaks.error(caught.value)
    leaks.assert_clean()
