"""Analytics targets and their refreshes: how fresh the cached rows are, and what making them fresher costs.

The posts endpoint serves a cache. Each analytics target (a tracked account) is refreshed from its platform
asynchronously; a post published after its target's last refresh is not in the cache yet. A refresh is
``POST /analytics/targets/{id}/refresh``: free once a day per target, otherwise paid in credits. It goes
``pending`` → ``processing`` → ``completed`` (or ``failed``), read with ``GET /analytics/refreshes/{id}``.

This module holds that contract without I/O and without Airflow: the records (:class:`AnalyticsTarget`,
:class:`Refresh`), which targets a task means (:class:`TargetSelection`), what it may spend
(:class:`RefreshPolicy`), and how an API error of a refresh call reads (:func:`refresh_error`). The state
machines that drive refreshes and the freshness gate are in :mod:`genviral_provider.core.freshness.gate`.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from genviral_provider.core.api.query import TARGETS_PATH, filter_values, platform_values
from genviral_provider.core.rows import UTC, parse_utc
from genviral_provider.exceptions import (
    GenviralAPIError,
    GenviralInsufficientCreditsError,
    GenviralInvalidParameterError,
    GenviralRefreshConflictError,
    GenviralRefreshRateLimitedError,
    GenviralRetryableError,
    GenviralTargetNotFoundError,
)

REFRESHES_PATH = "/analytics/refreshes"
#: Target and refresh ids go into URL paths: letters, digits and ``._:-`` only (UUIDs and slugs fit).
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class RefreshStatus(str, enum.Enum):
    """Where a refresh is in its lifecycle."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    def is_terminal(self) -> bool:
        """Whether the refresh has ended (completed or failed)."""
        return self in (RefreshStatus.COMPLETED, RefreshStatus.FAILED)


def check_id(kind: str, value: object) -> str:
    """Return a target or refresh id unchanged if it is one the API paths can carry.

    :raises GenviralInvalidParameterError: naming the value, before any request.
    """
    if not isinstance(value, str) or not _ID_PATTERN.fullmatch(value):
        raise GenviralInvalidParameterError(
            f"{kind} {value!r} is not a valid id: expected 1-128 letters, digits, '.', '_', ':' or '-', "
            "e.g. e7a7f417-3c1d-4f5e-9a2b-0c8d7e6f5a4b (see GET /analytics/targets)."
        )
    return value


def target_path(target_id: str) -> str:
    """Return ``/analytics/targets/{id}``."""
    return f"{TARGETS_PATH}/{quote(check_id('target id', target_id), safe='')}"


def refresh_target_path(target_id: str) -> str:
    """Return ``/analytics/targets/{id}/refresh``."""
    return f"{target_path(target_id)}/refresh"


def refresh_path(refresh_id: str) -> str:
    """Return ``/analytics/refreshes/{id}``."""
    return f"{REFRESHES_PATH}/{quote(check_id('refresh id', refresh_id), safe='')}"


