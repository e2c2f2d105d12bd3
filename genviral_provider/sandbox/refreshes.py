"""The analytics cache behind the sandbox's posts endpoint: per-target freshness, refreshes and credits.

The real API serves posts from a cache that each analytics target (tracked account) refreshes from its
platform asynchronously; a post published after its target's last refresh is not served yet. The model:

- **Freshness.** A target is *live* by default: no lag, every row served, and ``last_refreshed_at`` reads as the
  sandbox clock's current time. A target given an explicit ``last_refreshed_at`` *lags*: its rows published
  after that instant are hidden from the posts endpoint (and its counts) until a refresh reaches past them.
  Rows of no known target are always served. A refresh never turns a live target into a lagging one.
- **Refreshes.** ``POST .../refresh`` starts one. It is ``pending`` for the first third of ``refresh_seconds``
  of real (monotonic) time, then ``processing``, then ``completed`` at ``refresh_seconds``: ``completed_at`` is
  ``started_at + refresh_seconds`` on the sandbox clock, and the target's ``last_refreshed_at`` moves up to it.
  A refresh of a target named in ``failing_targets`` (when it was started) ends ``failed`` instead, its error
  naming the target, and the target's freshness is unchanged.
- **Money.** Each target has one free refresh per UTC date of the sandbox clock; after it a refresh costs
  ``refresh_cost`` credits (402 without enough). A second refresh while one runs is refused (409); more than
  ``max_refreshes_per_minute`` of a target in 60 s of real time are refused (429).
- **Scheduled refreshes.** With ``scheduled_refresh_seconds`` set, every target is refreshed by the platform
  each time that much real time has passed since the setting was applied: free, without using the target's free
  refresh, listed in the ledger with ``"scheduled": true`` and not readable through the API.

Nothing runs in the background: every public method first brings the state up to the current time (lazily),
so what a client observes is exactly what a background worker would have produced. Runs of the schedule that
no request observed collapse into one, at the time it is observed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from genviral_provider.sandbox.dataset import Target, epoch_ms, format_instant, parse_timestamp

WORKSPACE_ID = "ws_sandbox"
RATE_WINDOW_SECONDS = 60.0
#: How many refreshes the ledger lists at most (the oldest go first): a fast schedule would grow it forever.
MAX_LISTED_REFRESHES = 10_000
TERMINAL_STATUSES = frozenset({"completed", "failed"})

#: What ``targets_refreshed_at`` accepts: live (None), one instant for every target, or per target id.
RefreshedAt = dt.datetime | Mapping[str, dt.datetime | None] | None


class RefreshError(Exception):
    """A refusal the API answers with an error envelope: status, ``error_code``, message (and headers)."""

    def __init__(self, status: int, error_code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.headers = dict(headers or {})


# -------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class CacheSettings:
    """The tunable behaviour of the cache; each field is also a ``/_sandbox/settings`` name.

    :param refresh_seconds: real seconds from a refresh's POST to its completion.
    :param refresh_cost: credits a paid refresh costs.
    :param max_refreshes_per_minute: refresh POSTs per target admitted in 60 s; more answer 429.
    :param scheduled_refresh_seconds: real seconds between the platform's own refreshes (``None``: none).
    :param omit_freshness_fields: leave ``last_refreshed_at`` and ``free_refresh_available`` out of target rows.
    :param failing_targets: ids of targets whose refreshes fail.
    """

    refresh_seconds: float = 1.0
    refresh_cost: int = 1
    max_refreshes_per_minute: int = 6
    scheduled_refresh_seconds: float | None = None
    omit_freshness_fields: bool = False
    failing_targets: frozenset[str] = frozenset()


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_seconds(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _is_interval(value: Any) -> bool:
    return value is None or (_is_seconds(value) and value > 0)


def _is_id_list(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset) and all(isinstance(item, str) for item in value)


#: Setting name to (check, what is allowed), for every setting the ledger owns (``credits`` is its state).
_SETTING_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "credits": (_is_count, "an integer >= 0"),
    "refresh_cost": (_is_count, "an integer >= 0"),
    "refresh_seconds": (_is_seconds, "a number of seconds >= 0"),
    "max_refreshes_per_minute": (_is_count, "an integer >= 0"),
    "scheduled_refresh_seconds": (_is_interval, "null or a number of seconds > 0"),
    "omit_freshness_fields": (lambda value: isinstance(value, bool), "true or false"),
    "failing_targets": (_is_id_list, "a list of analytics target ids"),
}
SETTING_NAMES = tuple(_SETTING_RULES)


def check_settings(values: Mapping[str, Any], targets: Sequence[Target]) -> None:
    """Check cache settings by name (all of them, before any is applied).

    :raises ValueError: naming the first bad setting and what it allows.
    """
    unknown = sorted(set(values) - set(_SETTING_RULES))
    if unknown:
        raise ValueError(f"unknown cache settings {unknown}: known are {', '.join(_SETTING_RULES)}")
    for name, value in values.items():
        is_valid, allowed = _SETTING_RULES[name]
        if not is_valid(value):
            raise ValueError(f"{name} must be {allowed}, got {value!r}")
    if "failing_targets" in values:
        _check_target_ids("failing_targets", values["failing_targets"], targets)


def _check_target_ids(name: str, target_ids: Iterable[str], targets: Sequence[Target]) -> None:
    unknown = sorted(set(target_ids) - {target.id for target in targets})
    if unknown:
        raise ValueError(f"{name} names unknown analytics targets {unknown}")


def refreshed_at_by_target(value: RefreshedAt, targets: Sequence[Target]) -> dict[str, dt.datetime]:
    """Return the explicit ``last_refreshed_at`` of each lagging target (absent: live); a naive instant is UTC.

    :param value: ``None`` (all live), one instant for every target, or target id to instant (``None``: live).
    :raises ValueError: on an unknown target id or a value that is not a datetime.
    """
    if value is None:
        return {}
    if isinstance(value, dt.datetime):
        return {target.id: _aware(value) for target in targets}
    if not isinstance(value, Mapping):
        raise ValueError(f"targets_refreshed_at must be None, a datetime or a mapping, got {value!r}")
    _check_target_ids("targets_refreshed_at", value, targets)
    refreshed: dict[str, dt.datetime] = {}
    for target_id, moment in value.items():
        if moment is not None and not isinstance(moment, dt.datetime):
            raise ValueError(f"targets_refreshed_at[{target_id!r}] must be a datetime or None, got {moment!r}")
        if moment is not None:
            refreshed[target_id] = _aware(moment)
    return refreshed


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


# -------------------------------------------------------------------------------------------- refreshes


@dataclass
class _Refresh:
    """One refresh of one target, its status brought up to date by :meth:`advance`."""

    id: str
    target: Target
    started_at: dt.datetime
    posted: float  # monotonic time of the POST
    seconds: float
    fails: bool
    free: bool
    credits_used: int
    scheduled: bool = False
    status: str = "pending"
    completed_at: dt.datetime | None = None
    error: str | None = None

    def advance(self, now: float) -> bool:
        """Bring the status to monotonic time ``now``; return whether the refresh has just ended."""
        if self.status in TERMINAL_STATUSES:
            return False
        elapsed = now - self.posted
        if elapsed < self.seconds:
            self.status = "processing" if elapsed >= self.seconds / 3 else "pending"
            return False
        self.completed_at = self.started_at + dt.timedelta(seconds=self.seconds)
        self.status = "failed" if self.fails else "completed"
        self.error = f"Platform fetch failed for {self.target.identifier}" if self.fails else None
        return True

    def as_json(self) -> dict[str, Any]:
        """Return the refresh object as the API sends it."""
        return {
            "id": self.id,
            "target_id": self.target.id,
            "workspace_id": WORKSPACE_ID,
            "status": self.status,
            "free_refresh_used": self.free and not self.scheduled,
            "credits_used": self.credits_used,
            "started_at": format_instant(self.started_at),
            "completed_at": None if self.completed_at is None else format_instant(self.completed_at),
            "error": self.error,
        }

    def as_record(self) -> dict[str, Any]:
        """Return the refresh as the ledger lists it: the API object plus ``wasFree`` and ``scheduled``."""
        return {**self.as_json(), "wasFree": self.free, "scheduled": self.scheduled}


@dataclass
class _TargetState:
    """What the cache knows of one target."""

    lagging_since: dt.datetime | None = None  # explicit last_refreshed_at; None: live
    latest_completion: dt.datetime | None = None
    free_used_on: dt.date | None = None
    running: _Refresh | None = None
    latest: _Refresh | None = None  # the latest refresh started through the API
    recent_posts: deque[float] = field(default_factory=deque)  # monotonic times of admitted POSTs

    def last_refreshed_at(self, now: dt.datetime) -> dt.datetime:
        """Return the freshness to report: the explicit instant, else (live) now or a later completion."""
        if self.lagging_since is not None:
            return self.lagging_since
        return max(now, self.latest_completion or now)

    def record_completion(self, completed_at: dt.datetime) -> None:
        """Move freshness up to a refresh's completion (never back)."""
        self.latest_completion = max(completed_at, self.latest_completion or completed_at)
        if self.lagging_since is not None:
            self.lagging_since = max(self.lagging_since, completed_at)


