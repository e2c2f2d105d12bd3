"""`make demo`: the example DAGs on a real Airflow 3, against the local sandbox API, in a few minutes.

It starts the sandbox (10 days of posts ending today, UTC) and Airflow's scheduler, DAG processor, API server and
triggerer on a throwaway AIRFLOW_HOME under .demo/, runs `airflow backfill create` of genviral_posts_daily over
the last 7 days and one genviral_wait_for_post_analytics run, waits for them, prints what was written with a chart
of posts per day and platform (as text, and as a PNG with the `plot` extra), and stops everything it started.
Output and logs stay in .demo/ for a look afterwards.

Run with the virtualenv's Python (`make demo`, or `.venv/airflow-3.3.2/bin/python scripts/demo.py --help`).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, Any

REPO = pathlib.Path(__file__).resolve().parents[1]
POSTS_DAG = "genviral_posts_daily"
METRICS_DAG = "genviral_metrics_refresh"
WAIT_DAG = "genviral_wait_for_post_analytics"
DEMO_DAGS = (POSTS_DAG, METRICS_DAG, WAIT_DAG)
SANDBOX_DAYS = 10
#: The sandbox's cache lags: every target was last refreshed this long before the end of today (UTC), i.e. at noon
#: yesterday, so half of yesterday's posts are not served until the daily DAG's gate refreshes them (free).
SANDBOX_LAG_HOURS = 36
#: How long a sandbox refresh takes (the real API: 30-90 s).
SANDBOX_REFRESH_SECONDS = 5
#: The platform's own refresh of every target, free (the real one: about daily). Once each target's free refresh of
#: the day is spent by the daily DAG's gate, this is what brings the awaited posts (published later) into the cache.
SANDBOX_SCHEDULED_REFRESH_SECONDS = 60
SANDBOX_ROWS_PER_DAY = 300
BACKFILL_DAYS = 7
#: Runs of the backfill at once: a backfill ignores the DAG's max_active_runs and defaults to 10.
BACKFILL_MAX_ACTIVE_RUNS = 3
TERMINAL_STATES = frozenset({"success", "failed"})


# ------------------------------------------------------------------------------------------- pure pieces


#: The table the metrics DAG appends its snapshots to with `--iceberg`.
SNAPSHOTS_TABLE = "genviral.metrics_snapshots"
CHECKPOINTS_TABLE = "genviral.post_checkpoints"
#: Runs of one CLI command that failed because sqlite was locked (see `run_cli`), and the wait between them.
CLI_ATTEMPTS = 4
CLI_LOCKED_WAIT = 3.0
SQLITE_LOCKED = "database is locked"


def backfill_dates(today: dt.date, days: int = BACKFILL_DAYS) -> tuple[dt.date, dt.date]:
    """Return `--from-date` and `--to-date` of a backfill of the `days` whole days before `today`.

    Both are inclusive logical dates, and a run of genviral_posts_daily with logical date D covers [D, D+1):
    the last day backfilled is yesterday, whose interval ended at today's midnight.
    """
    return today - dt.timedelta(days=days), today - dt.timedelta(days=1)


def backfill_command(first: dt.date, last: dt.date) -> list[str]:
    """Return the `airflow backfill create` arguments for genviral_posts_daily from `first` to `last`."""
    dates = ["--from-date", first.isoformat(), "--to-date", last.isoformat()]
    return ["backfill", "create", "--dag-id", POSTS_DAG, *dates, "--max-active-runs", str(BACKFILL_MAX_ACTIVE_RUNS)]


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """Return every date from `first` to `last`, both included."""
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def clock(seconds: float) -> str:
    """Format elapsed seconds as m:ss."""
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


def describe_runs(runs: Sequence[Mapping[str, Any]]) -> str:
    """Count runs by state: '3 success, 2 running, 2 queued' (no runs: 'no runs yet')."""
    counts = collections.Counter(str(run.get("state")) for run in runs)
    order = ["success", "failed", "running", "queued"]
    states = sorted(counts, key=lambda state: (order.index(state) if state in order else len(order), state))
    return ", ".join(f"{counts[state]} {state}" for state in states) or "no runs yet"


def run_day(run: Mapping[str, Any]) -> dt.date | None:
    """Return the date of a run's logical date (None for runs without one)."""
    logical_date = run.get("logical_date")
    return dt.datetime.fromisoformat(str(logical_date).replace("Z", "+00:00")).date() if logical_date else None


