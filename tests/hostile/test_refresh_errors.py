"""Issue 21: a refresh error that quotes the key is redacted everywhere; one target whose refresh the API refuses
(404, 400) is skipped and named, and every other target is refreshed."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.exceptions import GenviralRefreshFailedError
from genviral_provider.operators.refresh import GenviralRefreshAnalyticsOperator
from genviral_provider.sensors.genviral import GenviralAnalyticsFreshnessSensor
from genviral_provider.triggers.genviral import GenviralAnalyticsRefreshTrigger, validate_refresh_event
from tests.hostile.conftest import LeakCheck
from tests.hostile.server import API_KEY, Exchange, HostileServer

Start = Callable[..., HostileServer]
STALE = "2026-01-14T12:00:00Z"
FRESH_AFTER = "2026-01-15T00:00:00+00:00"  # in the past: refreshes may start at once
#: What a server may say when a refresh fails: it quotes the request, key included (raw and JSON-escaped).
QUOTING_ERROR = f"upstream refused 'Authorization: Bearer {API_KEY}' ({json.dumps({'token': API_KEY})})"


class RefreshApi:
    """Targets ``t1``..``t3``, all stale; refreshes of ``refused`` answer ``status``; the others end ``outcome``."""

    def __init__(self, *, refused: dict[str, int] | None = None, outcome: str = "completed") -> None:
        self.refused = refused or {}
        self.outcome = outcome
        self.started: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, exchange: Exchange) -> None:
        parts = exchange.path.strip("/").split("/")  # api/partner/v1/analytics/...
        if exchange.path.endswith("/analytics/targets"):
            targets = [
                {"id": f"t{n}", "platform": "tiktok", "identifier": f"@t{n}", "last_refreshed_at": STALE,
                 "free_refresh_available": True}
                for n in (1, 2, 3)
            ]  # fmt: skip
            exchange.ok({"workspace_id": None, "targets": targets})
        elif exchange.method == "POST" and parts[-1] == "refresh":
            target = parts[-2]
            if target in self.refused:
                status = self.refused[target]
                code = "target_not_found" if status == 404 else "missing_target_id"
                exchange.error(status, f"no target {target}", code)
                return
            with self._lock:
                self.started.append(target)
            exchange.ok({"refresh": self._refresh(target, "pending"), "wasFree": True})
        else:
            target = parts[-1].removeprefix("r-")
            exchange.ok(self._refresh(target, self.outcome))

    def _refresh(self, target: str, status: str) -> dict[str, Any]:
        ended = status in ("completed", "failed")
        return {
            "id": f"r-{target}",
            "target_id": target,
            "status": status,
            "credits_used": 0,
            "free_refresh_used": True,
            "started_at": "2026-01-15T01:00:00Z",
            "completed_at": "2026-01-15T01:01:00Z" if ended else None,
            "error": QUOTING_ERROR if status == "failed" else None,
        }


def _logged(capsys: pytest.CaptureFixture[str], leaks: LeakCheck) -> str:
    out, err = capsys.readouterr()  # the task logger writes to the console
    leaks.text(out, err)
    return out + err


def _operator(server: HostileServer, genviral_connection: Any) -> GenviralRefreshAnalyticsOperator:
    conn_id = genviral_connection(server, max_retries=0)
    return GenviralRefreshAnalyticsOperator(
        task_id="refresh", poll_interval=0.1, timeout=10, deferrable=False, genviral_conn_id=conn_id
    )


def test_a_failed_refresh_quoting_the_key_fails_the_task_without_it(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, capsys: pytest.CaptureFixture[str]
) -> None:
    server = hostile(RefreshApi(outcome="failed"), max_requests=30)

    with pytest.raises(GenviralRefreshFailedError, match=r"target t1: refresh r-t1 failed: upstream refused") as error:
        _operator(server, genviral_connection).execute({})

    assert "***" in leaks.error(error.value)
    _logged(capsys, leaks)
    leaks.assert_clean()


def test_the_gates_log_shows_a_failed_refresh_without_the_key(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, capsys: pytest.CaptureFixture[str]
) -> None:
    server = hostile(RefreshApi(outcome="failed"), max_requests=30)
    sensor = GenviralAnalyticsFreshnessSensor(
        task_id="gate", fresh_after=FRESH_AFTER, genviral_conn_id=genviral_connection(server, max_retries=0)
    )

    assert sensor.poke({}).is_done is False  # starts the refreshes
    assert sensor.poke({}).is_done is False  # reads that they failed

    logged = _logged(capsys, leaks)
    assert "refresh r-t1 failed: upstream refused 'Authorization: Bearer ***'" in logged
    leaks.assert_clean()


def test_the_trigger_carries_a_failed_refresh_without_the_key(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck
) -> None:
    server = hostile(RefreshApi(outcome="failed"), max_requests=30)
    trigger = GenviralAnalyticsRefreshTrigger(
        genviral_conn_id=genviral_connection(server, max_retries=0), poll_interval=0.5, end_time=time.time() + 10
    )

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    [payload] = asyncio.run(collect())  # one event, whatever happens
    event = validate_refresh_event(payload)

    assert event["result"]["targets"]["t1"]["error"].startswith("upstream refused 'Authorization: Bearer ***'")
    leaks.text(event)
    leaks.assert_clean()


@pytest.mark.parametrize("status", [404, 400])
def test_one_refused_target_is_skipped_and_named_and_the_others_are_refreshed(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, capsys: pytest.CaptureFixture[str], status: int
) -> None:
    api = RefreshApi(refused={"t2": status})
    server = hostile(api, max_requests=30)

    result = _operator(server, genviral_connection).execute({})

    assert sorted(api.started) == ["t1", "t3"]
    assert {t: e["status"] for t, e in result["targets"].items()} == {
        "t1": "completed",
        "t2": "not_refreshed",
        "t3": "completed",
    }
    assert list(result["skipped_targets"]) == ["t2"]
    assert f"HTTP {status}" in result["skipped_targets"]["t2"]
    logged = _logged(capsys, leaks)
    assert "Skipped analytics target t2: the API refused its refresh" in logged
    assert "Not refreshed: t2" not in logged  # not the advice about credits: credits would not help
    leaks.assert_clean()


def test_the_gate_refreshes_the_others_when_one_target_is_refused(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, capsys: pytest.CaptureFixture[str]
) -> None:
    api = RefreshApi(refused={"t1": 404})
    server = hostile(api, max_requests=30)
    sensor = GenviralAnalyticsFreshnessSensor(
        task_id="gate", fresh_after=FRESH_AFTER, genviral_conn_id=genviral_connection(server, max_retries=0)
    )

    assert sensor.poke({}).is_done is False

    assert sorted(api.started) == ["t2", "t3"]
    logged = _logged(capsys, leaks)
    assert "@t1 (t1)" in logged and "skipped: the API refused its refresh" in logged
    leaks.assert_clean()
