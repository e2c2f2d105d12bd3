"""Fixtures for running GenviralPostAnalyticsSensor in real DAG runs against a sandbox on the real clock."""

from __future__ import annotations

import datetime as dt
import pathlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from genviral_provider.sandbox import POSTS_PATH, Dataset, SandboxServer
from tests.conftest import return_value

DAG_TEMPLATE = """
import datetime as dt
import pathlib

from airflow.sdk import DAG, task

from genviral_provider.sensors.genviral import GenviralPostAnalyticsSensor


class RecordingSensor(GenviralPostAnalyticsSensor):
    # Records what the task raised last: failure callbacks do not see the exception on every Airflow 3.x.
    def execute(self, context):
        with self._recorded():
            return super().execute(context)

    def execute_complete(self, context, event=None):
        with self._recorded():
            return super().execute_complete(context, event)

    def _recorded(self):
        import contextlib

        @contextlib.contextmanager
        def record():
            try:
                yield
            except BaseException as error:
                pathlib.Path({error_file!r}).write_text(str(error))
                raise

        return record()


with DAG({dag_id!r}, schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)) as dag:
    wait = RecordingSensor(task_id="wait", {arguments})
    {upstream}
"""


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
def run_sensor(run_dag_file: Callable[..., Any], tmp_path: pathlib.Path) -> Callable[..., SensorRun]:
    """Return a function that runs a one-sensor DAG through `dag.test()` and reports on task `wait`.

    Keyword arguments go to the sensor (as Python literals); `upstream` is DAG code placed after it, which may
    wire an upstream task with `>> wait`.
    """

    def run(dag_id: str, *, upstream: str = "", **arguments: Any) -> SensorRun:
        error_file = tmp_path / f"{dag_id}.error"
        source = DAG_TEMPLATE.format(
            dag_id=dag_id,
            error_file=str(error_file),
            upstream=upstream,
            arguments=", ".join(f"{name}={value!r}" for name, value in arguments.items()),
        )
        dag_run = run_dag_file(source, dag_id)
        task_instance = dag_run.get_task_instance("wait")
        return SensorRun(
            state=str(task_instance.state),
            xcom=return_value(dag_run, "wait"),
            error=error_file.read_text() if error_file.exists() else None,
        )

    return run
