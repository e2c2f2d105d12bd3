"""An asynchronous client of the Genviral analytics API, for the triggerer's event loop.

It shares what a response means (:func:`~genviral_provider.core.api.envelope.read_envelope`), what a page is
(:class:`~genviral_provider.core.api.envelope.PostsPage`) and when to retry
(:class:`~genviral_provider.core.api.retry.RetryBudget`) with the synchronous
:class:`~genviral_provider.core.api.client.GenviralClient`; only the transport differs: ``httpx`` and
``asyncio.sleep``, so that nothing blocks the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from genviral_provider.core.api.client import BodyRead, describe
from genviral_provider.core.api.envelope import TRANSPORT_ERRORS, PostsPage, read_envelope, targets_of
from genviral_provider.core.api.query import POSTS_PATH, TARGETS_PATH, PageRequest
from genviral_provider.core.api.settings import ClientSettings
from genviral_provider.core.log import Log
from genviral_provider.exceptions import GenviralRetryableError


class AsyncGenviralClient:
    """Send requests to the API without blocking the event loop, retrying what may pass.

    Use it as an async context manager, which opens and closes one pooled ``httpx.AsyncClient``::

        async with AsyncGenviralClient(settings, deadline=time.time() + 600) as client:
            page = await client.fetch(request)

    :param settings: base URL, key and tuning.
    :param deadline: an absolute time (``time.time()``) no retry wait may end after; ``None``: only the
        retry policy bounds the waits.
    :param log: where retries are reported.
    """

    def __init__(self, settings: ClientSettings, *, deadline: float | None = None, log: Log | None = None) -> None:
        self.settings = settings
        self.deadline = deadline
        self.log: Log = log or logging.getLogger(__name__)
        self.retry_policy = settings.retry_policy()
        self._http: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.settings.base_url!r})"

    async def __aenter__(self) -> AsyncGenviralClient:
        self._http = httpx.AsyncClient(headers=self.settings.headers(), timeout=self.settings.timeout)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def fetch(self, request: PageRequest) -> PostsPage:
        """Fetch one page of posts; a page that contradicts itself is read again like any transient failure."""
        params = request.params()
        page: PostsPage = await self.request(
            "GET",
            POSTS_PATH,
            params,
            read=lambda data: PostsPage.from_data(data, offset=request.offset, request=describe(POSTS_PATH, params)),
        )
        return page

    async def targets(self) -> list[dict[str, Any]]:
        """Return the analytics targets (tracked accounts) of the key's workspace."""
        return targets_of(await self.get(TARGETS_PATH, {}))

    async def get(self, path: str, params: dict[str, str]) -> Any:
        """Send ``GET path`` and return the envelope's ``data``, retrying transient failures (see :meth:`request`)."""
        return await self.request("GET", path, params)

    async def post(self, path: str) -> Any:
        """Send ``POST path`` (no body) once and return the envelope's ``data``; never retried (see the sync client)."""
        return await self.request("POST", path, {}, retry=False)

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        *,
        retry: bool = True,
        read: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Send a request and return the envelope's ``data``, retrying transient failures when ``retry``.

        ``read``, when given, turns the ``data`` into what is returned; a ``GenviralRetryableError`` it raises
        (an answer that contradicts itself) is retried like any transient failure.

        :raises GenviralRetryableError: once the retry policy gave up, or when the next wait would end
            past the deadline.
        :raises GenviralAuthError: for 401, 402, 403, at once.
        :raises GenviralAPIError: for any other error status (e.g. 400), at once.
        """
        budget = self.retry_policy.budget(log=self.log, retry=retry, deadline=self.deadline)
        while True:
            try:
                data = await self._send(method, path, params)
                return read(data) if read is not None else data
            except GenviralRetryableError as error:
                failure = error
            await asyncio.sleep(budget.wait_after(failure))

    async def _send(self, method: str, path: str, params: dict[str, str]) -> Any:
        if self._http is None:
            raise RuntimeError(f"{type(self).__name__} is not open: use it as 'async with client:'")
        body = BodyRead(self.settings, describe(path, params, method=method))
        try:
            status, headers = await asyncio.wait_for(
                self._exchange(method, path, params, body), timeout=self.settings.request_deadline
            )
        except (asyncio.TimeoutError, TimeoutError):
            raise body.too_slow() from None
        except TRANSPORT_ERRORS as error:
            raise body.cut_short(error) from None
        return read_envelope(status, headers, body.whole(), request=body.request, secrets=self.settings.secret_forms())

    async def _exchange(
        self, method: str, path: str, params: dict[str, str], body: BodyRead
    ) -> tuple[int, httpx.Headers]:
        """Send the request and read its body into ``body``, which holds it to the size cap."""
        assert self._http is not None
        async with self._http.stream(method, self.settings.url(path), params=params) as response:
            body.begin(response.status_code, response.headers)
            async for chunk in response.aiter_bytes():
                body.add(chunk)
            return response.status_code, response.headers
