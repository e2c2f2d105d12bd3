"""The Iceberg phase: a backfill into ``genviral.posts`` of a SQL catalog on PostgreSQL, its warehouse on S3 (moto).

A 7-day backfill with the sandbox's faults and one task SIGKILLed, while a reader scans the table every two
seconds: each scan must show each day's rows either not at all or complete (one snapshot, never half a commit).
Then a day is re-run while a new day commits beside it; the table ends exact against the sandbox, each post once.
The table is read with pyiceberg straight from the catalog, never through the provider.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from e2e.airflow import TERMINAL_RUN_STATES
from e2e.backfill import BackfillOutcome, TaskKiller, run_backfill, wait_for_scheduled_run
from e2e.checks import CheckResult, PacedObserver, faults_seen, killed_task_retried, ran_in_parallel, runs_succeeded
from e2e.data import Row, days_between
from e2e.deployment import Deployment
from e2e.services import wait_until

ICEBERG_DAG = "genviral_posts_iceberg"
DAG_FILE = Path(__file__).parent / "iceberg_dag.py"
TABLE = "genviral.posts"
#: The catalog's name: its Airflow connection id, under which a SQL catalog keeps the table.
CATALOG = "genviral_iceberg"
#: The backfill covers the 7 days ending 2 days ago (yesterday is the scheduled run's); then the first of them is
#: re-run while the day before it commits for the first time.
BACKFILL_FROM_AGO, BACKFILL_TO_AGO = 8, 2
NEW_DAY_AGO = BACKFILL_FROM_AGO + 1
MAX_ACTIVE_RUNS = 4
#: A window of one day takes a handful of requests, 30 or so for the backfill: to be sure some are refused, the
#: token bucket holds one request (refilled at 1/s, so tasks starting together collide) and 15% fail with 5xx.
FAULTS = {"rate_limit": 1, "error_rate": 0.15, "latency": 0.3}


class TableReader(PacedObserver):
    """An observer that scans the table as a consumer would: every day it shows must be absent or complete.

    :param properties: the catalog's pyiceberg properties.
    :param truth: the sandbox's rows by day; a day missing here is not judged.
    :param every: seconds between scans.
    """

    def __init__(self, properties: Mapping[str, str], truth: Mapping[dt.date, list[Row]], every: float = 2.0) -> None:
        from pyiceberg.catalog import load_catalog

        super().__init__(every)
        self.catalog = load_catalog(CATALOG, **properties)
        self.truth = truth
        self.scans = 0
        self.snapshots: set[int] = set()

    def __call__(self) -> None:
        if not self.due():
            return
        for attempt in range(2):
            try:
                snapshot, ids = self.scan()
                break
            except Exception as error:  # a reader's error is a finding too, once it repeats
                if attempt:
                    self.problems.append(f"scan failed: {type(error).__name__}: {error}")
                    return
        self.scans += 1
        if snapshot is None:
            return
        self.snapshots.add(snapshot)
        counts = Counter(day for day, _ in ids)
        for day, count in sorted(counts.items()):
            expected = len(self.truth[day]) if day in self.truth else None
            if expected is not None and count != expected:
                self.problems.append(f"snapshot {snapshot}: {day} shows {count} rows, expected 0 or {expected}")
        twice = [row_id for row_id, n in Counter(row_id for _, row_id in ids).items() if n > 1]
        self.problems += [f"snapshot {snapshot}: post {row_id} appears twice" for row_id in twice[:3]]

    def scan(self) -> tuple[int | None, list[tuple[dt.date, str]]]:
        """Return the current snapshot id and (UTC day, id) of every row in it (none before the first commit)."""
        from pyiceberg.exceptions import NoSuchTableError

        try:
            table = self.catalog.load_table(TABLE)
        except NoSuchTableError:
            return None, []
        snapshot = table.current_snapshot()
        if snapshot is None:
            return None, []
        data = table.scan(snapshot_id=snapshot.snapshot_id, selected_fields=("id", "publishedAt")).to_arrow()
        days = [instant.astimezone(dt.timezone.utc).date() for instant in data.column("publishedAt").to_pylist()]
        return snapshot.snapshot_id, list(zip(days, (str(i) for i in data.column("id").to_pylist()), strict=True))

    def result(self, label: str) -> CheckResult:
        """Pass when no scan showed a partial day, and the scans saw the table change."""
        problems = list(self.problems)
        if len(self.snapshots) < 2:
            problems.append(f"expected scans of several snapshots while runs committed, saw {len(self.snapshots)}")
        return CheckResult.of(
            f"{label}: no partial day visible",
            problems,
            f"{self.scans} scans of {len(self.snapshots)} snapshots while runs committed: every day 0 or complete",
        )


def run_iceberg_checks(
    deployment: Deployment, kill_after: float, faults: Mapping[str, Any] = FAULTS
) -> list[CheckResult]:
    """Deploy the Iceberg DAG, backfill 7 days with faults and a kill, re-run a day beside a new one; check."""
    d = deployment
    today = dt.datetime.now(dt.timezone.utc).date()
    days = days_between(today - dt.timedelta(days=BACKFILL_FROM_AGO), today - dt.timedelta(days=BACKFILL_TO_AGO))
    new_day = today - dt.timedelta(days=NEW_DAY_AGO)
    d.sandbox.reset()
    truth = d.sandbox.posts_by_day(days_between(new_day, today))  # read now: earlier phases may have inserted
    _deploy_dag(d)
    reader = TableReader(d.iceberg_catalog_properties, truth)
    results: list[CheckResult] = []

    d.sandbox.set_faults(**faults)
    killer = TaskKiller(d.component_sessions, target="task", after=kill_after)
    try:
        first = _backfill(d, "Iceberg backfill", days[0], days[-1], None, [killer, reader])
    finally:
        stats = d.sandbox.stats()
        d.sandbox.reset()
    first.kills = killer.kills
    results += [runs_succeeded(first, days, reran=False), faults_seen(stats, first)]
    results.append(killed_task_retried(first, killer.kills, d.locate_try))

    d.sandbox.set_faults(latency=faults["latency"])  # both runs read for a while, so their commits meet
    try:
        second = _backfill(d, "Iceberg re-run beside a new day", new_day, days[0], "completed", [reader])
    finally:
        d.sandbox.reset()
    results += [runs_succeeded(second, [new_day, days[0]], reran=True), ran_in_parallel(second)]
    results.append(reader.result("Iceberg backfill and re-run"))
    results.append(table_exact(reader, d, truth, [new_day, *days]))
    results.append(rerun_committed(reader, days[0]))
    return results


def _deploy_dag(d: Deployment) -> None:
    shutil.copy(DAG_FILE, d.settings.dags_folder / "genviral_posts_iceberg.py")
    d.api.wait_dag_parsed(ICEBERG_DAG)
    d.api.patch(f"/dags/{ICEBERG_DAG}", {"is_paused": False})
    wait_for_scheduled_run(d.api, ICEBERG_DAG)
    # Its task must be done before the killer looks for a task to kill: the one killed must be the backfill's.
    wait_until(
        lambda: all(run["state"] in TERMINAL_RUN_STATES for run in d.api.dag_runs(ICEBERG_DAG)),
        timeout=120,
        what=f"the scheduled run of {ICEBERG_DAG} to finish",
        interval=2,
    )


def _backfill(
    d: Deployment, label: str, first: dt.date, last: dt.date, reprocess: str | None, observers: list[Any]
) -> BackfillOutcome:
    return run_backfill(
        d.cli,
        d.api,
        label=label,
        dag_id=ICEBERG_DAG,
        first=first,
        last=last,
        max_active_runs=MAX_ACTIVE_RUNS,
        reprocess=reprocess,
        observers=observers,
    )


def table_exact(
    reader: TableReader, d: Deployment, truth: dict[dt.date, list[Row]], days: list[dt.date]
) -> CheckResult:
    """The table holds exactly the sandbox's posts of every day it holds, each once, every expected day."""
    table = reader.catalog.load_table(TABLE)
    rows = table.scan().to_arrow().to_pylist()
    by_day: dict[dt.date, list[dict[str, Any]]] = {}
    for row in rows:
        by_day.setdefault(row["publishedAt"].astimezone(dt.timezone.utc).date(), []).append(row)
    for day in set(by_day) - set(truth):  # a scheduled run's day outside those read: read it now
        truth[day] = d.sandbox.posts_on(day)
    problems = [f"expected the rows of {day} in the table, found none" for day in days if day not in by_day]
    for day, found in sorted(by_day.items()):
        problems += _day_problems(day, found, truth[day])
    extra = sorted(set(by_day) - set(days))
    note = f" (+ {len(extra)} scheduled day(s), also exact)" if extra else ""
    return CheckResult.of(
        f"Iceberg table {TABLE} equals the sandbox's posts",
        problems,
        f"{len(rows)} rows of {len(by_day)} days{note}, each post once with the sandbox's metrics",
    )


