"""Adaptive limits: halve on 429 once per round trip, pace to what was succeeding, recover after."""

from __future__ import annotations

from genviral_provider.core.api.throttle import RATE_DECREASE, AdaptiveLimits


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_starts_unpaced_at_full_concurrency() -> None:
    limits = AdaptiveLimits(8, clock=Clock())
    assert (limits.slots, limits.rate, limits.reserve_start(), limits.reserve_start()) == (8, None, 0.0, 0.0)


def test_rate_limit_halves_concurrency_and_paces_to_the_succeeding_rate() -> None:
    clock = Clock()
    limits = AdaptiveLimits(8, clock=clock)
    for _ in range(20):
        limits.on_success()
    limits.on_rate_limited(started_at=clock.now, retry_after=None)
    assert limits.slots == 4
    assert limits.rate == RATE_DECREASE * 20


def test_refusals_of_requests_sent_before_the_decrease_do_not_decrease_again() -> None:
    clock = Clock()
    limits = AdaptiveLimits(8, clock=clock)
    sent = clock.now
    clock.now += 0.1
    limits.on_rate_limited(started_at=sent, retry_after=None)
    limits.on_rate_limited(started_at=sent, retry_after=None)
    assert limits.slots == 4


def test_paced_starts_are_spaced_by_the_rate() -> None:
    clock = Clock()
    limits = AdaptiveLimits(4, clock=clock)
    limits.on_rate_limited(started_at=clock.now, retry_after=None)  # nothing succeeded: 1 request/s
    assert [limits.reserve_start() for _ in range(3)] == [0.0, 1.0, 2.0]


def test_retry_after_pauses_every_start() -> None:
    clock = Clock()
    limits = AdaptiveLimits(4, clock=clock)
    limits.on_rate_limited(started_at=clock.now, retry_after=5)
    assert limits.reserve_start() == 5.0


def test_successes_recover_concurrency_and_rate() -> None:
    clock = Clock()
    limits = AdaptiveLimits(8, clock=clock)
    limits.on_rate_limited(started_at=clock.now, retry_after=None)
    rate = limits.rate
    assert rate is not None
    for _ in range(100):
        clock.now += 0.05
        limits.on_success()
    assert limits.slots == 8
    assert limits.rate is not None and limits.rate > rate + 3


def test_a_pause_is_cut_to_max_pause() -> None:
    clock = Clock()
    limits = AdaptiveLimits(8, clock=clock, max_pause=5.0)
    limits.on_rate_limited(started_at=clock.now, retry_after=999_999.0)
    assert limits.reserve_start() == 5.0


def test_a_slot_that_would_wait_longer_than_allowed_is_refused_and_released() -> None:
    import pytest

    from genviral_provider.core.api.throttle import PauseTooLong, ThreadThrottle

    clock = Clock()
    throttle = ThreadThrottle(AdaptiveLimits(1, clock=clock, max_pause=60.0))
    throttle.rate_limited(clock.now, 60.0)
    with pytest.raises(PauseTooLong) as caught, throttle.slot(max_wait=1.0):
        pass
    assert caught.value.wait == 60.0
    clock.now += 70.0  # past the pause and the pace booked by the refused slot
    waited: list[float] = []
    with throttle.slot(max_wait=1.0, on_wait=waited.append):  # the slot was released: no deadlock
        pass
    assert waited == [0.0]
