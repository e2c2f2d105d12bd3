"""Each post's metrics at fixed ages: 48 hours and 7 days after it went out (the vendor's guidance), by default.

A run whose data interval is `[A, B)` (one UTC day) records, for each checkpoint age `a`, every post published in
`[A - a, B - a)`: the posts that reached age `a` during the interval. By `B` each of them is between `a` and
`a` + one day old. Consecutive runs have consecutive intervals, so their publication windows tile time: every post
lands in each checkpoint exactly once, in `<base>/checkpoints/age=48h/published_date=YYYY-MM-DD/` (and `age=7d`),
folders that DuckDB, Spark, Athena or BigQuery read as the partitions `age` and `published_date`.

Metrics are as of each analytics target's last refresh. So `wait_for_fresh_analytics` first waits until every
target was refreshed at or after `B` (starting free refreshes; paid ones only with the `max_paid_refreshes`
param). A checkpoint read late is not the metric at that age: `plan_checkpoints` **refuses** (fails the run, no
retry) when a target's last refresh is more than `max_lateness_hours` (default 12) after `B`, as in a backfill or
a catch-up run of an old day. It never writes today's numbers as the 48-hour ones. Each folder holds the
operator's `_manifest.json` (publication window, when read, every target's last refresh) and `_checkpoint.json`
(the age, and the real age range of the measurement per target).

Change the ages per run with the `checkpoint_hours` param (e.g. `[24, 48, 168]`). `<base>` is the Airflow
Variable `genviral_output_base` (default `file:///tmp/genviral`). See docs/analysis.md.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, ObjectStoragePath, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.operators.genviral import GenviralPostsOperator
from genviral_provider.sensors.genviral import GenviralAnalyticsFreshnessSensor

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")
DEFAULT_CHECKPOINT_HOURS = [48, 7 * 24]
DEFAULT_MAX_LATENESS_HOURS = 12
DAY = dt.timedelta(days=1)
CHECKPOINT_FILE = "_checkpoint.json"

# Rendered when the task runs, never when the file is parsed: the Variable, or a local folder without it.
OUTPUT_BASE = "{{ var.value.get('genviral_output_base', 'file:///tmp/genviral') }}"


def interval_of_run(
    data_interval_start: dt.datetime | None, data_interval_end: dt.datetime | None, run_after: dt.datetime | None
) -> tuple[dt.datetime, dt.datetime]:
    """Return the run's interval `[A, B)`: its data interval, or the UTC day before `run_after` (manual runs).

    :raises AirflowFailException: when the interval is not one whole UTC day (one folder per publication day).
    """
    if data_interval_start is not None and data_interval_end is not None and data_interval_start < data_interval_end:
        start, end = _utc(data_interval_start), _utc(data_interval_end)
    elif run_after is not None:
        end = dt.datetime.combine(_utc(run_after).date(), dt.time(), dt.timezone.utc)
        start = end - DAY
    else:
        raise AirflowFailException("The run has neither a data interval nor run_after: nothing to place it in time.")
    if end - start != DAY or start.time() != dt.time():
        raise AirflowFailException(
            f"The run's interval [{start.isoformat()}, {end.isoformat()}) is not one whole UTC day: this DAG writes "
            "one folder per publication day. Keep its daily schedule (CronDataIntervalTimetable('0 0 * * *'))."
        )
    return start, end


def interval_end(
    data_interval_start: dt.datetime | None, data_interval_end: dt.datetime | None, run_after: dt.datetime | None
) -> str:
    """Return `B`, the end of the run's interval, as ISO 8601 (a template macro: the gate's `fresh_after`)."""
    return interval_of_run(data_interval_start, data_interval_end, run_after)[1].isoformat()


def age_label(hours: int) -> str:
    """Name an age for its folder: whole days as `7d`, other ages as `48h`."""
    return f"{hours // 24}d" if hours % 24 == 0 and hours > 48 else f"{hours}h"


def _utc(instant: dt.datetime) -> dt.datetime:
    """Return an Airflow instant as a plain aware datetime in UTC (Airflow keeps naive ones in UTC)."""
    aware = instant if instant.tzinfo is not None else instant.replace(tzinfo=dt.timezone.utc)
    return dt.datetime.fromtimestamp(aware.timestamp(), dt.timezone.utc)


def _hours(delta: dt.timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def write_json_atomically(path: ObjectStoragePath, document: Any) -> None:
    """Write a JSON document whole or not at all: to a `_`-named temporary file first, then renamed."""
    temporary = path.parent / f"_{path.name}.{uuid.uuid4().hex}.tmp"
    temporary.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    temporary.rename(path)


with DAG(
    dag_id="genviral_post_checkpoints",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    # An old day cannot be checkpointed any more (its posts are older than the ages now): no catchup, and a
    # backfill is refused run by run.
    catchup=False,
    max_active_runs=1,
    params={
        "checkpoint_hours": Param(
            DEFAULT_CHECKPOINT_HOURS,
            type="array",
            items={"type": "integer", "minimum": 1, "maximum": 24 * 365},
            minItems=1,
            uniqueItems=True,
            description="The ages, in hours, at which each post's metrics are recorded (default 48 h and 7 days).",
        ),
        "max_lateness_hours": Param(
            DEFAULT_MAX_LATENESS_HOURS,
            type="integer",
            minimum=0,
            maximum=24 * 7,
            description="Refuse the run when a target's metrics are from more than this long after the interval.",
        ),
        "max_paid_refreshes": Param(
            0,
            type="integer",
            minimum=0,
            maximum=50,
            description="Paid analytics refreshes (credits) the run may start when a free one is not available.",
        ),
    },
    user_defined_macros={"interval_end": interval_end},
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=2)},
    tags=["genviral"],
    doc_md=__doc__,
) as dag:
    wait_for_fresh_analytics = GenviralAnalyticsFreshnessSensor(
        task_id="wait_for_fresh_analytics",
        # Every target refreshed at or after B, so that every post of the windows has reached its age.
        fresh_after="{{ interval_end(dag_run.data_interval_start, dag_run.data_interval_end, dag_run.run_after) }}",
        max_paid_refreshes="{{ params.max_paid_refreshes }}",
        deferrable=True,
        poke_interval=5 * 60,
        timeout=12 * 60 * 60,
    )

    @task
    def plan_checkpoints(base: str, params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        """Refuse a late run; return, per checkpoint age, the publication window and the folder to write.

        The metrics are as of each target's last refresh: later than B + max_lateness_hours, they are not the
        metrics at the checkpoint's age any more.
        """
        run = get_current_context()["dag_run"]
        params = params or {}
        start, end = interval_of_run(run.data_interval_start, run.data_interval_end, run.run_after)
        latest = end + dt.timedelta(hours=int(params.get("max_lateness_hours", DEFAULT_MAX_LATENESS_HOURS)))
        late = [
            f"{target.describe()} last refreshed {target.last_refreshed_at or 'at an unknown time'}"
            for target in GenviralHook().get_analytics_targets()
            if target.last_refreshed_at is None or target.last_refreshed_at > latest
        ]
        if late:
            raise AirflowFailException(
                f"Refusing to record checkpoints of the interval [{start.isoformat()}, {end.isoformat()}): the API's "
                f"metrics are as of after {latest.isoformat()} (the interval's end + max_lateness_hours), so they "
                f"are not the metrics at the checkpoint ages: {'; '.join(late)}. A backfill or catch-up of an old "
                "day cannot be checkpointed; use the metrics snapshots (docs/metrics-snapshots.md) for such days."
            )
        plan = []
        for hours in sorted({int(hours) for hours in params.get("checkpoint_hours", DEFAULT_CHECKPOINT_HOURS)}):
            age = dt.timedelta(hours=hours)
            published_from = start - age
            folder = f"{base}/checkpoints/age={age_label(hours)}/published_date={published_from:%Y-%m-%d}"
            if published_from.time() != dt.time():
                folder += f"/published_from={published_from:%H%M}"  # an age that is not whole days
            plan.append({"start": published_from.isoformat(), "end": (end - age).isoformat(), "output_path": folder})
        return plan

    plan = plan_checkpoints(base=OUTPUT_BASE)
    write_checkpoint = GenviralPostsOperator.partial(task_id="write_checkpoint").expand_kwargs(plan)

    @task
    def describe_checkpoints(written: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write `_checkpoint.json` next to each manifest: the age, and the real age range of each target's rows.

        A post published at p, read from a target last refreshed at r, is r - p old in the data: over the window
        [start, end), between r - end and r - start.
        """
        described = []
        for summary in written:
            folder = ObjectStoragePath(summary["output_path"])
            manifest = json.loads((folder / "_manifest.json").read_text())
            start = dt.datetime.fromisoformat(manifest["window"]["start"])
            end = dt.datetime.fromisoformat(manifest["window"]["end"])
            age = next(part.removeprefix("age=") for part in folder.parts if part.startswith("age="))
            targets = {}
            for target_id, target in manifest["freshness"]["targets"].items():
                refreshed = dt.datetime.fromisoformat(target["last_refreshed_at"])
                targets[target_id] = {
                    "platform": target["platform"],
                    "identifier": target["identifier"],
                    "last_refreshed_at": target["last_refreshed_at"],
                    "age_hours": [_hours(refreshed - end), _hours(refreshed - start)],
                }
            document = {
                "age": age,
                "publication_window": manifest["window"],
                "read_at": manifest["extracted_at"],
                "row_count": manifest["row_count"],
                "age_hours": [
                    min(t["age_hours"][0] for t in targets.values()),
                    max(t["age_hours"][1] for t in targets.values()),
                ]
                if targets
                else None,
                "targets": targets,
            }
            write_json_atomically(folder / CHECKPOINT_FILE, document)
            described.append({"folder": str(folder), "age": age, "row_count": manifest["row_count"]})
        return described

    wait_for_fresh_analytics >> plan
    describe_checkpoints(write_checkpoint.output)
