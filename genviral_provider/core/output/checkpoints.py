"""Post checkpoints: each post's metrics at fixed ages, one folder (or table partition) per age and publication day.

A run whose interval is ``[A, B)`` (one UTC day) records, for each age ``a``, the posts published in
``[A - a, B - a)``: those that reached age ``a`` during the interval. Consecutive intervals tile time, so every
post lands in each checkpoint exactly once. Besides the posts operator's ``_manifest.json``, each folder holds
``_checkpoint.json``: the age and the real age range of the measurement per analytics target. Written to an
Iceberg table instead, each row gets its age as ``checkpoint_age`` (the folder's ``age``, e.g. ``48h``), the
partition a run replaces with the publication window.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from genviral_provider.core.rows import UTC, to_utc
from genviral_provider.exceptions import GenviralInvalidParameterError

DEFAULT_CHECKPOINT_HOURS = (48, 7 * 24)  # the vendor's guidance: 48 hours and 7 days after a post went out
DEFAULT_MAX_LATENESS_HOURS = 12
CHECKPOINT_FILE = "_checkpoint.json"
DAY = dt.timedelta(days=1)
MAX_AGE_HOURS = 24 * 365


@dataclass(frozen=True)
class CheckpointInterval:
    """One run's interval ``[start, end)``: one whole UTC day."""

    start: dt.datetime
    end: dt.datetime

    @classmethod
    def of_run(
        cls, data_interval_start: dt.datetime | None, data_interval_end: dt.datetime | None, run_after: dt.datetime
    ) -> CheckpointInterval:
        """The run's data interval, or the UTC day before ``run_after`` (a manual run without one).

        :raises ValueError: when the interval is not one whole UTC day (one folder per publication day).
        """
        if (
            data_interval_start is not None
            and data_interval_end is not None
            and data_interval_start < data_interval_end
        ):
            start, end = _utc(data_interval_start), _utc(data_interval_end)
        else:
            end = dt.datetime.combine(_utc(run_after).date(), dt.time(), UTC)
            start = end - DAY
        if end - start != DAY or start.time() != dt.time():
            raise ValueError(
                f"The run's interval [{start.isoformat()}, {end.isoformat()}) is not one whole UTC day: checkpoints "
                "are written one folder per publication day. Keep a daily schedule "
                "(CronDataIntervalTimetable('0 0 * * *', timezone='UTC'))."
            )
        return cls(start, end)

    def describe(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"

    def plan(self, base: str, hours: Iterable[int]) -> list[dict[str, str]]:
        """Per age: the publication window of the posts that reached it during the interval, and their folder."""
        plan = []
        for age_hours in sorted(set(hours)):
            age = dt.timedelta(hours=age_hours)
            published_from = self.start - age
            folder = (
                f"{base.rstrip('/')}/checkpoints/age={age_label(age_hours)}/published_date={published_from:%Y-%m-%d}"
            )
            if published_from.time() != dt.time():
                folder += f"/published_from={published_from:%H%M}"  # an age that is not whole days
            window = {"start": published_from.isoformat(), "end": (self.end - age).isoformat()}
            plan.append({**window, "output_path": folder, "checkpoint_age": age_label(age_hours)})
        return plan


def age_label(hours: int) -> str:
    """Name an age for its folder: whole days above two days as ``7d``, other ages as ``48h``."""
    return f"{hours // 24}d" if hours % 24 == 0 and hours > 48 else f"{hours}h"


def checked_age_label(label: object) -> str:
    """Validate a checkpoint's age as :func:`age_label` names it (``48h``, ``7d``).

    :raises GenviralInvalidParameterError: naming the bad value.
    """
    text = str(label).strip() if label is not None else ""
    match = re.fullmatch(r"([1-9][0-9]*)([hd])", text)
    hours = int(match.group(1)) * (24 if match.group(2) == "d" else 1) if match else 0
    if not match or hours > MAX_AGE_HOURS or age_label(hours) != text:
        raise GenviralInvalidParameterError(
            f"checkpoint_age {label!r} is not allowed: give an age as the checkpoint plan names it, hours up to two "
            "days and whole days above, e.g. '48h' or '7d'."
        )
    return text


def checked_ages(checkpoint_hours: object) -> list[int]:
    """Validate the checkpoint ages: whole hours from 1 to a year, at least one.

    :raises GenviralInvalidParameterError: naming the bad value.
    """
    values = (
        list(checkpoint_hours)
        if isinstance(checkpoint_hours, Sequence) and not isinstance(checkpoint_hours, str)
        else None
    )
    if not values or not all(
        isinstance(h, int) and not isinstance(h, bool) and 1 <= h <= MAX_AGE_HOURS for h in values
    ):
        raise GenviralInvalidParameterError(
            f"checkpoint_hours {checkpoint_hours!r} is not allowed: give a list of whole hours from 1 to "
            f"{MAX_AGE_HOURS}, e.g. [48, 168]."
        )
    return sorted(set(values))


def checked_lateness(max_lateness_hours: object) -> dt.timedelta:
    """Validate ``max_lateness_hours``: a whole number of hours, zero or more (a template renders it as text)."""
    text = str(max_lateness_hours).strip()
    if not text.isdigit():
        raise GenviralInvalidParameterError(
            f"max_lateness_hours {max_lateness_hours!r} is not allowed: give a whole number of hours, 0 or more."
        )
    return dt.timedelta(hours=int(text))


def checkpoint_document(manifest: Mapping[str, Any], age: str) -> dict[str, Any]:
    """What ``_checkpoint.json`` says of a folder, from its manifest: the age, and each target's real age range.

    A post published at p, read from a target last refreshed at r, is r - p old in the data: over the window
    ``[start, end)``, between r - end and r - start.
    """
    start = dt.datetime.fromisoformat(manifest["window"]["start"])
    end = dt.datetime.fromisoformat(manifest["window"]["end"])
    targets = {}
    for target_id, target in manifest["freshness"]["targets"].items():
        refreshed = dt.datetime.fromisoformat(target["last_refreshed_at"])
        targets[target_id] = {
            "platform": target["platform"],
            "identifier": target["identifier"],
            "last_refreshed_at": target["last_refreshed_at"],
            "age_hours": [_hours(refreshed - end), _hours(refreshed - start)],
        }
    spans = [t["age_hours"] for t in targets.values()]
    return {
        "age": age,
        "publication_window": manifest["window"],
        "read_at": manifest["extracted_at"],
        "row_count": manifest["row_count"],
        "age_hours": [min(s[0] for s in spans), max(s[1] for s in spans)] if spans else None,
        "targets": targets,
    }


def _utc(instant: dt.datetime) -> dt.datetime:
    return to_utc(instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC))  # Airflow's naive is UTC


def _hours(delta: dt.timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)