def runs_done(runs: Sequence[Mapping[str, Any]], days: Sequence[dt.date] = ()) -> bool:
    """Whether every run has finished and each of `days` has a run (a scheduled run may cover a backfilled day)."""
    covered = {run_day(run) for run in runs}
    return all(str(run.get("state")) in TERMINAL_STATES for run in runs) and all(day in covered for day in days)


@dataclass
class DayOutput:
    """What one `published_date=` folder holds: rows per platform (read from its files) and its manifest."""

    rows_by_platform: collections.Counter[str] = field(default_factory=collections.Counter)
    files: list[str] = field(default_factory=list)
    manifest_rows: int | None = None

    @property
    def rows(self) -> int:
        """Return the rows read from the data files."""
        return sum(self.rows_by_platform.values())


def read_posts_output(base: pathlib.Path) -> dict[str, DayOutput]:
    """Read `<base>/posts/published_date=*/`: the date to what its folder holds."""
    return read_output_folders(base / "posts", "published_date=")


def read_output_folders(root: pathlib.Path, prefix: str) -> dict[str, DayOutput]:
    """Read the `<root>/<prefix><date>/` folders through their manifests; folders without one are skipped."""
    days: dict[str, DayOutput] = {}
    for folder in sorted(root.glob(f"{prefix}*")):
        manifest_path = folder / "_manifest.json"
        if not manifest_path.is_file():
            continue  # not published (yet): a consumer must ignore it
        manifest = json.loads(manifest_path.read_text())
        day = DayOutput(manifest_rows=manifest.get("row_count"))
        for entry in manifest.get("files", []):
            path = folder / entry["name"]
            day.files.append(str(path.relative_to(root.parent)))
            for line in path.read_text(encoding="utf-8").splitlines():
                if line:
                    day.rows_by_platform[str(json.loads(line).get("platform"))] += 1
        days[folder.name.removeprefix(prefix)] = day
    return days


def read_iceberg_posts(table: Any) -> dict[str, DayOutput]:
    """Read the posts table (`--iceberg`): each UTC publication day to its rows per platform, as folders are read.

    The day's "manifest" row count is the one the last commit of that day's window recorded (`genviral.row-count`).
    """
    columns = table.scan(selected_fields=("publishedAt", "platform")).to_arrow().to_pylist()
    days: dict[str, DayOutput] = collections.defaultdict(DayOutput)
    for row in columns:
        days[row["publishedAt"].astimezone(dt.timezone.utc).date().isoformat()].rows_by_platform[row["platform"]] += 1
    for snapshot in table.snapshots():  # oldest first: the last commit of a day wins
        summary = snapshot.summary
        start, rows = summary.get("genviral.window.start"), summary.get("genviral.row-count")
        if start and rows is not None and snapshot.summary.operation.value == "append":
            days[start[:10]].manifest_rows = int(rows)
    return dict(days)


def read_iceberg_snapshots(table: Any) -> dict[str, DayOutput]:
    """Read the metrics snapshots table (`--iceberg`): each snapshot date to its rows per platform."""
    rows = table.scan(selected_fields=("snapshot_date", "platform")).to_arrow().to_pylist()
    days: dict[str, DayOutput] = collections.defaultdict(DayOutput)
    for row in rows:
        days[row["snapshot_date"].isoformat()].rows_by_platform[row["platform"]] += 1
    return dict(days)


def describe_iceberg_history(table: Any, limit: int = 12) -> list[str]:
    """Return the table's snapshot history, newest last: when, what operation, which window and how many rows."""
    lines = []
    for snapshot in list(table.snapshots())[-limit:]:
        summary = snapshot.summary
        when = dt.datetime.fromtimestamp(snapshot.timestamp_ms / 1000, dt.timezone.utc).strftime("%H:%M:%S")
        window = f"{summary.get('genviral.window.start', '?')[:10]}..{summary.get('genviral.window.end', '?')[:10]}"
        lines.append(
            f"snapshot {snapshot.snapshot_id} at {when} UTC: {summary.operation.value:<9} window {window}, "
            f"{summary.get('genviral.row-count', '?')} row(s), run {summary.get('genviral.run-id', '?')}"
        )
    return lines


