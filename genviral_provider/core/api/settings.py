"""How to reach the API: base URL, key and tuning, read from an Airflow connection's fields."""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

from genviral_provider import __version__
from genviral_provider.core.api.retry import RetryPolicy
from genviral_provider.exceptions import GenviralInvalidParameterError

DEFAULT_HOST = "https://www.genviral.io"
API_PREFIX = "/api/partner/v1"

#: Connection extras and their defaults; each is documented in the connection form (provider info).
EXTRA_DEFAULTS: dict[str, float] = {
    "timeout": 30.0,
    "max_retries": 5,
    "max_retry_wait": 120.0,
    "max_concurrency": 8,
    "max_body_bytes": 8 * 1024 * 1024,
}
#: The largest value each extra accepts: beyond these a value is a typo, not a tuning.
EXTRA_MAXIMUMS: dict[str, float] = {
    "timeout": 600.0,
    "max_retries": 20,
    "max_retry_wait": 3600.0,
    "max_concurrency": 32,
    "max_body_bytes": 1024 * 1024 * 1024,
}
_WHOLE_NUMBER_EXTRAS = frozenset({"max_retries", "max_concurrency", "max_body_bytes"})
#: A whole request (connect, headers, body) must end within this many times ``timeout``.
REQUEST_DEADLINE_FACTOR = 2.0
#: The largest response body read unless the connection says otherwise: a page of 100 rows is tens of kB.
DEFAULT_MAX_BODY_BYTES = int(EXTRA_DEFAULTS["max_body_bytes"])
#: The most characters of server text quoted in an error message.
MAX_QUOTED_CHARS = 500
REDACTED = "***"

_log = logging.getLogger(__name__)
_warned_plain_http: set[str] = set()
_warned_lock = threading.Lock()


@dataclass(frozen=True)
class ClientSettings:
    """Everything a client needs to talk to the API. The key is kept out of ``repr``.

    :param base_url: scheme, host and optional port, e.g. ``https://www.genviral.io``.
    :param api_key: the whole ``public_id.secret`` key, exactly as it is sent.
    :param timeout: seconds to wait for a connection and for each read; each attempt of a request (connect,
        headers, the whole body) must also end within :attr:`request_deadline`, :data:`REQUEST_DEADLINE_FACTOR`
        times this, however slowly the server trickles its answer.
    :param max_retries: retries of one request after its first attempt.
    :param max_retry_wait: the most seconds one request may wait, between its attempts and for the rate limit.
    :param max_concurrency: the most requests in flight while reading a window.
    :param max_body_bytes: the largest response body read (decompressed); a larger one fails the request.
    """

    base_url: str
    api_key: str = field(repr=False)
    timeout: float = EXTRA_DEFAULTS["timeout"]
    max_retries: int = int(EXTRA_DEFAULTS["max_retries"])
    max_retry_wait: float = EXTRA_DEFAULTS["max_retry_wait"]
    max_concurrency: int = int(EXTRA_DEFAULTS["max_concurrency"])
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    @classmethod
    def from_connection(
        cls, *, conn_id: str, host: str | None, port: int | None, password: str | None, extra: Mapping[str, Any]
    ) -> ClientSettings:
        """Validate a connection's fields and return settings, naming the connection in every error.

        Unknown extras are logged as a warning (naming them), not refused. Nothing is sent.
        """
        api_key = check_api_key(conn_id, password)
        unknown = sorted(str(name) for name in set(extra) - set(EXTRA_DEFAULTS))
        if unknown:
            _log.warning(
                "Connection %r has unknown extra field(s) %s, ignored: the known ones are %s.",
                conn_id,
                ", ".join(unknown),
                ", ".join(EXTRA_DEFAULTS),
            )
        tuning = {name: _bounded(conn_id, name, extra.get(name), default) for name, default in EXTRA_DEFAULTS.items()}
        url = base_url(host, port, conn_id=conn_id)
        _warn_if_plain_http(conn_id, url)
        return cls(
            base_url=url,
            api_key=api_key,
            timeout=tuning["timeout"],
            max_retries=int(tuning["max_retries"]),
            max_retry_wait=tuning["max_retry_wait"],
            max_concurrency=int(tuning["max_concurrency"]),
            max_body_bytes=int(tuning["max_body_bytes"]),
        )

    @property
    def request_deadline(self) -> float:
        """Seconds one attempt of a request may take in all: connect, headers and the whole body."""
        return REQUEST_DEADLINE_FACTOR * self.timeout

    def retry_policy(self) -> RetryPolicy:
        """Return the retry policy of these settings: ``max_retries`` attempts, ``max_retry_wait`` of waiting."""
        return RetryPolicy(max_retries=self.max_retries, max_total_wait=self.max_retry_wait)

    def url(self, path: str) -> str:
        """Return the full URL of an API path such as ``/analytics/summary/posts``."""
        return f"{self.base_url}{API_PREFIX}{path}"

    def headers(self) -> dict[str, str]:
        """Return the headers of every request, the ``Authorization`` header included."""
        return {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "User-Agent": f"airflow-provider-genviral/{__version__}",
        }

    def secret_forms(self) -> list[str]:
        """Return the key as sent and as it may come back quoted (URL-encoded, JSON- or repr-escaped)."""
        return secret_forms(self.api_key)

    def redact(self, text: str) -> str:
        """Return ``text`` with every form of the key replaced by ``***``."""
        return redact(text, self.secret_forms())


