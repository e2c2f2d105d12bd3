"""Items 8-9: the connection is validated when read; test_connection never raises; TLS failures are permanent."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.core.api.async_client import AsyncGenviralClient
from genviral_provider.core.api.client import GenviralClient
from genviral_provider.core.api.settings import ClientSettings
from genviral_provider.exceptions import GenviralAPIError, GenviralInvalidParameterError, GenviralRetryableError
from genviral_provider.hooks.genviral import GenviralHook
from tests.hostile.conftest import LeakCheck, fast_settings
from tests.hostile.server import HostileServer

Start = Callable[..., HostileServer]


def _settings(host: str | None, **extra: Any) -> ClientSettings:
    return ClientSettings.from_connection(
        conn_id="genviral_x", host=host, port=None, password="k.secret1234", extra=extra
    )


def _hook(genviral_connection: Any, server: Any, **extra: Any) -> GenviralHook:
    return GenviralHook(genviral_conn_id=genviral_connection(server, max_retries=2, max_retry_wait=2, **extra))


class _At:
    """Stands for a server at a given URL, for ``genviral_connection``."""

    def __init__(self, url: str, api_key: str) -> None:
        self.url, self.api_key = url, api_key


def test_a_redirect_loop_is_reported_not_raised(hostile: Start, genviral_connection: Any, leaks: LeakCheck) -> None:
    server = hostile(lambda ex: ex.redirect(f"http://127.0.0.1:{ex.handler.server.server_address[1]}{ex.path}"))
    ok, message = _hook(genviral_connection, server).test_connection()

    assert not ok and "HTTP 302" in message and "does not follow redirects" in message
    assert server.requests == 1
    leaks.text(message)
    leaks.assert_clean()


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("ftp://127.0.0.1:21", "scheme 'ftp' is not http or https"),
        ("https://user:pw-s3cr3tK3yValue@example.com", "holds credentials"),
        ("https://example.com/?x=1", "holds a query or fragment"),
        ("https://example.com/#frag", "holds a query or fragment"),
        ("https://:8080", "names no host"),
        ("https://exa mple.com", "whitespace or control characters"),
        ("https://example.com:99999", "port is not a number"),
    ],
)
def test_a_bad_base_url_is_refused_when_the_connection_is_read(
    genviral_connection: Any, leaks: LeakCheck, host: str, problem: str
) -> None:
    with pytest.raises(GenviralInvalidParameterError, match=problem) as caught:
        _settings(host)
    hook = GenviralHook(genviral_conn_id=genviral_connection(_At(host, "gva_live_a.b12345678")))
    ok, message = hook.test_connection()

    assert not ok and problem.split(" ")[0] in message
    leaks.error(caught.value)
    leaks.text(message)
    assert all("pw-s3cr3t" not in text for text in leaks.texts)
    leaks.assert_clean()


def test_a_host_without_scheme_talking_plain_http_fails_once_as_tls(hostile: Start, leaks: LeakCheck) -> None:
    server = hostile(lambda ex: ex.ok({"targets": []}))
    settings = _settings(f"127.0.0.1:{server.port}", max_retries=5)
    assert settings.base_url.startswith("https://")
    client = GenviralClient(settings)

    with pytest.raises(GenviralAPIError, match=r"TLS/certificate failure, not retried") as caught:
        client.get("/analytics/targets", {})
    assert f"did you mean http://127.0.0.1:{server.port}?" in str(caught.value)
    assert not isinstance(caught.value, GenviralRetryableError)
    assert server.connections == 1  # one attempt, not six
    leaks.error(caught.value)
    leaks.assert_clean()


def test_tls_failures_are_permanent_in_the_trigger_too(hostile: Start, leaks: LeakCheck) -> None:
    server = hostile(lambda ex: ex.ok({"targets": []}))

    async def fetch() -> Any:
        async with AsyncGenviralClient(fast_settings(f"https://127.0.0.1:{server.port}", max_retries=5)) as client:
            return await client.get("/analytics/targets", {})

    with pytest.raises(GenviralAPIError, match="TLS/certificate failure, not retried") as caught:
        asyncio.run(fetch())
    assert not isinstance(caught.value, GenviralRetryableError)
    assert server.connections == 1
    leaks.error(caught.value)
    leaks.assert_clean()


def test_test_connection_returns_false_on_a_tls_failure(hostile: Start, genviral_connection: Any) -> None:
    server = hostile(lambda ex: ex.ok({"targets": []}))
    hook = GenviralHook(genviral_conn_id=genviral_connection(_At(f"127.0.0.1:{server.port}", "gva_live_a.b12345678")))
    ok, message = hook.test_connection()
    assert not ok and "TLS/certificate failure" in message


def test_test_connection_returns_false_for_any_unexpected_error(
    hostile: Start, genviral_connection: Any, monkeypatch: pytest.MonkeyPatch, leaks: LeakCheck
) -> None:
    server = hostile(lambda ex: ex.ok({"targets": []}))
    hook = _hook(genviral_connection, server)

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"something odd with {hook.settings.api_key}")

    monkeypatch.setattr(GenviralClient, "targets", explode)
    ok, message = hook.test_connection()
    assert not ok and message.startswith("Connection test failed: RuntimeError: something odd with ***")
    leaks.text(message)
    leaks.assert_clean(server.api_key)


def test_plain_http_to_a_remote_host_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            _settings("http://analytics.example.org")
        _settings("http://127.0.0.1:8080")
        _settings("http://localhost:8080")
    warnings = [r.getMessage() for r in caplog.records if "plain http://" in r.getMessage()]
    assert len(warnings) == 1 and "analytics.example.org" in warnings[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"timeout": "nan"}, r"timeout='nan' is invalid: expected a number from more than 0 to 600"),
        ({"timeout": math.inf}, r"timeout=inf is invalid"),
        ({"timeout": 601}, r"timeout=601 is invalid: .* to 600 \(default 30\)"),
        ({"max_retries": 21}, r"max_retries=21 is invalid: expected a whole number from 0 to 20"),
        ({"max_retries": 2.5}, r"max_retries=2.5 is invalid: expected a whole number"),
        ({"max_retry_wait": "1e9"}, r"max_retry_wait='1e9' is invalid: .* to 3600"),
        ({"max_retry_wait": "-inf"}, r"max_retry_wait='-inf' is invalid"),
        ({"max_concurrency": 33}, r"max_concurrency=33 is invalid: expected a whole number from more than 0 to 32"),
        ({"max_concurrency": True}, r"max_concurrency=True is invalid"),
    ],
)
def test_extras_beyond_sane_bounds_are_refused_naming_the_field_and_bound(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(GenviralInvalidParameterError, match=r"Connection 'genviral_x' extra " + message):
        _settings(None, **extra)


def test_extras_at_their_bounds_are_accepted() -> None:
    settings = _settings(None, timeout="600", max_retries=0, max_retry_wait=3600, max_concurrency="32")
    assert (settings.timeout, settings.max_retries, settings.max_retry_wait, settings.max_concurrency) == (
        600.0,
        0,
        3600.0,
        32,
    )


def test_unknown_extras_are_a_warning_naming_them(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        settings = _settings(None, max_concurency=3, proxy="x")
    assert settings.max_concurrency == 8
    assert "unknown extra field(s) max_concurency, proxy, ignored" in caplog.text