def read_correlated_output(base: pathlib.Path) -> dict[str, list[dict[str, Any]]]:
    """Read `<base>/correlated/run_id=*/rows.jsonl`: the folder name to its rows."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((base / "correlated").glob("run_id=*/rows.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        found[path.parent.name] = [json.loads(line) for line in lines if line]
    return found


def format_summary(
    posts: Mapping[str, DayOutput],
    correlated: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    base: pathlib.Path,
    api_counts: Mapping[str, int] | None = None,
    snapshots: Mapping[str, DayOutput] | None = None,
    iceberg_table: str | None = None,
) -> list[str]:
    """Return the summary lines: rows per day and platform, files written, snapshots, correlated rows.

    :param api_counts: the sandbox's own row count of each day, to check the written rows against.
    :param snapshots: the metrics snapshots written, by snapshot date.
    :param iceberg_table: the Iceberg table the posts were read from (`--iceberg`), instead of folders.
    """
    platforms = sorted({platform for day in posts.values() for platform in day.rows_by_platform})
    header = ["published_date", *platforms, "rows", "manifest"] + (["api"] if api_counts is not None else [])
    table = [header]
    for name, day in sorted(posts.items()):
        row = [name, *(str(day.rows_by_platform[p]) for p in platforms), str(day.rows), str(day.manifest_rows)]
        table.append(row + ([str(api_counts.get(name, "?"))] if api_counts is not None else []))
    total = sum(day.rows for day in posts.values())
    files = sum(len(day.files) for day in posts.values())
    table.append(["total", *(str(sum(d.rows_by_platform[p] for d in posts.values())) for p in platforms), str(total)])
    widths = [max(len(row[i]) for row in table if i < len(row)) for i in range(len(header))]
    lines = [
        "  ".join(cell.rjust(widths[i]) if i else cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in table
    ]
    if iceberg_table is not None:
        lines.append(
            f"{len(posts)} day(s) in the Iceberg table {iceberg_table}; 'manifest': its last commit's row count"
        )
    else:
        lines.append(f"{files} data file(s) and {len(posts)} manifest(s) under {base / 'posts'}")
    if posts and iceberg_table is None:
        name, day = max(posts.items())
        lines.append(
            f"  e.g. posts/published_date={name}/: {', '.join(pathlib.Path(f).name for f in day.files)}, _manifest.json"
        )
    for name, snapshot in sorted((snapshots or {}).items()):
        where = SNAPSHOTS_TABLE if iceberg_table is not None else base / "metrics_snapshots" / f"snapshot_date={name}"
        lines.append(f"metrics snapshot of {name}: {snapshot.rows} rows of recent posts in {where}")
    for folder, rows in correlated.items():
        ids = sorted({str(row.get("genviralPostId")) for row in rows})
        lines.append(f"{len(rows)} correlated row(s) for {len(ids)} post id(s) in {base / 'correlated' / folder}")
    return lines


def describe_analysis_folders(base: pathlib.Path) -> list[str]:
    """Say what the targets dimension and the post checkpoints hold (folders without data are left out)."""
    lines = []
    for path in sorted(base.glob("targets/snapshot_date=*/part-*.jsonl")):
        count = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line)
        lines.append(f"targets dimension: {count} analytics target(s) in {path.parent}")
    for age_folder in sorted(base.glob("checkpoints/age=*")):
        for name, day in read_output_folders(age_folder, "published_date=").items():
            lines.append(f"checkpoint {age_folder.name} of posts published {name}: {day.rows} rows")
    return lines


def describe_iceberg_checkpoints(table: Any) -> list[str]:
    """Say what the post checkpoints table (`--iceberg`) holds: rows per checkpoint age and publication day."""
    rows = table.scan(selected_fields=("checkpoint_age", "publishedAt")).to_arrow().to_pylist()
    counts = collections.Counter(
        (row["checkpoint_age"], row["publishedAt"].astimezone(dt.timezone.utc).date().isoformat()) for row in rows
    )
    return [
        f"checkpoint age={age} of posts published {day}: {count} rows in {CHECKPOINTS_TABLE}"
        for (age, day), count in sorted(counts.items())
    ]


def text_chart(posts: Mapping[str, DayOutput], width: int = 40) -> list[str]:
    """Return one bar per day, as long as its rows (the longest `width` characters), split by platform.

    Each platform has its own character, in the order of the legend line that comes first.
    """
    platforms = sorted({platform for day in posts.values() for platform in day.rows_by_platform})
    marks = dict(zip(platforms, "#=+*%@", strict=False))
    most = max((day.rows for day in posts.values()), default=0)
    lines = ["  ".join(f"{marks[platform]} {platform}" for platform in platforms)] if platforms else []
    for name, day in sorted(posts.items()):
        bar = ""
        for platform in platforms:
            bar += marks[platform] * round(day.rows_by_platform[platform] * width / most) if most else ""
        lines.append(f"{name} {bar} {day.rows}")
    return lines


def write_chart(posts: Mapping[str, DayOutput], path: pathlib.Path) -> pathlib.Path | None:
    """Draw posts per day and platform as stacked bars to a PNG; None (nothing written) without matplotlib.

    matplotlib is the optional `plot` extra: the demo works without it.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    days = sorted(posts)
    platforms = sorted({platform for day in posts.values() for platform in day.rows_by_platform})
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    bottoms = [0] * len(days)
    for platform in platforms:
        counts = [posts[day].rows_by_platform[platform] for day in days]
        axes.bar(days, counts, bottom=bottoms, label=platform)
        bottoms = [bottom + count for bottom, count in zip(bottoms, counts, strict=True)]
    axes.set_title("Genviral posts per day and platform (genviral_posts_daily)")
    axes.set_xlabel("published_date (UTC)")
    axes.set_ylabel("posts")
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, never over them
    axes.tick_params(axis="x", labelrotation=30)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def summary_problems(
    posts: Mapping[str, DayOutput], days: Sequence[dt.date], api_counts: Mapping[str, int] | None = None
) -> list[str]:
    """Return what is wrong with the written days: missing days, rows not matching the manifest or the API."""
    problems = []
    for day in days:
        output = posts.get(day.isoformat())
        if output is None:
            problems.append(f"{day}: no published folder")
        elif output.rows != output.manifest_rows:
            problems.append(f"{day}: {output.rows} rows in the files, the manifest says {output.manifest_rows}")
        elif api_counts is not None and output.rows != api_counts.get(day.isoformat()):
            problems.append(f"{day}: {output.rows} rows written, the API has {api_counts.get(day.isoformat())}")
    return problems


