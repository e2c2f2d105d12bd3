"""The example DAGs' Assets: each names its dataset wherever the Variable points, and a DAG scheduled on one runs."""

from __future__ import annotations

import datetime as dt
import os
import pathlib
from typing import Any

from sqlalchemy import select

from genviral_provider.sandbox import SandboxServer
from tests.conftest import dag_bag, write_dags_folder_to_db
from tests.dags.conftest import DAGS_DIR, UTC, RunExampleDag

#: The Asset each DAG's writing task updates: (dag id, task id) -> (name, URI as Airflow normalises it).
EXPECTED_ASSETS = {
    ("genviral_posts_daily", "write_posts"): ("genviral_posts", "genviral://posts/"),
    ("genviral_metrics_refresh", "write_snapshot"): ("genviral_metrics_snapshots", "genviral://metrics_snapshots/"),
    ("genviral_wait_for_post_analytics", "write_rows"): ("genviral_correlated_posts", "genviral://correlated_posts/"),
    ("genviral_post_checkpoints", "write_checkpoint"): ("genviral_post_checkpoints", "genviral://post_checkpoints/"),
}

CONSUMER = """
from airflow.sdk import DAG, Asset
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("new_posts_consumer", schedule=[Asset(name="genviral_posts", uri="genviral://posts")],
         is_paused_upon_creation=False):
    EmptyOperator(task_id="noop")
"""


def test_every_writing_task_of_the_example_dags_updates_a_named_asset_though_its_folder_is_a_template() -> None:
    bag = dag_bag(str(DAGS_DIR), known_pools={"default_pool"})
    found = {}
    for (dag_id, task_id), _ in EXPECTED_ASSETS.items():
        [asset] = bag.dags[dag_id].get_task(task_id).outlets
        found[(dag_id, task_id)] = (asset.name, asset.uri)
    assert found == EXPECTED_ASSETS


def test_a_day_of_posts_daily_updates_its_asset_and_a_dag_scheduled_on_it_is_due(
    genviral_sandbox: SandboxServer, sandbox_conn: str, output_base: pathlib.Path, run_example_dag: RunExampleDag
) -> None:
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    consumer = pathlib.Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "new_posts_consumer.py"
    consumer.write_text(CONSUMER)
    write_dags_folder_to_db()
    try:
        run = run_example_dag("genviral_posts_daily", logical_date=dt.datetime(2026, 1, 6, tzinfo=UTC))
        assert str(run.state) in ("success", "DagRunState.SUCCESS")
        with create_session() as session:
            asset = session.scalars(select(AssetModel).where(AssetModel.name == "genviral_posts")).one()
            [event] = session.scalars(
                select(AssetEvent).where(AssetEvent.asset_id == asset.id, AssetEvent.source_run_id == run.run_id)
            ).all()
            queued = session.scalars(select(AssetDagRunQueue).where(AssetDagRunQueue.asset_id == asset.id)).all()
            _, due = DagModel.dags_needing_dagruns(session)
            due_ids = set(due)
    finally:
        consumer.unlink()

    assert asset.uri == "genviral://posts/"
    folder = f"file://{output_base}/posts/published_date=2026-01-05"
    assert _event_summary(event.extra) == {
        "path": folder,
        "window_start": "2026-01-05T00:00:00+00:00",
        "window_end": "2026-01-06T00:00:00+00:00",
        "row_count": 40,
    }
    assert [q.target_dag_id for q in queued] == ["new_posts_consumer"]
    assert "new_posts_consumer" in due_ids  # the scheduler would create its run now


def _event_summary(extra: dict[str, Any]) -> dict[str, Any]:
    return {key: extra[key] for key in ("path", "window_start", "window_end", "row_count")}
