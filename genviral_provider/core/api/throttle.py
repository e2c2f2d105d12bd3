"""Adaptive concurrency and request rate: back off when the API says 429, recover while it does not.

The API documents a rate limit but not its size, so the client learns it: additive increase,
multiplicative decrease (AIMD, as TCP does) on both the number of requests in flight and, once a 429
has been seen, the pace of request starts.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: After a 429, the new pace as a share of the pace that was just succeeding.
RATE_DECREASE = 0.85


class AdaptiveLimits:
    """The AIMD state: how many requests may be in flight, and how often one may start.

    Not thread-safe by itself: :class:`ThreadThrottle` guards it with a lock.

    :param max_concurrency: the most requests in flight, the ceiling concurrency recovers to.
    :param clock: a monotonic clock, injectable for tests.
    :param max_pause: the longest pause a ``Retry-After`` may impose on every request (``max_retry_wait``):
        a server asking for days must not stall the client for days.
    """

    def __init__(
        self, max_concurrency: int, clock: Callable[[], float] = time.monotonic, *, max_pause: float = math.inf
    ) -> None:
        self.max_concurrency = max_concurrency
        self.max_pause = max_pause
        self.concurrency = float(max_concurrency)
        self.rate: float | None = None  # request starts per second; None until the first 429
        self.clock = clock
        self._next_start = 0.0
        self._paused_until = 0.0
        self._last_decrease = float("-inf")
        self._recent_successes: collections.deque[float] = collections.deque()

    @property
    def slots(self) -> int:
        """How many requests may be in flight now."""
        return max(1, int(self.concurrency))

    def reserve_start(self) -> float:
        """Book the next start time; return how long the caller must wait before sending."""
        now = self.clock()
        start = max(now, self._next_start, self._paused_until)
        if self.rate is not None:
            self._next_start = start + 1.0 / self.rate
        return start - now

    def on_success(self) -> None:
        """Grow by about one request in flight per round trip, and one request/s per second of pace."""
        now = self.clock()
        self._recent_successes.append(now)
        while self._recent_successes and self._recent_successes[0] < now - 1.0:
            self._recent_successes.popleft()
        self.concurrency = min(self.max_concurrency, self.concurrency + 1.0 / self.concurrency)
        if self.rate is not None:
            self.rate += 1.0 / self.rate

    def on_rate_limited(self, started_at: float, retry_after: float | None) -> None:
        """Halve concurrency and slow the pace, once per round trip of refusals.

        :param started_at: when the refused request started; refusals of requests sent before the last
            decrease are echoes of the same overload and do not decrease again.
        :param retry_after: the server's ``Retry-After``: nobody starts a request before it has passed.
        """
        now = self.clock()
        if retry_after:
            self._paused_until = max(self._paused_until, now + min(retry_after, self.max_pause))
        if started_at < self._last_decrease:
            return
        self._last_decrease = now
        self.concurrency = max(1.0, self.concurrency / 2)
        succeeding = float(sum(1 for t in self._recent_successes if t >= now - 1.0))
        pace = succeeding if self.rate is None else min(self.rate, max(succeeding, 1.0))
        self.rate = max(1.0, RATE_DECREASE * pace)


class PauseTooLong(Exception):
    """A request would have to wait longer than its caller allows before it may start.

    :param wait: the seconds it would have to wait.
    """

    def __init__(self, wait: float) -> None:
        super().__init__(f"would wait {wait:.1f}s before sending")
        self.wait = wait


class ThreadThrottle:
    """Gate for worker threads: waits for a free slot and for the pace, then lets a request go."""

    def __init__(self, limits: AdaptiveLimits) -> None:
        self.limits = limits
        self._in_flight = 0
        self._changed = threading.Condition()

    @contextmanager
    def slot(self, max_wait: float = math.inf, on_wait: Callable[[float], None] | None = None) -> Iterator[float]:
        """Hold one request slot; yield the time the request starts (for :meth:`rate_limited`).

        :param max_wait: the longest the caller may wait for the pace or a pause.
        :param on_wait: told how long the request waits for the pace or a pause, before it waits.
        :raises PauseTooLong: when the request would have to wait longer than ``max_wait`` (nothing is sent).
        """
        with self._changed:
            while self._in_flight >= self.limits.slots:
                self._changed.wait()
            self._in_flight += 1
            wait = self.limits.reserve_start()
        try:
            if wait > max_wait:
                raise PauseTooLong(wait)
            if on_wait is not None:
                on_wait(max(0.0, wait))
            if wait > 0:
                time.sleep(wait)
            yield self.limits.clock()
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def succeeded(self) -> None:
        """Record a request the server accepted."""
        with self._changed:
            self.limits.on_success()
            self._changed.notify_all()

    def rate_limited(self, started_at: float, retry_after: float | None) -> None:
        """Record a request refused with 429."""
        with self._changed:
            self.limits.on_rate_limited(started_at, retry_after)