# ------------------------------------------------------------------------------------------- processes


def describe_refreshes(ledger: Mapping[str, Any]) -> str:
    """Say what the sandbox's refreshes cost: how many, how many free, the credits used and left."""
    refreshes = [refresh for refresh in ledger.get("refreshes", []) if not refresh.get("scheduled")]
    free = sum(1 for refresh in refreshes if refresh.get("wasFree"))
    credits = sum(int(refresh.get("credits_used") or 0) for refresh in refreshes)
    return (
        f"Analytics refreshes: {len(refreshes)} ({free} free), {credits} credit(s) spent, "
        f"{ledger.get('credits', '?')} left"
    )


def run_cli(
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    log_path: pathlib.Path,
    say: Any = print,
    attempts: int = CLI_ATTEMPTS,
    wait: float = CLI_LOCKED_WAIT,
) -> tuple[int, str]:
    """Run a CLI command to completion; return its exit status and output (also appended to `log_path`).

    A command that failed on "database is locked" is run again, up to `attempts` in all: sqlite answers a
    transaction that must turn from reading to writing while the scheduler or the DAG processor writes with that
    error at once, whatever its busy timeout, and the command's transaction was rolled back.
    """
    for attempt in range(1, attempts + 1):
        result = subprocess.run(list(command), env=dict(env), cwd=REPO, capture_output=True, text=True, check=False)
        output = (result.stdout + result.stderr).strip()
        with log_path.open("a") as log:
            log.write(f"$ {' '.join(command)}\n{output}\n\n")
        if result.returncode == 0 or SQLITE_LOCKED not in output or attempt == attempts:
            return result.returncode, output
        say(f"sqlite was locked by another Airflow process: running it again in {wait:g}s ({attempt + 1}/{attempts})")
        time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """Long-running processes, each in its own process group, logging to a file; stops them all in reverse."""

    def __init__(self, log_dir: pathlib.Path) -> None:
        self.log_dir = log_dir
        self.started: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, command: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        """Start a process with stdout and stderr in `<log_dir>/<name>.log`."""
        log = (self.log_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            list(command), env=dict(env), stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
        )
        self.started.append((name, process, log))
        return process

    def check_alive(self) -> None:
        """Raise if a process has exited on its own."""
        for name, process, _ in self.started:
            if process.poll() is not None:
                raise DemoError(f"{name} exited with status {process.returncode}: see {self.log_dir / name}.log")

    def stop_all(self, grace: float = 20.0) -> None:
        """Send SIGTERM to every process group started, wait up to `grace` seconds, then SIGKILL what is left.

        Ctrl-C and SIGTERM are ignored meanwhile: stopping must not be cut short, or processes would be left behind.
        """
        previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._stop_all(grace)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _stop_all(self, grace: float) -> None:
        for _, process, _ in reversed(self.started):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _, process, log in reversed(self.started):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # what the component left behind (task processes, workers)
            process.wait()
            log.close()
        self.started.clear()


