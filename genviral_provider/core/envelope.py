"""Reading the API's response envelope: ``{"ok", "code", "message", "data"?, "error_code"?}``.

Both transports (``requests`` in the hook, ``httpx`` in the trigger) hand the status, headers and body
here, so that what counts as success, as a permanent error or as a transient one is decided once.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genviral_provider.exceptions import GenviralAPIError, GenviralAuthError, GenviralRetryableError

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
AUTH_STATUSES = frozenset({401, 402, 403})


@dataclass(frozen=True)
class PostsPage:
    """One page of ``GET /analytics/summary/posts``: the rows and what the API said about the rest."""

    posts: list[dict[str, Any]]
    total_count: int
    has_more: bool
    offset: int = 0

    @classmethod
    def from_data(cls, data: Any, *, offset: int, request: str) -> PostsPage:
        """Build a page from the envelope's ``data``, refusing a shape that is not the documented one."""
        if not isinstance(data, dict) or not isinstance(data.get("posts"), list):
            raise GenviralRetryableError(
                status=200, error_code=None, message="response data has no 'posts' list", request=request
            )
        posts = data["posts"]
        total = data.get("totalCount")
        total_count = total if isinstance(total, int) else offset + len(posts)
        has_more = data.get("hasMore")
        return cls(
            posts=posts,
            total_count=total_count,
            has_more=bool(has_more) if has_more is not None else offset + len(posts) < total_count,
            offset=offset,
        )


def read_envelope(status: int, headers: Mapping[str, str], body: bytes, *, request: str) -> Any:
    """Return the envelope's ``data`` on success, or raise the error the response stands for.

    :param status: the HTTP status code.
    :param headers: the response headers (case-insensitive mapping, as both HTTP clients give).
    :param body: the raw body.
    :param request: what was asked, for messages (never containing the key).
    :raises GenviralRetryableError: 429, 5xx, or a body that is not a JSON envelope (cut short, proxy page).
    :raises GenviralAuthError: 401, 402, 403.
    :raises GenviralAPIError: any other error status, e.g. 400 for an invalid query.
    """
    envelope = _parse_json(body)
    if status == 200 and isinstance(envelope, dict) and envelope.get("ok") is True:
        return envelope.get("data")
    error_code, message = _error_fields(envelope, body)
    if status in RETRYABLE_STATUSES or (status == 200 and envelope is None):
        raise GenviralRetryableError(
            status=status,
            error_code=error_code,
            message=message,
            request=request,
            retry_after=parse_retry_after(headers.get("Retry-After")),
        )
    error_class = GenviralAuthError if status in AUTH_STATUSES else GenviralAPIError
    raise error_class(status=status, error_code=error_code, message=message, request=request)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Read a ``Retry-After`` header: delay seconds or an HTTP date. ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # includes UnicodeDecodeError and JSONDecodeError
        return None


def _error_fields(envelope: Any, body: bytes) -> tuple[str | None, str]:
    if isinstance(envelope, dict):
        code = envelope.get("error_code")
        message = envelope.get("message")
        if isinstance(message, str) and message:
            return (code if isinstance(code, str) else None), message
    snippet = body[:200].decode("utf-8", "replace").strip()
    return None, f"response body is not a JSON envelope: {snippet!r}" if snippet else "empty response body"
