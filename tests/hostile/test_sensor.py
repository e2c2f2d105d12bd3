"""Items 8 and 13: TLS failures and refused keys end a sensor's wait at once, in every mode."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.exceptions import GenviralAPIError, GenviralAuthError, GenviralRetryableError
from genviral_provider.sensors.genviral import GenviralPostAnalyticsSensor
from genviral_provider.triggers.genviral import GenviralPostAnalyticsTrigger, error_from_event
from tests.hostile.conftest import LeakCheck
from tests.hostile.server import HostileServer

Start = Callable[..., HostileServer]


class _At:
    def __init__(self, url: str, api_key: str) -> None:
        self.url, self.api_key = url, api_key


def _sensor(conn_id: str, **kwargs: Any) -> GenviralPostAnalyticsSensor:
    return GenviralPostAnalyticsSensor(
        task_id="wait", genviral_post_ids=["post-a"], since="2026-01-01", genviral_conn_id=conn_id, **kwargs
    )


def test_a_tls_failure_fails_the_poke_instead_of_poking_again(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck
) -> None:
    server = hostile(lambda ex: ex.ok({"posts": [], "totalCount": 0, "hasMore": False}))
    conn_id = genviral_connection(_At(f"127.0.0.1:{server.port}", server.api_key), max_retries=5)

    with pytest.raises(GenviralAPIError, match="TLS/certificate failure") as caught:
        _sensor(conn_id).poke({})
    assert not isinstance(caught.value, GenviralRetryableError)
    assert server.connections == 1
    leaks.error(caught.value)
    leaks.assert_clean()


def test_a_tls_failure_ends_the_trigger_with_an_error_event(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck
) -> None:
    server = hostile(lambda ex: ex.ok({"posts": [], "totalCount": 0, "hasMore": False}))
    conn_id = genviral_connection(_At(f"127.0.0.1:{server.port}", server.api_key), max_retries=5)
    trigger = GenviralPostAnalyticsTrigger(
        genviral_post_ids=["post-a"],
        since="2026-01-01T00:00:00+00:00",
        genviral_conn_id=conn_id,
        poke_interval=0.5,
        end_time=time.time() + 30,
    )

    event = asyncio.run(trigger._wait())

    assert event["status"] == "error" and "TLS/certificate failure" in event["message"]
    assert server.connections == 1
    leaks.text(event)
    leaks.assert_clean()


def test_a_refused_key_fails_a_soft_fail_sensor_in_poke_mode(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck
) -> None:
    server = hostile(lambda ex: ex.error(401, "API key not found", "invalid_token"))
    sensor = _sensor(genviral_connection(server), soft_fail=True, poke_interval=0.1, timeout=5)

    with pytest.raises(GenviralAuthError, match="HTTP 401") as caught:
        sensor._poke_until_done({})
    assert server.requests == 1
    leaks.error(caught.value)
    leaks.assert_clean()


@pytest.mark.parametrize(("status", "error"), [(401, GenviralAuthError), (400, GenviralAPIError)])
def test_a_refused_key_or_bad_request_fails_a_soft_fail_sensor_after_deferral(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, status: int, error: type[Exception]
) -> None:
    server = hostile(lambda ex: ex.error(status, "refused", "invalid_token" if status == 401 else "invalid_query"))
    conn_id = genviral_connection(server)
    trigger = GenviralPostAnalyticsTrigger(
        genviral_post_ids=["post-a"],
        since="2026-01-01T00:00:00+00:00",
        genviral_conn_id=conn_id,
        poke_interval=0.5,
        end_time=time.time() + 30,
    )
    event = asyncio.run(trigger._wait())
    assert event["status"] == "error"

    with pytest.raises(error, match=f"HTTP {status}") as caught:
        _sensor(conn_id, soft_fail=True).resume_execution("execute_complete", {"event": event}, {})
    assert isinstance(error_from_event(event), error)
    assert server.requests == 1
    leaks.error(caught.value)
    leaks.text(event)
    leaks.assert_clean()