class DemoError(Exception):
    """The demo cannot go on; the message says why and where to look."""


class Demo:
    """One run of the demo: directories, environment, processes, and the steps in order."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started_at = time.monotonic()
        self.dir: pathlib.Path = args.dir.resolve()
        self.home = self.dir / "airflow"
        self.output = self.dir / "output"
        self.logs = self.dir / "logs"
        self.processes = Processes(self.logs)
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.sandbox_url = ""
        self.sandbox_key = ""
        self.token = ""
        self.env: dict[str, str] = {}

    # -- output

    def say(self, message: str) -> None:
        """Print a progress line with the time since the start."""
        print(f"[{clock(time.monotonic() - self.started_at):>5}] {message}", flush=True)

    # -- steps

    def run(self) -> int:
        """Run every step; return the exit status (0: every run succeeded and the output checks out)."""
        today = dt.datetime.now(dt.timezone.utc).date()
        first, last = backfill_dates(today)
        self.prepare_dirs()
        self.start_sandbox()
        self.env = self.airflow_env()
        self.airflow("db", "migrate", what="Migrating the metadata DB (sqlite)")
        self.start_components("api-server", "dag-processor", "triggerer")
        self.say(f"Airflow UI: {self.api_url} (no login: every user is admin in this throwaway instance)")
        self.wait_until(lambda: self.http_json(f"{self.api_url}/api/v2/monitor/health") is not None, 180, "the API")
        self.wait_for_dags()
        self.airflow(*backfill_command(first, last))
        self.say(f"Backfill created: one run per day from {first} to {last}, {BACKFILL_MAX_ACTIVE_RUNS} at a time")
        run_id = f"demo__{dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()}"
        post_ids = [str(uuid.uuid4()), str(uuid.uuid4())]
        conf = json.dumps({"genviral_post_ids": post_ids})
        self.airflow("dags", "trigger", WAIT_DAG, "--run-id", run_id, "--conf", conf)
        self.say(f"Triggered {WAIT_DAG} run {run_id}: it waits for posts that have no analytics rows yet")
        # Last, so that its tasks find the API server up, and the runs above are created with less lock contention
        # on sqlite. It also starts each DAG's latest scheduled run (catchup=False).
        self.start_components("scheduler")
        ok = self.wait_for_runs(days_between(first, last), run_id, post_ids)
        return self.summarize(days_between(first, last), ok)

    def prepare_dirs(self) -> None:
        """Start from an empty AIRFLOW_HOME, output and logs (the demo's own folders only)."""
        for folder in (self.home, self.output, self.logs):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        self.say(f"Demo folder: {self.dir} (AIRFLOW_HOME, output and logs; removed at the next run)")

    def start_sandbox(self) -> None:
        """Start the sandbox API with 10 days of posts ending today (UTC); read its URL and key."""
        port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{port}"
        self.sandbox_key = f"gva_demo_{secrets.token_hex(3)}.{secrets.token_hex(12)}"
        command = [
            sys.executable,
            "-m",
            "genviral_provider.sandbox",
            "--port",
            str(port),
            "--api-key",
            self.sandbox_key,
        ]
        command += ["--days", str(SANDBOX_DAYS), "--rows-per-day", str(SANDBOX_ROWS_PER_DAY)]
        command += ["--lag-hours", str(SANDBOX_LAG_HOURS), "--refresh-seconds", str(SANDBOX_REFRESH_SECONDS)]
        command += ["--scheduled-refresh-seconds", str(SANDBOX_SCHEDULED_REFRESH_SECONDS)]
        self.processes.start("sandbox", command, os.environ)
        self.wait_until(lambda: self.http_json(f"{self.sandbox_url}/_sandbox/stats") is not None, 30, "the sandbox")
        self.say(f"Sandbox API on {self.sandbox_url}: {SANDBOX_DAYS} days x {SANDBOX_ROWS_PER_DAY} posts ending today")
        yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
        self.say(
            f"Its cache lags: every target was last refreshed at {yesterday} 12:00 UTC, so it serves "
            f"{self.sandbox_day_count(yesterday)} of yesterday's posts until a refresh"
        )

    def airflow_env(self) -> dict[str, str]:
        """Return the environment of every Airflow process: config, connection and Variable, all by env var."""
        connection = {"conn_type": "genviral", "host": self.sandbox_url, "password": self.sandbox_key}
        return {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            # sqlite serialises writers: wait up to a minute for a lock instead of failing after sqlite's 5 s.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}?timeout=60",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            # Everyone is admin, no login: fine for a throwaway instance that listens on 127.0.0.1 only.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW_CONN_GENVIRAL_DEFAULT": json.dumps(connection),
            "AIRFLOW_VAR_GENVIRAL_OUTPUT_BASE": f"file://{self.output}",
            # --iceberg: the DAGs commit to tables of the embedded catalog under AIRFLOW_HOME instead of folders.
            "AIRFLOW_VAR_GENVIRAL_OUTPUT_FORMAT": "iceberg" if self.args.iceberg else "jsonl",
        }

    def airflow(self, *arguments: str, what: str | None = None) -> str:
        """Run an Airflow CLI command to completion; print it (or `what`); return its output (also in cli.log)."""
        self.say(what or "$ airflow " + " ".join(_shell_quote(argument) for argument in arguments))
        command = [sys.executable, "-m", "airflow", *arguments]
        returncode, output = run_cli(command, self.env, log_path=self.logs / "cli.log", say=self.say)
        if returncode != 0:
            raise DemoError(f"airflow {' '.join(arguments)} failed ({returncode}):\n{output[-2000:]}")
        return output

    def start_components(self, *components: str) -> None:
        """Start Airflow components (`airflow scheduler`, ...), each with its log in .demo/logs/."""
        for component in components:
            self.processes.start(component, [sys.executable, "-m", "airflow", component], self.env)
        self.say(f"Started airflow {', '.join(components)} (logs in {self.logs})")

    def wait_for_dags(self) -> None:
        """Wait until the DAG processor has parsed every example DAG; fail on import errors."""
        token = self.http_json(f"{self.api_url}/auth/token")
        self.token = str(token["access_token"]) if token else ""

        def parsed() -> bool:
            errors = self.api("importErrors").get("import_errors", [])
            if errors:
                raise DemoError(f"DAG import errors: {json.dumps(errors, indent=2)[:3000]}")
            dags = {dag["dag_id"] for dag in self.api("dags", dag_id_pattern="genviral").get("dags", [])}
            return set(DEMO_DAGS) <= dags

        self.wait_until(parsed, 180, "the DAG processor to parse dags/")
        self.say(f"DAGs parsed: {', '.join(DEMO_DAGS)}")

    def wait_for_runs(self, days: Sequence[dt.date], run_id: str, post_ids: Sequence[str]) -> bool:
        """Publish the awaited posts once the sensor waits; report progress until every run ends or time runs out."""
        deadline = time.monotonic() + self.args.timeout
        published = False
        last_line, last_print = "", 0.0
        while time.monotonic() < deadline:
            self.processes.check_alive()
            runs = {dag_id: self.api(f"dags/{dag_id}/dagRuns", limit="100").get("dag_runs", []) for dag_id in DEMO_DAGS}
            wait_state = self.task_state(run_id, "wait_for_analytics")
            if not published and (wait_state == "deferred" or time.monotonic() > deadline - self.args.timeout / 2):
                self.publish_posts(post_ids)
                published = True
            line = " | ".join(f"{dag_id.removeprefix('genviral_')}: {describe_runs(runs[dag_id])}" for dag_id in runs)
            line += f" (sensor {wait_state})" if wait_state else ""
            if line != last_line or time.monotonic() - last_print > 20:
                self.say(line)
                last_line, last_print = line, time.monotonic()
            finished = runs_done(runs[POSTS_DAG], days) and runs_done(runs[METRICS_DAG])
            if finished and runs_done(runs[WAIT_DAG]) and runs[WAIT_DAG]:
                failed = [
                    f"{dag_id} {run['dag_run_id']}"
                    for dag_id in runs
                    for run in runs[dag_id]
                    if run["state"] == "failed"
                ]
                for failed_run in failed:
                    self.say(f"FAILED: {failed_run}; task logs under {self.home / 'logs'}")
                return not failed
            time.sleep(3)
        self.say(f"Timed out after {self.args.timeout:.0f} s; component logs in {self.logs}")
        return False

    def publish_posts(self, post_ids: Sequence[str]) -> None:
        """Insert analytics rows for the awaited posts into the sandbox, as Genviral would once it correlates them."""
        rows = [{"genviralPostId": post_id, "platform": "tiktok"} for post_id in post_ids]
        self.http_json(f"{self.sandbox_url}/_sandbox/posts", body=rows)
        self.say(f"Posts {', '.join(post_ids)} now have analytics rows; the triggerer finds them at its next search")

    def summarize(self, days: Sequence[dt.date], ok: bool) -> int:
        """Print rows per day and platform, files, snapshots and correlated rows; return the exit status."""
        posts = self.read_iceberg() if self.args.iceberg else read_posts_output(self.output)
        api_counts = {day.isoformat(): self.sandbox_day_count(day) for day in days}
        if self.args.iceberg:
            snapshots = read_iceberg_snapshots(self.iceberg_table(SNAPSHOTS_TABLE))
        else:
            snapshots = read_output_folders(self.output / "metrics_snapshots", "snapshot_date=")
        correlated = read_correlated_output(self.output)
        print()
        table = "genviral.posts" if self.args.iceberg else None
        lines = format_summary(
            posts, correlated, base=self.output, api_counts=api_counts, snapshots=snapshots, iceberg_table=table
        )
        for line in lines:
            print(f"  {line}")
        ledger = self.http_json(f"{self.sandbox_url}/_sandbox/refreshes") or {}
        print(f"  {describe_refreshes(ledger.get('data', ledger))}")  # the sandbox's admin answers wrap it in data
        for line in describe_analysis_folders(self.output) + self.describe_checkpoints_table():
            print(f"  {line}")
        print()
        for line in text_chart(posts):
            print(f"  {line}")
        chart = write_chart(posts, self.dir / "posts_per_day.png")
        if chart is not None:
            self.say(f"Chart of posts per day and platform: {chart}")
        else:
            self.say("No chart: matplotlib is not installed (pip install '.[plot]'); the text chart above has it")
        self.say("Query the folders with SQL: docs/analysis.md (DuckDB, Athena, BigQuery)")
        problems = summary_problems(posts, days, api_counts)
        for problem in problems:
            self.say(f"PROBLEM: {problem}")
        print()
        self.say(f"Logs: components in {self.logs}, tasks in {self.home / 'logs'}")
        if not self.args.keep_running:
            self.say(
                f"The UI is on {self.api_url} until the demo stops; make demo DEMO_ARGS=--keep-running keeps it up"
            )
        status = 0 if ok and not problems else 1
        self.say("Demo succeeded." if status == 0 else "Demo FAILED: see the lines above.")
        return status

    def read_iceberg(self) -> dict[str, DayOutput]:
        """Read genviral.posts back from the embedded catalog; print its snapshot history."""
        table = self.iceberg_table("genviral.posts")
        self.say(f"Read back from the Iceberg table genviral.posts ({table.metadata_location}); its history:")
        for line in describe_iceberg_history(table):
            print(f"  {line}")
        return read_iceberg_posts(table)

    def describe_checkpoints_table(self) -> list[str]:
        """With `--iceberg`, what the checkpoints table holds; nothing when no checkpoint run has written it."""
        if not self.args.iceberg:
            return []
        from pyiceberg.exceptions import NoSuchTableError

        try:
            return describe_iceberg_checkpoints(self.iceberg_table(CHECKPOINTS_TABLE))
        except NoSuchTableError:
            return []

    def iceberg_table(self, name: str) -> Any:
        """Load a table of the embedded catalog the DAGs committed to (`--iceberg`)."""
        from genviral_provider.core.output.iceberg.catalog import embedded_config, open_catalog

        return open_catalog(embedded_config(self.home, name="genviral_iceberg")).load_table(name)

    # -- HTTP

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET an Airflow REST API path (under /api/v2); {} for a 404."""
        query = "?" + urllib.parse.urlencode(params) if params else ""
        return self.http_json(f"{self.api_url}/api/v2/{path}{query}", token=self.token) or {}

    def task_state(self, run_id: str, task_id: str) -> str | None:
        """Return the state of one task instance of the wait DAG's run (None until it exists)."""
        state = self.api(f"dags/{WAIT_DAG}/dagRuns/{_quote(run_id)}/taskInstances/{task_id}").get("state")
        return str(state) if state else None

    def sandbox_day_count(self, day: dt.date) -> int:
        """Return how many rows the sandbox API has for one UTC day (its totalCount)."""
        url = f"{self.sandbox_url}/api/partner/v1/analytics/summary/posts?start={day}&end={day}&limit=1"
        answer = self.http_json(url, token=self.sandbox_key) or {}
        return int(answer.get("data", {}).get("totalCount", -1))

    @staticmethod
    def http_json(url: str, *, token: str = "", body: Any = None) -> Any:
        """GET (or POST `body` as JSON) and return the decoded answer; None when unreachable or 404."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise DemoError(f"{url}: HTTP {error.code}: {error.read()[:500]!r}") from error
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def wait_until(self, condition: Any, seconds: float, what: str) -> None:
        """Poll `condition` until it is true; fail after `seconds` or when a process died."""
        self.say(f"Waiting for {what}...")
        deadline = time.monotonic() + seconds
        while not condition():
            self.processes.check_alive()
            if time.monotonic() > deadline:
                raise DemoError(f"Gave up waiting for {what} after {seconds:.0f} s: see the logs in {self.logs}")
            time.sleep(1)


def _quote(path_part: str) -> str:
    return urllib.parse.quote(path_part, safe="")


def _shell_quote(argument: str) -> str:
    return argument if argument and all(c.isalnum() or c in "-_./=:" for c in argument) else f"'{argument}'"


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while the demo runs, so `finally` blocks stop what it started."""

    def exit_now(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_now)
    # Ctrl-C raises KeyboardInterrupt even when the demo was started with SIGINT ignored (e.g. in the background).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=pathlib.Path, default=REPO / ".demo", help="demo folder (default: .demo/)")
    parser.add_argument("--timeout", type=float, default=360, help="seconds to wait for the runs (default: 360)")
    parser.add_argument("--keep-running", action="store_true", help="keep Airflow and the sandbox up until Ctrl-C")
    parser.add_argument(
        "--iceberg",
        action="store_true",
        help="write into Iceberg tables of the embedded catalog (Variable genviral_output_format=iceberg) and read "
        "the rows per day and the snapshot history back from genviral.posts",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; stop everything it started, also on Ctrl-C or SIGTERM."""
    demo = Demo(parse_args(argv))
    status = 1
    with stop_on_sigterm():
        try:
            status = demo.run()
            if demo.args.keep_running:
                demo.say(f"Still running: the UI is on {demo.api_url}. Press Ctrl-C to stop.")
                while True:
                    demo.processes.check_alive()
                    time.sleep(2)
        except KeyboardInterrupt:
            demo.say("Interrupted.")
            status = 130
        except DemoError as error:
            demo.say(f"Demo FAILED: {error}")
            status = 1
        finally:
            demo.say("Stopping everything the demo started...")
            demo.processes.stop_all()
            demo.say(f"Stopped. Took {clock(time.monotonic() - demo.started_at)}.")
    return status


if __name__ == "__main__":
    sys.exit(main())
