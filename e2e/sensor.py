"""The deferrable sensor through the real triggerer: found once the posts are inserted, a timeout naming the rest.

The example DAG waits up to six hours, polling every 30 s. The deployment's cluster policy
(``e2e/airflow_local_settings.py``) shortens both for this run, the way an operator would tune a deployment.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from e2e.airflow import FINISHED_TASK_STATES, TERMINAL_RUN_STATES
from e2e.checks import CheckResult
from e2e.data import Row
from e2e.deployment import SENSOR_DAG, SENSOR_TIMEOUT, Deployment
from e2e.services import say, wait_until

SENSOR_TASK = "wait_for_analytics"


@dataclass
class SensorRun:
    """One triggered run of the sensor DAG and the ids it waits for."""

    run_id: str
    post_ids: list[str]
    triggered: float = field(default_factory=time.monotonic)


def run_sensor_checks(deployment: Deployment) -> list[CheckResult]:
    """Trigger both scenarios at once (the timeout one mostly waits), then check each; return their results."""
    found = _trigger(deployment, "e2e_sensor_found", [str(uuid.uuid4()) for _ in range(3)])
    missing = _trigger(deployment, "e2e_sensor_timeout", [f"never-{uuid.uuid4()}" for _ in range(2)])
    return [found_after_insert(deployment, found), times_out_naming_missing(deployment, missing)]


def found_after_insert(deployment: Deployment, run: SensorRun) -> CheckResult:
    """Once the task is deferred, insert the posts: the run succeeds and writes exactly their rows to S3."""
    name = "sensor: deferred, then found once the posts are inserted"
    deferred = wait_for_task_state(deployment, run.run_id, SENSOR_TASK, {"deferred"}, timeout=180)
    if deferred != "deferred":
        return CheckResult(name, False, f"expected {SENSOR_TASK} to defer, found state {deferred}")
    say(f"sensor: {run.run_id} is deferred; inserting its {len(run.post_ids)} posts into the sandbox")
    inserted = deployment.sandbox.insert([_partial_row(post_id) for post_id in run.post_ids])
    state = wait_for_run(deployment, run.run_id, timeout=SENSOR_TIMEOUT + 60)
    problems = [] if state == "success" else [f"expected run {run.run_id} to succeed after the insert, found {state}"]
    written = _correlated_rows(deployment, run.run_id)
    expected, found = {row["id"] for row in inserted}, {str(row.get("id")) for row in written}
    if found != expected:
        problems.append(f"expected rows {sorted(expected)} in S3 correlated/, found {sorted(found)}")
    return CheckResult.of(
        name,
        problems,
        f"{SENSOR_TASK} deferred to the triggerer{_triggerer_mentions(deployment)}; {len(run.post_ids)} posts "
        f"inserted; the run succeeded and wrote their {len(written)} rows to S3",
    )


def times_out_naming_missing(deployment: Deployment, run: SensorRun) -> CheckResult:
    """Ids that never appear: the run fails at the sensor's timeout, and the task log names every one."""
    name = "sensor: times out naming the missing ids"
    deferred = wait_for_task_state(deployment, run.run_id, SENSOR_TASK, {"deferred"}, timeout=180)
    state = wait_for_run(deployment, run.run_id, timeout=SENSOR_TIMEOUT + 180)
    waited = time.monotonic() - run.triggered
    problems = []
    if deferred not in ("deferred", "failed"):
        problems.append(f"expected {SENSOR_TASK} to defer first, found {deferred}")
    if state != "failed":
        problems.append(f"expected run {run.run_id} to fail at the sensor's timeout, found {state}")
    log = task_log(deployment, run.run_id, SENSOR_TASK)
    missing_in_log = [post_id for post_id in run.post_ids if post_id not in log]
    if missing_in_log or "timed out" not in log:
        problems.append(f"expected the task log to say it timed out and name {run.post_ids}; it lacks {missing_in_log}")
    return CheckResult.of(
        name,
        problems,
        f"failed {waited:.0f}s after the trigger (sensor timeout {SENSOR_TIMEOUT}s); its log names both missing ids",
    )


def _trigger(deployment: Deployment, prefix: str, post_ids: list[str]) -> SensorRun:
    """Trigger the sensor DAG the way its docstring says, with the ids in the run's conf."""
    run_id = f"{prefix}__{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%S')}"
    conf = json.dumps({"genviral_post_ids": post_ids})
    deployment.cli.run("dags", "trigger", SENSOR_DAG, "--run-id", run_id, "--conf", conf)
    return SensorRun(run_id, post_ids)


def _partial_row(post_id: str) -> Row:
    return {"genviralPostId": post_id, "platform": "tiktok", "publishedAt": _now_iso()}


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _task_state(deployment: Deployment, run_id: str, task_id: str, dag_id: str = SENSOR_DAG) -> str | None:
    ti = deployment.api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
    return None if ti is None else ti.get("state")


def wait_for_task_state(
    deployment: Deployment, run_id: str, task_id: str, wanted: set[str], *, timeout: float, dag_id: str = SENSOR_DAG
) -> str | None:
    """Wait until the task is in one of ``wanted`` (or finished); return the state it was last seen in."""
    seen: list[str | None] = [None]

    def reached() -> bool:
        seen[0] = _task_state(deployment, run_id, task_id, dag_id)
        return seen[0] in wanted or seen[0] in FINISHED_TASK_STATES

    with contextlib.suppress(TimeoutError):
        wait_until(reached, timeout=timeout, what=f"{task_id} of {run_id} to be {wanted}", interval=1)
    return seen[0]


def wait_for_run(deployment: Deployment, run_id: str, *, timeout: float, dag_id: str = SENSOR_DAG) -> str:
    """Wait until the run has finished; return its state (the last seen, at the timeout)."""
    state = ["queued"]

    def finished() -> bool:
        state[0] = deployment.api.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
        return state[0] in TERMINAL_RUN_STATES

    with contextlib.suppress(TimeoutError):
        wait_until(finished, timeout=timeout, what=f"run {run_id} to finish", interval=2)
    return state[0]


def _correlated_rows(deployment: Deployment, run_id: str) -> list[Row]:
    keys = [key for key in deployment.s3.keys("correlated/") if run_id.replace(":", "_") in key]
    return [row for key in keys if key.endswith(".jsonl") for row in deployment.s3.read_jsonl(key)]


def task_log(deployment: Deployment, run_id: str, task_id: str, dag_id: str = SENSOR_DAG) -> str:
    """Return the text of the task's latest try's log, through the REST API."""
    ti = deployment.api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{ti['try_number']}"
    body: Any = deployment.api.request(
        "GET", path, params={"full_content": "true"}, headers={"Accept": "application/json"}
    )
    return json.dumps(body.get("content", body) if isinstance(body, dict) else body)


def _triggerer_mentions(deployment: Deployment, trigger: str = "GenviralPostAnalyticsTrigger") -> str:
    log = deployment.layout.logs / "triggerer.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return " (the triggerer's log shows its trigger)" if trigger in text else ""
