"""How to reach the API: base URL, key and tuning, read from an Airflow connection's fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from genviral_provider import __version__
from genviral_provider.exceptions import GenviralInvalidParameterError

DEFAULT_HOST = "https://www.genviral.io"
API_PREFIX = "/api/partner/v1"

#: Connection extras and their defaults; each is documented in the connection form (provider info).
EXTRA_DEFAULTS: dict[str, float] = {
    "timeout": 30.0,
    "max_retries": 5,
    "max_retry_wait": 120.0,
    "max_concurrency": 8,
}


@dataclass(frozen=True)
class ClientSettings:
    """Everything a client needs to talk to the API. The key is kept out of ``repr``.

    :param base_url: scheme, host and optional port, e.g. ``https://www.genviral.io``.
    :param api_key: the whole ``public_id.secret`` key.
    :param timeout: seconds to wait for a connection and for each read.
    :param max_retries: retries of one request after its first attempt.
    :param max_retry_wait: the most seconds one request may wait between its attempts.
    :param max_concurrency: the most requests in flight while reading a window.
    """

    base_url: str
    api_key: str = field(repr=False)
    timeout: float = EXTRA_DEFAULTS["timeout"]
    max_retries: int = int(EXTRA_DEFAULTS["max_retries"])
    max_retry_wait: float = EXTRA_DEFAULTS["max_retry_wait"]
    max_concurrency: int = int(EXTRA_DEFAULTS["max_concurrency"])

    @classmethod
    def from_connection(
        cls, *, conn_id: str, host: str | None, port: int | None, password: str | None, extra: Mapping[str, Any]
    ) -> ClientSettings:
        """Validate a connection's fields and return settings, naming the connection in every error."""
        if not password:
            raise GenviralInvalidParameterError(
                f"Connection {conn_id!r} has no API key: put the whole key (public_id.secret) in its password."
            )
        unknown = sorted(set(extra) - set(EXTRA_DEFAULTS))
        if unknown:
            raise GenviralInvalidParameterError(
                f"Connection {conn_id!r} has unknown extra field(s) {', '.join(unknown)}: "
                f"allowed are {', '.join(EXTRA_DEFAULTS)}."
            )
        tuning = {name: _positive(conn_id, name, extra.get(name), default) for name, default in EXTRA_DEFAULTS.items()}
        return cls(
            base_url=base_url(host, port),
            api_key=password.strip(),
            timeout=tuning["timeout"],
            max_retries=int(tuning["max_retries"]),
            max_retry_wait=tuning["max_retry_wait"],
            max_concurrency=max(1, int(tuning["max_concurrency"])),
        )

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


def base_url(host: str | None, port: int | None = None) -> str:
    """Return the base URL from a connection's host (with or without scheme) and port.

    A host without scheme is served over HTTPS; a local sandbox is written with its scheme,
    e.g. ``http://127.0.0.1:8080``.
    """
    host = (host or "").strip().rstrip("/")
    if not host:
        return DEFAULT_HOST
    if "://" not in host:
        host = f"https://{host}"
    if host.endswith(API_PREFIX):  # tolerate a host pasted with the API's path
        host = host[: -len(API_PREFIX)]
    if port and not _has_port(host):
        host = f"{host}:{port}"
    return host


def _has_port(url: str) -> bool:
    authority = url.split("://", 1)[1]
    return ":" in authority.rsplit("]", 1)[-1]


def _positive(conn_id: str, name: str, value: Any, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number < 0 or (number == 0 and name != "max_retries"):
        raise GenviralInvalidParameterError(
            f"Connection {conn_id!r} extra {name}={value!r} is invalid: expected a positive number "
            f"(default {default:g})."
        )
    return number
