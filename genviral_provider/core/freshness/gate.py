"""Refreshing analytics targets and waiting until the cache is fresh: state machines without I/O.

Both machines say which request to send next (:class:`ApiCall`) and read what came back; the sync hook and the
async trigger drive them the same way, one *round* at a time::

    for call in machine.round():
        try:
            outcome = client.request(call.method, call.path, {}, retry=call.retry)  # or: await async_client…
        except GenviralAPIError as error:
            outcome = error
        machine.answer(call, outcome, redact=client.settings.redact)  # raises what no later round can mend
    if not machine.done: sleep, then another round

- :class:`RefreshBatch` refreshes the selected targets once each, within a :class:`RefreshPolicy`, and follows
  its refreshes until they end.
- :class:`FreshnessGate` waits until every selected target was refreshed at or after an instant: the cache then
  holds every post published before it. Each round reads the targets (one request); a stale target is refreshed
  when the policy allows it and the instant has passed, otherwise the gate waits for the platform's own refresh.
  A target's freshness is what the API shows (``last_refreshed_at``) or a refresh this task saw complete —
  never assumed.

A refresh's ``POST`` is sent once, never retried: one whose outcome is unknown (a timeout, a 5xx) may have
started a refresh, and may have cost credits, so it counts against ``max_paid_refreshes`` whenever it could
have been paid. :meth:`state` and ``state=`` carry what was started across a deferral. What both machines share
(the requests, the refreshes started, the targets skipped) is in :mod:`genviral_provider.core.freshness.machine`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from genviral_provider.core.freshness.machine import (
    LIST_TARGETS,
    MAX_ATTEMPTS_PER_TARGET,
    ApiCall,
    Clock,
    RefreshMachine,
    utc_now,
)
from genviral_provider.core.freshness.refresh import AnalyticsTarget, Refresh, RefreshStatus, iso
from genviral_provider.core.rows import UTC, parse_utc

#: How far ahead of this machine's clock an API timestamp may lie and still prove anything (clocks drift a little;
#: a refresh "completed" further in the future is a bug of the server, not a fact about its cache).
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
#: Why an empty target list proves nothing.
NO_TARGETS = (
    "the API lists no analytics target for this key and selection: no refresh can prove the window's rows are in "
    "the cache (add the accounts as analytics targets, or check the selection)"
)


class RefreshBatch(RefreshMachine):
    """Refresh each selected target once (as the policy allows) and follow the refreshes until they end.

    :param wait: follow the refreshes until they end (``False``: done once they are started).
    """

    def __init__(self, *, wait: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wait = wait
        self._listed = False

    def start_round(self) -> None:
        """Read the targets once; in later rounds, only poll the running refreshes."""
        if not self._listed:
            super().start_round()
            return
        self._queue.clear()
        self._plan()

    def consume(self, call: ApiCall, data: Any) -> None:
        """Read the ``data`` of a successful call."""
        self._listed = self._listed or call.is_listing
        super().consume(call, data)

    @property
    def done(self) -> bool:
        """Whether every selected target's refresh has ended (or started, without ``wait``), or was not made."""
        if not self._listed:
            return False
        for target in self.targets:
            refresh = self.refreshes.get(target.id)
            if refresh is None:
                if self._wants_refresh(target):
                    return False
            elif self.wait and not refresh.status.is_terminal():
                return False
        return True

    def _wants_refresh(self, target: AnalyticsTarget) -> bool:
        refresh = self.refreshes.get(target.id)
        if refresh is not None and refresh.status is not RefreshStatus.FAILED:
            return False
        # Not allowed, or somebody else's refresh is running: reported, not waited for.
        return (
            target.id not in self.declined
            and target.id not in self.skipped
            and self.attempts[target.id] < MAX_ATTEMPTS_PER_TARGET
        )

    def result(self) -> dict[str, Any]:
        """Return per target the refresh (id, status, times, free, credits) or why none was made."""
        targets: dict[str, Any] = {}
        for target in self.targets:
            refresh = self.refreshes.get(target.id)
            entry: dict[str, Any] = refresh.as_dict() if refresh is not None else {"status": "not_refreshed"}
            entry.update(platform=target.platform, identifier=target.identifier, note=self.notes.get(target.id))
            targets[target.id] = entry
        return {
            "targets": targets,
            "skipped_targets": dict(self.skipped),
            "paid_refreshes": self.paid_started,
            "credits_used": self.credits_used(),
        }

    def failed(self) -> dict[str, Refresh]:
        """Return the refreshes that ended ``failed``, by target id."""
        return {t: r for t, r in self.refreshes.items() if r.status is RefreshStatus.FAILED}


