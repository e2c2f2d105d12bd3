"""A synchronous client of the Genviral analytics API: pooled connections, retries, adaptive concurrency.

It is what :class:`~genviral_provider.hooks.genviral.GenviralHook` uses once it has read its connection,
and it works without Airflow (in a notebook, a script, a test).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter

from genviral_provider.core.envelope import PostsPage, read_envelope
from genviral_provider.core.log import Log
from genviral_provider.core.query import POSTS_PATH, TARGETS_PATH, PageRequest
from genviral_provider.core.retry import RetryPolicy
from genviral_provider.core.settings import ClientSettings
from genviral_provider.core.throttle import AdaptiveLimits, ThreadThrottle
from genviral_provider.exceptions import GenviralRetryableError

_TRANSIENT_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class GenviralClient:
    """Send requests to the API, retrying what may pass and pacing itself to the server's rate limit.

    Thread-safe: :meth:`fetch_all` runs :meth:`fetch` on a pool of up to ``max_concurrency`` threads that
    share one keep-alive connection pool.

    :param settings: base URL, key and tuning.
    :param log: where retries are reported.
    """

    def __init__(self, settings: ClientSettings, *, log: Log | None = None) -> None:
        self.settings = settings
        self.log: Log = log or logging.getLogger(__name__)
        self.retry_policy = RetryPolicy(max_retries=settings.max_retries, max_total_wait=settings.max_retry_wait)
        self.throttle = ThreadThrottle(AdaptiveLimits(settings.max_concurrency))
        self.session = self._new_session()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.settings.base_url!r})"

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def fetch(self, request: PageRequest) -> PostsPage:
        """Fetch one page of posts."""
        data = self.get(POSTS_PATH, request.params())
        return PostsPage.from_data(data, offset=request.offset, request=describe(POSTS_PATH, request.params()))

    def fetch_all(self, requests: Sequence[PageRequest]) -> Iterator[PostsPage]:
        """Fetch pages concurrently, yielding them in the order asked; at most ``2 * max_concurrency`` ahead."""
        if not requests:
            return
        lookahead = 2 * self.settings.max_concurrency
        pending: collections.deque[Future[PostsPage]] = collections.deque()
        queue = iter(requests)
        with ThreadPoolExecutor(self.settings.max_concurrency, thread_name_prefix="genviral") as pool:
            try:
                for request in queue:
                    pending.append(pool.submit(self.fetch, request))
                    if len(pending) >= lookahead:
                        break
                while pending:
                    page = pending.popleft().result()
                    for request in queue:
                        pending.append(pool.submit(self.fetch, request))
                        break
                    yield page
            finally:
                for future in pending:
                    future.cancel()

    def targets(self) -> list[dict[str, Any]]:
        """Return the analytics targets (tracked accounts) of the key's workspace."""
        data = self.get(TARGETS_PATH, {})
        targets = data.get("targets") if isinstance(data, dict) else data
        if not isinstance(targets, list):
            raise GenviralRetryableError(
                status=200, error_code=None, message="response data holds no targets list", request=TARGETS_PATH
            )
        return targets

    def get(self, path: str, params: dict[str, str]) -> Any:
        """Send ``GET path`` and return the envelope's ``data``, retrying transient failures."""
        return self.request("GET", path, params)

    def post(self, path: str) -> Any:
        """Send ``POST path`` (no body) once and return the envelope's ``data``.

        Never retried: a POST that timed out or failed may still have been carried out (a refresh may have
        started, and cost credits); the caller decides what to do after reading the state again.
        """
        return self.request("POST", path, {}, retry=False)

    def request(self, method: str, path: str, params: dict[str, str], *, retry: bool = True) -> Any:
        """Send a request and return the envelope's ``data``, retrying transient failures when ``retry``."""
        budget = self.retry_policy.budget()
        while True:
            with self.throttle.slot() as started:
                try:
                    data = self._send(method, path, params)
                except GenviralRetryableError as error:
                    if not retry:
                        raise
                    if error.is_rate_limited:
                        self.throttle.rate_limited(started, error.retry_after)
                    failure = error
                else:
                    self.throttle.succeeded()
                    return data
            delay = budget.next_delay(failure)
            self.log.warning("%s; retry %d in %.1fs.", failure, budget.attempts, delay)
            time.sleep(delay)

    def _send(self, method: str, path: str, params: dict[str, str]) -> Any:
        request = describe(path, params, method=method)
        try:
            response = self.session.request(
                method, self.settings.url(path), params=params, timeout=self.settings.timeout
            )
            body = response.content
        except _TRANSIENT_TRANSPORT_ERRORS as error:
            raise GenviralRetryableError(
                status=None, error_code=None, message=f"{type(error).__name__}: {error}", request=request
            ) from error
        return read_envelope(response.status_code, response.headers, body, request=request)

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.headers.update(self.settings.headers())
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.settings.max_concurrency, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session


def describe(path: str, params: dict[str, str], *, method: str = "GET") -> str:
    """Describe a request for messages: ``GET /analytics/summary/posts?limit=100&offset=0``."""
    return f"{method} {path}?{urlencode(params)}" if params else f"{method} {path}"
