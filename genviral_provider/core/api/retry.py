"""When to try a request again, and how long to wait first.

The policy is sans I/O: both clients send an attempt, hand a transient failure to
:meth:`RetryBudget.wait_after` and sleep what it says (``time.sleep`` in a worker, ``asyncio.sleep`` in the
triggerer) or raise what it raises, so that retries behave the same in both.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

from genviral_provider.core.log import Log
from genviral_provider.exceptions import GenviralRetryableError

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in attempts and in total wait.

    :param max_retries: retries after the first attempt (0 disables retrying).
    :param base_delay: the first backoff, in seconds; each further one doubles, up to ``max_delay``.
    :param max_delay: the longest single wait, in seconds (a longer ``Retry-After`` is still honoured
        while the total budget allows it).
    :param max_total_wait: the most seconds one request may spend waiting between its attempts.
    """

    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_total_wait: float = 120.0

    def budget(
        self,
        rng: random.Random | None = None,
        *,
        log: Log | None = None,
        retry: bool = True,
        deadline: float | None = None,
    ) -> RetryBudget:
        """Start the retries of one request (see :class:`RetryBudget` for the arguments)."""
        return RetryBudget(self, rng or random.Random(), log or _log, retry=retry, deadline=deadline)


@dataclass
class RetryBudget:
    """The retries one request has left, and what it does after each transient failure.

    :param policy: the bounds.
    :param rng: the jitter's randomness.
    :param log: where each retry is reported.
    :param retry: ``False`` for a request sent once (a POST): every failure is raised as it is.
    :param deadline: an absolute time (``time.time()``) no wait may end after; ``None``: only the policy bounds.
    """

    policy: RetryPolicy
    rng: random.Random
    log: Log
    retry: bool = True
    deadline: float | None = None
    attempts: int = 0
    waited: float = 0.0

    def wait_after(self, error: GenviralRetryableError) -> float:
        """Return the seconds to sleep before the next attempt, or raise ``error`` (with a note why) to give up."""
        if not self.retry:
            raise error
        delay = self.next_delay(error)
        if self.deadline is not None and time.time() + delay > self.deadline:
            error.add_note(f"Not retried: waiting {delay:.1f}s more would pass the deadline.")
            raise error
        self.log.warning("%s; retry %d in %.1fs.", error, self.attempts, delay)
        return delay

    @property
    def remaining(self) -> float:
        """Seconds this request may still wait."""
        return max(0.0, self.policy.max_total_wait - self.waited)

    def spend(self, seconds: float) -> None:
        """Count a wait the request spent outside :meth:`next_delay` (e.g. for the rate limit's pace)."""
        self.waited += max(0.0, seconds)

    def next_delay(self, error: GenviralRetryableError) -> float:
        """Return how long to wait before the next attempt, or raise ``error`` when the budget is spent.

        Honours the server's ``Retry-After``; otherwise waits ``base * 2**n`` with "equal jitter" (half
        fixed, half random) so that concurrent clients do not retry in lockstep.
        """
        self.attempts += 1
        delay: float = error.retry_after if error.retry_after is not None else self._backoff()
        if error.retry_after is not None and self.waited + delay > self.policy.max_total_wait:
            error.add_note(
                f"Not retried: the server asked to wait {describe_wait(error.retry_after)} (Retry-After), more "
                f"than max_retry_wait={self.policy.max_total_wait:g}s allows one request "
                f"({self.waited:.1f}s already waited)."
            )
            raise error
        if self.attempts > self.policy.max_retries or self.waited + delay > self.policy.max_total_wait:
            error.add_note(
                f"Gave up after {self.attempts} attempt(s) and {self.waited:.1f}s of waiting "
                f"(max_retries={self.policy.max_retries}, max_retry_wait={self.policy.max_total_wait:g}s)."
            )
            raise error
        self.waited += delay
        return delay

    def _backoff(self) -> float:
        ceiling = min(self.policy.max_delay, self.policy.base_delay * 2.0 ** (self.attempts - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)


def describe_wait(seconds: float) -> str:
    """Describe a wait for messages: ``42s``, or ``999999s (about 11.6 days)`` for a long one."""
    if seconds < 3600:
        return f"{seconds:.0f}s"
    if seconds < 3 * 86400:
        return f"{seconds:.0f}s (about {seconds / 3600:.1f} hours)"
    if seconds < 1e12:
        return f"{seconds:.0f}s (about {seconds / 86400:.1f} days)"
    return "practically forever"
