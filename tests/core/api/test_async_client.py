"""The async client against the sandbox: the same pages as the sync client, retries, permanent errors, deadline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from genviral_provider.core.api.async_client import AsyncGenviralClient
from genviral_provider.core.api.client import GenviralClient
from genviral_provider.core.api.envelope import PostsPage
from genviral_provider.core.api.query import PageRequest, page_request, posts_filter
from genviral_provider.core.api.settings import ClientSettings
from genviral_provider.exceptions import (
    GenviralAPIError,
    GenviralAuthError,
    GenviralRetryableError,
)
from genviral_provider.sandbox import SandboxServer

REQUEST = page_request(posts_filter("2026-01-05", "2026-01-14"), limit=100, offset=100)  # 400 rows


def settings(server: SandboxServer, **overrides: Any) -> ClientSettings:
    values: dict[str, Any] = {"base_url": server.url, "api_key": server.api_key, "max_retry_wait": 5, "timeout": 5}
    return ClientSettings(**{**values, **overrides})


def fetch(config: ClientSettings, request: PageRequest = REQUEST, deadline: float | None = None) -> PostsPage:
    async def main() -> PostsPage:
        async with AsyncGenviralClient(config, deadline=deadline) as client:
            return await client.fetch(request)

    return asyncio.run(main())


def test_fetch_returns_the_page_the_sync_client_returns(genviral_sandbox: SandboxServer) -> None:
    page = fetch(settings(genviral_sandbox))

    expected = GenviralClient(settings(genviral_sandbox)).fetch(REQUEST)
    assert page == expected
    assert (len(page.posts), page.offset, page.has_more) == (100, 100, True)
    assert genviral_sandbox.stats.requests[0].query["offset"] == "100"


@pytest.mark.parametrize("script", [["500", "503"], ["429:1"], ["cut"], ["reset"], ["badjson"]])
def test_transient_failures_are_retried(genviral_sandbox: SandboxServer, script: list[str]) -> None:
    genviral_sandbox.faults.script = list(script)

    page = fetch(settings(genviral_sandbox))

    assert len(page.posts) == 100
    assert genviral_sandbox.stats.total == len(script) + 1


def test_retries_end_when_the_policy_gives_up(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.script = ["503", "503", "503"]

    with pytest.raises(GenviralRetryableError, match="HTTP 503") as caught:
        fetch(settings(genviral_sandbox, max_retries=1))
    assert "Gave up after 2 attempt(s)" in caught.value.__notes__[0]
    assert genviral_sandbox.stats.total == 2


def test_no_retry_wait_ends_past_the_deadline(genviral_sandbox: SandboxServer) -> None:
    genviral_sandbox.faults.script = ["429:30"]
    started = time.monotonic()

    with pytest.raises(GenviralRetryableError, match="HTTP 429") as caught:
        fetch(settings(genviral_sandbox, max_retry_wait=120), deadline=time.time() + 10)
    assert time.monotonic() - started < 30  # it did not wait out the Retry-After, however slow the machine
    assert genviral_sandbox.stats.total == 1
    assert "would pass the deadline" in caught.value.__notes__[-1]


def test_a_refused_key_fails_at_once_without_showing_it(genviral_sandbox: SandboxServer) -> None:
    with pytest.raises(GenviralAuthError, match=r"HTTP 401 invalid_token: ") as caught:
        fetch(settings(genviral_sandbox, api_key="gva_live_wrong.secret"))
    assert genviral_sandbox.stats.total == 1
    assert "gva_live_wrong.secret" not in str(caught.value) + repr(caught.value)


def test_a_bad_request_fails_at_once(genviral_sandbox: SandboxServer) -> None:
    unchecked = PageRequest(filter=posts_filter("2026-01-10", "2026-01-14"), limit=500)

    with pytest.raises(GenviralAPIError, match=r"HTTP 400 invalid_query: ") as caught:
        fetch(settings(genviral_sandbox), unchecked)
    assert not isinstance(caught.value, GenviralRetryableError)
    assert genviral_sandbox.stats.total == 1


def test_an_unreachable_server_is_a_transient_error() -> None:
    with SandboxServer() as server:
        config = settings(server, max_retries=1, timeout=1)
    with pytest.raises(GenviralRetryableError, match="ConnectError"):
        fetch(config)


def test_the_repr_shows_the_base_url_but_never_the_key(genviral_sandbox: SandboxServer) -> None:
    client = AsyncGenviralClient(settings(genviral_sandbox))
    assert genviral_sandbox.url in repr(client)
    assert genviral_sandbox.api_key not in repr(client)


def test_fetching_outside_the_context_manager_is_refused(genviral_sandbox: SandboxServer) -> None:
    client = AsyncGenviralClient(settings(genviral_sandbox))
    with pytest.raises(RuntimeError, match="async with"):
        asyncio.run(client.fetch(REQUEST))
