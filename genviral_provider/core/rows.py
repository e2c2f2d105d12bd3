"""What the provider needs to know about an analytics row, and the one reader of the instants the API sends."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

Row = dict[str, Any]

UTC = dt.timezone.utc


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
    """Return the row's ``publishedAt`` as an aware UTC datetime, or ``None`` when absent or unreadable."""
    return parse_utc(row.get("publishedAt"), naive=UTC)


def parse_utc(value: object, *, naive: dt.tzinfo | None = None) -> dt.datetime | None:
    """Read an ISO 8601 date-time (``Z`` or ``z`` for UTC, or an offset) as a plain aware UTC ``datetime``.

    :param value: the text; anything that is not a date-time string gives ``None``.
    :param naive: the zone a value without an offset is read in; ``None`` refuses such a value (it could be in
        any zone, so it proves nothing).
    """
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            moment = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text[-1] in "Zz" else text)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        if naive is None:
            return None
        moment = moment.replace(tzinfo=naive, fold=0)
    return to_utc(moment)


def to_utc(instant: dt.datetime) -> dt.datetime:
    """Return an aware instant as a plain ``datetime`` in UTC (also for pendulum values, whose arithmetic differs)."""
    moment = instant.astimezone(UTC)
    return dt.datetime(
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, moment.microsecond, UTC
    )