def check_api_key(conn_id: str, password: str | None) -> str:
    """Return the key to send (surrounding whitespace removed), refusing one no HTTP header can carry as is.

    The message never contains the key, not even in part.
    """
    key = (password or "").strip()
    if not key:
        raise GenviralInvalidParameterError(
            f"Connection {conn_id!r} has no API key: put the whole key (public_id.secret) in its password."
        )
    problems = []
    if any(not char.isascii() for char in key):
        problems.append("non-ASCII characters")
    if any(char.isspace() for char in key):
        problems.append("whitespace")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in key if not char.isspace()):
        problems.append("control characters")
    if problems:
        raise GenviralInvalidParameterError(
            f"Connection {conn_id!r} has an API key (in its password, {len(key)} characters, not shown) that "
            f"contains {' and '.join(problems)}: a Genviral key is printable ASCII without spaces, like "
            "'gva_live_x1y2z3.abcd1234'. Paste the whole key again."
        )
    return key


def secret_forms(key: str) -> list[str]:
    """Return ``key`` and the forms it takes when quoted back: URL-encoded, JSON-escaped, repr-escaped."""
    if not key:
        return []
    forms = {key, quote(key, safe=""), quote_plus(key), json.dumps(key)[1:-1], repr(key)[1:-1]}
    return sorted(forms, key=len, reverse=True)


def redact(text: str, forms: list[str]) -> str:
    """Return ``text`` with each of ``forms`` replaced by ``***``."""
    for form in forms:
        if form:
            text = text.replace(form, REDACTED)
    return text


def quote_server_text(text: str, forms: list[str], *, limit: int = MAX_QUOTED_CHARS) -> str:
    """Return server text fit to quote in a message: the key redacted, cut to ``limit`` characters."""
    text = redact(text, forms)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters not shown]"


def base_url(host: str | None, port: int | None = None, *, conn_id: str = "genviral_default") -> str:
    """Return the base URL from a connection's host (with or without scheme) and port, refusing a bad one.

    A host without scheme is served over HTTPS; a local sandbox is written with its scheme,
    e.g. ``http://127.0.0.1:8080``. A path is kept (a proxy prefix); the API's own prefix is dropped.

    :raises GenviralInvalidParameterError: for a scheme other than http/https, credentials in the URL
        (the key goes in the password), a query or fragment, no host, or a bad port.
    """
    host = (host or "").strip().rstrip("/")
    if not host:
        return DEFAULT_HOST
    if "://" not in host:
        host = f"https://{host}"
    if host.endswith(API_PREFIX):  # tolerate a host pasted with the API's path
        host = host[: -len(API_PREFIX)]
    _check_base_url(conn_id, host)
    if port and not _has_port(host):
        if isinstance(port, bool) or not 0 < int(port) < 65536:
            raise GenviralInvalidParameterError(f"Connection {conn_id!r} has port {port!r}: expected 1..65535.")
        parts = urlsplit(host)
        host = f"{parts.scheme}://{parts.netloc}:{port}{parts.path}"
    return host


def _check_base_url(conn_id: str, url: str) -> None:
    shown = _without_userinfo(url)
    allowed = "expected e.g. https://www.genviral.io or http://127.0.0.1:8080 (the key goes in the password)"
    if any(char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        raise GenviralInvalidParameterError(
            f"Connection {conn_id!r} has a host with whitespace or control characters: {allowed}."
        )
    parts = urlsplit(url)
    problem = None
    if parts.scheme not in ("http", "https"):
        problem = f"scheme {parts.scheme!r} is not http or https"
    elif "@" in parts.netloc:
        problem = "it holds credentials (user:password@): they would replace the API key's header"
    elif parts.query or parts.fragment or url.endswith(("?", "#")):
        problem = "it holds a query or fragment ('?' or '#'), which would be glued into every request's path"
    elif not parts.hostname:
        problem = "it names no host"
    else:
        try:
            parts.port  # noqa: B018 - raises for a port that is not a number in 0..65535
        except ValueError:
            problem = "its port is not a number in 1..65535"
    if problem is not None:
        raise GenviralInvalidParameterError(
            f"Connection {conn_id!r} has host {shown!r}, which cannot be the API's base URL: {problem}; {allowed}."
        )


def _without_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "…@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{path}"


def _warn_if_plain_http(conn_id: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "http" or _is_loopback(parts.hostname or ""):
        return
    with _warned_lock:
        if url in _warned_plain_http:
            return
        _warned_plain_http.add(url)
    _log.warning(
        "Connection %r sends the API key over plain http:// to %s: anyone on the network path can read it. "
        "Use https:// for anything but a local sandbox.",
        conn_id,
        parts.hostname,
    )


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _has_port(url: str) -> bool:
    authority = url.split("://", 1)[1].split("/", 1)[0]
    return ":" in authority.rsplit("]", 1)[-1]


def _bounded(conn_id: str, name: str, value: Any, default: float) -> float:
    """Read a numeric extra, refusing non-numbers, NaN, infinity, negatives, zero (but for retries) and excess."""
    if value is None or value == "":
        return default
    maximum = EXTRA_MAXIMUMS[name]
    whole = name in _WHOLE_NUMBER_EXTRAS
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    minimum_ok = number >= 0 if name == "max_retries" else number > 0
    if not (math.isfinite(number) and minimum_ok and number <= maximum and (not whole or number.is_integer())):
        lowest = "0" if name == "max_retries" else "more than 0"
        kind = "a whole number" if whole else "a number"
        raise GenviralInvalidParameterError(
            f"Connection {conn_id!r} extra {name}={value!r} is invalid: expected {kind} from {lowest} to "
            f"{maximum:g} (default {default:g})."
        )
    return number
