"""The retry policy: exponential backoff with jitter, Retry-After honoured, attempts and wait bounded."""

from __future__ import annotations

import logging
import random
import time

import pytest

from genviral_provider.core.api.retry import RetryPolicy
from genviral_provider.exceptions import GenviralRetryableError


def transient(retry_after: float | None = None) -> GenviralRetryableError:
    return GenviralRetryableError(
        status=503, error_code=None, message="busy", request="GET /x", retry_after=retry_after
    )


def test_backoff_doubles_within_jitter_bounds() -> None:
    budget = RetryPolicy(max_retries=4, base_delay=1.0, max_delay=100.0).budget(random.Random(1))
    delays = [budget.next_delay(transient()) for _ in range(4)]
    for attempt, delay in enumerate(delays):
        ceiling = 2.0**attempt
        assert ceiling / 2 <= delay <= ceiling


def test_backoff_is_capped_by_max_delay() -> None:
    budget = RetryPolicy(max_retries=10, base_delay=1.0, max_delay=2.0, max_total_wait=100).budget()
    assert max(budget.next_delay(transient()) for _ in range(10)) <= 2.0


def test_retry_after_is_honoured() -> None:
    assert RetryPolicy().budget().next_delay(transient(retry_after=7)) == 7


def test_attempts_are_bounded_and_the_last_error_is_raised_with_a_note() -> None:
    budget = RetryPolicy(max_retries=2, base_delay=0.01).budget()
    budget.next_delay(transient())
    budget.next_delay(transient())
    last = transient()
    with pytest.raises(GenviralRetryableError) as caught:
        budget.next_delay(last)
    assert caught.value is last
    assert "Gave up after 3 attempt(s)" in caught.value.__notes__[0]


def test_total_wait_is_bounded() -> None:
    budget = RetryPolicy(max_retries=100, max_total_wait=10).budget()
    budget.next_delay(transient(retry_after=6))
    with pytest.raises(GenviralRetryableError):
        budget.next_delay(transient(retry_after=6))


def test_zero_retries_fails_at_once() -> None:
    with pytest.raises(GenviralRetryableError):
        RetryPolicy(max_retries=0).budget().next_delay(transient())


def test_a_retry_after_beyond_the_total_wait_raises_at_once_saying_what_was_asked() -> None:
    budget = RetryPolicy(max_retries=5, max_total_wait=120.0).budget(random.Random(1))
    error = transient(retry_after=999_999.0)
    with pytest.raises(GenviralRetryableError) as caught:
        budget.next_delay(error)
    assert caught.value is error
    assert "the server asked to wait 999999s (about 11.6 days) (Retry-After)" in error.__notes__[0]
    assert "max_retry_wait=120s" in error.__notes__[0]


def test_waits_spent_elsewhere_count_against_the_total() -> None:
    budget = RetryPolicy(max_retries=5, max_total_wait=10.0).budget(random.Random(1))
    budget.spend(8.0)
    assert budget.remaining == 2.0
    with pytest.raises(GenviralRetryableError):
        budget.next_delay(transient(retry_after=3.0))


def test_a_request_sent_once_raises_its_first_failure_as_it_is(caplog: pytest.LogCaptureFixture) -> None:
    retries = RetryPolicy().budget(log=logging.getLogger("test"), retry=False)
    error = transient()
    with pytest.raises(GenviralRetryableError) as caught:
        retries.wait_after(error)
    assert caught.value is error and not getattr(error, "__notes__", None) and not caplog.records


def test_each_retry_is_logged_with_its_wait(caplog: pytest.LogCaptureFixture) -> None:
    retries = RetryPolicy().budget(log=logging.getLogger("test"))
    assert retries.wait_after(transient(retry_after=3)) == 3
    assert caplog.messages == ["Genviral API error on GET /x: HTTP 503: busy; retry 1 in 3.0s."]


def test_a_wait_past_the_deadline_gives_up_saying_so() -> None:
    retries = RetryPolicy().budget(log=logging.getLogger("test"), deadline=time.time() + 5)
    assert retries.wait_after(transient(retry_after=1)) == 1
    with pytest.raises(GenviralRetryableError) as caught:
        retries.wait_after(transient(retry_after=10))
    assert "Not retried: waiting 10.0s more would pass the deadline." in caught.value.__notes__
