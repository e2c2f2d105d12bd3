"""Every example DAG triggered the way Airflow 3's UI and REST API do by default: without a logical date.

Such a run has no data interval, and templates that need one fail. Each DAG is triggered through
``POST /api/v2/dags/{dag_id}/dagRuns`` with ``"logical_date": null``, and what it wrote is checked against the
sandbox.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from e2e.checks import CheckResult
from e2e.data import Row
from e2e.deployment import POSTS_DAG, SENSOR_DAG, Deployment
from e2e.sensor import wait_for_run
from e2e.services import say

METRICS_DAG = "genviral_metrics_refresh"
#: The metrics DAG's default: unpausing it also starts its latest scheduled run, which writes the same folder.
LOOKBACK_DAYS = 28


def run_manual_checks(deployment: Deployment, truth: dict[dt.date, list[Row]]) -> list[CheckResult]:
    """Trigger the three example DAGs without a logical date at once; check each run's output."""
    deployment.api.patch(f"/dags/{METRICS_DAG}", {"is_paused": False})
    post_ids = [str(uuid.uuid4()) for _ in range(2)]
    inserted = deployment.sandbox.insert([_new_post(post_id) for post_id in post_ids])
    runs = {
        POSTS_DAG: _trigger(deployment, POSTS_DAG, {}),
        METRICS_DAG: _trigger(deployment, METRICS_DAG, {}),
        SENSOR_DAG: _trigger(deployment, SENSOR_DAG, {"genviral_post_ids": post_ids}),
    }
    states = {dag_id: wait_for_run(deployment, run_id, timeout=300, dag_id=dag_id) for dag_id, run_id in runs.items()}
    deployment.api.patch(f"/dags/{METRICS_DAG}", {"is_paused": True})
    today = dt.datetime.now(dt.timezone.utc).date()
    return [
        _posts_day(deployment, truth, runs[POSTS_DAG], states[POSTS_DAG], today - dt.timedelta(days=1)),
        _snapshot(deployment, truth, states[METRICS_DAG], today),
        _correlated(deployment, runs[SENSOR_DAG], states[SENSOR_DAG], inserted),
    ]


def _trigger(deployment: Deployment, dag_id: str, conf: dict[str, Any]) -> str:
    run_id = f"e2e_manual__{int(time.time())}_{uuid.uuid4().hex[:6]}"
    deployment.api.post(f"/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": conf})
    say(f"manual: triggered {dag_id} run {run_id} without a logical date")
    return run_id


def _new_post(post_id: str) -> Row:
    return {"genviralPostId": post_id, "platform": "tiktok", "publishedAt": _minutes_ago(5)}


def _minutes_ago(minutes: int) -> str:
    moment = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _posts_day(
    deployment: Deployment, truth: dict[dt.date, list[Row]], run_id: str, state: str, day: dt.date
) -> CheckResult:
    folder = deployment.s3.posts_listing().folders.get(day)
    written = {str(row.get("id")) for row in folder.rows} if folder is not None else set()
    wanted = {str(row.get("id")) for row in truth[day]}
    writer = ((folder.manifest or {}) if folder is not None else {}).get("run", {}).get("run_id")
    problems = [] if state == "success" else [f"expected the run to succeed, found {state}"]
    if written != wanted or writer != run_id:
        problems.append(f"expected {len(wanted)} posts of {day} written by {run_id}, found {len(written)} by {writer}")
    return CheckResult.of(
        f"manual run without logical date: {POSTS_DAG}",
        problems,
        f"wrote the {len(written)} posts of {day}, the last whole day before it ran",
    )


def _snapshot(deployment: Deployment, truth: dict[dt.date, list[Row]], state: str, today: dt.date) -> CheckResult:
    prefix = f"metrics_snapshots/snapshot_date={today.isoformat()}/"
    keys = [key for key in deployment.s3.keys(prefix) if key.endswith((".jsonl", ".jsonl.gz"))]
    written = {str(row.get("id")) for key in keys for row in deployment.s3.read_jsonl(key)}
    days = [today - dt.timedelta(days=offset) for offset in range(1, LOOKBACK_DAYS + 1)]
    wanted = {str(row.get("id")) for day in days for row in truth.get(day, [])}
    problems = [] if state == "success" else [f"expected the run to succeed, found {state}"]
    if written != wanted:
        problems.append(f"expected the {len(wanted)} posts of {days[-1]}..{days[0]}, found {len(written)}")
    return CheckResult.of(
        f"manual run without logical date: {METRICS_DAG}",
        problems,
        f"snapshot {today} holds the {len(written)} posts of the {LOOKBACK_DAYS} days before it",
    )


def _correlated(deployment: Deployment, run_id: str, state: str, inserted: list[Row]) -> CheckResult:
    keys = [key for key in deployment.s3.keys("correlated/") if key.endswith(".jsonl") and run_id in key]
    written = {str(row.get("id")) for key in keys for row in deployment.s3.read_jsonl(key)}
    wanted = {str(row["id"]) for row in inserted}
    problems = [] if state == "success" else [f"expected the run to succeed, found {state}"]
    if written != wanted:
        problems.append(f"expected rows {sorted(wanted)} in correlated/, found {sorted(written)}")
    return CheckResult.of(
        f"manual run without logical date: {SENSOR_DAG}",
        problems,
        f"found and wrote the {len(written)} rows of its posts",
    )
