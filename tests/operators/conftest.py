"""Fixtures for the operator tests: sandboxes under every reading of the API's dates, DAG files, output readers."""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import json
import pathlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pytest

from genviral_provider.core.rows import published_at, row_key
from genviral_provider.sandbox import Dataset, SandboxServer

if TYPE_CHECKING:
    from airflow.sdk import DAG, Context

UTC = dt.timezone.utc
#: The operator tests' data: 16 rows a day from 2026-01-01 to 2026-03-31 (both DST changes of March included),
#: with posts at 00:00:00.000Z and 23:59:59.999Z of every day.
DATA_START = dt.date(2026, 1, 1)
DATA_DAYS = 90
#: How the API might read its dates: (end inclusive?, zone). Each test DAG reads through all of them.
READINGS: dict[str, tuple[bool, str]] = {
    "genviral_utc_inclusive": (True, "UTC"),
    "genviral_utc_exclusive": (False, "UTC"),
    "genviral_kiritimati_exclusive": (False, "Pacific/Kiritimati"),  # UTC+14
    "genviral_pago_pago_inclusive": (True, "Pacific/Pago_Pago"),  # UTC-11
}


def operator_dataset() -> Dataset:
    """Return a fresh copy of the operator tests' dataset."""
    return Dataset.generate(start=DATA_START, days=DATA_DAYS, rows_per_day=16, seed=7)


def add_boundary_posts(dataset: Dataset, boundaries: Iterable[dt.datetime]) -> None:
    """Insert posts exactly at each boundary instant and one millisecond before it."""
    rows = []
    for boundary in boundaries:
        for instant in (boundary, boundary - dt.timedelta(milliseconds=1)):
            rows.append({"publishedAt": instant.astimezone(UTC).isoformat(timespec="milliseconds")})
    dataset.insert(rows)


def rows_between(dataset: Dataset, start: dt.datetime, end: dt.datetime) -> dict[str, dict[str, Any]]:
    """Return the dataset's rows published in ``[start, end)``, by id."""
    placed = ((row, published_at(row)) for row in dataset.rows)
    return {row_key(row): row for row, instant in placed if instant is not None and start <= instant < end}


@dataclass
class Output:
    """One output folder read back: its manifest, rows in file order, and the names in the folder."""

    folder: pathlib.Path
    manifest: dict[str, Any]
    rows: list[dict[str, Any]]
    names: list[str]

    @property
    def window(self) -> tuple[dt.datetime, dt.datetime]:
        """Return the manifest's window."""
        window = self.manifest["window"]
        return dt.datetime.fromisoformat(window["start"]), dt.datetime.fromisoformat(window["end"])


def read_output(folder: pathlib.Path | str) -> Output:
    """Read a JSON Lines output folder (plain or gzip) through its manifest, the way a consumer should."""
    folder = pathlib.Path(str(folder).removeprefix("file://"))
    manifest = json.loads((folder / "_manifest.json").read_text())
    rows: list[dict[str, Any]] = []
    for entry in manifest["files"]:
        data = (folder / entry["name"]).read_bytes()
        text = gzip.decompress(data).decode() if entry["name"].endswith(".gz") else data.decode()
        part = [json.loads(line) for line in text.split("\n") if line]
        assert len(part) == entry["rows"], entry
        rows.extend(part)
    names = sorted(path.name for path in folder.iterdir())
    return Output(folder, manifest, rows, names)


def assert_tiles(outputs: Sequence[Output], dataset: Dataset) -> None:
    """Check that consecutive outputs tile their span: adjacent windows, each row once, exactly the span's rows."""
    windows = [output.window for output in outputs]
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert end == start, f"windows do not meet: {windows}"
    seen: dict[str, dict[str, Any]] = {}
    for output in outputs:
        start, end = output.window
        for row in output.rows:
            key = row_key(row)
            assert key not in seen, f"row {key} at {row['publishedAt']} written twice"
            instant = published_at(row)
            assert instant is not None and start <= instant < end, f"row at {row['publishedAt']} outside {start}..{end}"
            seen[key] = row
        assert output.manifest["row_count"] == len(output.rows)
    expected = rows_between(dataset, windows[0][0], windows[-1][1])
    missing = sorted(row["publishedAt"] for key, row in expected.items() if key not in seen)
    assert not missing, f"rows never written: {missing[:10]} ({len(missing)} in all)"
    assert seen == expected


@pytest.fixture
def reading_sandboxes(
    genviral_sandbox_factory: Callable[..., SandboxServer], genviral_connection: Callable[..., str]
) -> dict[str, SandboxServer]:
    """Start one sandbox per reading of the API's dates over one shared dataset; each is a connection id."""
    dataset = operator_dataset()
    servers = {}
    for conn_id, (end_inclusive, zone) in READINGS.items():
        server = genviral_sandbox_factory(dataset=dataset, end_inclusive=end_inclusive, date_timezone=zone)
        genviral_connection(server, conn_id=conn_id, max_retries=2, max_retry_wait=2)
        servers[conn_id] = server
    return servers


def operator_context(dag: DAG | None = None, **values: Any) -> Context:
    """Return the context keys the operator reads, as Airflow sets them (absent keys are absent)."""
    context: dict[str, Any] = {key: value for key, value in values.items() if value is not None and key != "run_after"}
    context["dag_run"] = SimpleNamespace(run_after=values.get("run_after"))
    if dag is not None:
        context["dag"] = dag
    return cast("Context", context)


DAG_SOURCE = """
import datetime as dt

import pendulum
from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable
from airflow.timetables.trigger import CronTriggerTimetable

from genviral_provider.operators.genviral import GenviralPostsOperator

with DAG(
    {dag_id!r},
    schedule={schedule},
    start_date=pendulum.datetime(2025, 1, 1, tz={timezone!r}),
    catchup=False,
    default_args={{"retries": 0}},
) as dag:
    for conn_id in {conn_ids!r}:
        GenviralPostsOperator(
            task_id=conn_id,
            genviral_conn_id=conn_id,
            output_path={output_root!r} + "/" + conn_id + "/" + {folder!r},
            {operator_args}
        )
"""


def dag_source(
    dag_id: str,
    *,
    schedule: str,
    output_root: pathlib.Path,
    conn_ids: Iterable[str],
    folder: str = "{{ run_id }}",
    timezone: str = "UTC",
    operator_args: str = "",
) -> str:
    """Return the source of a DAG with one GenviralPostsOperator per connection, writing under ``output_root``."""
    return DAG_SOURCE.format(
        dag_id=dag_id,
        schedule=schedule,
        timezone=timezone,
        conn_ids=list(conn_ids),
        output_root=f"file://{output_root}",
        folder=folder,
        operator_args=operator_args,
    )


def run_folders(root: pathlib.Path, conn_id: str) -> list[Output]:
    """Read every run folder a connection's task wrote, in window order."""
    outputs = [read_output(folder) for folder in (root / conn_id).iterdir() if folder.is_dir()]
    return sorted(outputs, key=lambda output: output.window)
