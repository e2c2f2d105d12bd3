"""The checks: each a function that returns a :class:`CheckResult` saying what was expected and what was found."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions

from e2e.airflow import AirflowApi, AirflowCli, parse_time, run_day
from e2e.backfill import BackfillOutcome, Kill
from e2e.data import DATA_FILE, Listing, Row, S3Output, published_day
from e2e.services import processes_in_sessions

PROVIDER_DISTRIBUTION = "airflow-provider-genviral"


@dataclass
class CheckResult:
    """One check's verdict; ``detail`` says what was expected and what was found."""

    name: str
    passed: bool
    detail: str

    @classmethod
    def of(cls, name: str, problems: list[str], success: str) -> CheckResult:
        """Pass with ``success`` when there are no problems, else fail listing (the first few of) them."""
        if not problems:
            return cls(name, True, success)
        shown = "; ".join(problems[:8]) + (f"; ... {len(problems) - 8} more" if len(problems) > 8 else "")
        return cls(name, False, shown)


# ---------------------------------------------------------------------------------------- the provider


def provider_installed(cli: AirflowCli) -> CheckResult:
    """The provider is imported from an installed wheel in site-packages, not from the source tree."""
    script = (
        f"import json, importlib.metadata as m, genviral_provider as g; d = m.distribution({PROVIDER_DISTRIBUTION!r}); "
        "print(json.dumps({'file': g.__file__, 'direct_url': d.read_text('direct_url.json'), 'version': d.version}))"
    )
    result = cli.python("-c", script)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    direct_url = json.loads(found["direct_url"] or "{}")
    problems = []
    if "/site-packages/genviral_provider/" not in found["file"]:
        problems.append(f"expected genviral_provider imported from site-packages, found {found['file']}")
    if direct_url.get("dir_info", {}).get("editable") or not str(direct_url.get("url", "")).endswith(".whl"):
        problems.append(f"expected the distribution installed from a wheel, found direct_url {direct_url}")
    return CheckResult.of(
        "provider installed as a package",
        problems,
        f"{PROVIDER_DISTRIBUTION} {found['version']} from {Path(direct_url.get('url', '')).name}, imported from "
        f"{Path(found['file']).parent}",
    )


def provider_discovered(cli: AirflowCli, api: AirflowApi) -> CheckResult:
    """``airflow providers list``, ``airflow providers hooks`` and the UI's hook list show the provider."""
    providers = {item["package_name"]: item for item in cli.json("providers", "list")}
    hooks = {item["connection_type"]: item for item in cli.json("providers", "hooks")}
    ui_types = {item["connection_type"]: item for item in api.request("GET", "/ui/connections/hook_meta")}
    problems = []
    if PROVIDER_DISTRIBUTION not in providers:
        problems.append(f"expected {PROVIDER_DISTRIBUTION} in `airflow providers list`, found {sorted(providers)}")
    if "genviral" not in hooks:
        problems.append(f"expected connection type genviral in `airflow providers hooks`, found {sorted(hooks)}")
    genviral = ui_types.get("genviral")
    if genviral is None:
        problems.append(f"expected genviral in the UI's connection types, found {sorted(ui_types)}")
    elif genviral.get("hook_name") != "Genviral":
        problems.append(f"expected the UI to name the type 'Genviral', found {genviral.get('hook_name')!r}")
    version = providers.get(PROVIDER_DISTRIBUTION, {}).get("version")
    return CheckResult.of(
        "provider and connection type discovered",
        problems,
        f"providers list: {PROVIDER_DISTRIBUTION} {version}; providers hooks and UI: connection type genviral "
        f"({len(ui_types)} types offered)",
    )


# ---------------------------------------------------------------------------------------- backfills


def runs_succeeded(outcome: BackfillOutcome, days: list[dt.date], *, reran: bool) -> CheckResult:
    """Every day has one run, every run succeeded, and (``reran``) every run ran again after the backfill began."""
    by_day = {run_day(run): run for run in outcome.runs}
    problems = [f"expected a run for {day}, found none" for day in days if day not in by_day]
    problems += [
        f"expected run {run['dag_run_id']} to succeed, found {run['state']}"
        for run in outcome.runs
        if run["state"] != "success"
    ]
    if reran:
        problems += [
            f"expected run {run['dag_run_id']} to run again after the backfill began, it ended {run['end_date']}"
            for run in outcome.runs
            if (parse_time(run["end_date"]) or dt.datetime.min.replace(tzinfo=dt.timezone.utc)) < outcome.created_at
        ]
    kinds = Counter(run["run_type"] for run in outcome.runs)
    return CheckResult.of(
        f"{outcome.label}: every run succeeded",
        problems,
        f"{len(outcome.runs)} runs ({', '.join(f'{n} {kind}' for kind, n in sorted(kinds.items()))}) succeeded "
        f"in {outcome.seconds:.0f}s; up to {outcome.max_parallel_tasks()} tasks ran at once",
    )


