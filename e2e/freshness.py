"""Complete days through the real triggerer: the daily DAG's freshness gate defers, the free refreshes complete,
and the day the lagging cache held only half of is published whole.

The sandbox's targets are made to lag (last refreshed at noon of yesterday, UTC) and its refreshes to take a while,
so that the gate's first check starts the free refreshes and then defers. The deployment's cluster policy
(``e2e/airflow_local_settings.py``) shortens the gate's poke interval for this run.
"""

from __future__ import annotations

import datetime as dt
import time

from e2e.checks import CheckResult
from e2e.data import Row
from e2e.deployment import POSTS_DAG, Deployment
from e2e.sensor import task_log, wait_for_run, wait_for_task_state
from e2e.services import say

GATE_TASK = "wait_for_fresh_analytics"
#: How long a sandbox refresh takes here: long enough for the gate to defer before it completes.
REFRESH_SECONDS = 20


def run_freshness_checks(deployment: Deployment, truth: dict[dt.date, list[Row]]) -> list[CheckResult]:
    """Lag the cache, run yesterday through the DAG, check the gate deferred, spent nothing and the day is whole."""
    today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    day = (today - dt.timedelta(days=1)).date()
    sandbox = deployment.sandbox
    sandbox.apply_settings(refresh_seconds=REFRESH_SECONDS, credits=5)
    sandbox.lag_targets(today - dt.timedelta(hours=12))
    served = len(sandbox.posts_on(day))
    say(f"freshness: the cache lags; it serves {served} of the {len(truth[day])} posts of {day}")
    run_id = f"e2e_freshness__{today.strftime('%Y%m%dT%H%M%S')}_{int(time.time())}"
    started = time.monotonic()
    # A manual run with logical date D covers the whole day before it: [D - 1 day, D).
    deployment.cli.run("dags", "trigger", POSTS_DAG, "--run-id", run_id, "--logical-date", today.isoformat())
    try:
        gate_state = wait_for_task_state(deployment, run_id, GATE_TASK, {"deferred"}, timeout=180, dag_id=POSTS_DAG)
        state = wait_for_run(deployment, run_id, timeout=REFRESH_SECONDS + 240, dag_id=POSTS_DAG)
        ledger = sandbox.refreshes()
        log = task_log(deployment, run_id, GATE_TASK, dag_id=POSTS_DAG)
    finally:
        sandbox.reset()  # live again, refreshes and credits forgotten: the next phases see every post
    seconds = time.monotonic() - started
    return [
        _gate_deferred(deployment, gate_state, state, log),
        _nothing_bought(ledger, served, len(truth[day])),
        _day_whole(deployment, day, truth[day], run_id, seconds),
    ]


def _gate_deferred(deployment: Deployment, gate_state: str | None, state: str, log: str) -> CheckResult:
    problems = []
    if gate_state != "deferred":
        problems.append(f"expected {GATE_TASK} to defer while the refreshes ran, found {gate_state}")
    if state != "success":
        problems.append(f"expected the run to succeed once the refreshes completed, found {state}")
    if "Analytics are fresh after" not in log:
        problems.append("expected the gate's log to say the analytics are fresh")
    triggerer = deployment.layout.logs / "triggerer.log"
    seen = triggerer.exists() and "GenviralAnalyticsRefreshTrigger" in triggerer.read_text(errors="replace")
    return CheckResult.of(
        "freshness: the gate defers until the refreshes complete",
        problems,
        f"{GATE_TASK} deferred{' (the triggerer ran GenviralAnalyticsRefreshTrigger)' if seen else ''}; run {state}",
    )


def _nothing_bought(ledger: dict[str, object], served: int, total: int) -> CheckResult:
    refreshes = [r for r in ledger.get("refreshes", []) if isinstance(r, dict) and not r.get("scheduled")]
    paid = [r for r in refreshes if not r.get("wasFree")]
    problems = []
    if served >= total:
        problems.append(f"expected the lagging cache to hide posts of the day, it served {served} of {total}")
    if not refreshes:
        problems.append("expected the gate to start free refreshes, found none")
    if paid or ledger.get("credits") != 5:
        problems.append(f"expected no credit spent, found {len(paid)} paid refreshes, {ledger.get('credits')} left")
    return CheckResult.of(
        "freshness: free refreshes only",
        problems,
        f"{len(refreshes)} refreshes, all free; credits untouched (the cache served {served} of {total} before)",
    )


def _day_whole(deployment: Deployment, day: dt.date, expected: list[Row], run_id: str, seconds: float) -> CheckResult:
    folder = deployment.s3.posts_listing().folders.get(day)
    written = {str(row.get("id")) for row in folder.rows} if folder is not None else set()
    wanted = {str(row.get("id")) for row in expected}
    problems = [] if written == wanted else [f"expected {len(wanted)} posts of {day}, found {len(written)}"]
    manifest = (folder.manifest or {}) if folder is not None else {}
    writer = manifest.get("run", {}).get("run_id")
    if writer != run_id:  # the backfills wrote this day before: the folder must be this run's
        problems.append(f"expected the folder of {day} written by {run_id}, its manifest names {writer}")
    if manifest.get("freshness", {}).get("covered") is not True:
        problems.append(f"expected the manifest to say the cache covered the day, found {manifest.get('freshness')}")
    return CheckResult.of(
        "freshness: the lagging day is published whole",
        problems,
        f"{len(written)} posts of {day} in S3, exactly the sandbox's, {seconds:.0f}s after the trigger",
    )
