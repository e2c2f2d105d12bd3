"""GenviralPostAnalyticsTrigger: JSON-primitive serialization, and `run()` against the sandbox on the real clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from genviral_provider.sandbox import POSTS_PATH, TARGETS_PATH, Dataset, SandboxServer
from genviral_provider.triggers.genviral import GenviralPostAnalyticsTrigger, validate_event
from tests.conftest import serde_round_trip

CLASSPATH = "genviral_provider.triggers.genviral.GenviralPostAnalyticsTrigger"


@pytest.fixture
def live_sandbox(genviral_sandbox_factory: Callable[..., SandboxServer], genviral_connection: Any) -> SandboxServer:
    """A sandbox on the real clock with 2 days x 150 rows up to today, as connection `genviral_default`."""
    today = dt.datetime.now(dt.timezone.utc).date()
    dataset = Dataset.generate(start=today - dt.timedelta(days=1), days=2, rows_per_day=150, seed=2)
    server = genviral_sandbox_factory(dataset=dataset, now=None)
    genviral_connection(server, max_retry_wait=5)
    return server


@pytest.fixture
def insert_after_searches() -> Iterator[Callable[[SandboxServer, list[dict[str, Any]], int], None]]:
    """Return a function that inserts rows into a sandbox once it has seen that many searches (in a thread).

    Counting searches, not seconds, keeps the test's story (searched, slept, searched again) true at any speed.
    """
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def schedule(server: SandboxServer, rows: list[dict[str, Any]], count: int) -> None:
        def insert() -> None:
            while searches(server) < count:
                if stop.wait(0.02):
                    return
            server.insert_posts(rows)

        threads.append(threading.Thread(target=insert, daemon=True))
        threads[-1].start()

    yield schedule
    stop.set()
    for thread in threads:
        thread.join()


def searches(server: SandboxServer) -> int:
    """Count the searches a sandbox has seen: each starts at the first page of the posts."""
    return sum(1 for record in server.stats.requests if record.path == POSTS_PATH and record.query["offset"] == "0")


def trigger(**kwargs: Any) -> GenviralPostAnalyticsTrigger:
    arguments: dict[str, Any] = {
        "genviral_post_ids": ["post-a"],
        "since": (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=6)).isoformat(),
        "poke_interval": 0.5,
        "end_time": time.time() + 60,  # a bound only: every test but the timeouts ends long before
    }
    return GenviralPostAnalyticsTrigger(**{**arguments, **kwargs})


def run_events(instance: GenviralPostAnalyticsTrigger) -> tuple[list[dict[str, Any]], float]:
    """Run the trigger to its end; return every event's payload and when it ended (``time.time()``)."""

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in instance.run()]

    events = asyncio.run(collect())
    return events, time.time()


# ------------------------------------------------------------------------------------------ serialize


def full_trigger() -> GenviralPostAnalyticsTrigger:
    return GenviralPostAnalyticsTrigger(
        genviral_post_ids=["post-a", "post-b"],
        external_ids=["ext-c"],
        match="any",
        since="2026-01-10T12:00:00+00:00",
        platforms=["tiktok"],
        accounts=["target-1", "target-2"],
        genviral_conn_id="genviral_other",
        poke_interval=30.0,
        end_time=1_770_000_000.5,
    )


def test_serialize_returns_the_classpath_and_every_argument() -> None:
    classpath, kwargs = full_trigger().serialize()

    assert classpath == CLASSPATH
    assert kwargs == {
        "genviral_post_ids": ["post-a", "post-b"],
        "external_ids": ["ext-c"],
        "match": "any",
        "since": "2026-01-10T12:00:00+00:00",
        "platforms": ["tiktok"],
        "accounts": ["target-1", "target-2"],
        "genviral_conn_id": "genviral_other",
        "poke_interval": 30.0,
        "end_time": 1_770_000_000.5,
    }


def test_serialize_round_trips_through_json_exactly() -> None:
    _, kwargs = full_trigger().serialize()

    rebuilt = GenviralPostAnalyticsTrigger(**json.loads(json.dumps(kwargs)))

    assert rebuilt.serialize() == full_trigger().serialize()


def test_serialize_round_trips_through_airflows_serde() -> None:
    _, kwargs = full_trigger().serialize()

    rebuilt = GenviralPostAnalyticsTrigger(**serde_round_trip(kwargs))

    assert rebuilt.serialize() == full_trigger().serialize()


def test_serialize_carries_the_connection_id_never_the_key(live_sandbox: SandboxServer) -> None:
    assert live_sandbox.api_key not in json.dumps(trigger().serialize())


# ---------------------------------------------------------------------------------------------- run


def test_run_succeeds_once_the_posts_arrive(
    live_sandbox: SandboxServer, insert_after_searches: Callable[..., None]
) -> None:
    insert_after_searches(live_sandbox, [{"genviralPostId": "post-a"}, {"genviralPostId": "post-a"}], 3)
    started = time.time()

    events, ended = run_events(trigger(genviral_post_ids=["post-a"], external_ids=["ext-b"], match="any"))

    assert len(events) == 1
    event = validate_event(events[0])
    assert event["status"] == "success"
    assert list(event["found"]) == ["post-a"] and len(event["found"]["post-a"]) == 2
    matched = [row["analyticsId"] for row in live_sandbox.dataset.rows if row.get("genviralPostId") == "post-a"]
    assert sorted(event["found"]["post-a"]) == sorted(matched)  # the analytics ids, not the rows
    assert event["missing"] == ["ext-b"]
    assert searches(live_sandbox) > 2  # two searches in vain at least, then the one that found them
    assert ended - started >= 2 * 0.5  # sleeping a poke interval between searches


