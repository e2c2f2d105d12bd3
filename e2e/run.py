"""The end-to-end run: a real Airflow on PostgreSQL, S3 and the sandbox, checked the way users run the provider.

``make e2e`` installs what is missing and runs this; ``python -m e2e --only discovery,local`` runs some phases.
Phases run in order; a failed phase is reported and the next one still runs (each re-reads what it needs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e import checks, freshness, iceberg, manual, partition, sensor, ui
from e2e.backfill import BackfillOutcome, TaskKiller, run_backfill, wait_for_scheduled_run
from e2e.checks import CheckResult, PartialReader
from e2e.data import Listing, Row, days_between
from e2e.deployment import POSTS_DAG, REPO, Deployment, Layout
from e2e.services import Services, say

PHASES = (
    "discovery",
    "lock",
    "local",
    "reprocess",
    "sensor",
    "freshness",
    "manual",
    "ui",
    "iceberg",
    "partition",
    "celery",
)
MAX_ACTIVE_RUNS = 4
#: Sandbox faults during the re-backfill: a token bucket of one request refilled at 1/s (at 3/s the ~100 requests of
#: the re-backfill, 0.3 s each, came in no burst above it: no 429 in a measured run), 5% random 500/502/503, and
#: 0.3 s per request so that tasks run long enough to be killed mid-way.
FAULTS = {"rate_limit": 1, "error_rate": 0.05, "latency": 0.3}
#: Seconds a task process has run before the killer SIGKILLs it (it is then reading the API).
KILL_AFTER = 2.0


@dataclass
class Run:
    """State shared by the phases: the deployment, the truth, and what has been measured."""

    deployment: Deployment
    results: list[CheckResult] = field(default_factory=list)
    outcomes: list[BackfillOutcome] = field(default_factory=list)
    truth: dict[dt.date, list[Row]] = field(default_factory=dict)
    last_listing: Listing | None = None
    rows_checked: int = 0
    api_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def days(self) -> list[dt.date]:
        """The backfilled days."""
        return days_between(self.deployment.backfill_first, self.deployment.backfill_last)

    def record(self, result: CheckResult) -> None:
        """Keep a result and print it at once."""
        self.results.append(result)
        print(f"  [{'PASS' if result.passed else 'FAIL'}] {result.name}: {result.detail}", flush=True)

    def load_truth(self) -> None:
        """Read the sandbox's posts of the backfilled days and their neighbours (no faults may be set)."""
        first, last = self.days[0] - dt.timedelta(days=1), self.days[-1] + dt.timedelta(days=1)
        self.truth = self.deployment.sandbox.posts_by_day(days_between(first, last))

    def backfill(
        self, label: str, *, reprocess: str | None, observers: Sequence[Callable[[], None]] = ()
    ) -> BackfillOutcome:
        """Run one backfill of the days over the DAG and keep its outcome."""
        d = self.deployment
        outcome = run_backfill(
            d.cli,
            d.api,
            label=label,
            dag_id=POSTS_DAG,
            first=self.days[0],
            last=self.days[-1],
            max_active_runs=MAX_ACTIVE_RUNS,
            reprocess=reprocess,
            observers=observers,
        )
        self.outcomes.append(outcome)
        return outcome

    def check_output(self) -> Listing:
        """Check the S3 output against the truth; return what was read."""
        listing = self.deployment.s3.posts_listing()
        # A day outside the backfill has a folder only if the scheduler ran it (e.g. after midnight UTC): read its
        # posts now, inserted ones included.
        for day in set(listing.folders) - set(self.days):
            self.truth[day] = self.deployment.sandbox.posts_on(day)
        self.record(checks.output_exact(listing, self.truth, self.days))
        self.last_listing = listing
        self.rows_checked += sum(len(folder.rows) for folder in listing.folders.values())
        return listing


# ---------------------------------------------------------------------------------------- phases


def phase_discovery(run: Run) -> None:
    """The provider is an installed package, and Airflow's CLI and UI list it and its connection type."""
    run.record(checks.provider_installed(run.deployment.cli))
    run.record(checks.provider_discovered(run.deployment.cli, run.deployment.api))


def phase_local(run: Run) -> None:
    """A 30-day backfill on LocalExecutor, several runs at once: every run succeeds, the output is exact."""
    wait_for_scheduled_run(run.deployment.api, POSTS_DAG)
    outcome = run.backfill("LocalExecutor backfill", reprocess=None)
    run.record(checks.runs_succeeded(outcome, run.days, reran=False))
    run.record(checks.ran_in_parallel(outcome))
    run.check_output()


