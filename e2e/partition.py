"""The partitioned phase: a DAG on ``CronPartitionTimetable`` (Airflow 3.2+), whose runs know only a partition key.

Its runs have no data interval, and a backfill's have no logical date either: ``run_after`` is the partition's date
itself, a day before the scheduled run of the same partition. The operator is given no dates. Its scheduled run, a
3-day backfill and a run triggered through the REST API with a ``partition_key`` and no logical date must each write
the day their key names, exactly (before 5c88677 a backfilled partition wrote the day before it).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from e2e.airflow import TERMINAL_RUN_STATES, run_day
from e2e.backfill import run_backfill
from e2e.checks import CheckResult, output_exact, runs_succeeded
from e2e.data import Listing, S3Output, days_between
from e2e.deployment import Deployment
from e2e.sensor import wait_for_run
from e2e.services import say, wait_until

PARTITION_DAG = "genviral_posts_partitioned"
DAG_FILE = Path(__file__).parent / "partitioned_dag.py"
#: The DAG writes under ``<output base>/partitioned/posts/``, beside the daily DAG's folders.
SUBFOLDER = "partitioned"
#: The backfill's partitions (days ago, inclusive), and the partition triggered by hand; yesterday is the scheduled
#: run's (``run_offset=-1``).
BACKFILL_FROM_AGO, BACKFILL_TO_AGO = 4, 2
TRIGGERED_AGO = 6
#: ``CronPartitionTimetable``'s default ``key_format``.
KEY_FORMAT = "%Y-%m-%dT%H:%M:%S"


def run_partition_checks(deployment: Deployment) -> list[CheckResult]:
    """Deploy the partitioned DAG, backfill 3 partitions, trigger one by key; check each wrote its own day."""
    version = importlib.metadata.version("apache-airflow")
    if tuple(int(part) for part in version.split(".")[:2]) < (3, 2):
        return [CheckResult("partitioned DAG", True, f"skipped: Airflow {version} has no partitioned timetables")]
    d = deployment
    today = dt.datetime.now(dt.timezone.utc).date()
    days = days_between(today - dt.timedelta(days=BACKFILL_FROM_AGO), today - dt.timedelta(days=BACKFILL_TO_AGO))
    triggered_day = today - dt.timedelta(days=TRIGGERED_AGO)
    d.sandbox.reset()
    truth = d.sandbox.posts_by_day(days_between(triggered_day, today))
    _deploy_dag(d)
    outcome = run_backfill(
        d.cli,
        d.api,
        label="partitioned backfill",
        dag_id=PARTITION_DAG,
        first=days[0],
        last=days[-1],
        max_active_runs=4,
    )
    run_id = _trigger(d, triggered_day)
    state = wait_for_run(d, run_id, timeout=300, dag_id=PARTITION_DAG)
    _wait_all_finished(d)
    listing = S3Output(d.s3.endpoint_url, d.s3.bucket, f"{d.s3.prefix}/{SUBFOLDER}").posts_listing()
    return [
        runs_succeeded(outcome, days, reran=False),
        _triggered(state, run_id, triggered_day),
        output_exact(listing, truth, [triggered_day, *days]),
        written_by_own_partition(listing, d.api.dag_runs(PARTITION_DAG)),
    ]


def _deploy_dag(d: Deployment) -> None:
    shutil.copy(DAG_FILE, d.settings.dags_folder / f"{PARTITION_DAG}.py")
    d.api.wait_dag_parsed(PARTITION_DAG)
    d.api.patch(f"/dags/{PARTITION_DAG}", {"is_paused": False})  # backfill runs stay queued while it is paused


def _trigger(d: Deployment, day: dt.date) -> str:
    run_id = f"e2e_partition__{int(time.time())}_{uuid.uuid4().hex[:6]}"
    key = dt.datetime.combine(day, dt.time()).strftime(KEY_FORMAT)
    d.api.post(f"/dags/{PARTITION_DAG}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "partition_key": key})
    say(f"partition: triggered {PARTITION_DAG} run {run_id} with partition_key {key} and no logical date")
    return run_id


def _wait_all_finished(d: Deployment) -> None:
    """Wait for the scheduled run too (if the scheduler made one), so that every folder is published."""
    wait_until(
        lambda: all(run["state"] in TERMINAL_RUN_STATES for run in d.api.dag_runs(PARTITION_DAG)),
        timeout=300,
        what=f"every run of {PARTITION_DAG} to finish",
        interval=2,
    )


def _triggered(state: str, run_id: str, day: dt.date) -> CheckResult:
    problems = [] if state == "success" else [f"expected run {run_id} to succeed, found {state}"]
    return CheckResult.of(
        "partitioned DAG: a run triggered with a partition_key and no logical date succeeds",
        problems,
        f"run {run_id} for partition {day} succeeded",
    )


def written_by_own_partition(listing: Listing, runs: list[dict[str, Any]]) -> CheckResult:
    """Each successful run's partition day has a folder, and that folder was published by that run."""
    problems, checked = [], 0
    for run in runs:
        day = run_day(run)
        if run["state"] != "success" or day is None:
            continue
        checked += 1
        folder = listing.folders.get(day)
        writer = ((folder.manifest or {}) if folder is not None else {}).get("run", {}).get("run_id")
        if writer != run["dag_run_id"]:
            problems.append(
                f"expected {run['run_type']} run {run['dag_run_id']} (partition_key {run.get('partition_key')}) to "
                f"write {day}, that folder was written by {writer}"
            )
    if not checked:
        problems.append("expected successful partitioned runs, found none")
    return CheckResult.of(
        "partitioned DAG: each run wrote the day its partition key names",
        problems,
        f"{checked} runs (scheduled, backfill, manual), each the writer of its partition's folder",
    )
