"""Issue 21's transport cases, in the sync and the async client: each ends in rows or in an error naming it.

An ``ok:false`` 429/503 inside an HTTP 200 is retried; a stalled or trickling body ends at the request's
deadline, not one timeout per read later; a page over the size cap names the request and the setting that
raises it; a date-form ``Retry-After`` is read against the server's ``Date``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import os
import signal
import time
from collections.abc import Callable

import pytest

from genviral_provider.core.api.async_client import AsyncGenviralClient
from genviral_provider.core.api.client import GenviralClient
from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import PageRequest, posts_filter
from genviral_provider.core.api.settings import ClientSettings
from genviral_provider.exceptions import GenviralAPIError, GenviralRetryableError
from tests.hostile.conftest import LeakCheck, fast_settings
from tests.hostile.server import API_KEY, Exchange, HostileServer, rows

Start = Callable[..., HostileServer]
REQUEST = PageRequest(filter=posts_filter("2026-01-01", "2026-01-01"), limit=100)
CLIENTS = ["sync", "async"]


def fetch(kind: str, settings: ClientSettings) -> PostsPage:
    """Fetch :data:`REQUEST` with the sync or the async client."""
    if kind == "sync":
        return GenviralClient(settings).fetch(REQUEST)

    async def main() -> PostsPage:
        async with AsyncGenviralClient(settings) as client:
            return await client.fetch(REQUEST)

    return asyncio.run(main())


# ------------------------------------------------------------------ a: ok:false 429/503 inside an HTTP 200


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("code", [429, 503])
def test_an_ok_false_transient_code_inside_an_http_200_is_retried(
    hostile: Start, leaks: LeakCheck, kind: str, code: int
) -> None:
    def behave(ex: Exchange) -> None:
        if ex.number == 1:
            ex.json(200, {"ok": False, "code": code, "message": "busy, try again", "error_code": "rate_limited"})
        else:
            ex.page(rows(0, 3), 3, False)

    server = hostile(behave, max_requests=5)

    page = fetch(kind, fast_settings(server))

    assert [row["id"] for row in page.posts] == ["row-0", "row-1", "row-2"]
    assert server.requests == 2
    leaks.assert_clean()


@pytest.mark.parametrize("kind", CLIENTS)
def test_an_ok_false_503_inside_an_http_200_that_persists_gives_up_naming_it(
    hostile: Start, leaks: LeakCheck, kind: str
) -> None:
    server = hostile(lambda ex: ex.json(200, {"ok": False, "code": 503, "message": "maintenance"}), max_requests=5)

    with pytest.raises(GenviralRetryableError) as caught:
        fetch(kind, fast_settings(server, max_retries=1))

    message = leaks.error(caught.value)
    assert "HTTP 503: maintenance (ok:false envelope with code 503 inside an HTTP 200)" in message
    assert "Gave up after 2 attempt(s)" in " ".join(caught.value.__notes__)
    assert server.requests == 2
    leaks.assert_clean()


# --------------------------------------------------------------- b: a body that stalls or trickles, bounded


def _stall(ex: Exchange) -> None:
    """Promise 1000 bytes, send 11, then keep the connection open sending nothing (the handler waits 10 s)."""
    ex.stream(200, [b'{"ok": true'], length=1000)


def _trickle(ex: Exchange) -> None:
    """Send a 70-byte body a byte every 0.3 s: each read ends within the 0.5 s timeout, the whole body in 21 s."""
    body = b'{"ok": true, "code": 200, "message": "ok", "data": {"targets": []}}'
    ex.stream(200, (bytes([byte]) for byte in body), length=len(body), pause=0.3)


def _trickle_headers(ex: Exchange) -> None:
    """Send the status line and headers a byte every 0.3 s: no read waits the timeout, the headers take 20 s."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 70\r\nX-Padding: slow\r\n\r\n"
    for byte in head:
        ex.handler.wfile.write(bytes([byte]))
        ex.handler.wfile.flush()
        time.sleep(0.3)


#: What ends each attempt: the read timeout (the server sends nothing) or the deadline (it trickles).
ENDS = {
    "stalls": "HTTP 200 response cut short after 11 bytes",
    "trickles": "HTTP 200 response not complete within the request deadline of 1s (2 x the connection's timeout=0.5s",
    "trickles-headers": "no response within the request deadline of 1s (2 x the connection's timeout=0.5s",
}


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("behave", [_stall, _trickle, _trickle_headers], ids=["stalls", "trickles", "trickles-headers"])
def test_a_stalled_or_trickling_body_ends_each_attempt_within_the_request_deadline(
    hostile: Start, leaks: LeakCheck, kind: str, behave: Callable[[Exchange], None]
) -> None:
    server = hostile(behave, max_requests=5)
    settings = fast_settings(server, timeout=0.5, max_retries=2, max_retry_wait=2.0)
    started = time.monotonic()

    with pytest.raises(GenviralRetryableError) as caught:
        fetch(kind, settings)

    elapsed = time.monotonic() - started
    # Three attempts of at most 1 s each and at most 1.5 s of backoff: bounded per request, not per read (21 s each).
    assert elapsed < 3 * settings.request_deadline + settings.max_retry_wait + 1.5, elapsed
    assert server.requests == 3
    message = leaks.error(caught.value)
    assert "GET /analytics/summary/posts?" in message
    end = "stalls" if behave is _stall else "trickles" if behave is _trickle else "trickles-headers"
    assert ENDS[end] in message, message
    leaks.assert_clean()


def test_the_request_deadline_follows_the_timeout_and_bounds_the_default_at_a_minute() -> None:
    assert ClientSettings(base_url="http://127.0.0.1:1", api_key=API_KEY).request_deadline == 60.0
    settings = ClientSettings.from_connection(
        conn_id="c", host="http://127.0.0.1:1", port=None, password=API_KEY, extra={"timeout": 5}
    )
    assert settings.request_deadline == 10.0


