"""The window of one run: which instants it covers, which API dates cover them, and which rows belong to it.

A run covers a half-open window ``[start, end)`` of instants. The API filters on whole calendar dates and does not
document the time zone it reads them in, nor whether its ``end`` date is included: :func:`covering_dates` gives
dates that contain the window under every reading (read whole, they cost about four days of rows for a day;
:mod:`~genviral_provider.core.reading.plan` reads only the parts of them that can hold window rows), and
:class:`WindowFilter` keeps exactly the rows published inside it. Consecutive windows that share their boundary
instant therefore yield every row exactly once. Nothing here needs Airflow: the operator passes in what the run's
context holds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from genviral_provider.core.rows import UTC, Row, parse_utc, published_at, row_key, to_utc
from genviral_provider.exceptions import GenviralIncompleteWindowError, GenviralInvalidParameterError

#: The widest offset from UTC of any time zone (UTC-12 to UTC+14), rounded up: whatever zone the API reads its
#: dates in, the local midnight of a date lies within this distance of that date's UTC midnight.
MAX_UTC_OFFSET = dt.timedelta(hours=14)
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")

Instant = dt.datetime | dt.date | str


@dataclass(frozen=True)
class RunWindow:
    """A half-open window ``[start, end)`` of instants, in UTC, and where it came from.

    :param start: the first instant of the window (aware).
    :param end: the first instant after the window (aware).
    :param source: how the window was chosen, for logs and the manifest, e.g. ``"data interval"``.
    :raises GenviralInvalidParameterError: when the window is empty or inverted.
    """

    start: dt.datetime
    end: dt.datetime
    source: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _to_utc(self.start))
        object.__setattr__(self, "end", _to_utc(self.end))
        if self.start >= self.end:
            kind = "empty" if self.start == self.end else "inverted"
            raise GenviralInvalidParameterError(
                f"The window [{self.start.isoformat()}, {self.end.isoformat()}) from {self.source} is {kind}: "
                "start must be strictly before end. Give explicit start/end, or a positive window."
            )

    def contains(self, instant: dt.datetime) -> bool:
        """Whether an aware instant lies in ``[start, end)``."""
        return self.start <= instant < self.end

    def api_dates(self) -> tuple[dt.date, dt.date]:
        """Return the first and last API dates to request; see :func:`covering_dates`."""
        return covering_dates(self.start, self.end)

    def as_dict(self) -> dict[str, str]:
        """Return the window as ISO 8601 strings in UTC: ``{"start": ..., "end": ...}``."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    def describe(self) -> str:
        """Say which window this is, for messages: ``[2026-01-01T00:00:00+00:00, ...) (data interval)``."""
        return f"[{self.start.isoformat()}, {self.end.isoformat()}) ({self.source})"


def covering_dates(start: dt.datetime, end: dt.datetime) -> tuple[dt.date, dt.date]:
    """Return the API dates ``(first, last)`` that contain ``[start, end)`` under every reading of the API.

    Whatever zone the API reads dates in (offsets within ±14 h), ``first`` begins at or before ``start``, and
    ``last`` ends at or after ``end`` even if the API treats ``end`` as exclusive (then ``last``'s midnight is
    the boundary). The extra dates cost rows that :class:`WindowFilter` drops.
    """
    first = (_to_utc(start) - MAX_UTC_OFFSET).date()
    latest = _to_utc(end) + MAX_UTC_OFFSET
    last = latest.date() if latest.time() == dt.time() else latest.date() + dt.timedelta(days=1)
    return first, last


