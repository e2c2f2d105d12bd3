"""Fixtures for running GenviralPostAnalyticsSensor in real DAG runs against a sandbox on the real clock."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from genviral_provider.sandbox import POSTS_PATH, Dataset, SandboxServer
from tests.conftest import TaskOutcome

SENSOR = "genviral_provider.sensors.genviral.GenviralPostAnalyticsSensor"


@dataclass
class SensorRun:
    """What a DAG run of the sensor left behind: its state, its XCom and its failure."""

    state: str
    xcom: Any
    error: str | None


@pytest.fixture
def live_sandbox(genviral_sandbox_factory: Callable[..., SandboxServer], genviral_connection: Any) -> SandboxServer:
    """A sandbox on the real clock with 3 days x 150 rows up to today, as connection `genviral_default`."""
    today = dt.datetime.now(dt.timezone.utc).date()
    dataset = Dataset.generate(start=today - dt.timedelta(days=2), days=3, rows_per_day=150, seed=4)
    server = genviral_sandbox_factory(dataset=dataset, now=None)
    genviral_connection(server, max_retry_wait=5)
    return server


def searches(server: SandboxServer) -> int:
    """Count the searches a sandbox has seen: each starts at the first page of the posts."""
    return sum(1 for record in server.stats.requests if record.path == POSTS_PATH and record.query["offset"] == "0")


@pytest.fixture
def insert_when_polled() -> Iterator[Callable[..., None]]:
    """Return a function that inserts rows once the sandbox has seen `after_searches` searches (in a thread).

    Counting searches, not seconds, makes every mode really wait, however fast or slow the machine.
    """
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def schedule(server: SandboxServer, rows: Sequence[Mapping[str, Any]], after_searches: int = 3) -> None:
        def insert() -> None:
            while searches(server) < after_searches:
                if stop.wait(0.02):
                    return
            server.insert_posts(rows)

        thread = threading.Thread(target=insert, daemon=True)
        thread.start()
        threads.append(thread)

    yield schedule
    stop.set()
    for thread in threads:
        thread.join()


@pytest.fixture
def run_sensor(run_one_task: Callable[..., TaskOutcome]) -> Callable[..., SensorRun]:
    """Return a function that runs a one-sensor DAG through `dag.test()` and reports on task `wait`.

    Keyword arguments go to the sensor (as Python literals); `upstream` is DAG code placed after it, which may
    wire an upstream task with `>> wait`.
    """

    def run(dag_id: str, *, upstream: str = "", **arguments: Any) -> SensorRun:
        state, xcom, error = run_one_task(SENSOR, dag_id, task_id="wait", upstream=upstream, **arguments)
        return SensorRun(state=state, xcom=xcom, error=error)

    return run
