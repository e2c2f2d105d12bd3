"""Issue 21: freshness proven by nothing — no targets, or a refresh time in the future — never passes the gate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.core.freshness.gate import NO_TARGETS
from genviral_provider.sensors.genviral import GenviralAnalyticsFreshnessSensor
from tests.hostile.conftest import LeakCheck
from tests.hostile.server import Exchange, HostileServer

Start = Callable[..., HostileServer]
FRESH_AFTER = "2026-01-15T00:00:00+00:00"


class _At:
    def __init__(self, url: str, api_key: str) -> None:
        self.url, self.api_key = url, api_key


def _targets(*targets: dict[str, Any]) -> Callable[[Exchange], None]:
    def behave(exchange: Exchange) -> None:
        if exchange.path.endswith("/analytics/targets"):
            exchange.ok({"workspace_id": None, "targets": list(targets)})
        else:
            exchange.ok({})  # the gate must not need anything else to refuse

    return behave


def _logged(capsys: pytest.CaptureFixture[str], leaks: LeakCheck) -> str:
    out, err = capsys.readouterr()  # the task logger writes to the console
    leaks.text(out, err)
    return out + err


def _poke(server: HostileServer, genviral_connection: Any) -> Any:
    conn_id = genviral_connection(_At(f"http://127.0.0.1:{server.port}", server.api_key), max_retries=0)
    sensor = GenviralAnalyticsFreshnessSensor(
        task_id="gate", fresh_after=FRESH_AFTER, free_refreshes=False, genviral_conn_id=conn_id
    )
    return sensor.poke({})


def test_a_key_with_no_targets_is_not_all_fresh(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, capsys: pytest.CaptureFixture[str]
) -> None:
    server = hostile(_targets())

    result = _poke(server, genviral_connection)

    assert result.is_done is False
    assert server.requests == 1
    assert NO_TARGETS in _logged(capsys, leaks)
    leaks.assert_clean()


@pytest.mark.parametrize("suffix", ["Z", "z", "+00:00"])
def test_a_last_refreshed_at_in_the_future_proves_nothing(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S") + suffix
    server = hostile(_targets({"id": "t1", "platform": "tiktok", "identifier": "@a", "last_refreshed_at": future}))

    result = _poke(server, genviral_connection)

    assert result.is_done is False
    assert server.requests == 1  # free refreshes are off: nothing but the listing is sent
    assert "a refresh time in the future proves nothing" in _logged(capsys, leaks)
    leaks.assert_clean()
