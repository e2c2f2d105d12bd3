"""An asynchronous client of the Genviral analytics API, for the triggerer's event loop.

It shares what a response means (:func:`~genviral_provider.core.api.envelope.read_envelope`), what a page is
(:class:`~genviral_provider.core.api.envelope.PostsPage`) and when to retry
(:class:`~genviral_provider.core.api.retry.RetryPolicy`) with the synchronous
:class:`~genviral_provider.core.api.client.GenviralClient`; only the transport differs: ``httpx`` and
``asyncio.sleep``, so that nothing blocks the loop.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

import httpx

from genviral_provider.core.api.client import (
    body_too_large,
    body_too_slow,
    check_declared_length,
    describe,
    tls_failure_message,
)
from genviral_provider.core.api.envelope import PostsPage, read_envelope
from genviral_provider.core.api.query import POSTS_PATH, PageRequest
from genviral_provider.core.api.retry import RetryPolicy
from genviral_provider.core.api.settings import ClientSettings, quote_server_text
from genviral_provider.exceptions import GenviralAPIError, GenviralRetryableError

#: Transport failures that may pass: no connection, a timeout, a connection closed or a body cut short.
_TRANSIENT_TRANSPORT_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
    httpx.DecodingError,
)


class RetryLog(Protocol):
    """Where retries are reported: a ``logging.Logger`` or Airflow's structured logger."""

    def warning(self, msg: str, /, *args: Any) -> Any:
        """Report a retry."""


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

    def __init__(self, settings: ClientSettings, *, deadline: float | None = None, log: RetryLog | None = None) -> None:
        self.settings = settings
        self.deadline = deadline
        self.log: RetryLog = log or logging.getLogger(__name__)
        self.retry_policy = RetryPolicy(max_retries=settings.max_retries, max_total_wait=settings.max_retry_wait)
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
        budget = self.retry_policy.budget()
        while True:
            try:
                data = await self._send(method, path, params)
                return read(data) if read is not None else data
            except GenviralRetryableError as error:
                if not retry:
                    raise
                delay = budget.next_delay(error)
                if self.deadline is not None and time.time() + delay > self.deadline:
                    error.add_note(f"Not retried: waiting {delay:.1f}s more would pass the deadline.")
                    raise
                self.log.warning("%s; retry %d in %.1fs.", error, budget.attempts, delay)
            await asyncio.sleep(delay)

    async def _send(self, method: str, path: str, params: dict[str, str]) -> Any:
        if self._http is None:
            raise RuntimeError(f"{type(self).__name__} is not open: use it as 'async with client:'")
        request = describe(path, params, method=method)
        outcome: list[tuple[int, Any, int]] = []  # status, headers, bytes read: what the deadline message needs
        try:
            status, headers, body = await asyncio.wait_for(
                self._exchange(method, path, params, request, outcome), timeout=self.settings.request_deadline
            )
        except (asyncio.TimeoutError, TimeoutError):
            status, _, size = outcome[-1] if outcome else (0, None, 0)
            if not outcome:
                raise GenviralRetryableError(
                    status=None,
                    error_code=None,
                    message=f"no response within {self.settings.request_deadline:g}s (2 x timeout)",
                    request=request,
                ) from None
            raise body_too_slow(status, size, self.settings, request) from None
        except _TRANSIENT_TRANSPORT_ERRORS as error:
            message = self._quote(error)
            if _is_tls_failure(error):
                raise GenviralAPIError(
                    status=None, error_code=None, message=tls_failure_message(message), request=request
                ) from None
            raise GenviralRetryableError(status=None, error_code=None, message=message, request=request) from None
        except httpx.HTTPError as error:  # e.g. an unsupported scheme in the connection's host
            raise GenviralAPIError(status=None, error_code=None, message=self._quote(error), request=request) from None
        return read_envelope(status, headers, body, request=request, secrets=self.settings.secret_forms())

    async def _exchange(
        self, method: str, path: str, params: dict[str, str], request: str, outcome: list[tuple[int, Any, int]]
    ) -> tuple[int, httpx.Headers, bytes]:
        """Send the request and read its body up to the size cap; ``outcome`` tracks progress for messages."""
        assert self._http is not None
        cap = self.settings.max_body_bytes
        async with self._http.stream(method, self.settings.url(path), params=params) as response:
            check_declared_length(response.headers.get("Content-Length"), cap, response.status_code, request)
            chunks: list[bytes] = []
            size = 0
            outcome.append((response.status_code, response.headers, size))
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise body_too_large(response.status_code, cap, request)
                chunks.append(chunk)
                outcome[-1] = (response.status_code, response.headers, size)
            return response.status_code, response.headers, b"".join(chunks)

    def _quote(self, error: BaseException) -> str:
        return quote_server_text(f"{type(error).__name__}: {error}", self.settings.secret_forms())


def _is_tls_failure(error: BaseException) -> bool:
    """Whether a transport error comes from TLS (a certificate, or TLS spoken to a plain-HTTP server)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
