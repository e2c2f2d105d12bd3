"""Run one ``airflow backfill create`` to its end and gather what happened: runs, tries, parallelism, kills.

While the backfill runs, optional observers are called every second: the task killer and the reader that checks
no partial output is ever visible.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

from e2e.airflow import AirflowApi, AirflowCli, parse_time, run_day
from e2e.services import say, wait_until

#: The title the Task SDK gives the process that runs a task's code: ``airflow worker -- <task instance id>``.
TASK_PROCESS_TITLE = "airflow worker -- "
TASK_TITLE = re.compile(re.escape(TASK_PROCESS_TITLE) + r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

Observer = Callable[[], None]


@dataclass
class Kill:
    """A task process killed with SIGKILL."""

    pid: int
    ti_id: str
    at: dt.datetime
    process: str


@dataclass
class BackfillOutcome:
    """What one backfill did."""

    label: str
    backfill: dict[str, Any]
    runs: list[dict[str, Any]]
    tries: list[dict[str, Any]]  # every try of every task that started after the backfill was created
    seconds: float
    kills: list[Kill] = field(default_factory=list)

    @property
    def created_at(self) -> dt.datetime:
        """When the backfill was created."""
        created = parse_time(self.backfill["created_at"])
        assert created is not None
        return created

    @property
    def retries(self) -> int:
        """Tries that ended in failure and were tried again."""
        return sum(
            1 for attempt in self.tries if attempt["state"] in ("failed", "up_for_retry") and self._retried(attempt)
        )

    def _retried(self, attempt: dict[str, Any]) -> bool:
        key = (attempt["dag_run_id"], attempt["task_id"])
        return any(
            (other["dag_run_id"], other["task_id"]) == key and other["try_number"] > attempt["try_number"]
            for other in self.tries
        )

    def max_parallel_tasks(self) -> int:
        """The most tries that were running at the same instant."""
        events: list[tuple[dt.datetime, int]] = []
        for attempt in self.tries:
            start, end = parse_time(attempt.get("start_date")), parse_time(attempt.get("end_date"))
            if start is not None and end is not None:
                events += [(start, 1), (end, -1)]
        running = peak = 0
        for _, step in sorted(events, key=lambda event: (event[0], event[1])):
            running += step
            peak = max(peak, running)
        return peak


def run_backfill(
    cli: AirflowCli,
    api: AirflowApi,
    *,
    label: str,
    dag_id: str,
    first: dt.date,
    last: dt.date,
    max_active_runs: int,
    reprocess: str | None = None,
    observers: Sequence[Observer] = (),
    timeout: float = 900,
) -> BackfillOutcome:
    """Create a backfill of ``[first, last]`` with the CLI, call observers until it completes, gather its results."""
    started = time.monotonic()
    args = ["backfill", "create", "--dag-id", dag_id, "--from-date", first.isoformat(), "--to-date", last.isoformat()]
    args += ["--max-active-runs", str(max_active_runs)]
    if reprocess is not None:
        args += ["--reprocess-behavior", reprocess]
    say(f"{label}: airflow {' '.join(args)}")
    cli.run(*args)
    backfill = _latest_backfill(api, dag_id)
    deadline = time.monotonic() + timeout
    while backfill["completed_at"] is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill {backfill['id']} of {dag_id} not complete after {timeout:.0f}s")
        for observe in observers:
            observe()
        time.sleep(1)
        backfill = api.get(f"/backfills/{backfill['id']}")
    say(f"{label}: backfill {backfill['id']} complete after {time.monotonic() - started:.0f}s")
    runs = _runs_between(api, dag_id, first, last)
    return BackfillOutcome(
        label=label,
        backfill=backfill,
        runs=runs,
        tries=_tries_since(api, dag_id, runs, parse_time(backfill["created_at"])),
        seconds=time.monotonic() - started,
    )


def _latest_backfill(api: AirflowApi, dag_id: str) -> dict[str, Any]:
    backfills = api.get("/backfills", dag_id=dag_id, limit=100)["backfills"]
    return dict(max(backfills, key=lambda backfill: backfill["id"]))


def _runs_between(api: AirflowApi, dag_id: str, first: dt.date, last: dt.date) -> list[dict[str, Any]]:
    # By day, not by a logical_date filter: a partitioned DAG's backfill runs have none, only a partition date.
    runs = [(day, run) for run in api.dag_runs(dag_id) if (day := run_day(run)) is not None and first <= day <= last]
    return [run for _, run in sorted(runs, key=lambda pair: pair[0])]


def _tries_since(
    api: AirflowApi, dag_id: str, runs: list[dict[str, Any]], since: dt.datetime | None
) -> list[dict[str, Any]]:
    tries: list[dict[str, Any]] = []
    for run in runs:
        for ti in api.task_instances(dag_id, run["dag_run_id"]):
            for attempt in api.tries(dag_id, run["dag_run_id"], ti["task_id"]):
                started = parse_time(attempt.get("start_date"))
                if since is None or (started is not None and started >= since):
                    tries.append(attempt)
    return tries


def wait_for_scheduled_run(api: AirflowApi, dag_id: str, timeout: float = 60) -> None:
    """Wait until the scheduler has created the run of the latest interval, as it does when the DAG is unpaused.

    A backfill created before it could race it for the same logical date; created after, it skips that date.
    """
    wait_until(
        lambda: bool(api.dag_runs(dag_id, run_type="scheduled")),
        timeout=timeout,
        what=f"the scheduled run of {dag_id}",
        interval=2,
    )


class TaskKiller:
    """An observer that SIGKILLs, by pid, a process running a task once the task has run for ``after`` seconds.

    ``target="task"`` kills the task's own process (the Task SDK's task runner, ``airflow worker -- <ti id>``): its
    supervisor sees it die and fails the try. ``target="supervisor"`` kills the worker process supervising it (a
    LocalExecutor worker, or a Celery worker's pool process): the executor or the heartbeat check fails the try.

    :param sessions: the session ids of the deployment's components (each runs in a session of its own): only
        processes in these are touched, never those of another Airflow on the machine.
    """

    def __init__(
        self, sessions: Callable[[], set[int]], *, target: str = "task", count: int = 1, after: float = 1.0
    ) -> None:
        if target not in ("task", "supervisor"):
            raise ValueError(f"target must be 'task' or 'supervisor', not {target!r}")
        self.sessions = sessions
        self.target = target
        self.count = count
        self.after = after
        self.kills: list[Kill] = []

    def __call__(self) -> None:
        if len(self.kills) >= self.count:
            return
        for process in task_processes(self.sessions()):
            if time.time() - process.create_time() >= self.after:
                self._kill(process)
                return

    def _kill(self, task: psutil.Process) -> None:
        try:
            ti_id = _title(task).removeprefix(TASK_PROCESS_TITLE).strip()
            victim = task if self.target == "task" else task.parent()
            if victim is None:
                return
            title, parent = _title(victim), victim.parent()
            os.kill(victim.pid, signal.SIGKILL)
        except (psutil.Error, ProcessLookupError):
            return
        parent_title = _title(parent) if parent is not None else "?"
        self.kills.append(
            Kill(victim.pid, ti_id, dt.datetime.now(dt.timezone.utc), f"{title} (parent: {parent_title})")
        )
        say(
            f"SIGKILLed the {self.target} process {victim.pid} of task instance {ti_id}: {title}; parent {parent_title}"
        )


def _title(process: psutil.Process) -> str:
    return " ".join(part for part in process.cmdline() if part).strip()


def task_processes(sessions: set[int]) -> list[psutil.Process]:
    """Return the task runner processes now running in the given sessions, oldest first.

    The Task SDK retitles a task process (``setproctitle``), which overwrites its environment block too, so
    the session, not AIRFLOW_HOME, tells whose process it is.
    """
    found = []
    for process in psutil.process_iter(["cmdline", "create_time"]):
        cmdline = process.info["cmdline"] or []
        if not cmdline or not TASK_TITLE.fullmatch(cmdline[0].strip()):
            continue
        try:
            if os.getsid(process.pid) in sessions:
                found.append(process)
        except OSError:
            continue
    return sorted(found, key=lambda process: process.info["create_time"])
