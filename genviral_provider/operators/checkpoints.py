"""Post checkpoints: plan each age's publication window for a run, and describe what the posts operator wrote.

See :mod:`genviral_provider.core.output.checkpoints` for the layout, and ``dags/genviral_post_checkpoints.py`` for
the DAG that wires the freshness gate, these two operators and ``GenviralPostsOperator`` together.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator, Context, ObjectStoragePath

from genviral_provider.core.output.checkpoints import (
    CHECKPOINT_FILE,
    DEFAULT_CHECKPOINT_HOURS,
    DEFAULT_MAX_LATENESS_HOURS,
    CheckpointInterval,
    checked_ages,
    checked_lateness,
    checkpoint_document,
)
from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.version_compat import AirflowFailException, AirflowSkipException


class GenviralCheckpointPlanOperator(BaseOperator):
    """Plan a run's checkpoints: per age, the publication window and folder; skip a run read too late.

    The API's metrics are as of each analytics target's last refresh. Later than the interval's end plus
    ``max_lateness_hours``, they are not the metrics at the checkpoint's age any more (a backfill or a catch-up of
    an old day, a run started late): the task is **skipped** with one log line saying why, and so are the writes
    after it. A run that cannot be placed in one whole UTC day fails.

    Returns (XCom) one ``{"start", "end", "output_path"}`` per age, for ``GenviralPostsOperator.expand_kwargs``.

    :param output_base: the folder under which ``checkpoints/age=…/published_date=…`` are written (templated).
    :param checkpoint_hours: the ages in hours (templated; default 48 h and 7 days).
    :param max_lateness_hours: how long after the interval's end the metrics may be (templated; default 12).
    :param genviral_conn_id: the Genviral connection (templated).
    """

    template_fields: Sequence[str] = ("output_base", "checkpoint_hours", "max_lateness_hours", "genviral_conn_id")

    def __init__(
        self,
        *,
        output_base: str,
        checkpoint_hours: Sequence[int] | str = DEFAULT_CHECKPOINT_HOURS,
        max_lateness_hours: int | str = DEFAULT_MAX_LATENESS_HOURS,
        genviral_conn_id: str = GenviralHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.output_base = output_base
        self.checkpoint_hours = checkpoint_hours
        self.max_lateness_hours = max_lateness_hours
        self.genviral_conn_id = genviral_conn_id

    @cached_property
    def hook(self) -> GenviralHook:
        """The hook of ``genviral_conn_id``."""
        return GenviralHook(genviral_conn_id=self.genviral_conn_id)

    def execute(self, context: Context) -> list[dict[str, str]]:
        """Return the plan, or skip when the metrics are later than the ages they would stand for."""
        ages, lateness = checked_ages(self.checkpoint_hours), checked_lateness(self.max_lateness_hours)
        interval = _interval_of(context["dag_run"])
        latest = interval.end + lateness
        late = [
            f"{target.describe()} last refreshed {target.last_refreshed_at or 'at an unknown time'}"
            for target in self.hook.get_analytics_targets()
            if target.last_refreshed_at is None or target.last_refreshed_at > latest
        ]
        if late:
            message = (
                f"Skipping the checkpoints of the interval {interval.describe()}: the API's metrics are as of after "
                f"{latest.isoformat()} (the interval's end + max_lateness_hours={lateness.total_seconds() / 3600:g}), "
                f"so they are not the metrics at the ages {ages} h: {'; '.join(late)}. Nothing is wrong with the "
                "pipeline; for a past day, read the metrics snapshots (docs/metrics-snapshots.md), which hold the "
                "later values."
            )
            raise AirflowSkipException(message)  # Airflow logs it once, as the reason of the skip
        return interval.plan(str(self.output_base), ages)


class GenviralCheckpointDescribeOperator(BaseOperator):
    """Write ``_checkpoint.json`` beside each checkpoint folder's manifest: its age and the real age of its metrics.

    Returns (XCom) one ``{"folder", "age", "row_count"}`` per folder.

    :param written: the summaries ``GenviralPostsOperator`` returned for the folders (templated; an XComArg).
    """

    template_fields: Sequence[str] = ("written",)

    def __init__(self, *, written: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.written = written

    def execute(self, context: Context) -> list[dict[str, Any]]:
        """Describe each folder written."""
        described = []
        written = self.written or []
        # By index, not by iterating: iterating Airflow's lazy XCom sequence asks for one item past the end, which
        # the API server answers 404 and the task log shows as an error in a green run.
        for summary in (written[index] for index in range(len(written))):
            folder = ObjectStoragePath(summary["output_path"])
            manifest = json.loads((folder / "_manifest.json").read_text())
            age = next(part.removeprefix("age=") for part in folder.parts if part.startswith("age="))
            _write_json_atomically(folder / CHECKPOINT_FILE, checkpoint_document(manifest, age))
            described.append({"folder": str(folder), "age": age, "row_count": manifest["row_count"]})
        return described


def _write_json_atomically(path: ObjectStoragePath, document: Any) -> None:
    """Write a JSON document whole or not at all: to a ``_``-named temporary file first, then renamed."""
    temporary = path.parent / f"_{path.name}.{uuid.uuid4().hex}.tmp"
    temporary.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    temporary.rename(path)


def checkpoint_interval_end(dag_run: Any) -> str:
    """The end of a run's checkpoint interval, ISO 8601: a template macro for the freshness gate's ``fresh_after``."""
    return _interval_of(dag_run).end.isoformat()


def _interval_of(dag_run: Any) -> CheckpointInterval:
    try:
        return CheckpointInterval.of_run(dag_run.data_interval_start, dag_run.data_interval_end, dag_run.run_after)
    except ValueError as error:
        raise AirflowFailException(str(error)) from error