def test_run_finds_a_tie_too_large_for_one_platform_one_account_of_the_keys_targets_at_a_time(
    live_sandbox: SandboxServer,
) -> None:
    tiktok = [target.id for target in live_sandbox.dataset.targets if target.platform == "tiktok"][:2]
    published = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).isoformat(timespec="milliseconds")
    tie = [
        {"publishedAt": published.replace("+00:00", "Z"), "targetId": tiktok[n % 2], "genviralPostId": f"tie-{n}"}
        for n in range(150)
    ]
    live_sandbox.insert_posts(tie)  # one post to 150 TikTok accounts at once: more than a page, in one platform

    events, _ = run_events(trigger(genviral_post_ids=[row["genviralPostId"] for row in tie], platforms=["tiktok"]))

    event = validate_event(events[0])
    assert event["status"] == "success" and event["missing"] == []
    assert len(event["found"]) == 150
    assert sum(1 for record in live_sandbox.stats.requests if record.path == TARGETS_PATH) == 1


def test_run_times_out_at_end_time_naming_the_missing_ids(live_sandbox: SandboxServer) -> None:
    live_sandbox.insert_posts([{"externalId": "ext-here"}])
    end_time = time.time() + 1.5

    events, ended = run_events(trigger(genviral_post_ids=["post-lost"], external_ids=["ext-here"], end_time=end_time))

    assert len(events) == 1
    event = validate_event(events[0])
    assert event["status"] == "timeout"
    assert event["missing"] == ["post-lost"]
    assert list(event["found"]) == ["ext-here"]
    assert event["message"] == "still missing genviral_post_ids ['post-lost']"
    assert event["detail"] is None
    assert ended >= end_time
    assert searches(live_sandbox) <= 1 + 1.5 / 0.5  # a search per poke interval at most: it slept in between


def test_run_reports_a_refused_key_at_once(live_sandbox: SandboxServer, genviral_connection: Any) -> None:
    genviral_connection(live_sandbox, password="gva_live_wrong.secret")

    events, _ = run_events(trigger())

    assert len(events) == 1
    event = validate_event(events[0])
    assert event["status"] == "error"
    assert (event["error_type"], event["status_code"], event["error_code"]) == (
        "GenviralAuthError",
        401,
        "invalid_token",
    )
    assert "gva_live_wrong.secret" not in json.dumps(event)
    assert live_sandbox.stats.total == 1  # not searched again until end_time


def test_run_retries_transient_server_errors(live_sandbox: SandboxServer) -> None:
    live_sandbox.insert_posts([{"genviralPostId": "post-a"}])
    live_sandbox.faults.script = ["500", "503"]

    events, _ = run_events(trigger())

    assert [event["status"] for event in events] == ["success"]
    assert live_sandbox.stats.by_status[500] == live_sandbox.stats.by_status[503] == 1


def test_run_searches_again_after_the_retries_give_up(live_sandbox: SandboxServer, genviral_connection: Any) -> None:
    genviral_connection(live_sandbox, max_retries=0)
    live_sandbox.insert_posts([{"genviralPostId": "post-a"}])
    live_sandbox.faults.script = ["503", "503"]
    started = time.time()

    events, ended = run_events(trigger())

    assert [event["status"] for event in events] == ["success"]
    assert live_sandbox.stats.by_status[503] == 2  # each failed search's first request, not retried
    assert searches(live_sandbox) == 3
    assert ended - started >= 2 * 0.5  # sleeping a poke interval after each failed search


def test_run_says_at_the_deadline_that_the_last_search_failed(
    live_sandbox: SandboxServer, genviral_connection: Any
) -> None:
    genviral_connection(live_sandbox, max_retries=0)
    live_sandbox.faults.error_rate = 1.0

    events, _ = run_events(trigger(end_time=time.time() + 1.5))

    assert [event["status"] for event in events] == ["timeout"]
    assert "the last search failed" in events[0]["detail"] and "HTTP 50" in events[0]["detail"]


def test_run_reports_a_missing_connection(live_sandbox: SandboxServer) -> None:
    events, _ = run_events(trigger(genviral_conn_id="genviral_missing"))

    assert len(events) == 1
    assert events[0]["status"] == "error"
    assert "genviral_missing" in events[0]["message"]


def test_run_reports_invalid_arguments_without_a_request(live_sandbox: SandboxServer) -> None:
    events, _ = run_events(trigger(genviral_post_ids=["post-a", "post-a"]))

    assert events[0]["status"] == "error"
    assert events[0]["error_type"] == "GenviralInvalidParameterError"
    assert "'post-a' more than once" in events[0]["message"]
    assert live_sandbox.stats.total == 0


def test_run_reads_the_connection_in_a_thread_where_airflow_masks_secrets_synchronously(
    live_sandbox: SandboxServer, genviral_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genviral_provider import version_compat

    monkeypatch.setattr(version_compat, "_ASYNC_MASKING", False)  # as on Airflow 3.2.0 to 3.3.1
    genviral_connection(live_sandbox, max_retries=0)
    live_sandbox.insert_posts([{"genviralPostId": "post-a"}])
    live_sandbox.faults.script = ["503"]

    events, _ = run_events(trigger())

    assert [event["status"] for event in events] == ["success"]
    assert live_sandbox.stats.by_status[503] == 1  # max_retries=0 from the extras: searched again, not retried
