"""The sandbox HTTP server: routes, parameter validation, the response envelope, fault injection, statistics.

API paths (under ``/api/partner/v1``) behave as the documented Genviral Partner API; admin paths (under
``/_sandbox``) need no key and let other processes insert rows, set faults, change the analytics cache and
read counters. The cache itself (target freshness, refreshes, credits) lives in :mod:`.refreshes`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
import re
import socket
import struct
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

from genviral_provider.sandbox.dataset import (
    DATE_RANGE_PRESETS,
    SORT_FIELDS,
    SORT_ORDERS,
    Dataset,
    PostsQuery,
    parse_timestamp,
)
from genviral_provider.sandbox.faults import Fault, Faults
from genviral_provider.sandbox.refreshes import (
    WORKSPACE_ID,
    CacheSettings,
    RefreshedAt,
    RefreshError,
    RefreshLedger,
)

SANDBOX_API_KEY = "gva_sandbox_k3y9x2.s4ndb0xs3cr3tv4lu3"
API_PREFIX = "/api/partner/v1"
POSTS_PATH = f"{API_PREFIX}/analytics/summary/posts"
TARGETS_PATH = f"{API_PREFIX}/analytics/targets"
REFRESHES_PATH = f"{API_PREFIX}/analytics/refreshes"
ADMIN_PREFIX = "/_sandbox/"
MAX_LIMIT = 100
MAX_OFFSET = 10_000
MAX_RECORDED_REQUESTS = 100_000

#: How often the serving loop checks for stop(): the delay stop() waits at most (the default, 0.5 s, slows tests).
_POLL_INTERVAL = 0.02
_DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
_INTEGER_PATTERN = re.compile(r"-?\d+")
_ID = "/(?P<id>[^/]+)"
_POSTS_ROUTE = re.compile(re.escape(POSTS_PATH))
_TARGETS_ROUTE = re.compile(re.escape(TARGETS_PATH))
_TARGET_ROUTE = re.compile(re.escape(TARGETS_PATH) + _ID)
_REFRESH_ROUTE = re.compile(re.escape(TARGETS_PATH) + _ID + "/refresh")
_REFRESH_STATUS_ROUTE = re.compile(re.escape(REFRESHES_PATH) + _ID)
_FAULT_MESSAGES = {
    429: "Rate limit exceeded",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}
_CUT_MISSING_BYTES = 4096
_CUT_BODY = b'{"ok":true,"code":200,"message":"Analytics posts retrieved","data":{"posts":[{"id":"'
_BAD_JSON_BODY = b'{"ok":true,"code":200,"message":"Analytics posts retrieved","data":{"posts":[}'


def default_dataset() -> Dataset:
    """Return the small default dataset: 14 days x 40 rows from 2026-01-01, seed 0."""
    return Dataset.generate(start=dt.date(2026, 1, 1), days=14, rows_per_day=40, seed=0)


# ---------------------------------------------------------------------------------------- parameters


class InvalidQuery(ValueError):
    """A query parameter the API rejects with 400 ``invalid_query``; the message names the parameter."""


def parse_posts_query(params: Mapping[str, Sequence[str]], *, clamp_limit: bool = False) -> PostsQuery:
    """Validate the query string of ``GET /analytics/summary/posts`` as the API does.

    A parameter's canonical name wins over its alias; of repeated values the first counts.

    :param params: parameter name to values, as :func:`urllib.parse.parse_qs` returns them.
    :param clamp_limit: clamp ``limit`` above 100 to 100 instead of rejecting it.
    :raises InvalidQuery: naming the parameter and what is allowed.
    """
    date_range = _choice(params, "range", DATE_RANGE_PRESETS, "30d")
    start, end = _dates(params)
    return PostsQuery(
        range=date_range,
        start=start,
        end=end,
        platforms=_id_list(params, "platforms", "platform"),
        accounts=_id_list(params, "accounts", "account_ids"),
        sort_by=_choice(params, "sortBy", SORT_FIELDS, "published_at", alias="sort_by"),
        sort_order=_choice(params, "sortOrder", SORT_ORDERS, "desc", alias="sort_order"),
        limit=_integer(params, "limit", 50, 1, MAX_LIMIT, clamp=clamp_limit),
        offset=_integer(params, "offset", 0, 0, MAX_OFFSET),
    )


def _param(params: Mapping[str, Sequence[str]], name: str, alias: str | None = None) -> tuple[str, str | None]:
    """Return (name used, first value) of a parameter, or (name, None) when absent."""
    for used in (name, alias):
        if used is not None and params.get(used):
            return used, params[used][0]
    return name, None


def _choice(
    params: Mapping[str, Sequence[str]], name: str, allowed: Sequence[str], default: str, alias: str | None = None
) -> str:
    used, value = _param(params, name, alias)
    if value is None:
        return default
    if value not in allowed:
        raise InvalidQuery(f"Invalid {used} {value!r}: expected one of {', '.join(allowed)}")
    return value


def _dates(params: Mapping[str, Sequence[str]]) -> tuple[dt.date | None, dt.date | None]:
    start = _date(params, "start")
    end = _date(params, "end")
    if (start is None) != (end is None):
        raise InvalidQuery("Invalid start/end: start and end must be sent together")
    if start is not None and end is not None and start > end:
        raise InvalidQuery(f"Invalid start/end: start {start} is after end {end}")
    return start, end


def _date(params: Mapping[str, Sequence[str]], name: str) -> dt.date | None:
    _, value = _param(params, name)
    if value is None:
        return None
    try:
        if _DATE_PATTERN.fullmatch(value):
            return dt.date.fromisoformat(value)
    except ValueError:
        pass
    raise InvalidQuery(f"Invalid {name} {value!r}: expected a date as YYYY-MM-DD")


def _id_list(params: Mapping[str, Sequence[str]], name: str, alias: str) -> frozenset[str] | None:
    used, value = _param(params, name, alias)
    if value is None:
        return None
    items = value.split(",")
    if any(not item.strip() for item in items):
        raise InvalidQuery(f"Invalid {used} {value!r}: blank entry in the comma-separated list")
    return frozenset(item.strip() for item in items)


def _integer(
    params: Mapping[str, Sequence[str]], name: str, default: int, low: int, high: int, *, clamp: bool = False
) -> int:
    _, value = _param(params, name)
    if value is None:
        return default
    if not _INTEGER_PATTERN.fullmatch(value):
        raise InvalidQuery(f"Invalid {name} {value!r}: expected an integer from {low} to {high}")
    number = int(value)
    if clamp and number > high:
        return high
    if not low <= number <= high:
        raise InvalidQuery(f"Invalid {name} {number}: expected an integer from {low} to {high}")
    return number


# ---------------------------------------------------------------------------------------- statistics


class RequestRecord(NamedTuple):
    """One request as the sandbox saw it; ``status`` 0 means no complete answer (``cut``, ``reset``)."""

    path: str
    query: dict[str, str]
    status: int
    time: float


class Stats:
    """Thread-safe counters of the requests to non-admin paths."""

    def __init__(self, max_records: int = MAX_RECORDED_REQUESTS) -> None:
        self._lock = threading.Lock()
        self._max_records = max_records
        self.reset()

    def reset(self) -> None:
        """Clear every counter and the request log."""
        with self._lock:
            self._total = 0
            self._by_status: dict[int, int] = {}
            self._in_flight = 0
            self._max_in_flight = 0
            self._requests: deque[RequestRecord] = deque(maxlen=self._max_records)
            self._deleted: deque[str] = deque(maxlen=self._max_records)

    def begin(self) -> None:
        """Count a request as in flight."""
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def finish(self, record: RequestRecord) -> None:
        """Count a finished request."""
        with self._lock:
            self._in_flight -= 1
            self._total += 1
            self._by_status[record.status] = self._by_status.get(record.status, 0) + 1
            self._requests.append(record)

    def record_deletions(self, row_ids: Iterable[str]) -> None:
        """Remember the ids of rows the deletions removed."""
        with self._lock:
            self._deleted.extend(row_ids)

    @property
    def deleted(self) -> list[str]:
        """Return the ids of the rows deleted (up to the cap), in the order they were."""
        with self._lock:
            return list(self._deleted)

    @property
    def total(self) -> int:
        """Return how many requests finished."""
        with self._lock:
            return self._total

    @property
    def by_status(self) -> dict[int, int]:
        """Return status code to count (0: no complete answer)."""
        with self._lock:
            return dict(self._by_status)

    @property
    def rate_limited(self) -> int:
        """Return how many requests were answered 429."""
        with self._lock:
            return self._by_status.get(429, 0)

    @property
    def in_flight(self) -> int:
        """Return how many requests are being handled now."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """Return the most requests ever handled at once."""
        with self._lock:
            return self._max_in_flight

    @property
    def requests(self) -> list[RequestRecord]:
        """Return the most recent requests (up to the cap), oldest first."""
        with self._lock:
            return list(self._requests)

    def snapshot(self) -> dict[str, Any]:
        """Return the counters (and the last 1,000 requests) as a JSON-ready dict."""
        with self._lock:
            recent = list(self._requests)[-1000:]
            return {
                "total": self._total,
                "by_status": {str(status): count for status, count in sorted(self._by_status.items())},
                "rate_limited": self._by_status.get(429, 0),
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "deleted": len(self._deleted),
                "recent": [record._asdict() for record in recent],
            }


# ---------------------------------------------------------------------------------------- server


class SandboxServer:
    """A local stand-in for the Genviral analytics API, serving a :class:`Dataset` over HTTP/1.1.

    The window-semantics options (``now``, ``end_inclusive``, ``date_timezone``, ``clamp_limit``,
    ``shuffle_ties``, ``tie_seed``) are read on every request, so tests may change them while it runs.

    :param dataset: the rows to serve (default: :func:`default_dataset`).
    :param api_key: the only accepted bearer token.
    :param host: interface to bind.
    :param port: port to bind (0: a free one; see :attr:`url`).
    :param now: the clock ``range`` presets are relative to (``None``: the real current time).
    :param end_inclusive: whether rows on the ``end`` date are included.
    :param date_timezone: IANA zone in which ``start``/``end`` dates are read.
    :param clamp_limit: clamp ``limit`` > 100 to 100 instead of answering 400.
    :param shuffle_ties: return rows with equal sort values in a new order on every request (the API documents no
        tie-breaker): each group of them a page touches is shuffled, across the page's edges.
    :param tie_seed: seed of those orders (setting it restarts them): the same requests get the same orders.
    :param faults: initial fault settings (default: none).
    :param verbose: log every request to stderr.
    :param refresh_seconds: real seconds a refresh takes (pending for the first third, then processing).
    :param credits: the workspace's credit balance, spent by paid refreshes.
    :param refresh_cost: credits a paid refresh costs (after a target's one free refresh per day).
    :param max_refreshes_per_minute: refresh POSTs per target admitted in 60 s; more answer 429.
    :param scheduled_refresh_seconds: real seconds between the platform's own free refreshes of every target.
    :param omit_freshness_fields: leave ``last_refreshed_at`` and ``free_refresh_available`` out of target rows.
    :param failing_targets: ids of targets whose refreshes end ``failed``.
    :param targets_refreshed_at: the cache's freshness: ``None`` (live: every row served), one instant for
        every target, or target id to instant (``None``: live). A lagging target's later rows are hidden.
    """

    def __init__(
        self,
        *,
        dataset: Dataset | None = None,
        api_key: str = SANDBOX_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        now: dt.datetime | None = None,
        end_inclusive: bool = True,
        date_timezone: str = "UTC",
        clamp_limit: bool = False,
        shuffle_ties: bool = False,
        tie_seed: int = 0,
        faults: Faults | None = None,
        verbose: bool = False,
        refresh_seconds: float = 1.0,
        credits: int = 0,
        refresh_cost: int = 1,
        max_refreshes_per_minute: int = 6,
        scheduled_refresh_seconds: float | None = None,
        omit_freshness_fields: bool = False,
        failing_targets: Iterable[str] = (),
        targets_refreshed_at: RefreshedAt = None,
    ) -> None:
        self.dataset = dataset if dataset is not None else default_dataset()
        self.api_key = api_key
        self.host = host
        self.port = port
        self.now = now
        self.end_inclusive = end_inclusive
        self.date_timezone = date_timezone
        self.clamp_limit = clamp_limit
        self.shuffle_ties = shuffle_ties
        self.faults = faults if faults is not None else Faults()
        self.verbose = verbose
        self.stats = Stats()
        self.tie_seed = tie_seed
        if isinstance(failing_targets, str):
            raise ValueError(f"failing_targets must be a list of analytics target ids, got {failing_targets!r}")
        cache_settings = CacheSettings(
            refresh_seconds=refresh_seconds,
            refresh_cost=refresh_cost,
            max_refreshes_per_minute=max_refreshes_per_minute,
            scheduled_refresh_seconds=scheduled_refresh_seconds,
            omit_freshness_fields=omit_freshness_fields,
            failing_targets=frozenset(failing_targets),
        )
        self.refresh_ledger = RefreshLedger(
            self.dataset.targets,
            clock=self.current_time,
            settings=cache_settings,
            credits=credits,
            refreshed_at=targets_refreshed_at,
        )
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def date_timezone(self) -> str:
        """Return the IANA zone in which ``start``/``end`` dates are read."""
        return self._date_timezone

    @date_timezone.setter
    def date_timezone(self, name: str) -> None:
        ZoneInfo(name)  # Fail here, not on the next request, for an unknown zone.
        self._date_timezone = name

    @property
    def tie_seed(self) -> int:
        """Return the seed of the tie orders (see ``shuffle_ties``)."""
        return self._tie_seed

    @tie_seed.setter
    def tie_seed(self, seed: int) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"tie_seed must be an integer, got {seed!r}")
        self._tie_seed = seed
        self.tie_rng = random.Random(f"ties-{seed}")

    @property
    def url(self) -> str:
        """Return the base URL, e.g. ``http://127.0.0.1:54321`` (API paths go under it)."""
        if self._httpd is None:
            raise RuntimeError("the sandbox is not started: call start() first")
        return f"http://{self.host}:{self.port}"

    def current_time(self) -> dt.datetime:
        """Return the server's clock: :attr:`now` if set, else the real time (UTC)."""
        if self.now is None:
            return dt.datetime.now(dt.timezone.utc)
        return self.now if self.now.tzinfo is not None else self.now.replace(tzinfo=dt.timezone.utc)

    def start(self) -> SandboxServer:
        """Bind and serve in a daemon thread; return self."""
        if self._httpd is not None:
            raise RuntimeError("the sandbox is already started")
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"genviral-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection (idempotent)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def insert_posts(self, rows_or_partials: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Insert rows (partial ones completed with generated values, see :meth:`Dataset.insert`); return them."""
        return self.dataset.insert(rows_or_partials, default_published_at=self.current_time())

    def delete_after_answer(self, query: PostsQuery, *, now: dt.datetime) -> list[dict[str, Any]]:
        """Delete the rows ``faults.deletions_per_request`` asks for among those ``query`` selects; return them."""
        deleted = self.dataset.delete_selected(
            query,
            self.faults.take_deletions,
            now=now,
            end_inclusive=self.end_inclusive,
            date_timezone=self.date_timezone,
            hidden_after=self.refresh_ledger.cache_cutoffs(),
        )
        self.stats.record_deletions(str(row["id"]) for row in deleted)
        return deleted

    def reset_stats(self) -> None:
        """Clear the request counters."""
        self.stats.reset()

    def query_posts(self, query: PostsQuery, *, now: dt.datetime) -> tuple[list[dict[str, Any]], int]:
        """Return the page and total count the posts endpoint serves: the dataset as the analytics cache holds it."""
        return self.dataset.query(
            query,
            now=now,
            end_inclusive=self.end_inclusive,
            date_timezone=self.date_timezone,
            tie_rng=self.tie_rng if self.shuffle_ties else None,
            hidden_after=self.refresh_ledger.cache_cutoffs(),
        )

    @property
    def credits(self) -> int:
        """Return the workspace's credit balance."""
        return self.refresh_ledger.credits

    def refreshes(self) -> list[dict[str, Any]]:
        """Return every refresh made, scheduled ones included, oldest first (with ``wasFree`` and ``scheduled``)."""
        return self.refresh_ledger.records()

    def set_targets_refreshed_at(self, when: dt.datetime | None, target_ids: Iterable[str] | None = None) -> None:
        """Set when targets were last refreshed: their rows published later are hidden (``None``: live again).

        :param when: the instant (naive: UTC), or ``None`` for live.
        :param target_ids: the targets (default: all).
        :raises ValueError: on an unknown target id.
        """
        self.refresh_ledger.set_refreshed_at(when, target_ids)

    def settings(self) -> dict[str, Any]:
        """Return the window-semantics options and the analytics cache's settings as a JSON-ready dict."""
        window = {
            "now": None if self.now is None else self.current_time().isoformat(),
            "end_inclusive": self.end_inclusive,
            "date_timezone": self.date_timezone,
            "clamp_limit": self.clamp_limit,
            "shuffle_ties": self.shuffle_ties,
            "tie_seed": self.tie_seed,
        }
        return {**window, **self.refresh_ledger.settings()}

    def apply_settings(self, settings: Mapping[str, Any]) -> None:
        """Change options by name (``now`` as an ISO 8601 string or null); cache settings are checked first.

        :raises ValueError: on an unknown name or an invalid value.
        """
        unknown = sorted(set(settings) - set(self.settings()))
        if unknown:
            raise ValueError(f"unknown settings {unknown}: known are {', '.join(self.settings())}")
        cache_names = set(self.refresh_ledger.settings())
        cache_settings = {name: value for name, value in settings.items() if name in cache_names}
        self.refresh_ledger.check_settings(cache_settings)
        for name in ("end_inclusive", "clamp_limit", "shuffle_ties"):
            if name in settings and not isinstance(settings[name], bool):
                raise ValueError(f"{name} must be true or false, got {settings[name]!r}")
        seed = settings.get("tie_seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"tie_seed must be an integer, got {seed!r}")
        if "tie_seed" in settings:
            self.tie_seed = seed
        if "date_timezone" in settings:
            self.date_timezone = str(settings["date_timezone"])
        if "now" in settings:
            self.now = None if settings["now"] is None else parse_timestamp(str(settings["now"]))
        for name in ("end_inclusive", "clamp_limit", "shuffle_ties"):
            if name in settings:
                setattr(self, name, settings[name])
        self.refresh_ledger.apply_settings(cache_settings)


class _HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its sandbox and can close its keep-alive connections."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, is_open: bool) -> None:
        """Record that a connection opened or closed."""
        with self._connections_lock:
            if is_open:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut down idle keep-alive connections so their handler threads end and clients see the close."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # Already closed by the client or by a fault.
                connection.shutdown(socket.SHUT_RDWR)


@dataclass(frozen=True)
class _Answer:
    """A response to send: a status and body, or a broken connection (``breakage`` ``"cut"`` or ``"reset"``)."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    breakage: str | None = None

    @classmethod
    def error(cls, status: int, message: str, error_code: str, headers: Mapping[str, str] | None = None) -> _Answer:
        """Return an error envelope."""
        body = json.dumps({"ok": False, "code": status, "message": message, "error_code": error_code}).encode()
        return cls(status, body, headers or {})

    @classmethod
    def success(cls, message: str, data: Any) -> _Answer:
        """Return a 200 envelope carrying ``data``."""
        envelope = {"ok": True, "code": 200, "message": message, "data": data}
        # Raw UTF-8 rather than \u escapes, as most servers send it: clients must decode the body properly.
        return cls(200, json.dumps(envelope, ensure_ascii=False).encode())


#: An API route's answer: from the query parameters and the id in the path ("" for routes without one).
_Route = Callable[[Mapping[str, Sequence[str]], str], _Answer]


class _Handler(BaseHTTPRequestHandler):
    """Answer one connection's requests (HTTP/1.1 keep-alive, JSON envelope everywhere)."""

    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without NODELAY, Nagle + delayed ACK add ~40 ms per answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, is_open=True)

    def finish(self) -> None:
        self.server.track(self.connection, is_open=False)
        super().finish()

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.sandbox.verbose:
            super().log_message(format, *args)

    @property
    def sandbox(self) -> SandboxServer:
        """Return the sandbox this request is for."""
        return self.server.sandbox

    def _handle(self) -> None:
        url = urlsplit(self.path)
        params = parse_qs(url.query, keep_blank_values=True)
        body = self._read_body()
        if url.path.startswith(ADMIN_PREFIX):
            self._deliver(self._safely(lambda: self._answer_admin(url.path, body)))
            return
        self.sandbox.stats.begin()
        answer = self._safely(lambda: self._answer_api(url.path, params))
        # Counted before sending, so a client that has its answer also finds it in the stats.
        query = {name: values[0] for name, values in params.items()}
        status = 0 if answer.breakage else answer.status
        self.sandbox.stats.finish(RequestRecord(url.path, query, status, time.monotonic()))
        self._deliver(answer)

    def _safely(self, answer: Callable[[], _Answer]) -> _Answer:
        try:
            return answer()
        except Exception as exc:  # A sandbox bug: answer 500 so the client does not hang, and show it.
            traceback.print_exc(file=sys.stderr)
            return _Answer.error(500, f"sandbox error: {exc}", "internal_error")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # ---------------------------------------------------------------------------------------- API

    def _answer_api(self, path: str, params: Mapping[str, Sequence[str]]) -> _Answer:
        """Answer an API path (faults first, then routing, method, key) or an unknown path."""
        if path.startswith(API_PREFIX + "/"):
            if self.sandbox.faults.latency > 0:
                time.sleep(self.sandbox.faults.latency)
            try:
                fault = self.sandbox.faults.next_fault(path)
            except ValueError as exc:  # An invalid entry assigned straight to faults.script.
                return _Answer.error(500, f"sandbox fault script: {exc}", "internal_error")
            if fault is not None:
                return _fault_answer(fault)
        found = self._api_route(path)
        if found is None:
            return _Answer.error(404, f"No route for {path}", "not_found")
        method, answer, path_id = found
        if self.command != method:
            message = f"{self.command} is not allowed on {path}"
            return _Answer.error(405, message, "method_not_allowed", {"Allow": method})
        if self.headers.get("Authorization") != f"Bearer {self.sandbox.api_key}":
            return _Answer.error(401, "API key not found", "invalid_token")
        try:
            return answer(params, path_id)
        except RefreshError as exc:
            return _Answer.error(exc.status, exc.message, exc.error_code, exc.headers)

    def _api_route(self, path: str) -> tuple[str, _Route, str] | None:
        """Return (method, answer, the id in the path or "") of the API route a path names, if any."""
        routes: tuple[tuple[re.Pattern[str], str, _Route], ...] = (
            (_POSTS_ROUTE, "GET", self._answer_posts),
            (_TARGETS_ROUTE, "GET", self._answer_targets),
            (_TARGET_ROUTE, "GET", self._answer_target),
            (_REFRESH_ROUTE, "POST", self._answer_refresh),
            (_REFRESH_STATUS_ROUTE, "GET", self._answer_refresh_status),
        )
        for pattern, method, answer in routes:
            match = pattern.fullmatch(path.rstrip("/"))
            if match is not None:
                return method, answer, unquote(match.groupdict().get("id") or "")
        return None

    def _answer_posts(self, params: Mapping[str, Sequence[str]], _: str) -> _Answer:
        sandbox = self.sandbox
        try:
            query = parse_posts_query(params, clamp_limit=sandbox.clamp_limit)
        except InvalidQuery as exc:
            return _Answer.error(400, str(exc), "invalid_query")
        now = sandbox.current_time()
        posts, total = sandbox.query_posts(query, now=now)
        data = {"posts": posts, "totalCount": total, "hasMore": query.offset + len(posts) < total}
        answer = _Answer.success("Analytics posts retrieved", data)
        # Rows arrive and disappear before the answer is sent, so a sequential client sees it on its next request.
        self._add_arrivals(now)
        if sandbox.faults.deletions_per_request > 0:
            sandbox.delete_after_answer(query, now=now)
        return answer

    def _add_arrivals(self, now: dt.datetime) -> None:
        faults = self.sandbox.faults
        if faults.arrivals_per_request > 0:
            rng = faults.arrival_rng()
            self.sandbox.dataset.insert_arrivals(
                faults.arrivals_per_request, mode=faults.arrival_mode, now=now, rng=rng
            )

    def _answer_targets(self, params: Mapping[str, Sequence[str]], _: str) -> _Answer:
        targets = self.sandbox.refresh_ledger.target_rows()
        return _Answer.success("Analytics targets retrieved", {"workspace_id": WORKSPACE_ID, "targets": targets})

    def _answer_target(self, params: Mapping[str, Sequence[str]], target_id: str) -> _Answer:
        sandbox = self.sandbox
        detail = sandbox.refresh_ledger.target_detail(target_id)
        every_post = PostsQuery(range="all", accounts=frozenset({target_id}), limit=1)
        _, total = sandbox.query_posts(every_post, now=sandbox.current_time())
        detail["summary"]["totals"] = {"posts": total}
        return _Answer.success("Analytics target retrieved", detail)

    def _answer_refresh(self, params: Mapping[str, Sequence[str]], target_id: str) -> _Answer:
        refresh, was_free = self.sandbox.refresh_ledger.start_refresh(target_id)
        return _Answer.success("Analytics refresh queued", {"refresh": refresh, "wasFree": was_free})

    def _answer_refresh_status(self, params: Mapping[str, Sequence[str]], refresh_id: str) -> _Answer:
        return _Answer.success("Analytics refresh retrieved", self.sandbox.refresh_ledger.refresh(refresh_id))

    # -------------------------------------------------------------------------------------- admin

    def _answer_admin(self, path: str, body: bytes) -> _Answer:
        routes: dict[tuple[str, str], Callable[[Any], tuple[str, Any]]] = {
            ("POST", "/_sandbox/posts"): lambda rows: ("Posts inserted", {"posts": self._insert(rows)}),
            ("GET", "/_sandbox/faults"): lambda _: ("Faults", self.sandbox.faults.as_dict()),
            ("POST", "/_sandbox/faults"): lambda settings: ("Faults applied", self._apply_faults(settings)),
            ("GET", "/_sandbox/stats"): lambda _: ("Stats", self.sandbox.stats.snapshot()),
            ("POST", "/_sandbox/reset"): lambda _: ("Faults, stats and analytics cache reset", self._reset()),
            ("GET", "/_sandbox/settings"): lambda _: ("Settings", self.sandbox.settings()),
            ("POST", "/_sandbox/settings"): lambda settings: ("Settings applied", self._apply_settings(settings)),
            ("POST", "/_sandbox/targets"): lambda body: ("Targets updated", self._update_targets(body)),
            ("GET", "/_sandbox/refreshes"): lambda _: ("Refreshes", self._refreshes()),
        }
        route = routes.get((self.command, path.rstrip("/")))
        if route is None:
            if any(route_path == path.rstrip("/") for _, route_path in routes):
                return _Answer.error(405, f"{self.command} is not allowed on {path}", "method_not_allowed")
            return _Answer.error(404, f"No route for {path}", "not_found")
        try:
            message, data = route(json.loads(body) if body.strip() else None)
        except (ValueError, TypeError, KeyError) as exc:
            return _Answer.error(400, f"Invalid admin request: {exc}", "invalid_request")
        return _Answer.success(message, data)

    def _insert(self, rows: Any) -> list[dict[str, Any]]:
        if isinstance(rows, dict):
            rows = [rows]
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise ValueError("expected a JSON list of row objects")
        return self.sandbox.insert_posts(rows)

    def _apply_faults(self, settings: Any) -> dict[str, Any]:
        if not isinstance(settings, dict):
            raise ValueError("expected a JSON object of fault settings")
        self.sandbox.faults.update(**settings)
        return self.sandbox.faults.as_dict()

    def _apply_settings(self, settings: Any) -> dict[str, Any]:
        if not isinstance(settings, dict):
            raise ValueError("expected a JSON object of settings")
        self.sandbox.apply_settings(settings)
        return self.sandbox.settings()

    def _update_targets(self, body: Any) -> dict[str, Any]:
        return {"targets": self.sandbox.refresh_ledger.update_targets(body)}

    def _refreshes(self) -> dict[str, Any]:
        ledger = self.sandbox.refresh_ledger
        return {"refreshes": ledger.records(), "credits": ledger.credits}

    def _reset(self) -> dict[str, Any]:
        self.sandbox.faults.reset()
        self.sandbox.stats.reset()
        self.sandbox.refresh_ledger.reset()
        return {"faults": self.sandbox.faults.as_dict()}

    # ------------------------------------------------------------------------------------- writing

    def _deliver(self, answer: _Answer) -> None:
        """Send an answer, or break the connection the way it says."""
        if answer.breakage == "reset":
            # Linger 0 makes close() abort the connection with an RST instead of answering.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            declared = len(answer.body) + (_CUT_MISSING_BYTES if answer.breakage == "cut" else 0)
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(declared))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)
        if answer.breakage is not None:
            self.close_connection = True
            self.connection.close()


def _fault_answer(fault: Fault) -> _Answer:
    """Return the answer that injects a fault."""
    if fault.kind == "status":
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        error_code = "rate_limited" if fault.status == 429 else "internal_error"
        return _Answer.error(fault.status, _FAULT_MESSAGES[fault.status], error_code, headers)
    if fault.kind == "badjson":
        return _Answer(200, _BAD_JSON_BODY)
    return _Answer(200, _CUT_BODY if fault.kind == "cut" else b"", breakage=fault.kind)
