"""Each post's metrics at fixed ages: 48 hours and 7 days after it went out (the vendor's guidance), by default.

A run whose data interval is `[A, B)` (one UTC day) records, for each checkpoint age `a`, every post published in
`[A - a, B - a)`: the posts that reached age `a` during the interval. By `B` each of them is between `a` and
`a` + one day old. Consecutive runs have consecutive intervals, so their publication windows tile time: every post
lands in each checkpoint exactly once, in `<base>/checkpoints/age=48h/published_date=YYYY-MM-DD/` (and `age=7d`),
folders that DuckDB, Spark, Athena or BigQuery read as the partitions `age` and `published_date`.

Metrics are as of each analytics target's last refresh. So `wait_for_fresh_analytics` first waits until every
target was refreshed at or after `B` (starting free refreshes; paid ones only with the `max_paid_refreshes`
param). A checkpoint read late is not the metric at that age: when a target's last refresh is more than
`max_lateness_hours` (default 12) after `B` — any `airflow dags test` or backfill of a past day, or the latest run
once the DAG is unpaused late — `plan_checkpoints` ends **skipped** (and the writes after it), with one log line
naming the interval, how late the metrics are and what to read instead: the metrics snapshots
(docs/metrics-snapshots.md) hold the later values. It never writes today's numbers as the 48-hour ones. A run
that cannot be placed in one whole UTC day fails. Each folder holds the
operator's `_manifest.json` (publication window, when read, every target's last refresh) and `_checkpoint.json`
(the age, and the real age range of the measurement per target).

With the Airflow Variable `genviral_output_format` = `iceberg`, the checkpoints go to the table
`genviral.post_checkpoints` of the `genviral_iceberg` connection's catalog instead (without one, an embedded
catalog): every row gets its age as `checkpoint_age`, the table is partitioned by `checkpoint_age` and the day of
`publishedAt`, and a re-run replaces only its (age, day) rows; each commit's snapshot properties say what
`_manifest.json` says of a folder. `jsonl` (the default) and `parquet` write the folders.

Change the ages per run with the `checkpoint_hours` param (e.g. `[24, 48, 168]`). `<base>` is the Airflow
Variable `genviral_output_base` (default `file:///tmp/genviral`). See docs/analysis.md.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import DAG, Asset, Param
from airflow.timetables.interval import CronDataIntervalTimetable  # not in airflow.sdk before Airflow 3.1

from genviral_provider.operators.checkpoints import (
    GenviralCheckpointDescribeOperator,
    GenviralCheckpointPlanOperator,
    GenviralCheckpointPostsOperator,
    checkpoint_interval_end,
)
from genviral_provider.sensors.genviral import GenviralAnalyticsFreshnessSensor

# Rendered when the task runs, never when the file is parsed: the Variable, or a local folder without it.
OUTPUT_BASE = "{{ var.value.get('genviral_output_base', 'file:///tmp/genviral') }}"
# The sink, from the Variable `genviral_output_format`: jsonl (default) or parquet into the age's folder, or iceberg
# into the table `genviral.post_checkpoints` (a run replaces its age's rows of its publication window).
OUTPUT_FORMAT = "{{ var.value.get('genviral_output_format', 'jsonl') }}"
# What the checkpoints update, wherever the Variable points (each event's extra names the folder or table).
POST_CHECKPOINTS = Asset(name="genviral_post_checkpoints", uri="genviral://post_checkpoints")

with DAG(
    dag_id="genviral_post_checkpoints",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,  # an old day cannot be checkpointed any more: its posts are older than the ages now
    max_active_runs=1,
    params={
        "checkpoint_hours": Param(
            [48, 7 * 24],
            type="array",
            items={"type": "integer", "minimum": 1, "maximum": 24 * 365},
            minItems=1,
            uniqueItems=True,
            description="The ages, in hours, at which each post's metrics are recorded (default 48 h and 7 days).",
        ),
        "max_lateness_hours": Param(
            12, type="integer", minimum=0, maximum=24 * 7, description="Skip the run when metrics are later than this."
        ),
        "max_paid_refreshes": Param(
            0,
            type="integer",
            minimum=0,
            maximum=50,
            description="Paid analytics refreshes (credits) the run may start.",
        ),
    },
    user_defined_macros={"checkpoint_interval_end": checkpoint_interval_end},
    render_template_as_native_obj=True,  # checkpoint_hours renders as a list
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=2)},
    tags=["genviral"],
    doc_md=__doc__,
) as dag:
    wait_for_fresh_analytics = GenviralAnalyticsFreshnessSensor(
        task_id="wait_for_fresh_analytics",
        # Every target refreshed at or after B, so that every post of the windows has reached its age.
        fresh_after="{{ checkpoint_interval_end(dag_run) }}",
        max_paid_refreshes="{{ params.max_paid_refreshes }}",
        deferrable=True,
        poke_interval=5 * 60,
        timeout=12 * 60 * 60,
    )
    plan_checkpoints = GenviralCheckpointPlanOperator(
        task_id="plan_checkpoints",
        output_base=OUTPUT_BASE,
        checkpoint_hours="{{ params.checkpoint_hours }}",
        max_lateness_hours="{{ params.max_lateness_hours }}",
    )
    write_checkpoint = GenviralCheckpointPostsOperator.partial(
        task_id="write_checkpoint",
        output_format=OUTPUT_FORMAT,
        table="genviral.post_checkpoints",  # for iceberg; the plan gives each age's output_path and checkpoint_age
        asset=POST_CHECKPOINTS,
        outlets=[POST_CHECKPOINTS],  # a mapped task's outlets are read when the DAG is parsed
    ).expand_kwargs(plan_checkpoints.output)
    describe_checkpoints = GenviralCheckpointDescribeOperator(
        task_id="describe_checkpoints", written=write_checkpoint.output
    )
    wait_for_fresh_analytics >> plan_checkpoints