def ran_in_parallel(outcome: BackfillOutcome, minimum: int = 2) -> CheckResult:
    """At least ``minimum`` tasks ran at the same time."""
    peak = outcome.max_parallel_tasks()
    problems = [] if peak >= minimum else [f"expected at least {minimum} tasks at once, found at most {peak}"]
    return CheckResult.of(f"{outcome.label}: runs in parallel", problems, f"up to {peak} tasks ran at once")


def output_exact(listing: Listing, truth: Mapping[dt.date, list[Row]], days: Iterable[dt.date]) -> CheckResult:
    """S3 holds exactly the sandbox's posts of every backfilled day: each once, in its own day, nothing staged."""
    expected_days = sorted(days)
    problems = [f"expected a folder for {day}, found none" for day in expected_days if day not in listing.folders]
    for day, folder in sorted(listing.folders.items()):
        problems += folder_problems(day, folder.manifest, folder.data_files, truth.get(day))
    problems += [f"expected no staging objects, found {key}" for key in listing.staging_keys[:5]]
    problems += [f"expected only published_date= folders, found {key}" for key in listing.stray_keys[:5]]
    rows = sum(len(folder.rows) for folder in listing.folders.values())
    extra = sorted(set(listing.folders) - set(expected_days))
    note = f" (+ {len(extra)} scheduled day(s) outside the backfill, also exact)" if extra else ""
    return CheckResult.of(
        "S3 output equals the sandbox's posts",
        problems,
        f"{rows} rows in {len(listing.folders)} day folders{note}, each post once in its own day, no staging left",
    )


def folder_problems(
    day: dt.date, manifest: dict[str, Any] | None, files: Mapping[str, list[Row]], truth: list[Row] | None
) -> list[str]:
    """Return what is wrong with one day folder: manifest, files, and rows against the sandbox's rows of the day."""
    if manifest is None:
        return [f"{day}: expected a _manifest.json, found none (files {sorted(files)})"]
    problems = _manifest_problems(day, manifest, files)
    rows = [row for name in sorted(files) for row in files[name]]
    problems += [
        f"{day}: row {row.get('id')} published {row.get('publishedAt')} is in the wrong day"
        for row in rows
        if published_day(row) != day
    ]
    counts = Counter(str(row.get("id")) for row in rows)
    problems += [f"{day}: expected row {row_id} once, found it {n} times" for row_id, n in counts.items() if n > 1]
    if truth is None:
        return problems
    expected = {str(row["id"]): row for row in truth}
    found = {str(row.get("id")): row for row in rows}
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing:
        problems.append(f"{day}: expected {len(expected)} rows, {len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{day}: {len(unexpected)} rows the sandbox does not have on that day (e.g. {unexpected[0]})")
    changed = [row_id for row_id in set(expected) & set(found) if expected[row_id] != found[row_id]]
    if changed:
        problems.append(f"{day}: {len(changed)} rows differ from the sandbox's (e.g. {changed[0]})")
    return problems


def _manifest_problems(day: dt.date, manifest: dict[str, Any], files: Mapping[str, list[Row]]) -> list[str]:
    listed = {entry["name"]: entry for entry in manifest.get("files", [])}
    problems = []
    if set(listed) != set(files):
        problems.append(f"{day}: manifest lists files {sorted(listed)}, folder holds {sorted(files)}")
    for name, entry in listed.items():
        if name in files and entry.get("rows") != len(files[name]):
            problems.append(f"{day}: manifest says {name} has {entry.get('rows')} rows, it has {len(files[name])}")
    total = sum(len(rows) for rows in files.values())
    if manifest.get("row_count") != total:
        problems.append(f"{day}: manifest row_count {manifest.get('row_count')}, files hold {total}")
    return problems


