"""Every Genviral post published on a day, written once per day to `<base>/posts/published_date=YYYY-MM-DD/`.

`<base>` is the Airflow Variable `genviral_output_base` (default `file:///tmp/genviral`): a folder URI such as
`s3://aws_default@my-bucket/genviral` or `gs://google_cloud_default@my-bucket/genviral` works the same.

The API serves a cache that each analytics target (tracked account) refreshes on its own schedule: a post
published after its target's last refresh is not there yet. So a day is written only once the cache holds it:
`wait_for_fresh_analytics` waits (in the triggerer) until every target was refreshed after the day ended,
starting each target's free refresh of the day when it needs one. Paid refreshes cost credits and are off unless
the run's param `max_paid_refreshes` allows some (docs/freshness.md). Each folder's `_manifest.json` records every
target's last refresh (the data's freshness watermark).

Load history with a backfill (docs/backfilling.md):

    airflow backfill create --dag-id genviral_posts_daily --from-date 2026-01-01 --to-date 2026-01-31

Each run replaces its own day's folder and nothing else, so re-running or re-backfilling a day is safe.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import DAG, Asset, Param
from airflow.timetables.interval import CronDataIntervalTimetable  # not in airflow.sdk before Airflow 3.1

from genviral_provider.operators.genviral import GenviralPostsOperator
from genviral_provider.sensors.genviral import GenviralAnalyticsFreshnessSensor

# Change these to taste: the first day the scheduler runs, and whether it catches up on every day since.
START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")
CATCHUP = False

# Rendered when the task runs, never when the file is parsed: the Variable, or a local folder without it.
OUTPUT_BASE = "{{ var.value.get('genviral_output_base', 'file:///tmp/genviral') }}"
# The sink, from the Variable `genviral_output_format`: jsonl (default) or parquet into the folder, or iceberg into the
# table `genviral.posts` of the `genviral_iceberg` connection's catalog (without one, an embedded catalog).
OUTPUT_FORMAT = "{{ var.value.get('genviral_output_format', 'jsonl') }}"
# The folder of the run's day, named after the window the operator reads (`run_window`, see docs/operator.md): a
# scheduled or backfill run of day D reads [D, D+1) UTC; a manual run with logical date D, the whole day before D (as
# Airflow gives manual runs); a manual run without one, the last whole UTC day before it was triggered.
POSTS_FOLDER = OUTPUT_BASE + "/posts/published_date={{ run_window.start | ds }}"
# What the runs update, wherever the Variable points: DAGs with `schedule=[POSTS]` run after each new day. Each
# event's extra names the folder (`path`), the window and the row count.
POSTS = Asset(name="genviral_posts", uri="genviral://posts")

with DAG(
    dag_id="genviral_posts_daily",
    # The run of day D covers [D 00:00, D+1 00:00) UTC: a data interval of one whole day. (A cron string such as
    # "@daily" gives zero-width intervals in Airflow 3, so every run would have to guess its day.)
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=CATCHUP,
    # At most three days at once when catching up. A backfill has its own limit (`--max-active-runs`, default 10).
    # To cap API calls across every run and DAG, create a pool and give these tasks `pool=` (docs/backfilling.md).
    max_active_runs=3,
    params={
        "max_paid_refreshes": Param(
            0,
            type="integer",
            minimum=0,
            maximum=50,
            description="Paid analytics refreshes (credits) the run may start when a free one is not available.",
        ),
    },
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=2)},
    tags=["genviral"],
    doc_md=__doc__,
) as dag:
    wait_for_fresh_analytics = GenviralAnalyticsFreshnessSensor(
        task_id="wait_for_fresh_analytics",
        # Every target refreshed after the run's day ended (the end of the operator's window); free refreshes are
        # started when needed.
        max_paid_refreshes="{{ params.max_paid_refreshes }}",
        deferrable=True,
        poke_interval=5 * 60,  # seconds between checks: one request each, plus those of refreshes in flight
        timeout=24 * 60 * 60,  # a target whose free refresh is used waits for its platform's daily refresh
    )
    write_posts = GenviralPostsOperator(
        task_id="write_posts",
        # The window is the run's whole day, and the folder is named after it.
        output_format=OUTPUT_FORMAT,
        output_path=POSTS_FOLDER,  # for jsonl and parquet
        table="genviral.posts",  # for iceberg
        asset=POSTS,
    )
    wait_for_fresh_analytics >> write_posts