def iso(instant: dt.datetime | None) -> str | None:
    """Format an instant as ISO 8601 in UTC, or ``None``."""
    return None if instant is None else instant.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class AnalyticsTarget:
    """One tracked account as ``GET /analytics/targets`` lists it; ``raw`` keeps every field the API sent.

    :param last_refreshed_at: when the cache last took this target's posts, if the API says so.
    :param free_refresh_available: whether today's free refresh is still unused, if the API says so.
    """

    id: str
    platform: str | None = None
    identifier: str | None = None
    display_name: str | None = None
    last_refreshed_at: dt.datetime | None = None
    free_refresh_available: bool | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, row: object, *, request: str) -> AnalyticsTarget:
        """Read a target row (``id``, or its legacy alias ``target_id``, is required).

        :raises GenviralRetryableError: for a row that is not an object with an id (a broken response).
        """
        if not isinstance(row, Mapping):
            raise GenviralRetryableError(
                status=200, error_code=None, message=f"a target row is not an object: {row!r:.200}", request=request
            )
        target_id = row.get("id") or row.get("target_id")
        if not isinstance(target_id, str) or not target_id:
            raise GenviralRetryableError(
                status=200, error_code=None, message=f"a target row has no id: {dict(row)!r:.200}", request=request
            )
        free = row.get("free_refresh_available")
        return cls(
            id=target_id,
            platform=_text(row.get("platform")),
            identifier=_text(row.get("identifier")),
            display_name=_text(row.get("display_name")),
            last_refreshed_at=parse_utc(row.get("last_refreshed_at")),
            free_refresh_available=free if isinstance(free, bool) else None,
            raw=dict(row),
        )

    def describe(self) -> str:
        """Name the target for messages: ``tiktok @brand (e7a7f417-...)``."""
        name = " ".join(part for part in (self.platform, self.identifier) if part)
        return f"{name} ({self.id})" if name else self.id

    def as_dict(self) -> dict[str, Any]:
        """Return the target's identity and freshness as JSON-ready data (for manifests and XCom)."""
        return {
            "id": self.id,
            "platform": self.platform,
            "identifier": self.identifier,
            "display_name": self.display_name,
            "last_refreshed_at": iso(self.last_refreshed_at),
            "free_refresh_available": self.free_refresh_available,
        }


def parse_targets(data: object, *, request: str) -> list[AnalyticsTarget]:
    """Read the ``data`` of ``GET /analytics/targets`` (``{"targets": [...]}``, or a bare list)."""
    rows = data.get("targets") if isinstance(data, Mapping) else data
    if not isinstance(rows, list):
        raise GenviralRetryableError(
            status=200, error_code=None, message="response data holds no targets list", request=request
        )
    return [AnalyticsTarget.from_api(row, request=request) for row in rows]


