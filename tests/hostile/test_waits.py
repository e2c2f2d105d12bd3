"""Items 1-3: every wait, every read and every request count is bounded, and ends with a GenviralError."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.core.api.async_client import AsyncGenviralClient
from genviral_provider.core.api.client import GenviralClient
from genviral_provider.core.api.query import PageRequest, posts_filter
from genviral_provider.core.reading.window import BUDGET_BASE_REQUESTS, WindowReader
from genviral_provider.exceptions import (
    GenviralAPIContradictionError,
    GenviralAPIError,
    GenviralIncompleteWindowError,
    GenviralRetryableError,
)
from tests.hostile.conftest import LeakCheck, fast_settings
from tests.hostile.server import Exchange, HostileServer, rows

Start = Callable[..., HostileServer]
WINDOW = posts_filter("2026-01-01", "2026-01-01")
FAR_FUTURE = email.utils.format_datetime(dt.datetime(2036, 1, 1, tzinfo=dt.timezone.utc), usegmt=True)


# ------------------------------------------------------------------------------ 1: Retry-After beyond the bound


@pytest.mark.parametrize("retry_after", ["999999", FAR_FUTURE])
def test_a_retry_after_beyond_max_retry_wait_fails_at_once_saying_what_the_server_asked(
    hostile: Start, leaks: LeakCheck, retry_after: str
) -> None:
    server = hostile(lambda ex: ex.error(429, "slow down", "rate_limited", Retry_After=retry_after))
    client = GenviralClient(fast_settings(server, max_retry_wait=5))

    with pytest.raises(GenviralRetryableError) as caught:
        client.get("/analytics/targets", {})

    assert caught.value.status == 429 and caught.value.error_code == "rate_limited"
    note = " ".join(caught.value.__notes__)
    assert "the server asked to wait" in note and "max_retry_wait=5s" in note and "days" in note
    assert server.requests == 1  # not retried: the wait the server asked for is beyond the bound
    leaks.error(caught.value)
    leaks.assert_clean()


def test_later_requests_do_not_inherit_a_pause_beyond_max_retry_wait(hostile: Start, leaks: LeakCheck) -> None:
    def behave(ex: Exchange) -> None:
        if ex.number == 1:
            ex.error(429, "slow down", "rate_limited", Retry_After="999999")
        else:
            ex.ok({"targets": []})

    server = hostile(behave)
    client = GenviralClient(fast_settings(server, max_retry_wait=1))
    with pytest.raises(GenviralRetryableError):
        client.get("/analytics/targets", {})

    started = time.monotonic()
    assert client.get("/analytics/targets", {}) == {"targets": []}
    # The shared pause is cut to max_retry_wait (1 s) rather than the 11 days asked; generous bound for slow CI.
    assert time.monotonic() - started < 30
    assert server.requests == 2
    leaks.assert_clean()


def test_a_pause_longer_than_what_the_request_may_still_wait_fails_without_sending(
    hostile: Start, leaks: LeakCheck
) -> None:
    server = hostile(lambda ex: ex.ok({"targets": []}))
    client = GenviralClient(fast_settings(server, max_retry_wait=1))
    client.throttle.limits.max_pause = 3600.0  # as if max_retry_wait had changed since the pause began
    client.throttle.rate_limited(client.throttle.limits.clock(), 3600.0)

    with pytest.raises(GenviralRetryableError, match=r"not sent: the server's rate limit .* pauses every request"):
        client.get("/analytics/targets", {})
    assert server.requests == 0


def test_iter_posts_surfaces_a_huge_retry_after_on_later_pages(hostile: Start, leaks: LeakCheck) -> None:
    def behave(ex: Exchange) -> None:
        if ex.offset == 0:
            ex.page(rows(0, 100), 500, True)
        else:
            ex.error(429, "slow down", "rate_limited", Retry_After="999999")

    server = hostile(behave)
    reader = WindowReader(GenviralClient(fast_settings(server, max_retry_wait=2)))

    with pytest.raises(GenviralRetryableError, match="HTTP 429") as caught:
        list(reader.rows(WINDOW))
    assert server.requests <= 1 + 4  # the first page, then at most the pages already in flight
    leaks.error(caught.value)
    leaks.assert_clean()


# ---------------------------------------------------------------------- 2: an API that keeps saying hasMore


def test_the_same_rows_at_every_offset_raise_a_contradiction(hostile: Start, leaks: LeakCheck) -> None:
    server = hostile(lambda ex: ex.page(rows(0, 100), 500, True))
    reader = WindowReader(GenviralClient(fast_settings(server)))

    with pytest.raises(GenviralAPIContradictionError, match=r"same 100 rows at offsets 0 and 90") as caught:
        list(reader.rows(WINDOW))
    assert isinstance(caught.value, GenviralIncompleteWindowError)
    assert server.requests <= 10 and not server.overrun
    leaks.error(caught.value)
    leaks.assert_clean()


def test_a_page_shifted_once_onto_the_previous_one_by_arrivals_is_read_again_not_refused(
    hostile: Start, leaks: LeakCheck
) -> None:
    # 190 rows; the first read of offset 90 repeats offset 0's rows, as 90 rows arriving before it would make it.
    def behave(ex: Exchange) -> None:
        shifted = ex.offset == 90 and not any(seen == 90 for seen in offsets)
        offsets.append(ex.offset)
        start = 0 if shifted else ex.offset
        ex.page(rows(start, min(100, 190 - start)), 190, ex.offset + 100 < 190)

    offsets: list[int] = []
    server = hostile(behave, max_requests=20)
    reader = WindowReader(GenviralClient(fast_settings(server)))

    ids = [row["id"] for row in reader.rows(WINDOW)]

    assert ids == [f"row-{n}" for n in range(190)]
    assert offsets == [0, 90, 90]
    leaks.assert_clean()


def test_new_rows_at_every_offset_with_a_growing_total_stop_within_the_budget(hostile: Start, leaks: LeakCheck) -> None:
    # Every page is consistent by itself (totalCount = offset + 200, hasMore true), but the list never ends.
    server = hostile(lambda ex: ex.page(rows(ex.offset, ex.limit), ex.offset + 200, True), max_requests=800)
    reader = WindowReader(GenviralClient(fast_settings(server)))

    with pytest.raises(GenviralAPIContradictionError) as caught:
        list(reader.rows(WINDOW))
    message = leaks.error(caught.value)
    assert "hasMore=true" in message or "hasMore true" in message, message
    assert server.requests <= BUDGET_BASE_REQUESTS + 100 and not server.overrun
    leaks.assert_clean()


def test_has_more_past_the_total_count_is_refused_naming_what_the_api_said(hostile: Start, leaks: LeakCheck) -> None:
    def behave(ex: Exchange) -> None:
        if ex.offset == 0:
            ex.page(rows(0, 100), 150, True)
        else:
            ex.page([], 150, True)

    server = hostile(behave)
    reader = WindowReader(GenviralClient(fast_settings(server, max_retries=1)))

    with pytest.raises(GenviralRetryableError, match=r"totalCount=150, hasMore=true, 0 row\(s\) at offset 90"):
        list(reader.rows(WINDOW))
    assert server.requests == 1 + 2  # the first page, then the bad one read twice
    leaks.assert_clean()


# ---------------------------------------------------------------------- 3: trickling and endless bodies


def _trickle(ex: Exchange) -> None:
    body = b'{"ok": true, "code": 200, "message": "ok", "data": {"targets": []}}'
    ex.stream(200, (bytes([byte]) for byte in body), length=len(body), pause=0.2)


def test_a_trickling_body_ends_at_the_request_deadline(hostile: Start, leaks: LeakCheck) -> None:
    server = hostile(_trickle)
    client = GenviralClient(fast_settings(server, timeout=0.5, max_retries=0))

    with pytest.raises(
        GenviralRetryableError, match=r"response not complete within the request deadline of 1s .* too slowly"
    ) as caught:
        client.get("/analytics/targets", {})
    assert server.requests == 1
    leaks.error(caught.value)
    leaks.assert_clean()


def test_a_trickling_body_ends_at_the_deadline_in_the_trigger_too(hostile: Start, leaks: LeakCheck) -> None:
    server = hostile(_trickle)

    async def fetch() -> Any:
        async with AsyncGenviralClient(fast_settings(server, timeout=0.5, max_retries=0)) as client:
            return await client.get("/analytics/targets", {})

    with pytest.raises(GenviralRetryableError, match=r"not complete within the request deadline of 1s") as caught:
        asyncio.run(fetch())
    assert server.requests == 1
    leaks.error(caught.value)
    leaks.assert_clean()


def _endless(ex: Exchange) -> None:
    ex.stream(200, itertools.repeat(b"[" * 65536))


@pytest.mark.parametrize("length", [None, 10**12])
def test_a_body_beyond_the_size_cap_is_not_read_further(hostile: Start, leaks: LeakCheck, length: int | None) -> None:
    server = hostile(lambda ex: ex.stream(200, itertools.repeat(b" " * 65536), length=length))
    client = GenviralClient(fast_settings(server, max_body_bytes=1_000_000))

    with pytest.raises(GenviralAPIError, match=r"more than the 1000000-byte cap; not read further") as caught:
        client.get("/analytics/targets", {})
    assert not isinstance(caught.value, GenviralRetryableError)  # permanent: a page is tens of kB
    assert server.requests == 1
    leaks.error(caught.value)
    leaks.assert_clean()


def test_an_endless_body_is_capped_in_the_trigger_too(hostile: Start, leaks: LeakCheck) -> None:
    server = hostile(_endless)

    async def fetch() -> Any:
        async with AsyncGenviralClient(fast_settings(server, max_body_bytes=1_000_000)) as client:
            return await client.fetch(PageRequest(filter=WINDOW))

    with pytest.raises(GenviralAPIError, match=r"more than the 1000000-byte cap"):
        asyncio.run(fetch())
    assert server.requests == 1
    leaks.assert_clean()


def test_streamed_reads_keep_the_connection_pooled(hostile: Start, leaks: LeakCheck) -> None:
    server = hostile(lambda ex: ex.ok({"targets": []}))
    client = GenviralClient(fast_settings(server))
    for _ in range(5):
        client.get("/analytics/targets", {})
    assert (server.requests, server.connections) == (5, 1)
    leaks.assert_clean()


def test_a_retry_after_beyond_max_retry_wait_fails_at_once_in_the_trigger_too(hostile: Start, leaks: LeakCheck) -> None:
    server = hostile(lambda ex: ex.error(429, "slow down", "rate_limited", Retry_After=FAR_FUTURE))

    async def fetch() -> Any:
        async with AsyncGenviralClient(fast_settings(server, max_retry_wait=5)) as client:
            return await client.fetch(PageRequest(filter=WINDOW))

    with pytest.raises(GenviralRetryableError, match="HTTP 429") as caught:
        asyncio.run(fetch())
    assert "the server asked to wait" in " ".join(caught.value.__notes__)
    assert server.requests == 1
    leaks.error(caught.value)
    leaks.assert_clean()