def phase_reprocess(run: Run) -> None:
    """The backfill again with ``--reprocess-behavior completed``, while the sandbox rate-limits and fails 5% of
    requests and one task's process is SIGKILLed mid-task: the same data, nothing partial ever visible."""
    d = run.deployment
    before = run.last_listing or d.s3.posts_listing()
    d.sandbox.reset()
    d.sandbox.set_faults(**FAULTS)
    killer = TaskKiller(d.component_sessions, target="task", after=KILL_AFTER)
    reader = PartialReader(d.s3, run.truth)
    try:
        outcome = run.backfill("LocalExecutor re-backfill", reprocess="completed", observers=[killer, reader])
    finally:
        stats = run.api_stats = d.sandbox.stats()
        d.sandbox.reset()
    outcome.kills = killer.kills
    run.record(checks.runs_succeeded(outcome, run.days, reran=True))
    run.record(checks.faults_seen(stats, outcome))
    run.record(checks.killed_task_retried(outcome, killer.kills, d.locate_try))
    run.record(reader.result(outcome.label))
    after = run.check_output()
    run.record(checks.same_data(before, after, outcome))


def phase_sensor(run: Run) -> None:
    """The deferrable sensor waits in the triggerer, completes on insert, and times out naming missing ids."""
    for result in sensor.run_sensor_checks(run.deployment):
        run.record(result)


def phase_freshness(run: Run) -> None:
    """The daily DAG against a lagging cache: its freshness gate defers in the triggerer while free refreshes run,
    then yesterday is published whole, without a credit spent."""
    for result in freshness.run_freshness_checks(run.deployment, run.truth):
        run.record(result)


def phase_manual(run: Run) -> None:
    """Each example DAG triggered through the REST API without a logical date, as Airflow 3 does by default:
    each run succeeds and writes what it should."""
    for result in manual.run_manual_checks(run.deployment, run.truth):
        run.record(result)


def phase_ui(run: Run) -> None:
    """The connection form in headless Chromium: the Genviral type, its fields, and the Test button."""
    for result in ui.run_ui_checks(run.deployment):
        run.record(result)


def phase_lock(run: Run) -> None:
    """The folder sink's publish lock on S3: a conditional PUT (If-None-Match) that the store really refuses."""
    run.record(checks.s3_publish_lock(run.deployment.s3))


def phase_iceberg(run: Run) -> None:
    """A 7-day backfill into the Iceberg table genviral.posts (SQL catalog on PostgreSQL, warehouse on S3) with
    faults and a kill, a day re-run while a new day commits: exact, and no scan ever sees a partial day."""
    for result in iceberg.run_iceberg_checks(run.deployment, KILL_AFTER):
        run.record(result)


def phase_partition(run: Run) -> None:
    """A DAG on CronPartitionTimetable: its scheduled run, a backfill and a run triggered by partition key, none of
    them with a data interval, each write the day their partition key names, exactly."""
    for result in partition.run_partition_checks(run.deployment):
        run.record(result)


def phase_celery(run: Run) -> None:
    """The backfill again on CeleryExecutor (Redis broker, two workers), the worker process running one task
    SIGKILLed mid-task: still exact, nothing partial ever visible."""
    d = run.deployment
    d.switch_to_celery(workers=2)
    d.sandbox.set_faults(latency=FAULTS["latency"])
    killer = TaskKiller(d.component_sessions, target="supervisor", after=KILL_AFTER)
    reader = PartialReader(d.s3, run.truth)
    try:
        outcome = run.backfill("CeleryExecutor backfill", reprocess="completed", observers=[killer, reader])
    finally:
        d.sandbox.reset()
    outcome.kills = killer.kills
    run.record(checks.runs_succeeded(outcome, run.days, reran=True))
    run.record(checks.ran_in_parallel(outcome))
    run.record(checks.celery_workers_used(d.layout.logs, ["celery-worker1", "celery-worker2"]))
    run.record(checks.killed_task_retried(outcome, killer.kills, d.locate_try))
    run.record(reader.result(outcome.label))
    run.check_output()


PHASE_FUNCTIONS: dict[str, Callable[[Run], None]] = {
    "discovery": phase_discovery,
    "lock": phase_lock,
    "local": phase_local,
    "reprocess": phase_reprocess,
    "sensor": phase_sensor,
    "freshness": phase_freshness,
    "manual": phase_manual,
    "ui": phase_ui,
    "iceberg": phase_iceberg,
    "partition": phase_partition,
    "celery": phase_celery,
}


