"""A synchronous client of the Genviral analytics API: pooled connections, retries, adaptive concurrency.

It is what :class:`~genviral_provider.hooks.genviral.GenviralHook` uses once it has read its connection,
and it works without Airflow (in a notebook, a script, a test).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import requests
import urllib3
from requests.adapters import HTTPAdapter

from genviral_provider.core.api.envelope import (
    TRANSPORT_ERRORS,
    PostsPage,
    read_envelope,
    targets_of,
    transport_failure,
)
from genviral_provider.core.api.query import POSTS_PATH, TARGETS_PATH, PageRequest
from genviral_provider.core.api.retry import RetryBudget
from genviral_provider.core.api.settings import (
    EXTRA_MAXIMUMS,
    REQUEST_DEADLINE_FACTOR,
    ClientSettings,
)
from genviral_provider.core.api.throttle import AdaptiveLimits, PauseTooLong, ThreadThrottle
from genviral_provider.core.log import Log
from genviral_provider.exceptions import GenviralAPIError, GenviralRetryableError

#: Bytes asked of the socket per read: small enough that a trickling body meets the deadline check often.
_READ_SIZE = 64 * 1024


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
        self.retry_policy = settings.retry_policy()
        self.throttle = ThreadThrottle(AdaptiveLimits(settings.max_concurrency, max_pause=settings.max_retry_wait))
        self.session = self._new_session()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.settings.base_url!r})"

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def fetch(self, request: PageRequest) -> PostsPage:
        """Fetch one page of posts; a page that contradicts itself is read again like any transient failure."""
        params = request.params()
        page: PostsPage = self.request(
            "GET",
            POSTS_PATH,
            params,
            read=lambda data: PostsPage.from_data(data, offset=request.offset, request=describe(POSTS_PATH, params)),
        )
        return page

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
        return targets_of(self.get(TARGETS_PATH, {}))

    def get(self, path: str, params: dict[str, str]) -> Any:
        """Send ``GET path`` and return the envelope's ``data``, retrying transient failures."""
        return self.request("GET", path, params)

    def post(self, path: str) -> Any:
        """Send ``POST path`` (no body) once and return the envelope's ``data``.

        Never retried: a POST that timed out or failed may still have been carried out (a refresh may have
        started, and cost credits); the caller decides what to do after reading the state again.
        """
        return self.request("POST", path, {}, retry=False)

    def request(
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

        Every wait of the request (the rate limit's pace and pauses, the backoff between attempts) counts
        against ``max_retry_wait``; each attempt ends within ``settings.request_deadline``.
        """
        budget = self.retry_policy.budget(log=self.log, retry=retry)
        while True:
            try:
                with self.throttle.slot(max_wait=budget.remaining, on_wait=budget.spend) as started:
                    try:
                        data = self._send(method, path, params)
                        result = read(data) if read is not None else data
                    except GenviralRetryableError as error:
                        if retry and error.is_rate_limited:
                            self.throttle.rate_limited(started, error.retry_after)
                        failure = error
                    else:
                        self.throttle.succeeded()
                        return result
            except PauseTooLong as pause:
                raise self._paused_too_long(method, path, params, pause.wait, budget) from None
            time.sleep(budget.wait_after(failure))

    def _paused_too_long(
        self, method: str, path: str, params: dict[str, str], wait: float, budget: RetryBudget
    ) -> GenviralRetryableError:
        return GenviralRetryableError(
            status=429,
            error_code="rate_limited",
            message=(
                f"not sent: the server's rate limit (Retry-After) pauses every request for {wait:.1f}s more, "
                f"beyond what max_retry_wait={self.settings.max_retry_wait:g}s leaves this request "
                f"({budget.remaining:.1f}s)"
            ),
            request=describe(path, params, method=method),
        )

    def _send(self, method: str, path: str, params: dict[str, str]) -> Any:
        body = BodyRead(self.settings, describe(path, params, method=method))
        deadline = _attempt.deadline = time.monotonic() + self.settings.request_deadline
        try:
            response = self.session.request(
                method,
                self.settings.url(path),
                params=params,
                timeout=self.settings.timeout,
                stream=True,
                allow_redirects=False,
            )
        except TRANSPORT_ERRORS as error:
            if time.monotonic() >= deadline:  # the watchdog cut headers that trickled past the deadline
                raise body.too_slow() from None
            raise transport_failure(
                error, request=body.request, secrets=self.settings.secret_forms(), base_url=self.settings.base_url
            ) from None
        finally:
            _attempt.deadline = None
        with response:
            data = self._read_body(response, body, deadline)
        return read_envelope(
            response.status_code, response.headers, data, request=body.request, secrets=self.settings.secret_forms()
        )

    def _read_body(self, response: requests.Response, body: BodyRead, deadline: float) -> bytes:
        """Read the body in small reads, stopping at the size cap or the deadline."""
        body.begin(response.status_code, response.headers)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise body.too_slow()
                _limit_socket_wait(response, min(self.settings.timeout, remaining))
                chunk = response.raw.read1(_READ_SIZE, decode_content=True)
                if not chunk:
                    return body.whole()
                body.add(chunk)
        except (urllib3.exceptions.HTTPError, OSError) as error:  # read timeout, connection reset, bad gzip
            if time.monotonic() >= deadline:
                raise body.too_slow() from None
            raise body.cut_short(error) from None

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.headers.update(self.settings.headers())
        adapter = _DeadlineAdapter(pool_connections=1, pool_maxsize=self.settings.max_concurrency, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session


def describe(path: str, params: dict[str, str], *, method: str = "GET") -> str:
    """Describe a request for messages: ``GET /analytics/summary/posts?limit=100&offset=0``."""
    return f"{method} {path}?{urlencode(params)}" if params else f"{method} {path}"


def _limit_socket_wait(response: requests.Response, seconds: float) -> None:
    """Let the next read wait at most ``seconds``, so that the deadline holds to the read, not one timeout later."""
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


#: The deadline of the attempt this thread is sending (``time.monotonic()``), read by its connection's watchdog.
_attempt = threading.local()


class _Watchdog:
    """One thread that shuts the socket of a response whose status line and headers pass their deadline.

    The per-read timeout alone would let headers trickled a byte at a time hold a request for ever; the body
    that follows is held to the deadline by :meth:`GenviralClient._read_body`. One thread serves every request:
    a ``threading.Timer`` each would cost about 1 ms per request, as much as a local round trip.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start afresh: a forked child has no copy of the thread, and its copy of the lock may be held."""
        self._deadlines: dict[socket.socket, float] = {}
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def read(self, sock: socket.socket | None, read: Callable[[], Any]) -> Any:
        """Return ``read()``, shutting ``sock`` if it is still reading at this thread's attempt deadline."""
        deadline: float | None = getattr(_attempt, "deadline", None)
        if deadline is None or sock is None:
            return read()
        with self._changed:
            self._deadlines[sock] = deadline
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="genviral-watchdog", daemon=True)
                self._thread.start()
            self._changed.notify()
        try:
            return read()
        finally:
            with self._changed:
                self._deadlines.pop(sock, None)

    def _run(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                for sock in [sock for sock, deadline in self._deadlines.items() if deadline <= now]:
                    del self._deadlines[sock]
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                nearest = min(self._deadlines.values(), default=None)
                self._changed.wait(None if nearest is None else nearest - now)


_watchdog = _Watchdog()
os.register_at_fork(after_in_child=_watchdog.reset)


class _HTTPConnection(urllib3.connection.HTTPConnection):
    def getresponse(self) -> Any:
        return _watchdog.read(self.sock, super().getresponse)


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    def getresponse(self) -> Any:
        return _watchdog.read(self.sock, super().getresponse)


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections end their status line and headers at the attempt's deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


class BodyRead:
    """A response body read chunk by chunk: held to the size cap, and what a deadline's message says of it.

    :param settings: the cap (``max_body_bytes``) and the deadline (``request_deadline``).
    :param request: what was asked, for messages.
    """

    def __init__(self, settings: ClientSettings, request: str) -> None:
        self.settings = settings
        self.request = request
        self.status: int | None = None  # until the response's headers arrive
        self.size = 0
        self._chunks: list[bytes] = []

    def begin(self, status: int, headers: Mapping[str, str]) -> None:
        """Start the body of a response; refuse it at once when its ``Content-Length`` is beyond the cap."""
        self.status = status
        declared = headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.settings.max_body_bytes:
            raise self._too_large(f"declares {int(declared)} bytes")

    def add(self, chunk: bytes) -> None:
        """Add a chunk; refuse the body once it passes the cap (permanent: a page of 100 rows is tens of kB)."""
        self.size += len(chunk)
        if self.size > self.settings.max_body_bytes:
            raise self._too_large("is still going")
        self._chunks.append(chunk)

    def whole(self) -> bytes:
        """Return the body read."""
        return b"".join(self._chunks)

    def cut_short(self, error: BaseException) -> GenviralAPIError:
        """Return the error of a transport failure; once the headers came, it says how much of the body did."""
        failure = transport_failure(
            error, request=self.request, secrets=self.settings.secret_forms(), base_url=self.settings.base_url
        )
        if self.status is None or not isinstance(failure, GenviralRetryableError):
            return failure
        message = f"HTTP {self.status} response cut short after {self.size} bytes: {failure.message}"
        return GenviralRetryableError(status=None, error_code=None, message=message, request=self.request)

    def too_slow(self) -> GenviralRetryableError:
        """Return the error of an attempt not complete by its deadline (retryable, like a timeout)."""
        deadline = self.settings.request_deadline
        within = (
            f"within the request deadline of {deadline:g}s ({REQUEST_DEADLINE_FACTOR:g} x the connection's "
            f"timeout={self.settings.timeout:g}s, which raises it)"
        )
        message = (
            f"no response {within}"
            if self.status is None
            else f"HTTP {self.status} response not complete {within} after {self.size} bytes: "
            "the server sends its body too slowly"
        )
        return GenviralRetryableError(status=None, error_code=None, message=message, request=self.request)

    def _too_large(self, size: str) -> GenviralAPIError:
        cap = self.settings.max_body_bytes
        message = (
            f"the response body {size}, more than the {cap}-byte cap; not read further (the connection's extra "
            f"max_body_bytes raises the cap, up to {EXTRA_MAXIMUMS['max_body_bytes']:.0f})"
        )
        return GenviralAPIError(status=self.status, error_code=None, message=message, request=self.request)
