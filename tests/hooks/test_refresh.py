"""GenviralHook's targets and refreshes, over HTTP against the sandbox's analytics cache."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.core.freshness.gate import FreshnessGate, RefreshBatch
from genviral_provider.core.freshness.refresh import RefreshPolicy, RefreshStatus, TargetSelection
from genviral_provider.exceptions import (
    GenviralInsufficientCreditsError,
    GenviralInvalidParameterError,
    GenviralRefreshConflictError,
    GenviralRefreshRateLimitedError,
    GenviralTargetNotFoundError,
)
from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.sandbox import SandboxServer

UTC = dt.timezone.utc


@pytest.fixture
def cache(genviral_sandbox_factory: Callable[..., SandboxServer], genviral_connection: Any) -> SandboxServer:
    """The default sandbox with fast refreshes and 2 credits, as connection `genviral_default`."""
    server = genviral_sandbox_factory(refresh_seconds=0.2, credits=2)
    genviral_connection(server, max_retry_wait=2)
    return server


def first_target(server: SandboxServer) -> str:
    return server.dataset.targets[0].id


def wait_until_ended(hook: GenviralHook, refresh_id: str) -> list[RefreshStatus]:
    seen: list[RefreshStatus] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        refresh = hook.get_analytics_refresh(refresh_id)
        if not seen or seen[-1] is not refresh.status:
            seen.append(refresh.status)
        if refresh.status.is_terminal():
            return seen
        time.sleep(0.05)
    raise AssertionError(f"refresh {refresh_id} did not end: {seen}")


def test_targets_keep_every_field_the_api_sends(cache: SandboxServer) -> None:
    [row, *_] = GenviralHook().list_analytics_targets()
    assert {"id", "target_id", "platform", "identifier", "display_name", "last_refreshed_at"} <= set(row)
    assert "free_refresh_available" in row


def test_targets_are_read_as_records_and_selected(cache: SandboxServer) -> None:
    targets = GenviralHook().get_analytics_targets(platforms=["youtube"])
    assert targets and {target.platform for target in targets} == {"youtube"}
    assert all(target.last_refreshed_at == cache.current_time() for target in targets)


def test_a_free_refresh_runs_to_completion(cache: SandboxServer) -> None:
    hook = GenviralHook()
    refresh = hook.refresh_analytics_target(first_target(cache))

    assert refresh.was_free is True and refresh.credits_used == 0 and refresh.status is RefreshStatus.PENDING
    assert wait_until_ended(hook, refresh.id)[-1] is RefreshStatus.COMPLETED
    assert hook.get_analytics_refresh(refresh.id).completed_at is not None


def test_one_target_reads_with_its_summary(cache: SandboxServer) -> None:
    data = GenviralHook().get_analytics_target(first_target(cache))
    assert data["target"]["id"] == first_target(cache) and "summary" in data


def test_a_running_refresh_is_a_conflict_to_wait_for(cache: SandboxServer) -> None:
    hook = GenviralHook()
    hook.refresh_analytics_target(first_target(cache))
    with pytest.raises(GenviralRefreshConflictError, match=f"analytics target {first_target(cache)}: a refresh"):
        hook.refresh_analytics_target(first_target(cache))


def test_a_paid_refresh_spends_credits_and_402_follows_when_they_run_out(cache: SandboxServer) -> None:
    hook = GenviralHook()
    target_id = first_target(cache)
    cache.refresh_ledger.set_free_refresh_used(True)
    for _ in range(2):
        refresh = hook.refresh_analytics_target(target_id)
        assert refresh.was_free is False and refresh.credits_used == 1
        wait_until_ended(hook, refresh.id)
    with pytest.raises(GenviralInsufficientCreditsError, match=f"analytics target {target_id}: its free refresh"):
        hook.refresh_analytics_target(target_id)
    assert cache.credits == 0


def test_too_many_refreshes_are_rate_limited(
    genviral_sandbox_factory: Callable[..., SandboxServer], genviral_connection: Any
) -> None:
    server = genviral_sandbox_factory(refresh_seconds=0, credits=10, max_refreshes_per_minute=1)
    genviral_connection(server, max_retry_wait=2)
    hook = GenviralHook()
    hook.refresh_analytics_target(first_target(server))
    with pytest.raises(GenviralRefreshRateLimitedError, match="too many refreshes"):
        hook.refresh_analytics_target(first_target(server))
    assert server.stats.by_status.get(429) == 1  # sent once: never retried


def test_an_unknown_target_is_not_found(cache: SandboxServer) -> None:
    with pytest.raises(GenviralTargetNotFoundError, match="analytics target nope: no such target"):
        GenviralHook().refresh_analytics_target("nope")


def test_malformed_ids_are_refused_before_any_request(cache: SandboxServer) -> None:
    hook = GenviralHook()
    for call in (hook.refresh_analytics_target, hook.get_analytics_refresh, hook.get_analytics_target):
        with pytest.raises(GenviralInvalidParameterError, match=r"'\.\./targets' is not a valid id"):
            call("../targets")
    with pytest.raises(GenviralInvalidParameterError, match="'x y'"):
        hook.get_analytics_targets(target_ids=["x y"])
    assert cache.stats.total == 0


def test_the_hook_drives_a_batch_and_a_gate_to_their_end(
    genviral_sandbox_factory: Callable[..., SandboxServer], genviral_connection: Any
) -> None:
    server = genviral_sandbox_factory(
        refresh_seconds=0.2, targets_refreshed_at=dt.datetime(2026, 1, 14, 12, tzinfo=UTC)
    )
    genviral_connection(server, max_retry_wait=2)
    hook = GenviralHook()
    gate = FreshnessGate(
        selection=TargetSelection.parse(platforms="tiktok"),
        policy=RefreshPolicy(),
        fresh_after=dt.datetime(2026, 1, 15, tzinfo=UTC),
    )
    deadline = time.monotonic() + 10
    while not gate.done:
        hook.run_refresh_round(gate)
        assert time.monotonic() < deadline, gate.describe_stale()
        time.sleep(0.1)
    assert {refresh["target_id"] for refresh in server.refreshes()} == {t.id for t in gate.targets}

    batch = RefreshBatch(selection=TargetSelection.parse(platforms="tiktok"), policy=RefreshPolicy())
    hook.run_refresh_round(batch)
    assert batch.done and all(entry["status"] == "not_refreshed" for entry in batch.result()["targets"].values())
