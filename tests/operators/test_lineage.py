"""OpenLineage of GenviralPostsOperator: a real `dag.test()` run with the OpenLineage provider and a file transport.

The run happens in a child process: OpenLineage reads its configuration and registers its listener once per
process, and the other tests run without it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import subprocess
import sys
import textwrap
from typing import Any

from genviral_provider.operators.lineage import API_DATASET_NAME, WINDOW_FACET, dataset_location
from genviral_provider.sandbox import SandboxServer
from tests.operators.conftest import operator_dataset, rows_between

DAG_ID = "posts_lineage"
PLATFORMS = ["tiktok", "instagram"]
DAG_SOURCE = """
import pendulum
from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from genviral_provider.operators.genviral import GenviralPostsOperator

with DAG({dag_id!r}, schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
         start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), default_args={{"retries": 0}}) as dag:
    GenviralPostsOperator(task_id="posts", output_path={output_path!r}, platforms={platforms!r})
"""
RUN = """
import importlib.util, sys
import pendulum

spec = importlib.util.spec_from_file_location("posts_lineage_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from genviral_provider.version_compat import AIRFLOW_V_3_1_PLUS
if not AIRFLOW_V_3_1_PLUS:  # Airflow 3.0's dag.test() does not record the DAG's assets (tests/conftest.py)
    import os
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.models.dagbag import DagBag
    DagBundlesManager().sync_bundles_to_db()
    DagBag(dag_folder=os.path.dirname(sys.argv[1]), include_examples=False).sync_to_db("dags-folder", None)
for day in sys.argv[2].split(","):
    run = module.dag.test(logical_date=pendulum.parse(day))
    print("STATE", run.state)
"""


def run_with_openlineage(
    dag_file: pathlib.Path, events_file: pathlib.Path, days: tuple[str, ...] = ("2026-01-05",)
) -> list[dict[str, Any]]:
    """Run the DAG file's `dag.test()` for each logical day in a child process that emits OpenLineage events to a
    file; return them."""
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__DISABLED": "False",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "genviral-tests",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
    }
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(RUN), str(dag_file), ",".join(days)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout.count("STATE success") == len(days), done.stdout[-3000:] + done.stderr[-3000:]
    return [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]


def test_the_complete_event_carries_the_api_window_as_input_and_the_folder_as_output(
    airflow_db: str,
    genviral_sandbox_factory: Any,
    genviral_connection: Any,
    tmp_path: pathlib.Path,
) -> None:
    dataset = operator_dataset()
    server: SandboxServer = genviral_sandbox_factory(dataset=dataset)
    genviral_connection(server, max_retry_wait=5)
    folder = tmp_path / "posts" / "published_date=2026-01-04"
    dag_file = pathlib.Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / f"{DAG_ID}.py"
    dag_file.parent.mkdir(parents=True, exist_ok=True)
    dag_file.write_text(DAG_SOURCE.format(dag_id=DAG_ID, output_path=f"file://{folder}", platforms=PLATFORMS))
    try:
        events = run_with_openlineage(dag_file, tmp_path / "openlineage.jsonl")
    finally:
        dag_file.unlink()

    (complete,) = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"{DAG_ID}.posts"]
    manifest = json.loads((folder / "_manifest.json").read_text())
    start, end = (dt.datetime.fromisoformat(manifest["window"][key]) for key in ("start", "end"))
    expected_rows = [row for row in rows_between(dataset, start, end).values() if row["platform"] in PLATFORMS]
    (source,) = complete["inputs"]
    assert (source["namespace"], source["name"]) == (f"genviral://{server.url.split('://')[1]}", API_DATASET_NAME)
    dates_read = manifest["api_dates_read"]  # what the reader asked, not the dates that would cover the window
    assert dates_read
    assert {key: value for key, value in source["facets"][WINDOW_FACET].items() if not key.startswith("_")} == {
        "start": "2026-01-04T00:00:00+00:00",  # a manual run of 2026-01-05: the day before it
        "end": "2026-01-05T00:00:00+00:00",
        "apiStartDate": min(d["start"] for d in dates_read),
        "apiEndDate": max(d["end"] for d in dates_read),
        "apiDatesRead": dates_read,
        "platforms": PLATFORMS,
    }
    (written,) = complete["outputs"]
    assert (written["namespace"], written["name"]) == ("file", str(tmp_path / "posts"))  # the dataset, not the day
    partition = written["outputFacets"]["subset"]["outputCondition"]["partitions"][0]["dimensions"]
    assert partition == {"published_date": "2026-01-04"}
    statistics = written["outputFacets"]["outputStatistics"]
    assert statistics["rowCount"] == manifest["row_count"] == len(expected_rows) > 0
    assert statistics["fileCount"] == len(manifest["files"])
    assert statistics["size"] == sum(entry["bytes"] for entry in manifest["files"]) > 0
    facets = written["facets"]
    assert facets["storage"]["fileFormat"] == "json" and facets["storage"]["storageLayer"] == "files"
    assert facets["dataQualityMetrics"]["rowCount"] == manifest["row_count"]
    assert facets["datasource"]["name"] == "file"
    assert_valid_facets(complete)


def test_dataset_location_names_folders_as_airflows_providers_do() -> None:
    assert dataset_location("file:///data/posts") == ("file", "/data/posts")
    assert dataset_location("s3://bucket/genviral/posts/2026-01-05") == ("s3://bucket", "genviral/posts/2026-01-05")
    assert dataset_location("gs://bucket/posts") == ("gs://bucket", "posts")


def assert_valid_facets(event: dict[str, Any]) -> None:
    """Check each facet of an event against its schema: ours with jsonschema, OpenLineage's by their classes."""
    import jsonschema
    from openlineage.client.generated import (
        data_quality_metrics_dataset,
        datasource_dataset,
        output_statistics_output_dataset,
        schema_dataset,
        storage_dataset,
    )
    from openlineage.client.generated.base_subset_dataset import OutputSubsetOutputDatasetFacet

    from genviral_provider.operators.lineage import window_facet_schema

    classes: dict[str, Any] = {
        "datasource": datasource_dataset.DatasourceDatasetFacet,
        "storage": storage_dataset.StorageDatasetFacet,
        "dataQualityMetrics": data_quality_metrics_dataset.DataQualityMetricsDatasetFacet,
        "schema": schema_dataset.SchemaDatasetFacet,
        "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet,
        "subset": OutputSubsetOutputDatasetFacet,
    }
    for dataset in event["inputs"]:
        window = dataset["facets"][WINDOW_FACET]
        jsonschema.validate(window, window_facet_schema(), format_checker=jsonschema.FormatChecker())
        assert window["_schemaURL"] == window_facet_schema()["$id"]
    for dataset in event["outputs"]:
        for key, facet in {**dataset["facets"], **dataset["outputFacets"]}.items():
            if key in classes:
                cls = classes[key]
                assert facet["_schemaURL"] == cls._get_schema(), key
                fields = {field.name for field in attr_fields(cls)}
                assert set(facet) - {"_producer", "_schemaURL", "_deleted"} <= fields, key


def attr_fields(cls: type) -> Any:
    import attr

    return attr.fields(cls)


def test_three_days_give_one_output_dataset_with_one_partition_each(
    airflow_db: str, genviral_sandbox_factory: Any, genviral_connection: Any, tmp_path: pathlib.Path
) -> None:
    server: SandboxServer = genviral_sandbox_factory(dataset=operator_dataset())
    genviral_connection(server, max_retry_wait=5)
    output_path = f"file://{tmp_path}/posts/published_date={{{{ data_interval_start | ds }}}}"
    dag_file = pathlib.Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "posts_lineage_days.py"
    dag_file.parent.mkdir(parents=True, exist_ok=True)
    dag_file.write_text(DAG_SOURCE.format(dag_id="posts_lineage_days", output_path=output_path, platforms=None))
    try:
        events = run_with_openlineage(dag_file, tmp_path / "ol.jsonl", days=("2026-01-05", "2026-01-06", "2026-01-07"))
    finally:
        dag_file.unlink()

    completes = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == "posts_lineage_days.posts"]
    outputs = [output for event in completes for output in event["outputs"]]
    assert {(o["namespace"], o["name"]) for o in outputs} == {("file", str(tmp_path / "posts"))}
    days = [o["outputFacets"]["subset"]["outputCondition"]["partitions"][0]["dimensions"] for o in outputs]
    assert sorted(day["published_date"] for day in days) == ["2026-01-04", "2026-01-05", "2026-01-06"]
    for event in completes:
        assert_valid_facets(event)
