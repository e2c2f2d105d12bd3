"""GenviralAnalyticsRefreshTrigger: serialization, and `run()` driving refreshes against a lagging sandbox."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.sandbox import SandboxServer
from genviral_provider.triggers.genviral import GenviralAnalyticsRefreshTrigger, validate_refresh_event

UTC = dt.timezone.utc
WINDOW_END = dt.datetime(2026, 1, 15, tzinfo=UTC)


@pytest.fixture
def lagging(genviral_sandbox_factory: Callable[..., SandboxServer], genviral_connection: Any) -> SandboxServer:
    """The default sandbox (clock 2026-01-15T12:00Z), every target last refreshed at 2026-01-14T12:00Z."""
    server = genviral_sandbox_factory(targets_refreshed_at=WINDOW_END - dt.timedelta(hours=12), refresh_seconds=0.2)
    genviral_connection(server, max_retry_wait=2)
    return server


def run_trigger(**kwargs: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {"poll_interval": 0.5, "end_time": time.time() + 20, **kwargs}

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in GenviralAnalyticsRefreshTrigger(**arguments).run()]

    [event] = asyncio.run(collect())
    return validate_refresh_event(event)


def test_serialize_round_trips_through_json_and_carries_no_key() -> None:
    trigger = GenviralAnalyticsRefreshTrigger(
        target_ids=["t1"],
        platforms=["tiktok"],
        free_refreshes=True,
        max_paid_refreshes=2,
        fresh_after="2026-01-15T00:00:00+00:00",
        state={"refreshes": {}, "paid_started": 1, "attempts": {"t1": 1}},
        genviral_conn_id="genviral_other",
        poll_interval=10.0,
        end_time=1_770_000_000.5,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "genviral_provider.triggers.genviral.GenviralAnalyticsRefreshTrigger"
    rebuilt = GenviralAnalyticsRefreshTrigger(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)
    assert "gva_" not in json.dumps(kwargs)


def test_the_gate_refreshes_free_and_succeeds_once_the_refreshes_complete(lagging: SandboxServer) -> None:
    event = run_trigger(fresh_after=WINDOW_END.isoformat())

    assert event["status"] == "success"
    targets = event["result"]["targets"]
    assert set(targets) == {target.id for target in lagging.dataset.targets}
    assert all(entry["proof"] == "last_refreshed_at" for entry in targets.values())
    assert event["result"]["credits_used"] == 0 and all(r["wasFree"] for r in lagging.refreshes())


def test_the_gate_times_out_naming_each_stale_target_and_why(lagging: SandboxServer) -> None:
    lagging.refresh_ledger.set_free_refresh_used(True)
    target = lagging.dataset.targets[0]

    event = run_trigger(fresh_after=WINDOW_END.isoformat(), target_ids=[target.id], end_time=time.time() + 1.5)

    assert event["status"] == "timeout"
    assert f"{target.platform} {target.identifier} ({target.id}) last refreshed 2026-01-14T12:00:00" in event["message"]
    assert "set max_paid_refreshes" in event["message"]
    assert lagging.refreshes() == []


def test_the_gate_reports_an_unknown_target_as_an_error_without_refreshing(lagging: SandboxServer) -> None:
    event = run_trigger(fresh_after=WINDOW_END.isoformat(), target_ids=["no-such-target"])

    assert event["status"] == "error" and "'no-such-target' are not visible to this key" in event["message"]
    assert lagging.refreshes() == []


def test_a_batch_follows_its_refreshes_to_the_end_and_resumes_from_state(lagging: SandboxServer) -> None:
    target = lagging.dataset.targets[0]
    refresh = lagging.refresh_ledger.start_refresh(target.id)[0]
    state = {
        "refreshes": {target.id: {**refresh, "refresh_id": refresh["id"]}},
        "paid_started": 0,
        "attempts": {target.id: 1},
    }

    event = run_trigger(target_ids=[target.id], state=state)

    assert event["status"] == "success"
    assert event["result"]["targets"][target.id]["status"] == "completed"
    assert event["result"]["targets"][target.id]["refresh_id"] == refresh["id"]
    assert len(lagging.refreshes()) == 1  # resumed the started refresh, did not start another
