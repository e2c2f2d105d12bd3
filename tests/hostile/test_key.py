"""Items 6-7: a key no header can carry is refused before any request; server text is capped and redacted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from genviral_provider.core.api.client import GenviralClient
from genviral_provider.core.api.settings import MAX_QUOTED_CHARS, ClientSettings
from genviral_provider.exceptions import GenviralAPIError, GenviralInvalidParameterError, GenviralRetryableError
from genviral_provider.hooks.genviral import GenviralHook
from tests.conftest import masked
from tests.hostile.conftest import API_KEY, LeakCheck, fast_settings
from tests.hostile.server import Exchange, HostileServer

Start = Callable[..., HostileServer]


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("gva_live_hostile1.s3cr3t\nK3yValue", "whitespace"),
        ("gva_live_hostile1.s3cr3t\rK3yValue", "whitespace"),
        ("gva_live_hostile1.s3cr3t K3yValue", "whitespace"),
        ("gva_live_hostile1.s3cr3tK3yVälue", "non-ASCII characters"),
        ("gva_live_hostile1.s3cr3t\x00K3yValue", "control characters"),
    ],
)
def test_a_key_no_header_can_carry_is_refused_before_any_request_without_showing_it(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, key: str, problem: str
) -> None:
    server = hostile(lambda ex: ex.ok({"targets": []}))
    hook = GenviralHook(genviral_conn_id=genviral_connection(server, password=key))

    with pytest.raises(GenviralInvalidParameterError, match=f"contains {problem}") as caught:
        hook.list_analytics_targets()
    ok, message = hook.test_connection()

    assert not ok and "not shown" in message
    assert server.connections == 0
    leaks.error(caught.value)
    leaks.text(message, repr(hook))
    for secret in (key, "K3yV", "s3cr3t"):
        assert all(secret not in text for text in leaks.texts)
    leaks.assert_clean(key)


@pytest.mark.parametrize("key", ["", "   ", "\n\t"])
def test_an_empty_key_is_refused(key: str) -> None:
    with pytest.raises(GenviralInvalidParameterError, match="has no API key"):
        ClientSettings.from_connection(conn_id="c", host=None, port=None, password=key, extra={})


def test_surrounding_whitespace_is_removed_and_exactly_the_sent_key_is_masked(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck
) -> None:
    seen: list[str] = []

    def behave(ex: Exchange) -> None:
        seen.append(ex.headers["Authorization"])
        ex.error(502, f"Bad gateway. Request headers: Authorization: {ex.headers['Authorization']}")

    server = hostile(behave)
    hook = GenviralHook(
        genviral_conn_id=genviral_connection(server, password=f"  {API_KEY}\n", max_retries=1, max_retry_wait=2)
    )

    with pytest.raises(GenviralRetryableError) as caught:
        hook.list_analytics_targets()

    assert seen == [f"Bearer {API_KEY}"] * 2
    assert hook.settings.api_key == API_KEY and API_KEY in hook.settings.secret_forms()
    assert "Authorization: Bearer ***" in str(caught.value)  # redacted where the server quoted it back
    leaks.error(caught.value)
    leaks.assert_clean()  # the retry warning quoted the 502 page too


@pytest.mark.parametrize(
    "echo",
    [
        lambda key: key,
        lambda key: quote(key, safe=""),
        lambda key: json.dumps({"auth": key}),
        lambda key: f"token={key}&x=1",
    ],
)
def test_the_key_is_redacted_from_whatever_the_server_sends_back(
    hostile: Start, leaks: LeakCheck, echo: Callable[[str], str]
) -> None:
    key = "gva_live_x1.a+b/c=d%e\"f\\g'h"  # printable ASCII whose quoted forms all differ
    server = hostile(lambda ex: ex.error(400, f"bad request from {echo(key)}", f"code:{echo(key)}"))
    client = GenviralClient(ClientSettings(base_url=server.url, api_key=key, max_retries=0))

    with pytest.raises(GenviralAPIError) as caught:
        client.get("/analytics/targets", {})
    leaks.error(caught.value)
    assert "***" in str(caught.value)
    for form in {key, quote(key, safe=""), json.dumps(key)[1:-1], "a+b/c=d%e"}:
        assert all(form not in text for text in leaks.texts), form
    leaks.assert_clean(key)


def test_a_huge_error_message_is_cut_when_quoted(hostile: Start, leaks: LeakCheck) -> None:
    huge = "x" * 5_000_000
    server = hostile(lambda ex: ex.error(400, f"{huge} {API_KEY}", "invalid_query"))
    client = GenviralClient(fast_settings(server))

    with pytest.raises(GenviralAPIError) as caught:
        client.get("/analytics/summary/posts", {"limit": "100"})

    message = str(caught.value)
    assert len(message) < MAX_QUOTED_CHARS + 300
    assert "HTTP 400 invalid_query:" in message and "more characters not shown" in message
    assert caught.value.status == 400
    leaks.error(caught.value)
    leaks.assert_clean()


def test_a_huge_non_json_error_page_is_cut_and_redacted(hostile: Start, leaks: LeakCheck) -> None:
    page = ("<html>" + "y" * 190 + f"{API_KEY}" + "z" * 100_000).encode()
    server = hostile(lambda ex: ex.send(502, page, {"Content-Type": "text/html"}))
    client = GenviralClient(fast_settings(server, max_retries=1, max_retry_wait=2))

    with pytest.raises(GenviralRetryableError, match="response body is not a JSON envelope") as caught:
        client.get("/analytics/targets", {})
    assert len(str(caught.value)) < 600
    leaks.error(caught.value)
    leaks.assert_clean()  # a key cut in half at the quote's end would leave its start: redacted before cutting
    assert all(API_KEY[:12] not in text for text in leaks.texts)


ASYNC_MASKING = pytest.mark.needs_airflow("3.3.2", "Asynchronous secret masking in the triggerer")


@pytest.mark.parametrize(
    "async_masking", [pytest.param(True, marks=ASYNC_MASKING), False], ids=["airflow-3.3.2+", "before-3.3.2"]
)
def test_a_trigger_reading_the_connection_masks_every_form_of_the_key_as_a_worker_does(
    hostile: Start, genviral_connection: Any, monkeypatch: pytest.MonkeyPatch, async_masking: bool
) -> None:
    from genviral_provider import version_compat

    monkeypatch.setattr(version_compat, "_ASYNC_MASKING", async_masking)
    key = f"gva_live_{async_masking}.a+b/c=d%e\"f\\g'h"  # a fresh key per case, whose quoted forms all differ
    server = hostile(lambda ex: ex.error(500, "unused"))
    hook = GenviralHook(genviral_conn_id=genviral_connection(server, password=key))

    settings = asyncio.run(hook.aget_settings())

    assert settings.api_key == key
    for form in settings.secret_forms():
        assert form not in masked(f"the server said {form}."), form