def resolve_run_window(
    *,
    start: Instant | None,
    end: Instant | None,
    length: dt.timedelta,
    data_interval: tuple[dt.datetime | None, dt.datetime | None] | None,
    logical_date: dt.datetime | None,
    run_after: dt.datetime | None,
    timezone: dt.tzinfo = UTC,
    manual: bool = False,
    partition: RunPartition | None = None,
) -> RunWindow:
    """Choose a run's window: explicit bounds, else what the run's dates say (see ``docs/operator.md``).

    1. ``start``/``end`` win; with only one of them, the other lies ``length`` away. Then a partitioned run's
       partition, when its key is a date: ``length`` from its start (:class:`RunPartition`).
    2. Otherwise the data interval, when not empty — except a manual run's interval that does not end at its
       logical date (``airflow dags trigger -l D``, Airflow 3.3.2, infers it from the trigger time, not ``D``).
    3. Otherwise ``length`` ending at the zero-width data interval's end (``"@daily"``), else at the logical
       date — the period Airflow gives a manual run with that logical date (REST API, UI, ``airflow dags test``).
    4. Without a logical date, the last whole period before ``run_after`` (:func:`last_whole_period`); a run
       whose partition key is no date fails instead, since that period would be another partition's.

    Whole days of ``length`` are calendar days in ``timezone`` (the DAG's), across DST changes as the schedule's;
    the rest is elapsed time. Naive ``start``/``end`` are read in ``timezone`` too.

    :param start: explicit first instant: an ISO 8601 date or date-time (with or without offset), or an object.
    :param end: explicit first instant after the window, in the same forms.
    :param length: the window's length when it is not given by bounds or a data interval.
    :param data_interval: the run's ``(data_interval_start, data_interval_end)``, when it has one.
    :param logical_date: the run's logical date, when it has one.
    :param run_after: the run's ``run_after`` (always set by Airflow 3).
    :param timezone: the DAG's time zone.
    :param manual: whether the run was triggered by hand (``run_type`` ``manual``).
    :param partition: the run's partition key (Airflow 3.2+), when it has one.
    :raises GenviralInvalidParameterError: for an unreadable bound, a non-positive length, or an empty or
        inverted window — naming the values; for a partition key that is no date, on a run with no other date.
    """
    if not isinstance(length, dt.timedelta) or length <= dt.timedelta(0):
        raise GenviralInvalidParameterError(f"window {length!r} is not a positive timedelta, e.g. timedelta(days=1).")
    explicit = _explicit_window(start, end, length, timezone) or (partition and partition.window(length))
    if explicit:
        return explicit
    interval_start, interval_end = data_interval or (None, None)
    if interval_start is not None and interval_end is not None:
        if manual and logical_date is not None and interval_end != logical_date:
            interval_start = interval_end = None  # inferred from the trigger time, not from the logical date
        elif interval_start != interval_end:
            return RunWindow(interval_start, interval_end, "data interval")
    for anchor, name in ((interval_end, "the data interval's end"), (logical_date, "the logical date")):
        if anchor is not None:
            return RunWindow(shift(anchor, -length, timezone), anchor, f"{length} ending at {name}")
    if partition is not None:
        raise partition.unplaceable()
    if run_after is not None:
        return last_whole_period(run_after, length, timezone)
    raise GenviralInvalidParameterError(
        "The run has no data interval, no logical date and no run_after: give explicit start and end."
    )


@dataclass(frozen=True)
class RunPartition:
    """A run's ``partition_key`` (Airflow 3.2+) and how its timetable formats partition dates.

    :param key: the run's partition key, e.g. ``2026-01-05T00:00:00`` (``CronPartitionTimetable``'s default format)
        or ``2026-01-05`` (the key of the operator's own Asset events, passed on to partitioned DAGs downstream).
    :param key_format: the timetable's ``key_format`` (a ``strptime`` format), or ``None`` for ISO 8601 keys.
    :param timezone: the zone of the key's wall clock: the timetable's, else the DAG's.
    """

    key: str
    key_format: str | None = None
    timezone: dt.tzinfo = UTC

    def start(self) -> dt.datetime | None:
        """The partition's first instant, or ``None`` for a key that is no date (``us-east``)."""
        if self.key_format:
            try:
                return _to_utc(_localize(dt.datetime.strptime(self.key, self.key_format), self.timezone))
            except ValueError:
                return None
        with contextlib.suppress(GenviralInvalidParameterError):
            return parse_instant("partition_key", self.key, self.timezone)
        return None

    def window(self, length: dt.timedelta) -> RunWindow | None:
        """``length`` from the partition's start (whole days on the wall clock of its zone), if the key is a date."""
        start = self.start()
        if start is None:
            return None
        return RunWindow(start, shift(start, length, self.timezone), f"partition {self.key!r}")

    def unplaceable(self) -> GenviralInvalidParameterError:
        """The error for a run that names a partition no window can be read for."""
        expected = f"the format {self.key_format!r}" if self.key_format else "an ISO 8601 date or date-time"
        return GenviralInvalidParameterError(
            f"The run's partition_key {self.key!r} is not a date in {expected}, and the run has no data interval "
            "or logical date: its window cannot be known (the last whole period before run_after would be another "
            "partition's). Give start and end, e.g. templated from '{{ partition_key }}'."
        )


