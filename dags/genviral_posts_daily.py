"""Every Genviral post published on a day, written once per day to `<base>/posts/published_date=YYYY-MM-DD/`.

`<base>` is the Airflow Variable `genviral_output_base` (default `file:///tmp/genviral`): a folder URI such as
`s3://aws_default@my-bucket/genviral` or `gs://google_cloud_default@my-bucket/genviral` works the same.

Load history with a backfill (docs/backfilling.md):

    airflow backfill create --dag-id genviral_posts_daily --from-date 2026-01-01 --to-date 2026-01-31

Each run replaces its own day's folder and nothing else, so re-running or re-backfilling a day is safe.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import DAG

# Airflow 3.2+ also exports it as airflow.sdk.CronDataIntervalTimetable; this path works from 3.1 on.
from airflow.timetables.interval import CronDataIntervalTimetable

from genviral_provider.operators.genviral import GenviralPostsOperator

# Change these to taste: the first day the scheduler runs, and whether it catches up on every day since.
START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")
CATCHUP = False

# Rendered when the task runs, never when the file is parsed: the Variable, or a local folder without it.
OUTPUT_BASE = "{{ var.value.get('genviral_output_base', 'file:///tmp/genviral') }}"

with DAG(
    dag_id="genviral_posts_daily",
    # The run of day D covers [D 00:00, D+1 00:00) UTC: a data interval of one whole day. (A cron string such as
    # "@daily" gives zero-width intervals in Airflow 3, so every run would have to guess its day.)
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=CATCHUP,
    # At most three days at once when catching up. A backfill has its own limit (`--max-active-runs`, default 10);
    # the pool is what caps API calls across every run and DAG.
    max_active_runs=3,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=2)},
    tags=["genviral"],
    doc_md=__doc__,
) as dag:
    GenviralPostsOperator(
        task_id="write_posts",
        # The window is the run's data interval; the folder is named after its first day.
        output_path=OUTPUT_BASE + "/posts/published_date={{ data_interval_start | ds }}",
        # Create it once: airflow pools set genviral_api 4 "Genviral API"
        pool="genviral_api",
    )