# ---------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m e2e", description=__doc__)
    parser.add_argument("--output", type=Path, default=REPO / ".e2e", help="folder for logs, screenshots (emptied)")
    parser.add_argument("--dags", type=Path, default=REPO / "dags", help="the DAGs folder to deploy")
    parser.add_argument("--only", default=",".join(PHASES), help=f"comma-separated phases of: {', '.join(PHASES)}")
    parser.add_argument("--keep-running", action="store_true", help="leave everything running until Ctrl-C")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected phases; print the summary; return 0 only if every check passed."""
    args = parse_args(argv)
    phases = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        raise SystemExit(f"unknown phases {unknown}: choose from {', '.join(PHASES)}")
    started = time.monotonic()
    layout = Layout(args.output.resolve())
    layout.reset()
    with Services() as services:
        deployment = Deployment(layout, services, args.dags.resolve())
        run = Run(deployment)
        ready = _timed("start the stack", run, deployment.start) and _timed("read the truth", run, run.load_truth)
        for name in phases if ready else []:
            say(f"== {name}: {' '.join((PHASE_FUNCTIONS[name].__doc__ or '').split())}")
            _timed(name, run, lambda name=name: PHASE_FUNCTIONS[name](run))  # type: ignore[misc]
        if args.keep_running:
            _wait_for_interrupt(deployment)
    # Every process is stopped and every log flushed: now check that, and scan the logs.
    run.record(checks.nothing_left_running(services.sessions, [deployment.postgres.data_root]))
    exempt = [layout.logs / "sandbox.log"]  # the sandbox issues the key and prints it, as Genviral's dashboard does
    run.record(checks.no_secret_in_logs(deployment.log_files(), _secret_parts(deployment.api_key), exempt))
    return _summarise(run, time.monotonic() - started, layout)


def _timed(label: str, run: Run, step: Callable[[], None]) -> bool:
    """Run a step; record an exception as a failed check. Return whether it finished without one."""
    began = time.monotonic()
    try:
        step()
        return True
    except Exception as error:
        run.record(CheckResult(label, False, f"{type(error).__name__}: {error}"))
        traceback.print_exc()
        return False
    finally:
        say(f"{label}: {time.monotonic() - began:.0f}s")


def _secret_parts(api_key: str) -> list[str]:
    return [api_key, api_key.partition(".")[2]]


def _wait_for_interrupt(deployment: Deployment) -> None:
    print(f"Airflow UI: {deployment.settings.api_url} (admin / {deployment.settings.admin_password}); Ctrl-C stops")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass


def _summarise(run: Run, seconds: float, layout: Layout) -> int:
    failed = [result for result in run.results if not result.passed]
    runs = sum(len(outcome.runs) for outcome in run.outcomes)
    tries = sum(len(outcome.tries) for outcome in run.outcomes)
    retries = sum(outcome.retries for outcome in run.outcomes)
    rows = sum(len(folder.rows) for folder in run.last_listing.folders.values()) if run.last_listing else 0
    print("\n==== end-to-end summary ====")
    for outcome in run.outcomes:
        print(
            f"  {outcome.label}: {len(outcome.runs)} runs, {len(outcome.tries)} tries, {outcome.retries} retries, "
            f"{len(outcome.kills)} kills, {outcome.seconds:.0f}s"
        )
    print(f"  backfills: {len(run.outcomes)}; runs: {runs}; task tries: {tries}; retries seen: {retries}")
    print(
        f"  rows in S3: {rows} in {len(run.last_listing.folders) if run.last_listing else 0} day folders; "
        f"{run.rows_checked} rows compared with the sandbox's in all"
    )
    if run.api_stats:
        by_status = run.api_stats.get("by_status", {})
        errors = sum(n for status, n in by_status.items() if int(status) >= 500)
        print(
            f"  API during the faulty backfill: {run.api_stats.get('total')} requests, {by_status.get('429', 0)} "
            f"answered 429 and {errors} answered 5xx, all retried by the hook"
        )
    print(f"  time taken: {seconds / 60:.1f} min ({seconds:.0f}s); output: {layout.root}")
    for result in failed:
        print(f"  FAILED {result.name}: {result.detail}")
    print(f"e2e: {len(run.results) - len(failed)} passed, {len(failed)} failed")
    summary = {
        "seconds": round(seconds, 1),
        "runs": runs,
        "tries": tries,
        "retries": retries,
        "rows": rows,
        "checks": [{"name": r.name, "passed": r.passed, "detail": r.detail} for r in run.results],
    }
    (layout.root / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if failed else 0
