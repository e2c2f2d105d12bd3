"""The end-to-end run's Iceberg DAG, deployed as ``genviral_posts_iceberg.py``: each day's posts into a table.

The table ``genviral.posts`` of the catalog in the Airflow connection ``genviral_iceberg`` (a SQL catalog on the
run's PostgreSQL, its warehouse in the S3 bucket); one atomic commit per run, replacing that day's rows.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable

from genviral_provider.operators.genviral import GenviralPostsOperator

with DAG(
    dag_id="genviral_posts_iceberg",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": dt.timedelta(seconds=5)},
    tags=["genviral", "e2e"],
) as dag:
    GenviralPostsOperator(
        task_id="write_posts",
        start="{{ data_interval_start | ds }}",
        end="{{ data_interval_end | ds }}",
        output_format="iceberg",
        table="genviral.posts",
        catalog_conn_id="genviral_iceberg",
    )
