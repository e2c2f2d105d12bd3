"""What both refresh machines share: the requests they ask for, the targets, the refreshes a task started.

:class:`RefreshMachine` reads the targets, queues polls of this task's running refreshes and refreshes of the
targets that want one (within a :class:`~genviral_provider.core.freshness.refresh.RefreshPolicy`), and reads what
comes back; :mod:`genviral_provider.core.freshness.gate` says which targets want a refresh and when a machine is
done. A target whose refresh the API refuses for it alone (an id it does not take, 404, 400) is skipped and named,
and the others are refreshed. No I/O, no Airflow.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
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
    parse_targets,
    redacted_data,
    refresh_error,
    refresh_path,
    refresh_target_path,
    skip_reason,
    started_refresh,
)
from genviral_provider.core.rows import UTC
from genviral_provider.exceptions import (
    GenviralAPIError,
    GenviralInsufficientCreditsError,
    GenviralInvalidParameterError,
    GenviralRefreshConflictError,
    GenviralRefreshRateLimitedError,
    GenviralRetryableError,
)

#: The most refreshes one task starts for one target (a failed or refused one may be tried again, not forever).
MAX_ATTEMPTS_PER_TARGET = 3

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


class RefreshMachine:
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
        #: Targets never to refresh in this task, and why: the API refused their refresh for them alone.
        self.skipped: dict[str, str] = {}
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

    def round(self) -> Iterator[ApiCall]:
        """Start a round and yield its requests; :meth:`answer` each before taking the next."""
        self.start_round()
        while (call := self.next_call()) is not None:
            yield call

    def answer(self, call: ApiCall, outcome: Any, *, redact: Callable[[str], str]) -> None:
        """Read what a call brought: the envelope's ``data``, or the :class:`GenviralAPIError` it raised.

        The data is redacted first: a refresh's error message may quote the key.

        :raises GenviralAPIError: what no later round can mend (see :meth:`fail`).
        """
        if isinstance(outcome, GenviralAPIError):
            self.fail(call, outcome)
        else:
            self.consume(call, redacted_data(outcome, redact))

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

        :raises GenviralAPIError: a refused key, a bad request, an API that did not answer through every retry.
        """
        if isinstance(error, GenviralRetryableError) and error.is_unreachable:
            raise error  # no answer at all is not "not fresh yet": a later round would not get one either
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
            "skipped": dict(self.skipped),
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
        if target.id in self.skipped:
            self.notes[target.id] = f"skipped: {self.skipped[target.id]}"
            return
        if self.attempts[target.id] >= MAX_ATTEMPTS_PER_TARGET:
            self.notes.setdefault(target.id, f"{MAX_ATTEMPTS_PER_TARGET} refreshes were tried already")
            return
        kind, reason = self.policy.decide(target, self.paid_started)
        if kind is None:
            self.declined.add(target.id)
            self.notes[target.id] = f"not refreshed: {reason}"
            return
        try:
            path = refresh_target_path(target.id)
        except GenviralInvalidParameterError as error:  # an id no URL path can carry: refresh the others
            self._skip(target.id, str(error))
            return
        self.attempts[target.id] += 1
        if kind is RefreshKind.PAID:
            self.paid_started += 1  # counted before sending: an unknown outcome may have cost credits
        self._queue.append(ApiCall("POST", path, target_id=target.id))

    def _skip(self, target_id: str, why: str) -> None:
        self.skipped[target_id] = why
        self.notes[target_id] = f"skipped: {why}"

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
        elif (why := skip_reason(error)) is not None:
            self._skip(target_id, why)
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
        self.skipped.update({str(k): str(v) for k, v in dict(state.get("skipped") or {}).items()})