@dataclass(frozen=True)
class Refresh:
    """One refresh of one target, as the API describes it.

    :param was_free: the ``wasFree`` of the response that started it (``None`` when read later).
    """

    id: str
    target_id: str
    status: RefreshStatus
    started_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    credits_used: int = 0
    free_refresh_used: bool | None = None
    was_free: bool | None = None
    error: str | None = None

    @classmethod
    def from_api(cls, data: object, *, request: str, was_free: object = None) -> Refresh:
        """Read a refresh object.

        :raises GenviralRetryableError: for an object without id or with an unknown status.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str) or not data.get("id"):
            raise GenviralRetryableError(
                status=200,
                error_code=None,
                message=f"response holds no refresh with an id: {data!r:.200}",
                request=request,
            )
        try:
            status = RefreshStatus(data.get("status"))
        except ValueError:
            raise GenviralRetryableError(
                status=200,
                error_code=None,
                message=f"refresh has an unknown status {data.get('status')!r}",
                request=request,
            ) from None
        credits = data.get("credits_used")
        free_used = data.get("free_refresh_used")
        error = data.get("error")
        return cls(
            id=data["id"],
            target_id=str(data.get("target_id") or ""),
            status=status,
            started_at=parse_utc(data.get("started_at")),
            completed_at=parse_utc(data.get("completed_at")),
            credits_used=credits if isinstance(credits, int) and not isinstance(credits, bool) else 0,
            free_refresh_used=free_used if isinstance(free_used, bool) else None,
            was_free=was_free if isinstance(was_free, bool) else None,
            error=str(error)[:500] if error else None,
        )

    @property
    def paid(self) -> bool:
        """Whether the refresh cost credits (or the API said it was not free)."""
        return self.credits_used > 0 or self.was_free is False

    def updated(self, later: Refresh) -> Refresh:
        """Return ``later`` (a poll of this refresh), keeping ``was_free`` from the response that started it."""
        return Refresh(**{**later.__dict__, "was_free": self.was_free if later.was_free is None else later.was_free})

    def as_dict(self) -> dict[str, Any]:
        """Return the refresh as JSON-ready data (for XCom and manifests)."""
        return {
            "refresh_id": self.id,
            "target_id": self.target_id,
            "status": self.status.value,
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
            "was_free": self.was_free,
            "credits_used": self.credits_used,
            "error": self.error,
        }


def started_refresh(data: object, *, request: str) -> Refresh:
    """Read the ``data`` of ``POST /analytics/targets/{id}/refresh``: ``{"refresh": {...}, "wasFree": bool}``."""
    payload = data if isinstance(data, Mapping) else {}
    return Refresh.from_api(payload.get("refresh"), request=request, was_free=payload.get("wasFree"))


@dataclass(frozen=True)
class TargetSelection:
    """Which targets a task means: explicit ids, platforms, or (neither) every target of the key.

    Build one with :meth:`parse`, which validates before any request.
    """

    target_ids: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()

    @classmethod
    def parse(
        cls, *, target_ids: Iterable[str] | str | None = None, platforms: Iterable[str] | str | None = None
    ) -> TargetSelection:
        """Validate ids and platforms.

        :raises GenviralInvalidParameterError: naming the bad value.
        """
        ids = tuple(check_id("target id", value) for value in filter_values("target_ids", target_ids))
        return cls(target_ids=ids, platforms=platform_values(platforms))

    def select(self, targets: Iterable[AnalyticsTarget]) -> list[AnalyticsTarget]:
        """Return the targets meant, in the API's order.

        :raises GenviralInvalidParameterError: for an id the key cannot see, naming it and the visible ids.
        """
        visible = list(targets)
        known = {target.id for target in visible}
        unknown = [target_id for target_id in self.target_ids if target_id not in known]
        if unknown:
            raise GenviralInvalidParameterError(
                f"Analytics target id(s) {', '.join(map(repr, unknown))} are not visible to this key: it sees "
                f"{', '.join(sorted(known)) or 'no targets'}."
            )
        return [
            target
            for target in visible
            if (not self.target_ids or target.id in self.target_ids)
            and (not self.platforms or target.platform in self.platforms)
        ]

    def describe(self) -> str:
        """Say which targets, for messages."""
        if self.target_ids:
            return f"targets {', '.join(self.target_ids)}"
        if self.platforms:
            return f"every {'/'.join(self.platforms)} target"
        return "every target of the key"


class RefreshKind(str, enum.Enum):
    """What refreshing a target now would cost, as far as the API says."""

    FREE = "free"
    PAID = "paid"


@dataclass(frozen=True)
class RefreshPolicy:
    """What a task may spend on refreshes: free ones, and at most ``max_paid_refreshes`` paid ones.

    Credits are money: nothing is paid unless ``max_paid_refreshes`` says so. A target that does not say whether
    its free refresh is available may cost credits, so it counts as paid.

    :param free_refreshes: whether the task may start free refreshes.
    :param max_paid_refreshes: the most refreshes this task may start that may cost credits (0: none).
    """

    free_refreshes: bool = True
    max_paid_refreshes: int = 0

    @classmethod
    def parse(cls, *, free_refreshes: object = True, max_paid_refreshes: object = 0) -> RefreshPolicy:
        """Validate the policy's arguments.

        :raises GenviralInvalidParameterError: naming the bad value.
        """
        if not isinstance(free_refreshes, bool):
            raise GenviralInvalidParameterError(f"free_refreshes {free_refreshes!r} is not True or False.")
        paid = max_paid_refreshes
        if isinstance(paid, str) and paid.strip().isdigit():
            paid = int(paid)  # a rendered template or DAG param
        if isinstance(paid, bool) or not isinstance(paid, int) or not 0 <= paid <= 1000:
            raise GenviralInvalidParameterError(
                f"max_paid_refreshes {max_paid_refreshes!r} is not allowed: give an integer 0..1000 "
                "(0 spends no credits)."
            )
        return cls(free_refreshes=free_refreshes, max_paid_refreshes=paid)

    def decide(self, target: AnalyticsTarget, paid_started: int) -> tuple[RefreshKind | None, str]:
        """Return what refreshing ``target`` now would be (``None``: not allowed) and why."""
        if target.free_refresh_available is True:
            if self.free_refreshes:
                return RefreshKind.FREE, "its free refresh of the day is available"
            return None, "free refreshes are turned off (free_refreshes=False)"
        cost = (
            "its free refresh of the day is used"
            if target.free_refresh_available is False
            else ("the API does not say whether its free refresh is available, so a refresh may cost credits")
        )
        if paid_started < self.max_paid_refreshes:
            return (
                RefreshKind.PAID,
                f"{cost}; paid refresh {paid_started + 1} of max_paid_refreshes={self.max_paid_refreshes}",
            )
        if self.max_paid_refreshes:
            return None, f"{cost}, and this task already started max_paid_refreshes={self.max_paid_refreshes}"
        return None, f"{cost}, and paid refreshes are off (set max_paid_refreshes to allow spending credits)"


def refresh_error(error: GenviralAPIError, *, target_id: str) -> GenviralAPIError:
    """Return the typed error an API error of ``POST /analytics/targets/{id}/refresh`` stands for.

    402 is the plan (``subscription_required``) or, for a refresh, credits running out; 404 a target outside the
    key's scope; 409 a refresh of the target already running; 429 too many refreshes of the target.
    """
    kwargs = {
        "status": error.status,
        "error_code": error.error_code,
        "message": error.message,
        "request": error.request,
    }
    typed: GenviralAPIError
    if error.status == 402 and error.error_code != "subscription_required":
        typed = GenviralInsufficientCreditsError(**kwargs, target_id=target_id)
    elif error.status == 404:
        typed = GenviralTargetNotFoundError(**kwargs, target_id=target_id)
    elif error.status == 409:
        typed = GenviralRefreshConflictError(**kwargs, target_id=target_id)
    elif error.status == 429:
        retry_after = error.retry_after if isinstance(error, GenviralRetryableError) else None
        typed = GenviralRefreshRateLimitedError(**kwargs, target_id=target_id, retry_after=retry_after)
    else:
        return error
    return typed


def skip_reason(error: GenviralAPIError) -> str | None:
    """Return why a refresh refused with ``error`` is refused for good for its target alone (``None``: it is not).

    404 (the target is not in the key's scope) and 400 (``missing_target_id``, or an id it does not take) say
    nothing about the other targets: they are refreshed, this one is named and skipped.
    """
    if error.status in (400, 404):
        return f"the API refused its refresh ({error})"
    return None


def redacted_data(data: Any, redact: Callable[[str], str]) -> Any:
    """Return JSON ``data`` with ``redact`` applied to every string in it, keys included.

    A refresh's ``error`` (or any text of an answer) may quote the request, key included; what the machines read
    ends up in logs, exceptions and XCom, so drivers hand them redacted data.
    """
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, Mapping):
        return {redact(str(key)): redacted_data(value, redact) for key, value in data.items()}
    if isinstance(data, list):
        return [redacted_data(value, redact) for value in data]
    return data


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def freshness_summary(targets: Sequence[AnalyticsTarget], *, until: dt.datetime) -> dict[str, Any]:
    """Describe how fresh the data read from ``targets`` is, against the instant it should cover (JSON-ready).

    ``watermark`` is the earliest last refresh among the targets: every post published before it was in the
    cache. ``stale_targets`` lists those last refreshed before ``until``, or that do not say when they were.
    """
    stale = [t.id for t in targets if t.last_refreshed_at is None or t.last_refreshed_at < until]
    known = [t.last_refreshed_at for t in targets if t.last_refreshed_at is not None]
    return {
        "watermark": iso(min(known)) if known and len(known) == len(targets) else None,
        "covers_until": iso(until),
        "covered": not stale,
        "stale_targets": stale,
        "targets": {
            t.id: {
                "platform": t.platform,
                "identifier": t.identifier,
                "display_name": t.display_name,
                "last_refreshed_at": iso(t.last_refreshed_at),
            }
            for t in targets
        },
    }