def same_data(before: Listing, after: Listing, outcome: BackfillOutcome) -> CheckResult:
    """Re-processing left the same objects with the same data files, and rewrote every manifest."""
    problems = []
    if set(before.keys) != set(after.keys):
        gone, new = sorted(set(before.keys) - set(after.keys)), sorted(set(after.keys) - set(before.keys))
        problems.append(f"expected the same object keys; gone {gone[:3]}, new {new[:3]}")
    data_keys = [key for key in before.keys if DATA_FILE.search(key)]
    changed = [key for key in data_keys if after.keys.get(key) != before.keys[key]]
    problems += [f"expected {key} to hold the same bytes, its ETag changed" for key in changed[:5]]
    for day, folder in sorted(after.folders.items()):
        published = parse_time((folder.manifest or {}).get("published_at"))
        if published is None:
            problems.append(f"expected the manifest of {day} to say when it was published, it has no published_at")
        elif published < outcome.created_at:
            problems.append(f"expected the manifest of {day} to be rewritten by the re-run, it is from {published}")
    if not after.folders:
        problems.append("expected day folders to compare after re-processing, found none")
    return CheckResult.of(
        f"{outcome.label}: same data after re-processing",
        problems,
        f"{len(after.keys)} objects: same keys, {len(data_keys)} data files byte-identical, every manifest rewritten",
    )


class PacedObserver:
    """An observer called on every tick of a wait loop that looks at most once every ``every`` seconds.

    :param every: seconds between looks.
    """

    def __init__(self, every: float) -> None:
        self.every = every
        self.problems: list[str] = []
        self._last = 0.0

    def due(self) -> bool:
        """Whether ``every`` seconds have passed since the last look; if so, this call counts as the look."""
        if time.monotonic() - self._last < self.every:
            return False
        self._last = time.monotonic()
        return True


class PartialReader(PacedObserver):
    """Reads S3 as a consumer would while tasks run: any folder with a manifest must be complete and correct.

    :param s3: the output.
    :param truth: the sandbox's rows by day.
    :param every: seconds between reads.
    """

    def __init__(self, s3: S3Output, truth: Mapping[dt.date, list[Row]], every: float = 3.0) -> None:
        super().__init__(every)
        self.s3 = s3
        self.truth = truth
        self.reads = 0

    def __call__(self) -> None:
        if not self.due():
            return
        for _ in range(3):  # an object replaced between listing and reading: read the whole view again
            try:
                listing = self.s3.posts_listing()
            except botocore.exceptions.ClientError:
                continue
            self.reads += 1
            for day, folder in listing.folders.items():
                if folder.manifest is not None:
                    self.problems += folder_problems(day, folder.manifest, folder.data_files, self.truth.get(day))
            return

    def result(self, label: str) -> CheckResult:
        """Pass when no read found a partial or wrong folder."""
        problems = list(self.problems)
        if self.reads == 0:
            problems.append("expected to read the output while the backfill ran, no read completed")
        return CheckResult.of(
            f"{label}: nothing partial visible",
            problems,
            f"{self.reads} reads of every folder while tasks ran and were killed: every published folder complete",
        )


TryLocator = Callable[[str], "tuple[str, str, int] | None"]


def killed_task_retried(outcome: BackfillOutcome, kills: list[Kill], locate: TryLocator) -> CheckResult:
    """Each killed try failed, and a later try of the same task succeeded.

    :param locate: returns (run id, task id, try number) of a task instance id (each try has an id of its own).
    """
    problems = [] if kills else ["expected to kill a process running a task, found none running"]
    described = []
    for kill in kills:
        where = locate(kill.ti_id)
        if where is None:
            problems.append(f"expected the killed task instance {kill.ti_id} in the metadata DB, found it nowhere")
            continue
        run_id, task_id, try_number = where
        tries = {a["try_number"]: a for a in outcome.tries if (a["dag_run_id"], a["task_id"]) == (run_id, task_id)}
        killed = tries.get(try_number)
        retried = [a for number, a in tries.items() if number > try_number and a["state"] == "success"]
        if killed is None or killed["state"] not in ("failed", "up_for_retry"):
            problems.append(f"expected try {try_number} of {run_id} to fail, found {killed and killed['state']}")
        if not retried:
            problems.append(f"expected a later try of {run_id} to succeed, found tries {sorted(tries)}")
        else:
            described.append(f"try {try_number} of {run_id} failed, try {retried[0]['try_number']} succeeded")
    return CheckResult.of(
        f"{outcome.label}: killed task retried",
        problems,
        "; ".join(f"SIGKILLed pid {kill.pid} [{kill.process}]" for kill in kills) + ": " + "; ".join(described),
    )


