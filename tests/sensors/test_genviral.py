"""GenviralPostAnalyticsSensor in real DAG runs (`dag.test()`, triggers inline) against the sandbox.

Posts are inserted once the sensor has searched three times (they may be found by the third), so every mode
really waits.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import re
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.exceptions import (
    GenviralAPIError,
    GenviralAuthError,
    GenviralError,
    GenviralInvalidParameterError,
)
from genviral_provider.sandbox import SandboxServer
from genviral_provider.sensors.genviral import GenviralPostAnalyticsSensor
from genviral_provider.triggers.genviral import GenviralPostAnalyticsTrigger
from genviral_provider.version_compat import AirflowSensorTimeout, AirflowSkipException, TaskDeferred
from tests.sensors.conftest import SensorRun, searches

FAST = {"poke_interval": 0.5, "timeout": 20}
RunSensor = Callable[..., SensorRun]
InsertWhenPolled = Callable[..., None]


def post_rows(genviral_post_id: str, external_id: str | None = None, accounts: int = 1) -> list[dict[str, Any]]:
    """Rows of one post published to `accounts` accounts (one row each)."""
    return [{"genviralPostId": genviral_post_id, "externalId": external_id} for _ in range(accounts)]


def analytics_ids_of(server: SandboxServer, name: str, value: str) -> list[str]:
    """Return the analyticsId of each of the sandbox's rows whose `name` is `value`."""
    return [row["analyticsId"] for row in server.dataset.rows if row.get(name) == value]


# ------------------------------------------------------------------------------------------- waiting


#: Airflow 3.0's dag.test() hands a rescheduled sensor its first reschedule date as a string (apache/airflow#58777).
RESCHEDULE_IN_DAG_TEST = pytest.mark.needs_airflow("3.1", "dag.test() of a reschedule-mode sensor")


def test_a_post_to_more_accounts_of_one_platform_than_a_page_holds_is_found_whole(
    live_sandbox: SandboxServer, run_sensor: RunSensor
) -> None:
    tiktok = [target.id for target in live_sandbox.dataset.targets if target.platform == "tiktok"][:2]
    tie = [{"genviralPostId": f"tie-{n}", "targetId": tiktok[n % 2]} for n in range(150)]
    live_sandbox.insert_posts(tie)  # 150 rows at one instant (now), in one platform

    ids = [row["genviralPostId"] for row in tie]
    run = run_sensor("sensor_tie", genviral_post_ids=ids, platforms=["tiktok"], mode="poke", **FAST)

    assert run.state == "success", run.error
    assert sorted(run.xcom) == sorted(ids)
    assert run.xcom["tie-7"] == analytics_ids_of(live_sandbox, "genviralPostId", "tie-7")


@pytest.mark.parametrize("mode", ["poke", pytest.param("reschedule", marks=RESCHEDULE_IN_DAG_TEST)])
def test_waits_for_every_post_and_returns_its_analytics_ids(
    mode: str, live_sandbox: SandboxServer, insert_when_polled: InsertWhenPolled, run_sensor: RunSensor
) -> None:
    insert_when_polled(live_sandbox, post_rows("post-a", accounts=2) + post_rows("post-b"))

    run = run_sensor(f"sensor_{mode}", genviral_post_ids=["post-a", "post-b"], mode=mode, **FAST)

    assert run.state == "success", run.error
    assert sorted(run.xcom) == ["post-a", "post-b"]
    assert [len(run.xcom["post-a"]), len(run.xcom["post-b"])] == [2, 1]
    assert sorted(run.xcom["post-a"]) == sorted(analytics_ids_of(live_sandbox, "genviralPostId", "post-a"))
    assert searches(live_sandbox) > 2  # two searches in vain at least, then the one that found them


def test_deferrable_waits_in_the_trigger(
    live_sandbox: SandboxServer, insert_when_polled: InsertWhenPolled, run_sensor: RunSensor
) -> None:
    insert_when_polled(live_sandbox, post_rows("post-d", accounts=3))

    run = run_sensor("sensor_deferrable", genviral_post_ids=["post-d"], deferrable=True, **FAST)

    assert run.state == "success", run.error
    assert list(run.xcom) == ["post-d"]
    assert sorted(run.xcom["post-d"]) == sorted(analytics_ids_of(live_sandbox, "genviralPostId", "post-d"))
    assert len(run.xcom["post-d"]) == 3
    assert searches(live_sandbox) > 2


def test_match_any_succeeds_with_the_ids_found(
    live_sandbox: SandboxServer, insert_when_polled: InsertWhenPolled, run_sensor: RunSensor
) -> None:
    insert_when_polled(live_sandbox, post_rows("post-found"))

    run = run_sensor("sensor_any", genviral_post_ids=["post-never", "post-found"], match="any", **FAST)

    assert run.state == "success", run.error
    assert list(run.xcom) == ["post-found"]


