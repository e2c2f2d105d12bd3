"""What the provider needs to know about an analytics row, and the one reader of the instants the API sends."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

Row = dict[str, Any]

UTC = dt.timezone.utc
#: A bare number: an epoch count, not a date-time.
_EPOCH = re.compile(r"[+-]?\d+(\.\d*)?")
#: The seconds of a leap second (``23:59:60``, fraction optional), which RFC 3339 allows.
_LEAP_SECOND = re.compile(r"(?<=\d\d:\d\d):60(?=[.,]\d+|[+-]\d\d:?\d\d$|$)")


def row_key(row: Row) -> str:
    """Return the row's identity: ``analyticsId``, else its legacy alias ``id``, else its whole content.

    Older API versions omit ``analyticsId``; a row with neither id is identified by its content, so that
    the same row seen on two pages still counts once.
    """
    for name in ("analyticsId", "id"):
        value = row.get(name)
        if value is not None and value != "":
            return str(value)
    return json.dumps(row, sort_keys=True, default=str)


def published_at(row: Row) -> dt.datetime | None:
    """Return the row's ``publishedAt`` as an aware UTC datetime, or ``None`` when it cannot be placed.

    ``None`` for a missing key, a number (epoch seconds or milliseconds: which, the API does not say) and a
    date-time without offset (a local time of an unknown zone, which would land the row in the wrong day).
    """
    return parse_utc(row.get("publishedAt"))


def parse_utc(value: object, *, naive: dt.tzinfo | None = None) -> dt.datetime | None:
    """Read an ISO 8601 date-time as a plain aware UTC ``datetime``: every RFC 3339 form, and ISO's others.

    RFC 3339 allows ``T``, ``t`` or a space between date and time, ``Z`` or ``z`` for UTC, any offset (``-00:00``
    too), fractional seconds of any length (read to the microsecond) and a leap second ``:60`` (read as the
    next second's start).

    :param value: the text; anything that is not a date-time string gives ``None``, and so does a string of digits
        (an epoch count, which ISO's basic format would misread as a date).
    :param naive: the zone a value without an offset is read in; ``None`` refuses such a value (it could be in
        any zone, so it proves nothing).
    """
    if isinstance(value, dt.datetime):
        moment: dt.datetime | None = value
    elif isinstance(value, str) and value.strip() and not _EPOCH.fullmatch(value.strip()):
        moment = _from_text(value.strip())
    else:
        return None
    if moment is None:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        if naive is None:
            return None
        moment = moment.replace(tzinfo=naive, fold=0)
    return to_utc(moment)


def _from_text(text: str) -> dt.datetime | None:
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    leap = _LEAP_SECOND.search(text)
    if leap is not None:  # 23:59:60 is the instant that ends 23:59:59, which datetime cannot hold
        text = text[: leap.start()] + ":59" + text[leap.end() :]
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(microsecond=0) + dt.timedelta(seconds=1) if leap is not None else moment


def to_utc(instant: dt.datetime) -> dt.datetime:
    """Return an aware instant as a plain ``datetime`` in UTC (also for pendulum values, whose arithmetic differs)."""
    moment = instant.astimezone(UTC)
    return dt.datetime(
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, moment.microsecond, UTC
    )
