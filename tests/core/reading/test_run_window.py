"""The run window: which instants a run covers, which API dates cover them, which rows belong to it."""

from __future__ import annotations

import datetime as dt
import random
import re
from typing import Any
from zoneinfo import ZoneInfo

import pendulum
import pytest

from genviral_provider.core.reading.run_window import (
    RunPartition,
    RunWindow,
    WindowFilter,
    checked_max_unplaceable,
    covering_dates,
    parse_instant,
    resolve_run_window,
    shift,
)
from genviral_provider.exceptions import GenviralIncompleteWindowError, GenviralInvalidParameterError
from genviral_provider.sandbox import PostsQuery, published_window

UTC = dt.timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
DAY = dt.timedelta(days=1)
#: Zones spanning every offset in use, from UTC-12 to UTC+14, half and quarter hours included.
API_ZONES = (
    "Etc/GMT+12",
    "Pacific/Pago_Pago",
    "America/New_York",
    "UTC",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
)


def at(day: int, hour: int = 0, minute: int = 0, tz: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime(2026, 1, day, hour, minute, tzinfo=tz)


def window(**overrides: object) -> RunWindow:
    arguments: dict[str, object] = {
        "start": None,
        "end": None,
        "length": DAY,
        "data_interval": None,
        "logical_date": None,
        "run_after": None,
    }
    arguments.update(overrides)
    return resolve_run_window(**arguments)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- the rule table


@pytest.mark.parametrize(
    ("case", "overrides", "expected"),
    [
        (
            "CronDataIntervalTimetable: the interval",
            {"data_interval": (at(5), at(6)), "logical_date": at(5), "run_after": at(6)},
            (at(5), at(6), "data interval"),
        ),
        (
            '"@daily" (CronTriggerTimetable): zero-width, the day before',
            {"data_interval": (at(6), at(6)), "logical_date": at(6), "run_after": at(6)},
            (at(5), at(6), "1 day, 0:00:00 ending at the data interval's end"),
        ),
        (
            "CronTriggerTimetable(interval=1 day): the interval",
            {"data_interval": (at(5, 6), at(6, 6)), "logical_date": at(6, 6), "run_after": at(6, 6)},
            (at(5, 6), at(6, 6), "data interval"),
        ),
        (
            "logical date and no interval",
            {"logical_date": at(6, 9), "run_after": at(7)},
            (at(5, 9), at(6, 9), "1 day, 0:00:00 ending at the logical date"),
        ),
        (
            "`airflow dags trigger -l D` (3.3.2): the interval follows the trigger time; the day before D",
            {"data_interval": (at(9), at(10)), "logical_date": at(3), "run_after": at(10, 14), "manual": True},
            (at(2), at(3), "1 day, 0:00:00 ending at the logical date"),
        ),
        (
            "`airflow dags trigger -l D` on the day after D: the interval starts at D; the day before D all the same",
            {"data_interval": (at(3), at(4)), "logical_date": at(3), "run_after": at(4, 14), "manual": True},
            (at(2), at(3), "1 day, 0:00:00 ending at the logical date"),
        ),
        (
            "a scheduled run's interval that starts at its logical date is the window",
            {"data_interval": (at(3), at(4)), "logical_date": at(3), "run_after": at(4)},
            (at(3), at(4), "data interval"),
        ),
        (
            "REST API / dag.test with logical date D: the interval Airflow infers from D, the day before D",
            {"data_interval": (at(2), at(3)), "logical_date": at(3), "run_after": at(10, 14), "manual": True},
            (at(2), at(3), "data interval"),
        ),
        (
            '`airflow dags trigger -l D` of "@daily": zero-width at the trigger time; the day before D',
            {"data_interval": (at(10, 14), at(10, 14)), "logical_date": at(3), "run_after": at(10, 14), "manual": True},
            (at(2), at(3), "1 day, 0:00:00 ending at the logical date"),
        ),
        (
            "manual run without logical date: the last whole day before run_after",
            {"run_after": at(6, 9, 30)},
            (at(5), at(6), "the last whole 1 day, 0:00:00 before run_after"),
        ),
        (
            "explicit start and end win",
            {"start": "2026-01-02", "end": "2026-01-03T12:00:00Z", "data_interval": (at(5), at(6))},
            (at(2), at(3, 12), "explicit start and end"),
        ),
        (
            "explicit start alone: a window after it",
            {"start": "2026-01-02T06:00:00+02:00", "data_interval": (at(5), at(6))},
            (at(2, 4), at(3, 4), "explicit start + 1 day, 0:00:00"),
        ),
        (
            "explicit end alone: a window before it",
            {"end": dt.date(2026, 1, 3), "run_after": at(9)},
            (at(2), at(3), "1 day, 0:00:00 before explicit end"),
        ),
        (
            "blank template output means not given",
            {"start": "  ", "end": "", "data_interval": (at(5), at(6))},
            (at(5), at(6), "data interval"),
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_the_window_rule(
    case: str, overrides: dict[str, object], expected: tuple[dt.datetime, dt.datetime, str]
) -> None:
    resolved = window(**overrides)
    assert (resolved.start, resolved.end, resolved.source) == expected


def test_a_trailing_window_takes_its_length_from_window() -> None:
    assert window(length=dt.timedelta(hours=1), data_interval=(at(5, 10), at(5, 10))).start == at(5, 9)
    assert window(length=dt.timedelta(weeks=1), run_after=at(12)).start == at(5)


@pytest.mark.parametrize(
    ("length", "run_after", "expected"),
    [
        (DAY, at(6, 0), (at(5), at(6))),
        (DAY, at(6, 23, 59), (at(5), at(6))),
        (dt.timedelta(hours=1), at(6, 9, 30), (at(6, 8), at(6, 9))),
        (dt.timedelta(hours=6), at(6, 13), (at(6, 6), at(6, 12))),
        (dt.timedelta(weeks=1), at(12, 5), (at(5), at(12))),
        (dt.timedelta(hours=7), at(6, 9, 30), (at(6, 2, 30), at(6, 9, 30))),  # no natural boundary
    ],
)
def test_without_a_logical_date_the_window_is_the_last_whole_period_before_run_after(
    length: dt.timedelta, run_after: dt.datetime, expected: tuple[dt.datetime, dt.datetime]
) -> None:
    resolved = window(length=length, run_after=run_after)
    assert (resolved.start, resolved.end) == expected


def test_the_last_whole_day_before_run_after_is_a_local_day() -> None:
    # Triggered at 00:30 Berlin time on 2026-03-30 (22:30 UTC the day before): the day is Berlin's 2026-03-29 (23 h).
    resolved = window(run_after=dt.datetime(2026, 3, 29, 22, 30, tzinfo=UTC), timezone=BERLIN)
    assert (resolved.start, resolved.end) == (
        dt.datetime(2026, 3, 28, 23, tzinfo=UTC),
        dt.datetime(2026, 3, 29, 22, tzinfo=UTC),
    )


# ------------------------------------------------------------------------------------------- partitioned runs

KEY = "2026-01-05T00:00:00"  # CronPartitionTimetable's default key_format


@pytest.mark.parametrize(
    ("case", "overrides", "expected"),
    [
        (
            "a backfill of a partition: run_after is the partition date, the window starts there",
            {"partition": RunPartition(KEY, "%Y-%m-%dT%H:%M:%S"), "run_after": at(5)},
            (at(5), at(6)),
        ),
        (
            "the scheduled run of the same partition (run_offset=-1) reads the same window",
            {"partition": RunPartition(KEY, "%Y-%m-%dT%H:%M:%S"), "run_after": at(6)},
            (at(5), at(6)),
        ),
        (
            "a key_format of its own",
            {"partition": RunPartition("20260105", "%Y%m%d"), "run_after": at(6, 3)},
            (at(5), at(6)),
        ),
        (
            "the key's wall clock is the timetable's zone",
            {"partition": RunPartition(KEY, "%Y-%m-%dT%H:%M:%S", ZoneInfo("Asia/Taipei")), "run_after": at(5)},
            (at(4, 16), at(5, 16)),
        ),
        (
            "an ISO date key (the operator's own Asset events, downstream) without a format",
            {"partition": RunPartition("2026-01-05"), "run_after": at(9)},
            (at(5), at(6)),
        ),
        (
            "an hourly partition takes the window's length",
            {"partition": RunPartition("2026-01-05T13:00:00"), "length": dt.timedelta(hours=1)},
            (at(5, 13), at(5, 14)),
        ),
        (
            "a key that is no date leaves the logical date's rule",
            {"partition": RunPartition("us-east"), "logical_date": at(6), "run_after": at(6)},
            (at(5), at(6)),
        ),
        (
            "explicit start and end win over the partition",
            {"partition": RunPartition(KEY), "start": "2026-01-02", "end": "2026-01-03"},
            (at(2), at(3)),
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_a_partitioned_run_reads_its_partition(
    case: str, overrides: dict[str, object], expected: tuple[dt.datetime, dt.datetime]
) -> None:
    resolved = window(**overrides)
    assert (resolved.start, resolved.end) == expected


@pytest.mark.parametrize(
    ("partition", "named"),
    [(RunPartition("us-east"), "an ISO 8601 date"), (RunPartition("2026-01-05", "%Y%m%d"), "'%Y%m%d'")],
)
def test_a_partition_key_that_places_no_window_is_a_clear_error(partition: RunPartition, named: str) -> None:
    # Without it, the last whole day before run_after would be read: another partition's day, silently.
    with pytest.raises(GenviralInvalidParameterError, match=rf"partition_key {partition.key!r} .*{re.escape(named)}"):
        window(partition=partition, run_after=at(9))


@pytest.mark.needs_airflow("3.3", "Backfills of partitioned timetables (iter_partition_dagrun_infos)")
def test_a_partitioned_dags_backfill_and_schedule_read_each_partition_alike() -> None:
    from types import SimpleNamespace

    from airflow.sdk import DAG, CronPartitionTimetable
    from airflow.timetables.base import TimeRestriction

    from genviral_provider.core.reading.run_window import window_of_run
    from tests.conftest import scheduler_dag

    taipei = ZoneInfo("Asia/Taipei")
    timetable = CronPartitionTimetable("0 0 * * *", timezone="Asia/Taipei", run_offset=-1)
    dag = DAG("partitioned_posts", schedule=timetable, start_date=dt.datetime(2026, 1, 1, tzinfo=taipei))
    scheduler = scheduler_dag(dag).timetable
    start = pendulum.datetime(2026, 1, 5, tz="Asia/Taipei")  # the timetables take pendulum's DateTime
    backfilled = list(scheduler.iter_partition_dagrun_infos(earliest=start, latest=start + 2 * DAY))
    scheduled = [scheduler.next_dagrun_info_v2(last_dagrun_info=None, restriction=TimeRestriction(start, None, True))]
    while len(scheduled) < 4:
        restriction = TimeRestriction(start, None, True)
        scheduled.append(scheduler.next_dagrun_info_v2(last_dagrun_info=scheduled[-1], restriction=restriction))

    def window_of(info: Any) -> tuple[str, dt.datetime, dt.datetime]:
        dag_run = SimpleNamespace(run_after=info.run_after, partition_key=info.partition_key, run_type="scheduled")
        context = {"dag": dag, "dag_run": dag_run, "partition_key": info.partition_key, "logical_date": None}
        resolved = window_of_run(context, length=DAY)
        return info.partition_key, resolved.start, resolved.end

    backfill_windows = [window_of(info) for info in backfilled]
    assert backfill_windows == [
        (f"2026-01-0{day}T00:00:00", at(day - 1, 16), at(day, 16)) for day in (5, 6, 7)
    ]  # each partition's Taipei day, though a backfill's run_after is the partition date itself
    assert set(backfill_windows) <= {window_of(info) for info in scheduled}  # scheduled a day later: the same days


def test_naive_bounds_are_read_in_the_dags_time_zone() -> None:
    resolved = window(start="2026-03-29", end=dt.datetime(2026, 3, 30), timezone=BERLIN)
    assert resolved.start == dt.datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert resolved.end == dt.datetime(2026, 3, 29, 22, tzinfo=UTC)


def test_a_daily_trailing_window_follows_the_wall_clock_across_dst() -> None:
    # Consecutive "@daily" runs of a Berlin DAG, at local midnight: 23 h on 2026-03-29, 25 h on 2026-10-25.
    for first, second, third in ((28, 29, 30), (24, 25, 26)):
        month = 3 if first == 28 else 10
        runs = [dt.datetime(2026, month, day + 1, tzinfo=BERLIN) for day in (first, second, third)]
        windows = [window(data_interval=(run, run), timezone=BERLIN) for run in runs]
        assert windows[0].end == windows[1].start and windows[1].end == windows[2].start
    spring = window(logical_date=dt.datetime(2026, 3, 30, tzinfo=BERLIN), timezone=BERLIN)
    autumn = window(logical_date=dt.datetime(2026, 10, 26, tzinfo=BERLIN), timezone=BERLIN)
    assert (spring.end - spring.start, autumn.end - autumn.start) == (dt.timedelta(hours=23), dt.timedelta(hours=25))


def test_hours_of_a_trailing_window_are_elapsed_time_across_dst() -> None:
    # Hourly runs at 01:00 CET and 03:00 CEST on 2026-03-29 are one hour apart; so are their windows.
    three_am = dt.datetime(2026, 3, 29, 3, tzinfo=BERLIN)
    assert shift(three_am, -dt.timedelta(hours=1), BERLIN) == dt.datetime(2026, 3, 29, 0, tzinfo=UTC)
    assert shift(dt.datetime(2026, 10, 25, 2, 30, tzinfo=UTC), dt.timedelta(hours=1), BERLIN) == dt.datetime(
        2026, 10, 25, 3, 30, tzinfo=UTC
    )


def test_a_wall_clock_time_skipped_by_dst_lands_after_the_gap() -> None:
    # 02:30 on 2026-03-29 does not exist in Berlin; a day before 02:30 on 03-30 reads it with the old offset.
    assert shift(dt.datetime(2026, 3, 30, 2, 30, tzinfo=BERLIN), -DAY, BERLIN) == dt.datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"start": "2026-01-06", "end": "2026-01-05"},
            r"\[2026-01-06T00:00:00\+00:00, 2026-01-05T00:00:00\+00:00\).*inverted",
        ),
        ({"start": "2026-01-05T10:00Z", "end": "2026-01-05T12:00+02:00"}, r"from explicit start and end is empty"),
        ({"data_interval": (at(6), at(5))}, r"from data interval is inverted"),
        ({"start": "soon"}, r"start 'soon' is not an ISO 8601 date or date-time"),
        ({"end": "2026-02-30"}, r"end '2026-02-30' is not an ISO 8601 date"),
        ({"start": 20260105}, r"start 20260105 is a int"),
        ({"length": dt.timedelta(0), "run_after": at(5)}, r"window datetime.timedelta\(0\) is not a positive"),
        ({"length": -DAY, "run_after": at(5)}, r"is not a positive timedelta"),
        ({}, r"no data interval, no logical date and no run_after"),
    ],
)
def test_bad_windows_are_clear_errors(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(GenviralInvalidParameterError, match=message):
        window(**overrides)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-05", at(5)),
        ("2026-01-05T06:30:00", at(5, 6, 30)),
        ("2026-01-05 06:30", at(5, 6, 30)),
        ("2026-01-05T06:30:00Z", at(5, 6, 30)),
        ("2026-01-05T06:30:00.250+02:00", dt.datetime(2026, 1, 5, 4, 30, 0, 250_000, tzinfo=UTC)),
        (dt.date(2026, 1, 5), at(5)),
        (dt.datetime(2026, 1, 5, 6, 30, tzinfo=ZoneInfo("America/New_York")), at(5, 11, 30)),
    ],
)
def test_bounds_parse_as_iso_dates_and_date_times(text: object, expected: dt.datetime) -> None:
    assert parse_instant("start", text) == expected  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------- covering dates


def test_covering_dates_of_a_utc_day() -> None:
    assert covering_dates(at(5), at(6)) == (dt.date(2026, 1, 4), dt.date(2026, 1, 7))
    assert covering_dates(at(5, 15), at(5, 16)) == (dt.date(2026, 1, 5), dt.date(2026, 1, 7))


def test_covering_dates_contain_the_window_under_every_reading_of_the_api() -> None:
    rng = random.Random(42)
    base = dt.datetime(2026, 3, 1, tzinfo=UTC)
    windows = [(at(5), at(6)), (at(5, 12), at(6, 12)), (at(5, 23, 59), at(6, 0, 1))]
    for _ in range(300):
        start = base + dt.timedelta(minutes=rng.randrange(60 * 24 * 30))
        windows.append((start, start + dt.timedelta(minutes=rng.randrange(1, 60 * 24 * 10))))
    for start, end in windows:
        first, last = covering_dates(start, end)
        for zone in API_ZONES:
            for end_inclusive in (True, False):
                low, high = published_window(
                    PostsQuery(start=first, end=last), now=end, end_inclusive=end_inclusive, date_timezone=zone
                )
                assert low is not None and high is not None
                assert low <= start.timestamp() * 1000 and end.timestamp() * 1000 <= high, (start, end, zone)


def test_one_date_less_would_miss_posts_under_some_reading() -> None:
    # The cover is not wider than it must be: a mid-day end read at UTC+14 with an exclusive end needs 2 dates more.
    start, end = at(5, 6), at(6, 6)
    first, last = covering_dates(start, end)
    low, _ = published_window(PostsQuery(start=first + DAY, end=last), now=end, date_timezone="Etc/GMT+12")
    _, high = published_window(
        PostsQuery(start=first, end=last - DAY), now=end, end_inclusive=False, date_timezone="Pacific/Kiritimati"
    )
    assert low is not None and low > start.timestamp() * 1000
    assert high is not None and high < end.timestamp() * 1000


# -------------------------------------------------------------------------------------------------- the filter


def test_the_filter_keeps_exactly_the_rows_of_the_window() -> None:
    rows: list[dict[str, Any]] = [
        {"id": "before", "publishedAt": "2026-01-04T23:59:59.999Z"},
        {"id": "first", "publishedAt": "2026-01-05T00:00:00.000Z"},
        {"id": "offset", "publishedAt": "2026-01-05T01:00:00+01:00"},
        {"id": "last", "publishedAt": "2026-01-05T23:59:59.999Z"},
        {"id": "after", "publishedAt": "2026-01-06T00:00:00.000Z"},
        {"id": "missing"},
        {"id": "garbage", "publishedAt": "yesterday"},
        {"id": "null", "publishedAt": None},
    ]
    kept = WindowFilter(RunWindow(at(5), at(6), "test"), max_unplaceable=3)
    assert [row["id"] for row in kept.rows(rows)] == ["first", "offset", "last"]
    assert kept.counts() == {"rows": 3, "rows_outside_window": 2, "rows_without_published_at": 3}


@pytest.mark.parametrize(
    ("row", "named"),
    [
        ({"id": "epoch", "publishedAt": 1767571200000}, "Row epoch has publishedAt 1767571200000"),
        ({"id": "local", "publishedAt": "2026-01-05T10:00:00"}, "Row local has publishedAt '2026-01-05T10:00:00'"),
        ({"id": "missing"}, "Row missing has no publishedAt"),
    ],
)
def test_the_first_unplaceable_row_fails_the_read_naming_it(row: dict[str, object], named: str) -> None:
    kept = WindowFilter(RunWindow(at(5), at(6), "test"))
    with pytest.raises(GenviralIncompleteWindowError, match=re.escape(named)):
        list(kept.rows([{"id": "first", "publishedAt": "2026-01-05T00:00:00Z"}, row]))


def test_past_the_bound_the_read_fails_naming_the_bound() -> None:
    kept = WindowFilter(RunWindow(at(5), at(6), "test"), max_unplaceable=2)
    rows = [{"id": f"r{n}", "publishedAt": "2026-01-05 10:00"} for n in range(3)]
    with pytest.raises(GenviralIncompleteWindowError, match=r"More than 2 row\(s\) .*max_unplaceable_rows=2.*Row r2"):
        list(kept.rows(rows))
    assert kept.unplaceable == 2


@pytest.mark.parametrize("value", [-1, True, 1.5, "3", None])
def test_a_bound_that_is_not_a_row_count_is_refused(value: object) -> None:
    with pytest.raises(GenviralInvalidParameterError, match=rf"max_unplaceable_rows {re.escape(repr(value))} "):
        checked_max_unplaceable(value)
