"""The checkpoint layout: a run's interval, each age's publication window and folder, and _checkpoint.json."""

from __future__ import annotations

import datetime as dt

import pytest

from genviral_provider.core.output.checkpoints import (
    CheckpointInterval,
    age_label,
    checked_age_label,
    checked_ages,
    checked_lateness,
    checkpoint_document,
)
from genviral_provider.exceptions import GenviralInvalidParameterError

UTC = dt.timezone.utc


def _day(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2026, 1, day, hour, tzinfo=UTC)


def test_ages_are_named_in_days_above_two_days_and_in_hours_otherwise() -> None:
    assert [age_label(hours) for hours in (24, 36, 48, 72, 168)] == ["24h", "36h", "48h", "3d", "7d"]


def test_the_interval_is_the_data_interval_or_the_utc_day_before_run_after() -> None:
    assert CheckpointInterval.of_run(None, None, _day(14, 6)) == CheckpointInterval(_day(13), _day(14))
    assert CheckpointInterval.of_run(_day(13), _day(14), _day(14, 6)) == CheckpointInterval(_day(13), _day(14))
    naive = CheckpointInterval.of_run(_day(13).replace(tzinfo=None), _day(14).replace(tzinfo=None), _day(14))
    assert naive == CheckpointInterval(_day(13), _day(14))  # Airflow's naive instants are UTC


def test_an_interval_other_than_one_whole_utc_day_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"\[2026-01-14T05:00:00\+00:00, 2026-01-14T06:00:00\+00:00\) is not"):
        CheckpointInterval.of_run(_day(14, 5), _day(14, 6), _day(14, 6))


def test_each_age_reads_the_posts_that_reached_it_during_the_interval() -> None:
    plan = CheckpointInterval(_day(14), _day(15)).plan("file:///out/", [168, 48, 36])

    assert plan == [
        {
            "start": "2026-01-12T12:00:00+00:00",
            "end": "2026-01-13T12:00:00+00:00",
            "output_path": "file:///out/checkpoints/age=36h/published_date=2026-01-12/published_from=1200",
            "checkpoint_age": "36h",
        },
        {
            "start": "2026-01-12T00:00:00+00:00",
            "end": "2026-01-13T00:00:00+00:00",
            "output_path": "file:///out/checkpoints/age=48h/published_date=2026-01-12",
            "checkpoint_age": "48h",
        },
        {
            "start": "2026-01-07T00:00:00+00:00",
            "end": "2026-01-08T00:00:00+00:00",
            "output_path": "file:///out/checkpoints/age=7d/published_date=2026-01-07",
            "checkpoint_age": "7d",
        },
    ]


@pytest.mark.parametrize("bad", [[], [0], [24.5], ["48"], "48", [True], [24 * 366]])
def test_bad_ages_are_refused_naming_them(bad: object) -> None:
    with pytest.raises(GenviralInvalidParameterError, match="checkpoint_hours"):
        checked_ages(bad)


def test_a_checkpoint_age_is_one_the_plan_names() -> None:
    assert [checked_age_label(label) for label in ("48h", "7d", "36h", " 1h ")] == ["48h", "7d", "36h", "1h"]


@pytest.mark.parametrize("bad", ["72h", "2d", "0h", "48", "7 d", "", None, "366d", 48])
def test_other_checkpoint_ages_are_refused_naming_them(bad: object) -> None:
    with pytest.raises(GenviralInvalidParameterError, match=rf"checkpoint_age {bad!r} is not allowed.*'48h' or '7d'"):
        checked_age_label(bad)


def test_lateness_is_whole_hours_even_when_rendered_as_text() -> None:
    assert checked_lateness("13") == checked_lateness(13) == dt.timedelta(hours=13)
    with pytest.raises(GenviralInvalidParameterError, match="max_lateness_hours '-1'"):
        checked_lateness("-1")


def test_the_checkpoint_document_gives_each_targets_real_age_range() -> None:
    manifest = {
        "window": {"start": "2026-01-12T00:00:00+00:00", "end": "2026-01-13T00:00:00+00:00"},
        "extracted_at": "2026-01-14T01:00:00+00:00",
        "row_count": 3,
        "freshness": {
            "targets": {
                "t1": {"platform": "tiktok", "identifier": "@a", "last_refreshed_at": "2026-01-14T00:00:00+00:00"},
                "t2": {"platform": "youtube", "identifier": "@b", "last_refreshed_at": "2026-01-14T06:00:00+00:00"},
            }
        },
    }

    document = checkpoint_document(manifest, "48h")

    assert document["targets"]["t1"]["age_hours"] == [24.0, 48.0]
    assert document["targets"]["t2"]["age_hours"] == [30.0, 54.0]
    assert document["age_hours"] == [24.0, 54.0]
    assert (document["age"], document["row_count"], document["read_at"]) == ("48h", 3, "2026-01-14T01:00:00+00:00")
