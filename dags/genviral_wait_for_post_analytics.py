"""Wait until posts created through Genviral show up in its analytics, then save their rows.

Trigger it with the ids `POST /posts` returned, or the `external_id`s you sent when creating the posts:

    airflow dags trigger genviral_wait_for_post_analytics --conf '{"genviral_post_ids": ["d0e1d35c-..."]}'

Rows appear only once their analytics target's cache is refreshed after the post went out. So while the search
waits, `refresh_analytics` starts the free refresh of every target (of the `platforms` param, default all) not
refreshed since the run was triggered, and follows it; it never buys one. If a target's free refresh is used, it
waits for the platform's own refresh and gives up (skipped, not failed) after an hour: the search goes on
regardless. Both sensors wait in the triggerer (deferrable), so a long wait holds no worker slot.

The matched rows land in `<base>/correlated/run_id=<run id>/rows.jsonl`, one API row per line; `<base>` is the
Airflow Variable `genviral_output_base` (default `file:///tmp/genviral`). Run ids hold `:` and `+`, which some
tools and object stores handle badly, so the folder name has every character other than letters, digits, `.`,
`_` and `-` replaced by `_` (`manual__2026-01-15T12:00:00+00:00` becomes `manual__2026-01-15T12_00_00_00_00`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from airflow.sdk import DAG, Asset, ObjectStoragePath, Param, task

from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.sensors.genviral import GenviralAnalyticsFreshnessSensor, GenviralPostAnalyticsSensor

# Rendered when the task runs, never when the file is parsed: the Variable, or a local folder without it.
OUTPUT_BASE = "{{ var.value.get('genviral_output_base', 'file:///tmp/genviral') }}"
# What write_rows updates, wherever the Variable points.
CORRELATED_POSTS = Asset(name="genviral_correlated_posts", uri="genviral://correlated_posts")
# What the sensor searches for, and the rows written read again: the ids given, in posts published since a day
# before the run was triggered.
SEARCH = {
    "genviral_post_ids": "{{ params.genviral_post_ids }}",
    "external_ids": "{{ params.external_ids }}",
    "since": "{{ dag_run.run_after - macros.timedelta(days=1) }}",
    "platforms": "{{ params.platforms }}",
}


def safe_folder_name(run_id: str) -> str:
    """Return the run id with every character but letters, digits, '.', '_' and '-' replaced by '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id)


with DAG(
    dag_id="genviral_wait_for_post_analytics",
    schedule=None,  # runs only when triggered
    params={
        "genviral_post_ids": Param([], type="array", items={"type": "string"}, description="Ids POST /posts gave."),
        "external_ids": Param([], type="array", items={"type": "string"}, description="external_id values sent."),
        "platforms": Param(
            [], type="array", items={"type": "string"}, description="Platforms of the posts (empty: all)."
        ),
    },
    # Params render as what they are (a list stays a list), not as their text.
    render_template_as_native_obj=True,
    tags=["genviral"],
    doc_md=__doc__,
) as dag:
    # Alongside the search, not before it: the posts may be in the cache already.
    refresh_analytics = GenviralAnalyticsFreshnessSensor(
        task_id="refresh_analytics",
        # The posts were created before the run was triggered: the cache must be at least that fresh.
        fresh_after="{{ dag_run.run_after }}",
        platforms="{{ params.platforms }}",
        deferrable=True,
        poke_interval=60,
        timeout=60 * 60,
        soft_fail=True,  # a target left stale does not fail the run: the search decides
    )
    wait_for_analytics = GenviralPostAnalyticsSensor(
        task_id="wait_for_analytics",
        deferrable=True,
        poke_interval=30,  # seconds between searches
        timeout=6 * 60 * 60,  # then fail, naming the ids still missing
        **SEARCH,
    )

    @task(outlets=[CORRELATED_POSTS])
    def write_rows(found: dict[str, list[str]], search: dict[str, Any], base: str, run_id: str) -> str:
        """Write each matched row once, as the API sent it, to rows.jsonl; return the file's path.

        The sensor returns only the ids of the rows it matched (XComs stay small): read the rows once more.
        """
        result = GenviralHook().find_correlated_posts(match="any", **search)
        rows = result.rows(row_id for row_ids in found.values() for row_id in row_ids)  # each row once
        folder = ObjectStoragePath(f"{base}/correlated/run_id={safe_folder_name(run_id)}")
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "rows.jsonl").open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        return str(folder / "rows.jsonl")

    write_rows(wait_for_analytics.output, search=SEARCH, base=OUTPUT_BASE, run_id="{{ run_id }}")
