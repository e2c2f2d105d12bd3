"""Post checkpoints: plan each age's publication window for a run, write each age, describe what was written.

See :mod:`genviral_provider.core.output.checkpoints` for the layout, and ``dags/genviral_post_checkpoints.py`` for
the DAG that wires the freshness gate and these three operators together.
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
    checked_age_label,
    checked_ages,
    checked_lateness,
    checkpoint_document,
)
from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.operators.assets import as_list
from genviral_provider.operators.genviral import GenviralPostsOperator
from genviral_provider.operators.iceberg_output import ICEBERG_FORMAT, write_to_iceberg
from genviral_provider.version_compat import AirflowFailException, AirflowSkipException


class GenviralCheckpointPlanOperator(BaseOperator):
    """Plan a run's checkpoints: per age, the publication window and folder; skip a run read too late.

    The API's metrics are as of each analytics target's last refresh. Later than the interval's end plus
    ``max_lateness_hours``, they are not the metrics at the checkpoint's age any more (a backfill or a catch-up of
    an old day, a run started late): the task is **skipped** with one log line saying why, and so are the writes
    after it. A run that cannot be placed in one whole UTC day fails.

    Returns (XCom) one ``{"start", "end", "output_path", "checkpoint_age"}`` per age, for
    ``GenviralCheckpointPostsOperator.expand_kwargs``.

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


class GenviralCheckpointPostsOperator(GenviralPostsOperator):
    """Write one age's checkpoint: the posts of its publication window, to its folder or to the checkpoints table.

    With ``output_format="iceberg"``, every row gets ``checkpoint_age`` and the run replaces that age's rows of its
    window only (the table, e.g. ``genviral.post_checkpoints``, is partitioned by age and publication day); with
    ``jsonl`` or ``parquet``, it writes the age's folder (``output_path``) as :class:`GenviralPostsOperator` does.

    Mapped over the plan (``partial(...).expand_kwargs``), give its Asset both as ``asset`` and in ``outlets``:
    Airflow reads a mapped task's outlets from ``partial()`` when the DAG is parsed, before any ``__init__`` runs.

    :param checkpoint_age: the age as the plan names it, e.g. ``48h`` or ``7d`` (templated).
    """

    template_fields: Sequence[str] = (*GenviralPostsOperator.template_fields, "checkpoint_age")

    def __init__(self, *, checkpoint_age: str | None = None, **kwargs: Any) -> None:
        asset, outlets = kwargs.get("asset"), kwargs.get("outlets")
        if asset is not None and outlets is not None:  # the posts operator adds ``asset`` to the outlets itself
            kwargs["outlets"] = [outlet for outlet in as_list(outlets) if outlet != asset]
        super().__init__(**kwargs)
        self.checkpoint_age = checkpoint_age

    def execute(self, context: Context) -> dict[str, Any]:
        """Write the checkpoint; return the posts operator's summary (with ``checkpoint_age`` for a table)."""
        if self.output_format == ICEBERG_FORMAT:
            return write_to_iceberg(self, context, checkpoint_age=checked_age_label(self.checkpoint_age))
        return super().execute(context)


class GenviralCheckpointDescribeOperator(BaseOperator):
    """Write ``_checkpoint.json`` beside each checkpoint folder's manifest: its age and the real age of its metrics.

    A checkpoint committed to a table has no folder: its snapshot's properties hold what the manifest would
    (the window, when it was read, every target's last refresh), and it is described by its age and rows only.

    Returns (XCom) one ``{"folder", "age", "row_count"}`` per folder, ``{"table", "age", "row_count",
    "snapshot_id"}`` per table commit.

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
            if "table" in summary:
                described.append({key: summary[key] for key in ("table", "row_count", "snapshot_id")})
                described[-1]["age"] = summary["checkpoint_age"]
                continue
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