def faults_seen(stats: Mapping[str, Any], outcome: BackfillOutcome) -> CheckResult:
    """The sandbox really answered 429 and 5xx during the backfill."""
    by_status = {int(status): count for status, count in stats.get("by_status", {}).items()}
    errors = sum(count for status, count in by_status.items() if status >= 500)
    problems = []
    if by_status.get(429, 0) == 0:
        problems.append(f"expected the sandbox to rate-limit some requests, found statuses {by_status}")
    if errors == 0:
        problems.append(f"expected some 5xx answers at a 5% error rate, found statuses {by_status}")
    return CheckResult.of(
        f"{outcome.label}: rate limits and errors injected",
        problems,
        f"{stats.get('total')} API requests: {by_status.get(429, 0)} answered 429, {errors} answered 5xx",
    )


def nothing_left_running(sessions: set[int], folders: Iterable[Path], grace: float = 15.0) -> CheckResult:
    """No process the run started is still running (after ``grace`` seconds), and its temporary folders are gone."""
    deadline = time.monotonic() + grace
    while (left := processes_in_sessions(sessions)) and time.monotonic() < deadline:
        time.sleep(0.5)
    problems = [f"expected every process stopped, found {process}" for process in left]
    problems += [f"expected {folder} removed, it is still there" for folder in folders if folder.exists()]
    return CheckResult.of(
        "everything started was stopped", problems, f"no process left of the {len(sessions)} services started"
    )


def s3_publish_lock(s3: S3Output) -> CheckResult:
    """On S3 the folder sink's publish lock is a conditional PUT the server refuses while it is held."""
    import s3fs

    from genviral_provider.core.output.publish_lock import PublishLock, refuses_second_create

    options = {"endpoint_url": s3.endpoint_url, "region_name": "us-east-1"}
    fs = s3fs.S3FileSystem(key="e2e", secret="e2e-secret", client_kwargs=options, skip_instance_cache=True)
    base, log = f"{s3.bucket}/{s3.prefix}/lock-check/_staging", logging.getLogger("e2e.lock")
    path = f"{base}/_publish.lock"
    problems = []
    if not refuses_second_create(fs, f"{base}/probe"):
        problems.append("expected the S3 server to refuse a second create with If-None-Match: *, it did not")
    with PublishLock(fs, path, "run-a", log) as first:
        if not first.held:
            problems.append("expected run-a to hold the lock on S3, it publishes without one")
        if PublishLock(fs, path, "run-b", log)._try_acquire():
            problems.append("expected run-b's create of the held lock to be refused, the server accepted it")
        holder = json.loads(fs.cat_file(path)) if fs.exists(path) else None
        if not isinstance(holder, dict) or holder.get("token") != "run-a":
            problems.append(f"expected the lock object to name run-a, found {holder}")
    if fs.exists(path):
        problems.append("expected the released lock object removed, it is still there")
    with PublishLock(fs, path, "run-b", log) as second:
        if not second.held:
            problems.append("expected run-b to take the lock once released, it did not")
    if fs.exists(base):
        fs.rm(f"{s3.bucket}/{s3.prefix}/lock-check", recursive=True)
    return CheckResult.of(
        "folder publish lock on S3 is a conditional PUT",
        problems,
        f"s3fs {s3fs.__version__}: a second If-None-Match create refused (FileExistsError); one holder at a time",
    )


# ---------------------------------------------------------------------------------------- logs


def no_secret_in_logs(files: Iterable[Path], secrets: Iterable[str], exempt: Iterable[Path] = ()) -> CheckResult:
    """No log file contains any of the secrets."""
    skip = {path.resolve() for path in exempt}
    needles = [secret.encode() for secret in secrets if secret]
    scanned = 0
    problems = []
    for path in files:
        if path.resolve() in skip:
            continue
        scanned += 1
        content = path.read_bytes()
        problems += [f"found the API key in {path}" for needle in needles if needle in content]
    if not needles:
        problems.append("expected a secret to look for, got none")
    if scanned == 0:
        problems.append("expected log files to scan, found none: the check would pass on nothing")
    return CheckResult.of(
        "no log contains the API key", problems, f"{scanned} log files scanned, the key and its secret part in none"
    )


def celery_workers_used(log_dir: Path, workers: list[str]) -> CheckResult:
    """Every Celery worker received tasks."""
    received = {}
    for worker in workers:
        log = log_dir / f"{worker}.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        received[worker] = text.count("execute_workload[") and text.count(" received")
    problems = [f"expected {worker} to receive tasks, its log shows none" for worker, n in received.items() if not n]
    shown = ", ".join(f"{worker}: {n}" for worker, n in received.items())
    return CheckResult.of("CeleryExecutor: both workers ran tasks", problems, f"tasks received by {shown}")