class FreshnessGate(RefreshMachine):
    """Wait until every selected target was refreshed at or after ``fresh_after``.

    :param fresh_after: the instant the cache must have reached (aware): typically a window's end plus a margin.
    """

    def __init__(self, *, fresh_after: dt.datetime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if fresh_after.tzinfo is None or fresh_after.utcoffset() is None:
            raise ValueError("fresh_after must be an aware datetime")
        self.fresh_after = fresh_after.astimezone(UTC)
        self._listed_this_round = False

    def start_round(self) -> None:
        """Read the targets (one request), then poll and refresh what they show is needed."""
        self._listed_this_round = False
        self.declined.clear()  # a new day may bring a free refresh; a running refresh may have ended
        super().start_round()

    def consume(self, call: ApiCall, data: Any) -> None:
        """Read the ``data`` of a successful call."""
        super().consume(call, data)
        if call.is_listing:
            self._listed_this_round = True
            self.notes.pop("", None)
            if not self.targets:
                self.notes[""] = NO_TARGETS

    def watermark(self, target: AnalyticsTarget) -> dt.datetime | None:
        """Return the latest instant the cache provably holds for ``target``.

        That is the API's ``last_refreshed_at``, or the completion of a refresh this task saw complete.
        """
        refresh = self.refreshes.get(target.id)
        proven = refresh.completed_at if refresh is not None and refresh.status is RefreshStatus.COMPLETED else None
        candidates = [instant for instant in (self._last_refreshed_at(target), proven) if instant is not None]
        return max(candidates) if candidates else None

    def _last_refreshed_at(self, target: AnalyticsTarget) -> dt.datetime | None:
        """Return the target's ``last_refreshed_at``, unless it lies in the future (then it proves nothing)."""
        instant = target.last_refreshed_at
        now = self.clock()
        if instant is not None and instant > now + MAX_CLOCK_SKEW:
            self.notes[target.id] = (
                f"its last_refreshed_at {iso(instant)} lies after now ({iso(now)}, allowing {MAX_CLOCK_SKEW} of clock "
                "skew): a refresh time in the future proves nothing"
            )
            return None
        return instant

    def is_fresh(self, target: AnalyticsTarget) -> bool:
        """Whether the cache provably holds every post of ``target`` published before ``fresh_after``."""
        watermark = self.watermark(target)
        return watermark is not None and watermark >= self.fresh_after

    @property
    def done(self) -> bool:
        """Whether this round read the targets and every selected one is fresh."""
        return self._listed_this_round and bool(self.targets) and all(self.is_fresh(t) for t in self.targets)

    def stale(self) -> list[AnalyticsTarget]:
        """Return the selected targets not yet fresh."""
        return [target for target in self.targets if not self.is_fresh(target)]

    def _wants_refresh(self, target: AnalyticsTarget) -> bool:
        if self.is_fresh(target):
            self.notes.pop(target.id, None)
            return False
        if self.clock() < self.fresh_after:
            self.notes[target.id] = (
                f"waiting until {iso(self.fresh_after)} before refreshing: a refresh now could not cover it"
            )
            return False
        return True

    def result(self) -> dict[str, Any]:
        """Return per target its watermark and how it is proven, and the refreshes this task made."""
        targets = {}
        for target in self.targets:
            refresh = self.refreshes.get(target.id)
            listed = self._last_refreshed_at(target)
            proof = (
                "last_refreshed_at"
                if listed and listed >= self.fresh_after
                else ("refresh completed by this task" if refresh is not None else None)
            )
            targets[target.id] = {
                "platform": target.platform,
                "identifier": target.identifier,
                "watermark": iso(self.watermark(target)),
                "proof": proof if self.is_fresh(target) else None,
            }
        return {
            "fresh_after": iso(self.fresh_after),
            "targets": targets,
            "refreshes": [refresh.as_dict() for refresh in self.refreshes.values()],
            "skipped_targets": dict(self.skipped),
            "paid_refreshes": self.paid_started,
            "credits_used": self.credits_used(),
        }

    def describe_stale(self) -> str:
        """Name each stale target, its last refresh and why it is still stale (for logs and the timeout)."""
        if not self.targets and "" in self.notes:
            return self.notes[""]
        parts = []
        for target in self.stale():
            watermark = iso(self.watermark(target)) or "unknown (the API gives no last_refreshed_at)"
            note = self.notes.get(target.id)
            parts.append(f"{target.describe()} last refreshed {watermark}" + (f" ({note})" if note else ""))
        if "" in self.notes:
            parts.append(self.notes[""])
        return "; ".join(parts) or "none"


def parse_fresh_after(name: str, value: object) -> dt.datetime:
    """Read an instant given as an aware datetime or an ISO 8601 string with offset (for trigger kwargs)."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    parsed = parse_utc(value)
    if parsed is None:
        raise ValueError(f"{name} {value!r} is not an ISO 8601 instant with a time zone")
    return parsed


__all__ = [
    "LIST_TARGETS",
    "MAX_ATTEMPTS_PER_TARGET",
    "MAX_CLOCK_SKEW",
    "NO_TARGETS",
    "ApiCall",
    "Clock",
    "FreshnessGate",
    "RefreshBatch",
    "RefreshMachine",
    "parse_fresh_after",
    "utc_now",
]