def run_partition(key: str | None, timetable: Any, dag_timezone: dt.tzinfo) -> RunPartition | None:
    """The partition of a run with ``partition_key`` ``key``, read with its timetable's format and zone."""
    if not key:
        return None
    key_format = getattr(timetable, "key_format", None)
    zone = getattr(timetable, "timezone", None) if key_format else None
    if isinstance(zone, str):
        zone = ZoneInfo(zone)
    return RunPartition(key, key_format, zone if isinstance(zone, dt.tzinfo) else dag_timezone)


def _explicit_window(
    start: Instant | None, end: Instant | None, length: dt.timedelta, timezone: dt.tzinfo
) -> RunWindow | None:
    explicit_start = parse_instant("start", start, timezone)
    explicit_end = parse_instant("end", end, timezone)
    if explicit_start is not None and explicit_end is not None:
        return RunWindow(explicit_start, explicit_end, "explicit start and end")
    if explicit_start is not None:
        return RunWindow(explicit_start, shift(explicit_start, length, timezone), f"explicit start + {length}")
    if explicit_end is not None:
        return RunWindow(shift(explicit_end, -length, timezone), explicit_end, f"{length} before explicit end")
    return None


def last_whole_period(run_after: dt.datetime, length: dt.timedelta, timezone: dt.tzinfo = UTC) -> RunWindow:
    """Return the last whole period of ``length`` that ends at or before ``run_after``.

    Periods are aligned as schedules align them: whole days end at a midnight of ``timezone`` (a daily run
    triggered at 14:05 covers yesterday), a length that divides a day ends at a multiple of it since that
    midnight (an hourly one covers the last whole hour). Any other length has no natural boundary: it ends at
    ``run_after`` itself.
    """
    local = _to_utc(run_after).astimezone(timezone)
    midnight = _to_utc(_localize(dt.datetime.combine(local.date(), dt.time()), timezone))
    if length % dt.timedelta(days=1) == dt.timedelta(0):
        end = midnight
    elif dt.timedelta(days=1) % length == dt.timedelta(0):
        end = midnight + ((_to_utc(run_after) - midnight) // length) * length
    else:
        end = _to_utc(run_after)
    return RunWindow(shift(end, -length, timezone), end, f"the last whole {length} before run_after")


def window_of_run(
    context: Mapping[str, Any], *, start: Instant | None = None, end: Instant | None = None, length: dt.timedelta
) -> RunWindow:
    """Return the window of the DAG run a task ``context`` describes, by the rule of :func:`resolve_run_window`."""
    dag, dag_run = context.get("dag"), context.get("dag_run")
    timezone = getattr(dag, "timezone", None) or UTC
    key = context.get("partition_key") or getattr(dag_run, "partition_key", None)
    return resolve_run_window(
        start=start,
        end=end,
        length=length,
        data_interval=(context.get("data_interval_start"), context.get("data_interval_end")),
        logical_date=context.get("logical_date"),
        run_after=getattr(dag_run, "run_after", None),
        timezone=timezone,
        manual=getattr(dag_run, "run_type", None) == "manual",
        partition=run_partition(key, getattr(dag, "timetable", None), timezone),
    )


def parse_instant(name: str, value: Instant | None, timezone: dt.tzinfo = UTC) -> dt.datetime | None:
    """Read a window bound: an ISO 8601 date or date-time string, a ``date`` or a ``datetime``.

    A date means its midnight; naive values are read in ``timezone``. Blank strings (a template that rendered
    nothing) mean "not given". Returns an aware UTC datetime, or ``None``.

    :raises GenviralInvalidParameterError: naming the bound and the value.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        value = _parse_iso(name, text, timezone)
    if isinstance(value, dt.datetime):
        return parse_utc(value, naive=timezone)
    if isinstance(value, dt.date):
        return parse_utc(dt.datetime.combine(value, dt.time()), naive=timezone)
    raise GenviralInvalidParameterError(
        f"{name} {value!r} is a {type(value).__name__}: give an ISO 8601 date or date-time, a date or a datetime."
    )


def shift(instant: dt.datetime, delta: dt.timedelta, timezone: dt.tzinfo = UTC) -> dt.datetime:
    """Move an instant by ``delta``: whole days on the wall clock of ``timezone``, the rest in elapsed time.

    A wall-clock time that does not exist (skipped by DST) is read with the offset before the change, which
    lands just after the gap; an ambiguous one means its first occurrence.
    """
    sign = -1 if delta < dt.timedelta(0) else 1
    magnitude = abs(delta)
    days = dt.timedelta(days=magnitude.days)
    wall = _to_utc(instant).astimezone(timezone).replace(tzinfo=None) + sign * days
    return _to_utc(_localize(wall, timezone)) + sign * (magnitude - days)


@dataclass
class WindowFilter:
    """Keep the rows published in a window, and count the others.

    A row without a readable ``publishedAt`` cannot be placed in any window: past ``max_unplaceable`` such rows the
    read fails (see :class:`UnplaceableRows`); up to it they are dropped and counted in ``unplaceable`` (the
    operator warns and records the count in its manifest).

    :param window: the window rows must fall in.
    :param max_unplaceable: how many unplaceable rows may be skipped (default none: the first fails the read).
    """

    window: RunWindow
    kept: int = 0
    outside: int = 0
    max_unplaceable: int = 0

    def __post_init__(self) -> None:
        self._unplaceable = UnplaceableRows(self.max_unplaceable)

    @property
    def unplaceable(self) -> int:
        """The rows skipped for want of a readable ``publishedAt``."""
        return self._unplaceable.skipped

    def rows(self, rows: Iterable[Row]) -> Iterator[Row]:
        """Yield the rows whose ``publishedAt`` lies in ``[start, end)``, unchanged and in their order."""
        for row in rows:
            instant = published_at(row)
            if instant is None:
                self._unplaceable.skip(row)
            elif self.window.contains(instant):
                self.kept += 1
                yield row
            else:
                self.outside += 1

    def counts(self) -> dict[str, Any]:
        """Return the counts as JSON-ready data."""
        return {"rows": self.kept, "rows_outside_window": self.outside, "rows_without_published_at": self.unplaceable}


class UnplaceableRows:
    """Skip rows whose ``publishedAt`` names no instant (missing, a number, a time without offset), up to a bound.

    Such a row belongs to some window, but nothing says which: skipping it silently would publish a day without it.
    So the first one past the bound fails the read, naming the row and its value.

    :param bound: how many rows may be skipped (the user's ``max_unplaceable_rows``).
    """

    def __init__(self, bound: int = 0) -> None:
        self.bound = bound
        self.skipped = 0

    def skip(self, row: Row) -> None:
        """Count ``row`` as skipped; raise when that makes more than the bound.

        :raises GenviralIncompleteWindowError: naming the row's id and its ``publishedAt``.
        """
        if self.skipped >= self.bound:
            raise GenviralIncompleteWindowError(unplaceable_message(row, self.bound))
        self.skipped += 1


def unplaceable_message(row: Row, bound: int) -> str:
    """Say why ``row`` cannot be placed, and how to skip such rows."""
    value = row.get("publishedAt")
    what = "has no publishedAt" if "publishedAt" not in row else f"has publishedAt {repr(value)[:80]}"
    past = f"More than {bound} row(s) cannot be placed in any window (max_unplaceable_rows={bound}): " if bound else ""
    return (
        f"{past}Row {row_key(row)[:80]} {what}, which is not a date-time with an offset (RFC 3339, e.g. "
        "2026-02-12T17:42:02.000Z): it cannot be placed in any window. The read stops rather than publish a window "
        "without it. Report it to Genviral; to skip such rows, set max_unplaceable_rows to the most that may be "
        "skipped (counted in the manifest as rows_without_published_at)."
    )


def checked_max_unplaceable(value: object) -> int:
    """Return ``value`` as a row count, or raise naming it.

    :raises GenviralInvalidParameterError: for anything but an integer >= 0.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise GenviralInvalidParameterError(
            f"max_unplaceable_rows {value!r} is not a row count: expected an integer >= 0 (0, the default, fails the "
            "read on the first row without a readable publishedAt)."
        )
    return value


def _parse_iso(name: str, text: str, timezone: dt.tzinfo) -> dt.datetime | dt.date:
    if _DATE_ONLY.fullmatch(text):
        with contextlib.suppress(ValueError):
            return dt.date.fromisoformat(text)
    elif (moment := parse_utc(text, naive=timezone)) is not None:
        return moment
    raise GenviralInvalidParameterError(
        f"{name} {text!r} is not an ISO 8601 date or date-time: expected e.g. 2026-01-31, "
        "2026-01-31T06:00:00 or 2026-01-31T06:00:00+02:00."
    )


def _localize(naive: dt.datetime, timezone: dt.tzinfo) -> dt.datetime:
    return naive.replace(tzinfo=timezone, fold=0)


def _to_utc(instant: dt.datetime) -> dt.datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise GenviralInvalidParameterError(f"{instant.isoformat()} has no time zone: expected an aware datetime.")
    return to_utc(instant)
