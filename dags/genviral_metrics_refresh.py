"""A daily snapshot of the metrics of recent posts, to `<base>/metrics_snapshots/snapshot_date=YYYY-MM-DD/`.

Views, likes and shares keep growing for weeks after a post is published, and the API only ever returns their
latest values. So each day this DAG re-reads every post published in the `lookback_days` whole days before the
snapshot date (default 28) and keeps the result: one folder per day, from which metric growth can be analysed
over time (docs/metrics-snapshots.md).

The API's metrics are as of each analytics target's last refresh, so `refresh_targets` first starts every
target's free refresh of the day and waits for it (no credits are spent: a target whose free refresh is used is
snapshotted as it is, and the task log says so). The snapshot's `_manifest.json` records when each target was
last refreshed: the moment its metrics are from.

`write_targets` writes the targets themselves (id, platform, identifier, display name, last refresh) to
`<base>/targets/snapshot_date=YYYY-MM-DD/part-00000.jsonl`: the dimension that posts join to on `platform` and
`accountIdentifier` = `identifier` (docs/analysis.md).

`<base>` is the Airflow Variable `genviral_output_base` (default `file:///tmp/genviral`).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, ObjectStoragePath, Param, task
from airflow.timetables.trigger import CronTriggerTimetable  # not in airflow.sdk before Airflow 3.1

from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.operators.genviral import GenviralPostsOperator, GenviralRefreshAnalyticsOperator

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")
DEFAULT_LOOKBACK_DAYS = 28

# Rendered when the task runs, never when the file is parsed: the Variable, or a local folder without it.
OUTPUT_BASE = "{{ var.value.get('genviral_output_base', 'file:///tmp/genviral') }}"
# The sink, from the Variable `genviral_output_format`: jsonl (default) or parquet into the folder, or iceberg into the
# table `genviral.metrics_snapshots` (a run replaces its snapshot date's rows).
OUTPUT_FORMAT = "{{ var.value.get('genviral_output_format', 'jsonl') }}"
# The snapshot's date: the day the run is for. `dag_run.run_after` exists in every run, manual ones included.
SNAPSHOT_DATE = "{{ dag_run.run_after | ds }}"
TARGET_FIELDS = ("id", "platform", "identifier", "display_name", "last_refreshed_at")
# What the snapshots update, wherever the Variable points (each event's extra names the folder and the window).
METRICS_SNAPSHOTS = Asset(name="genviral_metrics_snapshots", uri="genviral://metrics_snapshots")

with DAG(
    dag_id="genviral_metrics_refresh",
    schedule=CronTriggerTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    # A snapshot holds the metrics of the moment it runs: a backfilled "snapshot of last March" would hold
    # today's numbers under an old date. So no catchup, and do not backfill this DAG.
    catchup=False,
    max_active_runs=1,
    params={
        "lookback_days": Param(
            DEFAULT_LOOKBACK_DAYS,
            type="integer",
            minimum=1,
            maximum=365,
            description="Re-read the posts published in this many whole days before the snapshot date.",
        )
    },
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=2)},
    tags=["genviral"],
    doc_md=__doc__,
) as dag:
    refresh_targets = GenviralRefreshAnalyticsOperator(
        task_id="refresh_targets",
        deferrable=True,  # the refreshes take a minute or two: wait in the triggerer
        poll_interval=15,
        timeout=30 * 60,
    )
    write_snapshot = GenviralPostsOperator(
        task_id="write_snapshot",
        # The window [snapshot date - lookback_days, snapshot date), in UTC.
        start="{{ macros.ds_add(dag_run.run_after | ds, -params.lookback_days) }}",
        end=SNAPSHOT_DATE,
        output_format=OUTPUT_FORMAT,
        output_path=OUTPUT_BASE + "/metrics_snapshots/snapshot_date=" + SNAPSHOT_DATE,  # for jsonl and parquet
        table="genviral.metrics_snapshots",  # for iceberg, with:
        snapshot_date=SNAPSHOT_DATE,
        asset=METRICS_SNAPSHOTS,
    )
    refresh_targets >> write_snapshot

    @task
    def write_targets(base: str, snapshot_date: str) -> dict[str, Any]:
        """Write every analytics target as one JSON line, replacing the day's file whole; return where and how many.

        Written to a `_`-named temporary file first (query engines skip those), then renamed into place.
        """
        targets = GenviralHook().get_analytics_targets()
        folder = ObjectStoragePath(f"{base}/targets/snapshot_date={snapshot_date}")
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f"_part-00000.jsonl.{uuid.uuid4().hex}.tmp"
        with temporary.open("w", encoding="utf-8") as out:
            for target in targets:
                row = {name: getattr(target, name) for name in TARGET_FIELDS}
                row["last_refreshed_at"] = target.last_refreshed_at.isoformat() if target.last_refreshed_at else None
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        temporary.rename(folder / "part-00000.jsonl")
        return {"path": str(folder / "part-00000.jsonl"), "targets": len(targets)}

    refresh_targets >> write_targets(base=OUTPUT_BASE, snapshot_date=SNAPSHOT_DATE)
