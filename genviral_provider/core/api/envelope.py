"""Reading the API's response envelope: ``{"ok", "code", "message", "data"?, "error_code"?}``.

Both transports (``requests`` in the hook, ``httpx`` in the trigger) hand the status, headers and body
here, so that what counts as success, as a permanent error or as a transient one is decided once. Whatever
the server sends back is quoted only in part (:data:`~genviral_provider.core.api.settings.MAX_QUOTED_CHARS`) and
with the key redacted.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import requests
import urllib3

from genviral_provider.core.api.query import MAX_OFFSET, TARGETS_PATH
from genviral_provider.core.api.settings import quote_server_text
from genviral_provider.exceptions import GenviralAPIError, GenviralAuthError, GenviralRetryableError

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
AUTH_STATUSES = frozenset({401, 402, 403})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: The longest ``Retry-After`` read as such; anything longer is "practically forever" and refused anyway.
MAX_RETRY_AFTER = 1e12
_SNIPPET_CHARS = 200
#: Failures of the HTTP libraries that may pass: no connection, a timeout, a connection closed or a body cut
#: short. Any other failure of :data:`TRANSPORT_ERRORS` (an invalid URL, a bad header, TLS) is permanent.
TRANSIENT_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
    httpx.DecodingError,
    urllib3.exceptions.HTTPError,  # reading a streamed body: a read timeout, a connection reset, bad gzip
    OSError,
)
TRANSPORT_ERRORS = (requests.RequestException, httpx.HTTPError)


@dataclass(frozen=True)
class PostsPage:
    """One page of ``GET /analytics/summary/posts``: the rows and what the API said about the rest."""

    posts: list[dict[str, Any]]
    total_count: int
    has_more: bool
    offset: int = 0

    @classmethod
    def from_data(cls, data: Any, *, offset: int, request: str) -> PostsPage:
        """Build a page from the envelope's ``data``, refusing a shape or counts that are not the documented ones.

        ``posts`` must be a list of objects, ``totalCount`` a non-negative integer and ``hasMore`` a boolean
        (either may be absent: it is then derived). A page that contradicts its own counts (no rows although
        ``hasMore``; fewer rows than ``totalCount`` promises although not ``hasMore``; more rows than
        ``totalCount`` leaves room for) is refused as retryable: a second read may be consistent, and the
        error, if it persists, says what the API said.

        :raises GenviralRetryableError: naming what was wrong.
        """
        posts, total, has_more = _checked_fields(data, request)
        total_count = total if total is not None else offset + len(posts)
        if has_more is None:
            has_more = offset + len(posts) < total_count
        problem = _contradiction(len(posts), total_count, has_more, offset)
        if problem is not None:
            said = f"totalCount={total_count}, hasMore={json.dumps(has_more)}, {len(posts)} row(s) at offset {offset}"
            raise GenviralRetryableError(
                status=200, error_code=None, message=f"the API contradicts itself ({said}): {problem}", request=request
            )
        return cls(posts=posts, total_count=total_count, has_more=has_more, offset=offset)


def targets_of(data: Any) -> list[dict[str, Any]]:
    """Return the analytics targets in the ``data`` of ``GET /analytics/targets`` (a list, or ``{"targets": [...]}``).

    :raises GenviralRetryableError: when ``data`` holds no list of targets.
    """
    targets = data.get("targets") if isinstance(data, dict) else data
    if not isinstance(targets, list):
        raise GenviralRetryableError(
            status=200, error_code=None, message="response data holds no targets list", request=TARGETS_PATH
        )
    return targets


def _checked_fields(data: Any, request: str) -> tuple[list[dict[str, Any]], int | None, bool | None]:
    def refuse(problem: str) -> GenviralRetryableError:
        return GenviralRetryableError(
            status=200, error_code=None, message=f"response data is not a page of posts: {problem}", request=request
        )

    if not isinstance(data, dict):
        raise refuse(f"data is {_kind(data)}, not an object")
    posts = data.get("posts")
    if not isinstance(posts, list):
        raise refuse(f"'posts' is {_kind(posts)}, not a list")
    for index, row in enumerate(posts):
        if not isinstance(row, dict):
            raise refuse(f"posts[{index}] is {_kind(row)}, not an object")
    total = data.get("totalCount")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
        raise refuse(f"'totalCount' is {_kind(total)}, not a non-negative integer")
    has_more = data.get("hasMore")
    if has_more is not None and not isinstance(has_more, bool):
        raise refuse(f"'hasMore' is {_kind(has_more)}, not true or false")
    return posts, total, has_more


def _contradiction(rows: int, total: int, has_more: bool, offset: int) -> str | None:
    if has_more and rows == 0:
        return "an empty page cannot have more rows after it"
    if rows > max(0, total - offset):
        return f"totalCount leaves room for at most {max(0, total - offset)} row(s) at this offset"
    if not has_more and offset + rows < total and offset < MAX_OFFSET:
        return f"the page ends at row {offset + rows} of {total} but says there are no more"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "missing or null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {json.dumps(value, default=str)[:40]}"


def read_envelope(
    status: int, headers: Mapping[str, str], body: bytes, *, request: str, secrets: Sequence[str] = ()
) -> Any:
    """Return the envelope's ``data`` on success, or raise the error the response stands for.

    :param status: the HTTP status code.
    :param headers: the response headers (case-insensitive mapping, as both HTTP clients give).
    :param body: the raw body.
    :param request: what was asked, for messages (never containing the key).
    :param secrets: the forms of the key to redact from whatever the server sent back.
    :raises GenviralRetryableError: 429, 5xx, or a body that is not a JSON envelope (cut short, proxy page).
    :raises GenviralAuthError: 401, 402, 403.
    :raises GenviralAPIError: any other error status, e.g. 400 for an invalid query, or a redirect.
    """
    envelope = _parse_json(body)
    if status == 200 and isinstance(envelope, dict) and envelope.get("ok") is True:
        return envelope.get("data")
    error_code, message = _error_fields(envelope, body, list(secrets))
    inner = _envelope_code(envelope) if status == 200 else None
    if inner in RETRYABLE_STATUSES:  # a gateway or framework that always answers 200 and says the truth inside
        status, message = inner, f"{message} (ok:false envelope with code {inner} inside an HTTP 200)"
    if status in REDIRECT_STATUSES:
        location = quote_server_text(str(headers.get("Location") or "?"), list(secrets), limit=_SNIPPET_CHARS)
        message = (
            f"redirected to {location}; the provider does not follow redirects (the key would travel with "
            "them): put the final base URL in the connection's host"
        )
    if status in RETRYABLE_STATUSES or (status == 200 and envelope is None):
        raise GenviralRetryableError(
            status=status,
            error_code=error_code,
            message=message,
            request=request,
            retry_after=parse_retry_after(headers.get("Retry-After"), server_date=headers.get("Date")),
        )
    error_class = GenviralAuthError if status in AUTH_STATUSES else GenviralAPIError
    raise error_class(status=status, error_code=error_code, message=message, request=request)


def transport_failure(
    error: BaseException, *, request: str, secrets: Sequence[str], base_url: str = ""
) -> GenviralAPIError:
    """Return the error a failure of the HTTP library stands for: retryable only if it may pass (not TLS).

    :param base_url: the URL the request went to, for the hint on TLS spoken to a plain-HTTP server.
    """
    message = quote_server_text(f"{type(error).__name__}: {error}", list(secrets))
    if _is_tls_failure(error):
        plain_http = "CERTIFICATE" not in message  # TLS spoken to a server that does not speak it
        message = f"TLS/certificate failure, not retried: {message}. {_plain_http_hint(base_url if plain_http else '')}"
        return GenviralAPIError(status=None, error_code=None, message=message, request=request)
    error_class = GenviralRetryableError if isinstance(error, TRANSIENT_TRANSPORT_ERRORS) else GenviralAPIError
    return error_class(status=None, error_code=None, message=message, request=request)


def _plain_http_hint(base_url: str) -> str:
    """Suggest the plain-HTTP URL a host written without scheme may have meant (a local sandbox)."""
    netloc = urlsplit(base_url).netloc if base_url.startswith("https://") else ""
    guess = f"did you mean http://{netloc}? " if netloc else ""
    return (
        f"If the host serves plain HTTP (a local sandbox), write its scheme: {guess or 'http://host:port; '}"
        "otherwise check the certificate (REQUESTS_CA_BUNDLE / SSL_CERT_FILE)"
    )


def _is_tls_failure(error: BaseException) -> bool:
    """Whether a transport error comes from TLS (a certificate, or TLS spoken to a plain-HTTP server)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, (ssl.SSLError, requests.exceptions.SSLError)) or "CERTIFICATE_VERIFY_FAILED" in str(
            current
        ):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def parse_retry_after(value: str | None, *, server_date: str | None = None, now: float | None = None) -> float | None:
    """Read a ``Retry-After`` header: delay seconds or an HTTP date. ``None`` when absent or unreadable.

    An HTTP date is read against the server's own ``Date`` header, so that a skewed local clock neither
    stretches nor cancels the wait; only without a readable ``Date`` is it read against ``now`` (the local clock).
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    when = _http_date(value)
    if when is None:
        return None
    server_now = _http_date(server_date) if server_date else None
    reference = server_now if server_now is not None else (time.time() if now is None else now)
    return min(MAX_RETRY_AFTER, max(0.0, when - reference))


def _http_date(value: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).timestamp()  # HTTP dates are GMT


def _envelope_code(envelope: Any) -> int | None:
    """The status an error envelope states (``code``, or ``status`` as some gateways write it), if a number."""
    if not isinstance(envelope, dict) or envelope.get("ok") is not False:
        return None
    code = envelope.get("code", envelope.get("status"))
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # includes UnicodeDecodeError and JSONDecodeError
        return None


def _error_fields(envelope: Any, body: bytes, secrets: list[str]) -> tuple[str | None, str]:
    if isinstance(envelope, dict):
        code = envelope.get("error_code")
        message = envelope.get("message")
        if isinstance(message, str) and message:
            code_text = quote_server_text(code, secrets, limit=100) if isinstance(code, str) and code else None
            return code_text, quote_server_text(message, secrets)
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return None, "empty response body"
    snippet = quote_server_text(text, secrets, limit=_SNIPPET_CHARS)
    return None, f"response body is not a JSON envelope: {snippet!r}"
