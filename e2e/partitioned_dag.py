"""The end-to-end run's partitioned DAG, deployed as ``genviral_posts_partitioned.py`` (Airflow 3.2 and later).

A ``CronPartitionTimetable`` gives its runs no data interval and, in a backfill, no logical date: only a
``partition_key`` (the partition's date, in the timetable's ``key_format``) and ``run_after``. The operator is given
no dates, so it must read the day the key names (docs/operator.md, rule 1): the scheduled run of day D+1 (run_offset
-1) and the backfilled partition D (``run_after`` = D itself) both read ``[D, D+1)``.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import DAG, CronPartitionTimetable

from genviral_provider.operators.genviral import GenviralPostsOperator

with DAG(
    dag_id="genviral_posts_partitioned",
    schedule=CronPartitionTimetable("0 0 * * *", timezone="UTC", run_offset=-1),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": dt.timedelta(seconds=5)},
    tags=["genviral", "e2e"],
) as dag:
    GenviralPostsOperator(
        task_id="write_posts",
        output_path="{{ var.value.genviral_output_base }}/partitioned/posts/published_date={{ run_window.start | ds }}",
    )