# -------------------------------------------------------------------------------------------- ledger


class RefreshLedger:
    """The thread-safe state of the analytics cache: target freshness, refreshes, credits (see the module doc).

    :param targets: the analytics targets.
    :param clock: the sandbox clock (timestamps, the free refresh's date).
    :param settings: the initial settings, restored by :meth:`reset`.
    :param credits: the initial credit balance, restored by :meth:`reset`.
    :param refreshed_at: the initial freshness (see :func:`refreshed_at_by_target`), restored by :meth:`reset`.
    :param monotonic: the real-time clock of lifecycles, schedules and rate windows.
    :raises ValueError: on an invalid setting or freshness.
    """

    def __init__(
        self,
        targets: Sequence[Target],
        *,
        clock: Callable[[], dt.datetime],
        settings: CacheSettings | None = None,
        credits: int = 0,
        refreshed_at: RefreshedAt = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._targets = {target.id: target for target in targets}
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._initial = (settings or CacheSettings(), credits, refreshed_at_by_target(refreshed_at, targets))
        check_settings({**self._settings_json(self._initial[0]), "credits": credits}, targets)
        self.reset()

    def reset(self) -> None:
        """Forget every refresh and return settings, credits and freshness to the constructor's values."""
        settings, credits, refreshed_at = self._initial
        with self._lock:
            self._settings = settings
            self._credits = credits
            self._state = {target_id: _TargetState(refreshed_at.get(target_id)) for target_id in self._targets}
            self._refreshes: deque[_Refresh] = deque(maxlen=MAX_LISTED_REFRESHES)
            self._by_id: dict[str, _Refresh] = {}
            self._schedule_origin = self._monotonic()
            self._schedule_runs = 0

    # ----------------------------------------------------------------------------------- settings

    @property
    def credits(self) -> int:
        """Return the credit balance."""
        with self._lock:
            return self._credits

    def settings(self) -> dict[str, Any]:
        """Return the settings and the credit balance as a JSON-ready dict."""
        with self._lock:
            return {"credits": self._credits, **self._settings_json(self._settings)}

    def check_settings(self, values: Mapping[str, Any]) -> None:
        """Check settings (and ``credits``) by name without applying them.

        :raises ValueError: naming the first bad setting and what it allows.
        """
        check_settings(values, list(self._targets.values()))

    def apply_settings(self, values: Mapping[str, Any]) -> None:
        """Change settings (and ``credits``) by name; setting ``scheduled_refresh_seconds`` restarts the schedule.

        :raises ValueError: naming a bad setting; then nothing is changed.
        """
        check_settings(values, list(self._targets.values()))
        changes = {name: value for name, value in values.items() if name != "credits"}
        if "failing_targets" in changes:
            changes["failing_targets"] = frozenset(changes["failing_targets"])
        with self._lock:
            self._advance()
            self._settings = dataclasses.replace(self._settings, **changes)
            self._credits = values.get("credits", self._credits)
            if "scheduled_refresh_seconds" in values:
                self._schedule_origin, self._schedule_runs = self._monotonic(), 0

    @staticmethod
    def _settings_json(settings: CacheSettings) -> dict[str, Any]:
        return {**dataclasses.asdict(settings), "failing_targets": sorted(settings.failing_targets)}

    # ----------------------------------------------------------------------------------- targets

    def target_rows(self, *, with_freshness: bool | None = None) -> list[dict[str, Any]]:
        """Return every target as ``GET /analytics/targets`` lists it.

        :param with_freshness: include the freshness fields (default: unless ``omit_freshness_fields``).
        """
        with self._lock:
            self._advance()
            return [self._row(target_id, with_freshness) for target_id in self._targets]

    def target_detail(self, target_id: str) -> dict[str, Any]:
        """Return ``{"target": row, "summary": ...}`` for one target, without ``totals`` (the server adds them).

        :raises RefreshError: 404 ``target_not_found``.
        """
        with self._lock:
            self._advance()
            state = self._target_state(target_id)
            latest = state.latest
            summary = {
                "refresh_status": None if latest is None else latest.status,
                "last_refresh": None if latest is None else latest.as_json(),
            }
            return {"target": self._row(target_id, None), "summary": summary}

    def set_refreshed_at(self, when: dt.datetime | None, target_ids: Iterable[str] | None = None) -> None:
        """Set targets' ``last_refreshed_at``: they lag from then on (``None``: live again).

        :param when: the instant (naive: UTC), or ``None`` for live.
        :param target_ids: the targets (default: all).
        :raises ValueError: on an unknown target id.
        """
        chosen = self._chosen(target_ids)
        with self._lock:
            self._advance()
            for target_id in chosen:
                self._state[target_id].lagging_since = None if when is None else _aware(when)

    def set_free_refresh_used(self, used: bool, target_ids: Iterable[str] | None = None) -> None:
        """Mark targets' free refresh of today used (the next refresh is paid) or available again.

        :param target_ids: the targets (default: all).
        :raises ValueError: on an unknown target id.
        """
        chosen = self._chosen(target_ids)
        with self._lock:
            today = self._today()
            for target_id in chosen:
                self._state[target_id].free_used_on = today if used else None

    def update_targets(self, payload: Any) -> list[dict[str, Any]]:
        """Apply an admin ``POST /_sandbox/targets`` body; return the chosen targets' rows (with freshness).

        :raises ValueError: naming the bad field; then nothing is changed.
        """
        target_ids, when, free_used = _read_target_update(payload)
        chosen = self._chosen(target_ids)
        if "last_refreshed_at" in payload:
            self.set_refreshed_at(when, chosen)
        if free_used is not None:
            self.set_free_refresh_used(free_used, chosen)
        with self._lock:
            return [self._row(target_id, True) for target_id in chosen]

    def _chosen(self, target_ids: Iterable[str] | None) -> list[str]:
        chosen = list(self._targets) if target_ids is None else list(target_ids)
        _check_target_ids("target_ids", chosen, list(self._targets.values()))
        return chosen

    def _today(self) -> dt.date:
        return self._clock().astimezone(dt.timezone.utc).date()

    def cache_cutoffs(self) -> dict[str, int] | None:
        """Return each lagging target's last refresh in epoch ms (its later rows are hidden); ``None`` if none lag."""
        with self._lock:
            self._advance()
            cutoffs = {
                target_id: epoch_ms(state.lagging_since)
                for target_id, state in self._state.items()
                if state.lagging_since is not None
            }
        return cutoffs or None

    # ----------------------------------------------------------------------------------- refreshes

    def start_refresh(self, target_id: str) -> tuple[dict[str, Any], bool]:
        """Start a refresh of a target; return (the refresh object, whether it was free).

        :raises RefreshError: 404 unknown target, 429 too many POSTs, 409 one running, 402 no credits (in that order).
        """
        with self._lock:
            self._advance()
            state = self._target_state(target_id)
            self._admit(target_id, state)
            if state.running is not None:
                raise RefreshError(409, "analytics_conflict", "A refresh is already running for this target")
            free = self._charge(target_id, state)
            refresh = self._new_refresh(self._targets[target_id], free=free)
            state.running = state.latest = refresh
            self._by_id[refresh.id] = refresh
            return refresh.as_json(), free

    def refresh(self, refresh_id: str) -> dict[str, Any]:
        """Return a refresh object started through the API.

        :raises RefreshError: 404 ``refresh_not_found``.
        """
        with self._lock:
            self._advance()
            refresh = self._by_id.get(refresh_id)
            if refresh is None:
                raise RefreshError(404, "refresh_not_found", f"Analytics refresh not found: {refresh_id}")
            return refresh.as_json()

    def records(self) -> list[dict[str, Any]]:
        """Return the refreshes, scheduled ones included, oldest first (with ``wasFree`` and ``scheduled``).

        Only the latest :data:`MAX_LISTED_REFRESHES` are kept in this list.
        """
        with self._lock:
            self._advance()
            return [refresh.as_record() for refresh in self._refreshes]

    def _target_state(self, target_id: str) -> _TargetState:
        state = self._state.get(target_id)
        if state is None:
            raise RefreshError(404, "target_not_found", f"Analytics target not found: {target_id}")
        return state

    def _admit(self, target_id: str, state: _TargetState) -> None:
        """Count a POST in the target's rate window, or refuse it (refused POSTs are not counted)."""
        now = self._monotonic()
        while state.recent_posts and now - state.recent_posts[0] >= RATE_WINDOW_SECONDS:
            state.recent_posts.popleft()
        limit = self._settings.max_refreshes_per_minute
        if len(state.recent_posts) >= limit:
            wait = RATE_WINDOW_SECONDS - (now - state.recent_posts[0]) if state.recent_posts else RATE_WINDOW_SECONDS
            message = f"Too many refreshes of target {target_id}: at most {limit} per minute"
            raise RefreshError(429, "rate_limited", message, {"Retry-After": str(max(1, math.ceil(wait)))})
        state.recent_posts.append(now)

    def _charge(self, target_id: str, state: _TargetState) -> bool:
        """Use the target's free refresh of today, else pay; return whether it was free."""
        today = self._today()
        if state.free_used_on != today:
            state.free_used_on = today
            return True
        cost = self._settings.refresh_cost
        if self._credits < cost:
            message = (
                f"Insufficient credits for a paid refresh of target {target_id}: "
                f"it costs {cost}, the workspace has {self._credits}"
            )
            raise RefreshError(402, "insufficient_credits", message)
        self._credits -= cost
        return False

    def _new_refresh(self, target: Target, *, free: bool, scheduled: bool = False) -> _Refresh:
        settings = self._settings
        refresh = _Refresh(
            id=str(uuid.uuid4()),
            target=target,
            started_at=self._clock(),
            posted=self._monotonic(),
            seconds=0.0 if scheduled else settings.refresh_seconds,
            fails=not scheduled and target.id in settings.failing_targets,
            free=free,
            credits_used=0 if free else settings.refresh_cost,
            scheduled=scheduled,
        )
        self._refreshes.append(refresh)
        return refresh

    # ----------------------------------------------------------------------------------- time

    def _advance(self) -> None:
        """Bring running refreshes and the schedule up to now (the caller holds the lock)."""
        now = self._monotonic()
        for state in self._state.values():
            running = state.running
            if running is not None and running.advance(now):
                state.running = None
                if running.status == "completed" and running.completed_at is not None:
                    state.record_completion(running.completed_at)
        self._run_schedule(now)

    def _run_schedule(self, now: float) -> None:
        interval = self._settings.scheduled_refresh_seconds
        if interval is None:
            return
        due = int((now - self._schedule_origin) // interval)
        if due <= self._schedule_runs:
            return
        self._schedule_runs = due
        for target_id, state in self._state.items():
            refresh = self._new_refresh(self._targets[target_id], free=True, scheduled=True)
            refresh.advance(refresh.posted)  # A scheduled refresh takes no time: it is done when observed.
            if refresh.completed_at is not None:
                state.record_completion(refresh.completed_at)

    def _row(self, target_id: str, with_freshness: bool | None) -> dict[str, Any]:
        """Return one target's row (the caller holds the lock)."""
        row = self._targets[target_id].as_json()
        if with_freshness is False or (with_freshness is None and self._settings.omit_freshness_fields):
            return row
        now = self._clock()
        state = self._state[target_id]
        row["free_refresh_available"] = state.free_used_on != now.astimezone(dt.timezone.utc).date()
        row["last_refreshed_at"] = format_instant(state.last_refreshed_at(now))
        return row


def _read_target_update(payload: Any) -> tuple[list[str] | None, dt.datetime | None, bool | None]:
    """Validate an admin ``POST /_sandbox/targets`` body; return (target_ids, last_refreshed_at, free used today)."""
    fields = ("last_refreshed_at", "target_ids", "free_refresh_used_today")
    if not isinstance(payload, dict):
        raise ValueError(f"expected a JSON object with {', '.join(fields)}")
    unknown = sorted(set(payload) - set(fields))
    if unknown:
        raise ValueError(f"unknown fields {unknown}: known are {', '.join(fields)}")
    if "last_refreshed_at" not in payload and "free_refresh_used_today" not in payload:
        raise ValueError("give last_refreshed_at, free_refresh_used_today or both")
    target_ids = payload.get("target_ids")
    if target_ids is not None and not (isinstance(target_ids, list) and _is_id_list(target_ids)):
        raise ValueError(f"target_ids must be a list of analytics target ids, got {target_ids!r}")
    free_used = payload.get("free_refresh_used_today")
    if free_used is not None and not isinstance(free_used, bool):
        raise ValueError(f"free_refresh_used_today must be true or false, got {free_used!r}")
    return target_ids, _parse_instant(payload.get("last_refreshed_at")), free_used


def _parse_instant(value: Any) -> dt.datetime | None:
    """Read an admin ``last_refreshed_at``: ISO 8601 text or null."""
    if value is None:
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return parse_timestamp(value)
    raise ValueError(f"last_refreshed_at must be an ISO 8601 timestamp or null, got {value!r}")
