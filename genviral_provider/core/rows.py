"""What the provider needs to know about an analytics row: its identity and when it was published."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

Row = dict[str, Any]


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
    value = row.get("publishedAt")
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