def _day_problems(day: dt.date, found: list[dict[str, Any]], truth: list[Row]) -> list[str]:
    counts = Counter(str(row["id"]) for row in found)
    problems = [f"{day}: post {row_id} is in the table {n} times" for row_id, n in counts.items() if n > 1]
    expected = {str(row["id"]): row for row in truth}
    missing, unexpected = sorted(set(expected) - set(counts)), sorted(set(counts) - set(expected))
    if missing:
        problems.append(f"{day}: {len(missing)} of {len(expected)} posts missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{day}: {len(unexpected)} posts the sandbox does not have that day (e.g. {unexpected[0]})")
    for row in found:
        source = expected.get(str(row["id"]))
        metrics = (source or {}).get("metrics") or {}
        wrong = [name for name, value in metrics.items() if row.get(f"metrics_{name}") != value]
        if source is not None and wrong:
            problems.append(f"{day}: post {row['id']} has metrics {wrong} unlike the sandbox's")
    return problems


def rerun_committed(reader: TableReader, day: dt.date) -> CheckResult:
    """The re-run day was committed twice (first run, re-run): its rows replaced, not added."""
    table = reader.catalog.load_table(TABLE)
    commits = [
        snapshot.snapshot_id
        for snapshot in table.snapshots()
        if snapshot.summary is not None
        and snapshot.summary.operation.value == "append"
        and str(_property(snapshot.summary, "genviral.window.start")).startswith(day.isoformat())
    ]
    problems = [] if len(commits) >= 2 else [f"expected 2 commits of {day}, found {len(commits)}: {commits}"]
    return CheckResult.of(
        f"Iceberg re-run of {day} replaced its rows",
        problems,
        f"{len(commits)} commits of {day} in {len(table.snapshots())} snapshots; the day holds one copy",
    )


def _property(summary: Any, key: str) -> Any:
    try:
        return summary[key]
    except KeyError:
        return None
