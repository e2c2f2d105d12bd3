"""Fault settings of the sandbox, and the per-request decision of which fault (if any) to inject.

Decisions are made in this order for each request to an API path: the next scripted fault, then the rate
limit, then the random error rate. The rate limit is a token bucket: capacity ``rate_limit`` tokens (at
least one), refilled at ``rate_limit`` tokens per second, one token per admitted request, starting full.
So a client may burst ``rate_limit`` requests, then sustain ``rate_limit`` per second; refused requests
cost nothing. The bucket reads :attr:`Faults.clock`, so tests can drive it without waiting.

After each answered posts request, rows may arrive (``arrivals_per_request``) and rows may disappear
(``deletions_per_request``): the deleted rows are a seeded choice among those the answered query selects, so that
every deletion touches what the client is reading, at most ``max_deletions`` in all. The count restarts with
:meth:`Faults.reset`, or when a deletion setting is set through :meth:`Faults.update`.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ERROR_STATUSES = (500, 502, 503)
SCRIPT_STATUSES = (429, 500, 502, 503, 504)
SCRIPT_KINDS = ("cut", "badjson", "reset", "ok")
ARRIVAL_MODES = ("newest", "random")
DELETION_SETTINGS = ("deletions_per_request", "max_deletions", "deletion_seed")
#: Retry-After value (seconds) on 429s from the rate limit.
RATE_LIMIT_RETRY_AFTER = 1


@dataclass(frozen=True)
class Fault:
    """One injected failure.

    ``kind`` is ``"status"`` (an error envelope with ``status`` and optional ``retry_after`` header),
    ``"cut"`` (a body shorter than its Content-Length, then the connection closes), ``"badjson"`` (200 with
    a body that is not JSON) or ``"reset"`` (the connection closes without an answer).
    """

    kind: str
    status: int = 200
    retry_after: int | None = None


def parse_script_entry(entry: str) -> Fault | None:
    """Return the fault a script entry stands for (``None`` for ``"ok"``).

    :raises ValueError: on an entry that is none of ``429``, ``429:<seconds>``, ``500``, ``502``, ``503``,
        ``504``, ``cut``, ``badjson``, ``reset``, ``ok``.
    """
    if entry == "ok":
        return None
    if entry in ("cut", "badjson", "reset"):
        return Fault(kind=entry)
    status_text, _, retry_text = entry.partition(":")
    if status_text.isdigit() and int(status_text) in SCRIPT_STATUSES:
        status = int(status_text)
        if not retry_text:
            return Fault(kind="status", status=status)
        if status == 429 and retry_text.isdigit():
            return Fault(kind="status", status=status, retry_after=int(retry_text))
    raise ValueError(
        f"invalid fault script entry {entry!r}: expected one of 429, 429:<seconds>, 500, 502, 503, 504, "
        f"{', '.join(SCRIPT_KINDS)}"
    )


@dataclass
class Faults:
    """What the sandbox does wrong, and when. Thread-safe: assign fields or call :meth:`update` at any time.

    :param latency: seconds added to every API request.
    :param script: faults for the next API requests, one entry each (see :func:`parse_script_entry`).
    :param error_rate: probability that an API request fails with a random 500, 502 or 503.
    :param error_seed: seed of that random sequence (changing it, or setting it with :meth:`update`, restarts it).
    :param rate_limit: admitted requests per second (token bucket, see the module docstring); ``None``: no limit.
    :param rate_limit_retry_after: whether rate-limit 429s carry ``Retry-After: 1``.
    :param arrivals_per_request: rows inserted after each successful posts request.
    :param arrival_mode: ``"newest"`` (published at the server's now) or ``"random"`` (anywhere in the span).
    :param arrival_seed: seed of the arrivals' generator (restarted like ``error_seed``).
    :param deletions_per_request: rows deleted after each successful posts request, chosen among the rows it
        selected (see the module docstring).
    :param max_deletions: the most rows deleted in all, since the last reset (or change of a deletion setting).
    :param deletion_seed: seed of the deletions' choice (restarted like ``error_seed``).
    :param path_filter: when set, the script and error rate apply only to paths containing it.
    :param clock: the seconds the rate-limit bucket refills by (default ``time.monotonic``); not a setting: kept
        by :meth:`reset`, absent from :meth:`as_dict`.
    """

    latency: float = 0.0
    script: list[str] = field(default_factory=list)
    error_rate: float = 0.0
    error_seed: int = 0
    rate_limit: float | None = None
    rate_limit_retry_after: bool = False
    arrivals_per_request: int = 0
    arrival_mode: str = "newest"
    arrival_seed: int = 0
    deletions_per_request: int = 0
    max_deletions: int = 100
    deletion_seed: int = 0
    path_filter: str | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False, metadata={"setting": False})
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _error_rng: tuple[int, random.Random] | None = field(default=None, init=False, repr=False, compare=False)
    _arrival_rng: tuple[int, random.Random] | None = field(default=None, init=False, repr=False, compare=False)
    _deletion_rng: random.Random | None = field(default=None, init=False, repr=False, compare=False)
    _deleted: int = field(default=0, init=False, repr=False, compare=False)
    _bucket: tuple[float, float] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """Return the names of the public settings (what :meth:`update` and the admin endpoint accept)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.init and f.metadata.get("setting", True))

    def as_dict(self) -> dict[str, Any]:
        """Return the current settings as a JSON-ready dict."""
        settings = {name: getattr(self, name) for name in self.setting_names()}
        settings["script"] = list(self.script)
        return settings

    def update(self, **settings: Any) -> None:
        """Change some settings at once, after checking all of them.

        :raises ValueError: on an unknown name or an invalid value (nothing is changed then).
        """
        unknown = sorted(set(settings) - set(self.setting_names()))
        if unknown:
            raise ValueError(f"unknown fault settings {unknown}: known are {', '.join(self.setting_names())}")
        candidate = dataclasses.replace(self, **settings)
        with self._lock:
            for name in settings:
                value = getattr(candidate, name)
                setattr(self, name, list(value) if name == "script" else value)
            # Setting a seed through update() restarts its sequence even if the value is unchanged.
            if "error_seed" in settings:
                self._error_rng = None
            if "arrival_seed" in settings:
                self._arrival_rng = None
            if any(name in settings for name in DELETION_SETTINGS):
                self._deletion_rng, self._deleted = None, 0

    def reset(self) -> None:
        """Clear every fault and restart the random sequences and the rate-limit bucket."""
        defaults = Faults()
        with self._lock:
            for name in self.setting_names():
                setattr(self, name, getattr(defaults, name))
            self._error_rng = self._arrival_rng = self._bucket = self._deletion_rng = None
            self._deleted = 0

    def validate(self) -> None:
        """Check every setting.

        :raises ValueError: naming the first invalid setting.
        """
        if not isinstance(self.script, list) or not all(isinstance(entry, str) for entry in self.script):
            raise ValueError(f"invalid fault setting script={self.script!r}: expected a list of strings")
        for entry in self.script:
            parse_script_entry(entry)
        # Each setting: whether its value is valid, and what is allowed (for the message).
        checks = {
            "latency": (_is_number(self.latency) and self.latency >= 0, "a number of seconds >= 0"),
            "error_rate": (_is_number(self.error_rate) and 0 <= self.error_rate <= 1, "a probability from 0 to 1"),
            "error_seed": (_is_int(self.error_seed), "an integer"),
            "rate_limit": (
                self.rate_limit is None or (_is_number(self.rate_limit) and self.rate_limit > 0),
                "null or requests per second > 0",
            ),
            "rate_limit_retry_after": (isinstance(self.rate_limit_retry_after, bool), "true or false"),
            "arrivals_per_request": (_is_count(self.arrivals_per_request), "an integer >= 0"),
            "arrival_mode": (self.arrival_mode in ARRIVAL_MODES, f"one of {', '.join(ARRIVAL_MODES)}"),
            "arrival_seed": (_is_int(self.arrival_seed), "an integer"),
            "deletions_per_request": (_is_count(self.deletions_per_request), "an integer >= 0"),
            "max_deletions": (_is_count(self.max_deletions), "an integer >= 0"),
            "deletion_seed": (_is_int(self.deletion_seed), "an integer"),
            "path_filter": (self.path_filter is None or isinstance(self.path_filter, str), "null or a string"),
        }
        for name, (valid, allowed) in checks.items():
            if not valid:
                raise ValueError(f"invalid fault setting {name}={getattr(self, name)!r}: expected {allowed}")

    def next_fault(self, path: str) -> Fault | None:
        """Decide the fault for one API request (consuming a script entry or a token); ``None``: answer normally.

        :raises ValueError: if a script entry assigned directly is invalid (it is consumed all the same).
        """
        with self._lock:
            applies = self.path_filter is None or self.path_filter in path
            if applies and self.script:
                return parse_script_entry(self.script.pop(0))
            if not self._take_token():
                retry_after = RATE_LIMIT_RETRY_AFTER if self.rate_limit_retry_after else None
                return Fault(kind="status", status=429, retry_after=retry_after)
            if applies and self.error_rate > 0:
                rng = self._seeded_error_rng()
                if rng.random() < self.error_rate:
                    return Fault(kind="status", status=rng.choice(ERROR_STATUSES))
            return None

    def arrival_rng(self) -> random.Random:
        """Return the generator of arrivals, restarted whenever ``arrival_seed`` changes."""
        with self._lock:
            if self._arrival_rng is None or self._arrival_rng[0] != self.arrival_seed:
                self._arrival_rng = (self.arrival_seed, random.Random(f"arrivals-{self.arrival_seed}"))
            return self._arrival_rng[1]

    def take_deletions(self, available: int) -> tuple[int, random.Random]:
        """Return how many of ``available`` rows to delete now (counted against ``max_deletions``), and the seeded
        generator that chooses them."""
        with self._lock:
            count = max(0, min(self.deletions_per_request, self.max_deletions - self._deleted, available))
            self._deleted += count
            if self._deletion_rng is None:
                self._deletion_rng = random.Random(f"deletions-{self.deletion_seed}")
            return count, self._deletion_rng

    @property
    def deleted(self) -> int:
        """Return how many rows the deletions removed since the count last restarted."""
        with self._lock:
            return self._deleted

    def _seeded_error_rng(self) -> random.Random:
        if self._error_rng is None or self._error_rng[0] != self.error_seed:
            self._error_rng = (self.error_seed, random.Random(f"errors-{self.error_seed}"))
        return self._error_rng[1]

    def _take_token(self) -> bool:
        """Take one token from the rate-limit bucket; return whether there was one."""
        if self.rate_limit is None:
            self._bucket = None
            return True
        capacity = max(self.rate_limit, 1.0)
        now = self.clock()
        tokens, last = self._bucket if self._bucket is not None else (capacity, now)
        tokens = min(capacity, tokens + (now - last) * self.rate_limit)
        admitted = tokens >= 1.0
        self._bucket = (tokens - 1.0 if admitted else tokens, now)
        return admitted


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