def test_external_ids_are_matched(
    live_sandbox: SandboxServer, insert_when_polled: InsertWhenPolled, run_sensor: RunSensor
) -> None:
    insert_when_polled(live_sandbox, post_rows("post-x", external_id="automation-42", accounts=2))

    run = run_sensor("sensor_external", external_ids=["automation-42"], deferrable=True, **FAST)

    assert run.state == "success", run.error
    assert list(run.xcom) == ["automation-42"]
    assert sorted(run.xcom["automation-42"]) == sorted(analytics_ids_of(live_sandbox, "externalId", "automation-42"))
    assert len(run.xcom["automation-42"]) == 2


def test_ids_templated_from_an_upstream_xcom(
    live_sandbox: SandboxServer, insert_when_polled: InsertWhenPolled, run_sensor: RunSensor
) -> None:
    insert_when_polled(live_sandbox, post_rows("post-up-1") + post_rows("post-up-2"))
    upstream = "task(lambda: ['post-up-1', 'post-up-2'], task_id='create')() >> wait"

    run = run_sensor(
        "sensor_templated",
        upstream=upstream,
        genviral_post_ids="{{ ti.xcom_pull(task_ids='create') }}",
        **FAST,
    )

    assert run.state == "success", run.error
    assert sorted(run.xcom) == ["post-up-1", "post-up-2"]


# ------------------------------------------------------------------------------------------- failing


@pytest.mark.parametrize("deferrable", [False, True])
def test_timeout_names_the_missing_ids(deferrable: bool, live_sandbox: SandboxServer, run_sensor: RunSensor) -> None:
    live_sandbox.insert_posts(post_rows("post-here"))  # found by every search, however few fit in the timeout

    run = run_sensor(
        f"sensor_timeout_{deferrable}",
        genviral_post_ids=["post-here", "post-lost"],
        external_ids=["ext-lost"],
        poke_interval=0.5,
        timeout=1.5,
        deferrable=deferrable,
    )

    assert run.state == "failed"
    assert run.error is not None
    assert "timed out" in run.error
    assert "genviral_post_ids ['post-lost'] and external_ids ['ext-lost']" in run.error
    assert "found 1 of 3" in run.error


def test_timeout_with_soft_fail_skips(live_sandbox: SandboxServer, run_sensor: RunSensor) -> None:
    run = run_sensor("sensor_soft_fail", genviral_post_ids=["post-lost"], poke_interval=0.5, timeout=1, soft_fail=True)

    assert run.state == "skipped"


@pytest.mark.parametrize("deferrable", [False, True])
def test_refused_key_fails_at_once(
    deferrable: bool, live_sandbox: SandboxServer, genviral_connection: Any, run_sensor: RunSensor
) -> None:
    genviral_connection(live_sandbox, password="gva_live_wrong.key", max_retry_wait=5)

    run = run_sensor(
        f"sensor_auth_{deferrable}", genviral_post_ids=["post-a"], poke_interval=0.5, timeout=60, deferrable=deferrable
    )

    assert run.state == "failed"
    assert run.error is not None and "HTTP 401" in run.error and "invalid_token" in run.error
    assert "gva_live_wrong.key" not in run.error
    assert live_sandbox.stats.total == 1  # neither retried nor poked again until the 60 s timeout


def test_blank_id_fails_before_any_request(live_sandbox: SandboxServer, run_sensor: RunSensor) -> None:
    run = run_sensor("sensor_blank", genviral_post_ids=["post-a", " "], **FAST)

    assert run.state == "failed"
    assert run.error is not None and "blank id ' '" in run.error
    assert live_sandbox.stats.total == 0


# ------------------------------------------------------------------------------- without a DAG run


def sensor(**kwargs: Any) -> GenviralPostAnalyticsSensor:
    arguments: dict[str, Any] = {
        "task_id": "wait",
        "genviral_post_ids": ["post-a", "post-b"],
        "external_ids": ["ext-c"],
        "since": "2026-01-01T00:00:00Z",
        "poke_interval": 5,
        "timeout": 60,
    }
    return GenviralPostAnalyticsSensor(**{**arguments, **kwargs})


def test_template_fields() -> None:
    assert GenviralPostAnalyticsSensor.template_fields == (
        "genviral_post_ids",
        "external_ids",
        "since",
        "platforms",
        "accounts",
        "genviral_conn_id",
    )


def test_unknown_match_fails_when_the_task_starts_not_when_the_dag_is_parsed() -> None:
    parsed = sensor(match="most")  # __init__ only assigns
    logical_date = dt.datetime(2026, 3, 10, 12, tzinfo=dt.timezone.utc)

    with pytest.raises(GenviralInvalidParameterError, match="Unknown match 'most'"):
        parsed._prepare({"logical_date": logical_date})  # type: ignore[typeddict-item]


def test_since_defaults_to_a_day_before_the_logical_date() -> None:
    logical_date = dt.datetime(2026, 3, 10, 12, tzinfo=dt.timezone.utc)
    query = sensor(since=None)._prepare({"logical_date": logical_date})  # type: ignore[typeddict-item]

    assert query.since == dt.datetime(2026, 3, 9, 12, tzinfo=dt.timezone.utc)