# ------------------------------------------------------------------------ c: a page over the size cap


def _big_page(ex: Exchange) -> None:
    posts = [{**row, "caption": "x" * 2000} for row in rows(0, 100)]  # about 230 kB
    ex.page(posts, 100, False)


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_page_over_the_size_cap_names_the_request_and_the_setting_that_raises_the_cap(
    hostile: Start, leaks: LeakCheck, kind: str
) -> None:
    server = hostile(_big_page, max_requests=5)

    with pytest.raises(GenviralAPIError) as caught:
        fetch(kind, fast_settings(server, max_body_bytes=100_000))

    assert not isinstance(caught.value, GenviralRetryableError)  # permanent: not read again
    message = leaks.error(caught.value)
    assert "Genviral API error on GET /analytics/summary/posts?" in message and "offset=0" in message
    assert "more than the 100000-byte cap" in message
    assert "the connection's extra max_body_bytes raises the cap, up to 1073741824" in message
    assert server.requests == 1
    leaks.assert_clean()


@pytest.mark.parametrize("kind", CLIENTS)
def test_the_connection_extra_max_body_bytes_raises_the_cap(hostile: Start, leaks: LeakCheck, kind: str) -> None:
    server = hostile(_big_page, max_requests=5)
    settings = ClientSettings.from_connection(
        conn_id="c", host=server.url, port=None, password=API_KEY, extra={"max_body_bytes": 1_000_000}
    )

    assert len(fetch(kind, settings).posts) == 100
    assert server.requests == 1
    leaks.assert_clean()


# ------------------------------------------------- d: a date-form Retry-After read against the server's Date


def _http_date(when: dt.datetime) -> str:
    return email.utils.format_datetime(when, usegmt=True)


def _rate_limited_once_by_a_server_whose_clock_is(server_now: dt.datetime) -> Callable[[Exchange], None]:
    """Answer 429 once, with ``Date`` at ``server_now`` and ``Retry-After`` one second after it; then a page."""

    def behave(ex: Exchange) -> None:
        if ex.number > 1:
            ex.page(rows(0, 1), 1, False)
            return
        body = b'{"ok": false, "code": 429, "message": "slow down", "error_code": "rate_limited"}'
        ex.handler.send_response_only(429)  # not send_response: it would add a Date of the local clock
        retry_at = server_now + dt.timedelta(seconds=1)
        headers = {"Date": _http_date(server_now), "Retry-After": _http_date(retry_at)}
        for name, value in {**headers, "Content-Type": "application/json", "Content-Length": str(len(body))}.items():
            ex.handler.send_header(name, value)
        ex.handler.end_headers()
        ex.handler.wfile.write(body)

    return behave


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_retry_after_date_is_read_against_a_server_clock_years_ahead(
    hostile: Start, leaks: LeakCheck, kind: str
) -> None:
    # Against the local clock the wait would be ten years, beyond max_retry_wait: the request would fail at once.
    ahead = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=3650)
    server = hostile(_rate_limited_once_by_a_server_whose_clock_is(ahead), max_requests=5)
    started = time.monotonic()

    page = fetch(kind, fast_settings(server, max_retry_wait=5))

    assert len(page.posts) == 1 and server.requests == 2
    assert 0.9 <= time.monotonic() - started < 5
    leaks.assert_clean()


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_retry_after_date_is_read_against_a_server_clock_years_behind(
    hostile: Start, leaks: LeakCheck, kind: str
) -> None:
    # Against the local clock the date is long past and the retry would go at once; the server asked for 1 s.
    behind = dt.datetime(2016, 1, 1, tzinfo=dt.timezone.utc)
    server = hostile(_rate_limited_once_by_a_server_whose_clock_is(behind), max_requests=5)
    started = time.monotonic()

    page = fetch(kind, fast_settings(server, max_retry_wait=5))

    assert len(page.posts) == 1 and server.requests == 2
    assert 0.9 <= time.monotonic() - started < 5
    leaks.assert_clean()


def test_an_ok_false_429_inside_an_http_200_paces_the_sync_client(hostile: Start, leaks: LeakCheck) -> None:
    def behave(ex: Exchange) -> None:
        if ex.number == 1:
            ex.json(200, {"ok": False, "code": 429, "message": "slow down"}, {"Retry-After": "1"})
        else:
            ex.page(rows(0, 1), 1, False)

    server = hostile(behave, max_requests=5)
    client = GenviralClient(fast_settings(server, max_retry_wait=5))

    client.fetch(REQUEST)

    assert client.throttle.limits.rate is not None  # the throttle saw it as a rate limit, as an HTTP 429
    assert server.requests == 2
    leaks.assert_clean()


def test_a_forked_worker_bounds_trickled_headers_with_its_own_watchdog(hostile: Start, leaks: LeakCheck) -> None:
    server = hostile(_trickle_headers, max_requests=5)
    settings = fast_settings(server, timeout=0.5, max_retries=0)
    with pytest.raises(GenviralRetryableError, match="no response within the request deadline"):
        GenviralClient(settings).fetch(REQUEST)  # the parent's watchdog thread now runs; a forked child has none

    pid = os.fork()
    if pid == 0:  # the child, as a forked Airflow task runner: exit 0 only if its request ended at the deadline
        signal.alarm(10)
        began = time.monotonic()
        try:
            GenviralClient(settings).fetch(REQUEST)
        except GenviralRetryableError as error:
            os._exit(
                0 if "no response within the request deadline" in str(error) and time.monotonic() - began < 3 else 2
            )
        except BaseException:
            os._exit(3)
        os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert server.requests == 2
    leaks.assert_clean()
