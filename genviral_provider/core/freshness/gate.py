"""Refreshing analytics targets and waiting until the cache is fresh: state machines without I/O.

Both machines say which request to send next (:class:`ApiCall`) and read what came back; the sync hook and the
async trigger drive them the same way, one *round* at a time::

    machine.start_round()
    while (call := machine.next_call()) is not None:
        try:
            data = client.request(call.method, call.path, {}, retry=call.retry)
        except GenviralAPIError as error:
            machine.fail(call, error)  # raises what no later round can mend
        else:
            machine.consume(call, data)
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
have been paid. :meth:`state` and ``state=`` carry what was started across a deferral.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from genviral_provider.core.api.query import TARGETS_PATH
from genviral_provider.core.freshness.refresh import (
    AnalyticsTarget,
    Refresh,
    RefreshKind,
    RefreshPolicy,
    RefreshStatus,
    TargetSelection,
    iso,
    parse_targets,
    refresh_error,
    refresh_path,
    refresh_target_path,
    started_refresh,
)
from genviral_provider.core.rows import UTC, parse_utc
from genviral_provider.exceptions import (
    GenviralAPIError,
    GenviralInsufficientCreditsError,
    GenviralRefreshConflictError,
    GenviralRefreshRateLimitedError,
    GenviralRetryableError,
)

#: The most refreshes one task starts for one target (a failed or refused one may be tried again, not forever).
MAX_ATTEMPTS_PER_TARGET = 3
#: How far ahead of this machine's clock an API timestamp may lie and still prove anything (clocks drift a little;
#: a refresh "completed" further in the future is a bug of the server, not a fact about its cache).
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
#: Why an empty target list proves nothing.
NO_TARGETS = (
    "the API lists no analytics target for this key and selection: no refresh can prove the window's rows are in "
    "the cache (add the accounts as analytics targets, or check the selection)"
)

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """Return the current time, aware, in UTC."""
    return dt.datetime.now(UTC)


@dataclass(frozen=True)
class ApiCall:
    """One request a machine asks its driver to send (no query string, no body).

    :param target_id: the target a refresh call is about.
    :param refresh_id: the refresh a poll is about.
    """

    method: str
    path: str
    target_id: str | None = None
    refresh_id: str | None = None

    @property
    def retry(self) -> bool:
        """Whether the driver may retry the call on transient failures (reads yes, refreshes never)."""
        return self.method == "GET"

    @property
    def is_listing(self) -> bool:
        """Whether this reads the targets."""
        return self.path == TARGETS_PATH


LIST_TARGETS = ApiCall("GET", TARGETS_PATH)


class _RefreshMachine:
    """What both machines share: the selected targets, the refreshes this task started, what they cost."""

    def __init__(
        self,
        *,
        selection: TargetSelection,
        policy: RefreshPolicy,
        clock: Clock = utc_now,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self.selection = selection
        self.policy = policy
        self.clock = clock
        self.targets: list[AnalyticsTarget] = []
        #: The latest known state of the refresh this task started for each target.
        self.refreshes: dict[str, Refresh] = {}
        #: Why a target is not (yet) done, for logs and the timeout message ("" for the whole round).
        self.notes: dict[str, str] = {}
        #: Targets not to refresh in this round: the policy forbids it, or another refresh is running.
        self.declined: set[str] = set()
        self.paid_started = 0
        self.attempts: collections.Counter[str] = collections.Counter()
        self.requests = 0
        self._queue: collections.deque[ApiCall] = collections.deque()
        if state:
            self._restore(state)

    # ------------------------------------------------------------------------------------------- driving

    def start_round(self) -> None:
        """Queue the requests of one round."""
        self._queue.clear()
        self._queue.append(LIST_TARGETS)

    def next_call(self) -> ApiCall | None:
        """Return the next request to send in this round, or ``None`` when the round is over."""
        if not self._queue:
            return None
        self.requests += 1
        return self._queue.popleft()

    def consume(self, call: ApiCall, data: Any) -> None:
        """Read the ``data`` of a successful call."""
        if call.is_listing:
            self.targets = self.selection.select(parse_targets(data, request=f"GET {TARGETS_PATH}"))
            self._plan()
        elif call.method == "POST":
            self._started(call, data)
        else:
            self._polled(call, data)

    def fail(self, call: ApiCall, error: GenviralAPIError) -> None:
        """Read a failed call: note what a later round can mend, raise what it cannot.

        :raises GenviralAPIError: a refused key, a bad request, a target outside the key's scope.
        """
        if call.target_id is not None:
            self._refresh_refused(call.target_id, refresh_error(error, target_id=call.target_id))
        elif call.refresh_id is not None and (isinstance(error, GenviralRetryableError) or error.status == 404):
            target_id = next((t for t, r in self.refreshes.items() if r.id == call.refresh_id), "")
            self.notes[target_id] = f"its refresh {call.refresh_id} could not be read: {error}"
            if error.status == 404:
                self.refreshes.pop(target_id, None)
        elif isinstance(error, GenviralRetryableError):
            self._queue.clear()  # without the targets, nothing else in this round can be decided
            self.notes[""] = f"the targets could not be read: {error}"
        else:
            raise error

    # ------------------------------------------------------------------------------------------ results

    def state(self) -> dict[str, Any]:
        """Return what this task started, as JSON primitives (to carry across a deferral)."""
        return {
            "refreshes": {target_id: refresh.as_dict() for target_id, refresh in self.refreshes.items()},
            "paid_started": self.paid_started,
            "attempts": dict(self.attempts),
        }

    def credits_used(self) -> int:
        """Return the credits the refreshes this task started used, as far as the API said."""
        return sum(refresh.credits_used for refresh in self.refreshes.values())

    # -------------------------------------------------------------------------------------- subclassing

    def _wants_refresh(self, target: AnalyticsTarget) -> bool:
        raise NotImplementedError

    def _plan(self) -> None:
        """Queue polls of this task's running refreshes, then refreshes of the targets that want one."""
        for target in self.targets:
            refresh = self.refreshes.get(target.id)
            if refresh is not None and not refresh.status.is_terminal():
                self._queue.append(ApiCall("GET", refresh_path(refresh.id), refresh_id=refresh.id))
            elif self._wants_refresh(target):
                self._maybe_refresh(target)

    def _maybe_refresh(self, target: AnalyticsTarget) -> None:
        if self.attempts[target.id] >= MAX_ATTEMPTS_PER_TARGET:
            self.notes.setdefault(target.id, f"{MAX_ATTEMPTS_PER_TARGET} refreshes were tried already")
            return
        kind, reason = self.policy.decide(target, self.paid_started)
        if kind is None:
            self.declined.add(target.id)
            self.notes[target.id] = f"not refreshed: {reason}"
            return
        self.attempts[target.id] += 1
        if kind is RefreshKind.PAID:
            self.paid_started += 1  # counted before sending: an unknown outcome may have cost credits
        self._queue.append(ApiCall("POST", refresh_target_path(target.id), target_id=target.id))

    # ---------------------------------------------------------------------------------------- responses

    def _started(self, call: ApiCall, data: Any) -> None:
        assert call.target_id is not None
        refresh = started_refresh(data, request=f"POST {call.path}")
        self.refreshes[call.target_id] = refresh
        self.notes.pop(call.target_id, None)
        target = self._target(call.target_id)
        expected_paid = target is None or target.free_refresh_available is not True
        if refresh.paid and not expected_paid:
            self.paid_started += 1  # the API charged a refresh it announced as free: count it, say it loudly
            self.notes[call.target_id] = (
                f"refresh {refresh.id} cost {refresh.credits_used} credit(s) although the API said a free refresh "
                "was available"
            )
        elif not refresh.paid and expected_paid and refresh.was_free is True:
            self.paid_started -= 1  # it turned out free: give the paid budget back

    def _polled(self, call: ApiCall, data: Any) -> None:
        refresh = Refresh.from_api(data, request=f"GET {call.path}")
        target_id = next((t for t, r in self.refreshes.items() if r.id == refresh.id), refresh.target_id)
        known = self.refreshes.get(target_id)
        self.refreshes[target_id] = known.updated(refresh) if known is not None else refresh
        if refresh.status is RefreshStatus.FAILED:
            self.notes[target_id] = f"refresh {refresh.id} failed: {refresh.error or 'no error given'}"

    def _refresh_refused(self, target_id: str, error: GenviralAPIError) -> None:
        if isinstance(error, GenviralRefreshConflictError):
            self.declined.add(target_id)
            self.notes[target_id] = "a refresh not started by this task is running"
        elif isinstance(error, GenviralInsufficientCreditsError):
            self.notes[target_id] = f"a paid refresh was refused: {error}"
            self.attempts[target_id] = MAX_ATTEMPTS_PER_TARGET  # no credits now: do not ask again
        elif isinstance(error, GenviralRefreshRateLimitedError | GenviralRetryableError):
            self.notes[target_id] = f"the refresh request failed and may or may not have started: {error}"
        else:
            raise error

    def _target(self, target_id: str) -> AnalyticsTarget | None:
        return next((target for target in self.targets if target.id == target_id), None)

    def _restore(self, state: Mapping[str, Any]) -> None:
        for target_id, saved in dict(state.get("refreshes") or {}).items():
            self.refreshes[target_id] = Refresh.from_api(
                {**saved, "id": saved.get("refresh_id")}, request="saved state", was_free=saved.get("was_free")
            )
        self.paid_started = int(state.get("paid_started") or 0)
        self.attempts.update({str(k): int(v) for k, v in dict(state.get("attempts") or {}).items()})


class RefreshBatch(_RefreshMachine):
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
        return target.id not in self.declined and self.attempts[target.id] < MAX_ATTEMPTS_PER_TARGET

    def result(self) -> dict[str, Any]:
        """Return per target the refresh (id, status, times, free, credits) or why none was made."""
        targets: dict[str, Any] = {}
        for target in self.targets:
            refresh = self.refreshes.get(target.id)
            entry: dict[str, Any] = refresh.as_dict() if refresh is not None else {"status": "not_refreshed"}
            entry.update(platform=target.platform, identifier=target.identifier, note=self.notes.get(target.id))
            targets[target.id] = entry
        return {"targets": targets, "paid_refreshes": self.paid_started, "credits_used": self.credits_used()}

    def failed(self) -> dict[str, Refresh]:
        """Return the refreshes that ended ``failed``, by target id."""
        return {t: r for t, r in self.refreshes.items() if r.status is RefreshStatus.FAILED}


class FreshnessGate(_RefreshMachine):
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