def test_since_defaults_to_a_day_before_run_after_without_a_logical_date() -> None:
    class DagRun:
        run_after = dt.datetime(2026, 3, 10, 12, tzinfo=dt.timezone.utc)

    query = sensor(since=None)._prepare({"logical_date": None, "dag_run": DagRun()})  # type: ignore[typeddict-item]

    assert query.since == dt.datetime(2026, 3, 9, 12, tzinfo=dt.timezone.utc)


def test_deferrable_execute_pokes_once_then_defers_with_json_kwargs(
    genviral_sandbox: SandboxServer, sandbox_conn: str
) -> None:
    task = sensor(deferrable=True, since="2026-01-14T00:00:00Z", platforms="tiktok,instagram")

    with pytest.raises(TaskDeferred) as deferred:
        task.execute({})

    trigger = deferred.value.trigger
    assert isinstance(trigger, GenviralPostAnalyticsTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["genviral_post_ids"] == ["post-a", "post-b"]
    assert kwargs["external_ids"] == ["ext-c"]
    assert kwargs["since"] == "2026-01-14T00:00:00+00:00"
    assert kwargs["platforms"] == ["tiktok", "instagram"]
    assert kwargs["genviral_conn_id"] == "genviral_default"
    assert deferred.value.method_name == "execute_complete"
    assert genviral_sandbox.stats.total >= 1  # the poke before deferring


def test_execute_complete_returns_the_analytics_ids_of_a_success_event() -> None:
    found = {"post-a": ["analytics-1", "analytics-2"], "ext-c": ["analytics-3"]}
    event = {"status": "success", "found": found, "missing": ["post-b"]}

    assert sensor().execute_complete({}, event) == found


def test_execute_complete_names_the_missing_ids_of_a_timeout_event() -> None:
    found = {"post-a": ["analytics-1"]}
    event = {"status": "timeout", "found": found, "missing": ["post-b", "ext-c"], "message": "late"}

    with pytest.raises(AirflowSensorTimeout, match=r"genviral_post_ids \['post-b'\] and external_ids \['ext-c'\]"):
        sensor().execute_complete({}, event)


def test_execute_complete_skips_a_timeout_with_soft_fail() -> None:
    event = {"status": "timeout", "found": {}, "missing": ["post-a", "post-b", "ext-c"], "message": "late"}

    with pytest.raises(AirflowSkipException, match="post-a"):
        sensor(soft_fail=True).execute_complete({}, event)


def test_execute_complete_raises_the_providers_error_of_an_error_event() -> None:
    event = {
        "status": "error",
        "message": "API key not found",
        "error_type": "GenviralAuthError",
        "status_code": 401,
        "error_code": "invalid_token",
        "request": "GET /analytics/summary/posts",
    }

    with pytest.raises(GenviralAuthError, match=r"HTTP 401 invalid_token: API key not found") as caught:
        sensor().execute_complete({}, event)
    assert caught.value.status == 401


@pytest.mark.parametrize(
    ("error_type", "status_code", "error"),
    [("GenviralAuthError", 401, GenviralAuthError), ("GenviralAPIError", 400, GenviralAPIError)],
)
def test_soft_fail_after_deferral_fails_on_a_refused_key_or_bad_request(
    error_type: str, status_code: int, error: type[Exception]
) -> None:
    event = {
        "status": "error",
        "message": "refused",
        "error_type": error_type,
        "status_code": status_code,
        "error_code": None,
        "request": "GET /analytics/summary/posts",
    }

    with pytest.raises(error, match="refused"):
        sensor(soft_fail=True).resume_execution("execute_complete", {"event": event}, {})


def test_soft_fail_after_deferral_skips_on_the_timeout() -> None:
    event = {"status": "timeout", "found": {}, "missing": ["post-a", "post-b", "ext-c"], "message": "late"}

    with pytest.raises(AirflowSkipException, match="post-a"):
        sensor(soft_fail=True).resume_execution("execute_complete", {"event": event}, {})


@pytest.mark.parametrize(
    "event",
    [
        None,
        {},
        {"status": "done"},
        {"status": "success", "found": []},
        {"status": "success", "found": {"post-a": [{"analyticsId": "analytics-1"}]}, "missing": []},  # rows
    ],
)
def test_execute_complete_refuses_a_malformed_event(event: Any) -> None:
    with pytest.raises(GenviralError, match="Genviral trigger"):
        sensor().execute_complete({}, event)


# ------------------------------------------------------------------------------------------ the docs


def test_the_documented_example_runs(live_sandbox: SandboxServer, run_dag_file: Callable[..., Any]) -> None:
    docs = pathlib.Path(__file__).parents[2] / "docs" / "sensor.md"
    source = re.search(r"```python\n(.*?)```", docs.read_text(), re.DOTALL)
    assert source is not None
    live_sandbox.insert_posts(post_rows("d0e1d35c-d34c-4503-afe8-3c56e4aa1911", accounts=2))

    dag_run = run_dag_file(source.group(1), "genviral_post_report")

    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states == {"create_posts": "success", "wait_for_analytics": "success", "report": "success"}
