"""Issue 17 item 5: both readers read exactly with the sandbox's reading switches on, under every date reading.

``shuffle_ties`` lists rows sharing one ``publishedAt`` in a new order on every request; ``deletions_per_request``
deletes rows the request selected after each answer. The hook's ``iter_posts`` (API dates) and ``iter_window`` (a
run's window, what the operator reads) must then yield no row twice, and every row: under deletions, every row that
existed for the whole read (a deleted row may or may not have been read before it went). The data hold a tie of
180 rows, more than a page, over two TikTok accounts (each account's share fits a page, so the readers split it by
platform, then by account), a tie of 40 on YouTube, posts exactly at midnight, and the dates around the window, so
that each reading of the dates selects different rows. Every read is bounded in requests and in time.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from typing import Any

import pytest

from genviral_provider.core.reading.run_window import RunWindow
from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.sandbox import Dataset, Faults, PostsQuery, SandboxServer
from genviral_provider.sandbox.pytest_plugin import SandboxFactory

UTC = dt.timezone.utc
DAY = dt.date(2026, 1, 10)
#: ``iter_posts(DAY, LAST_DAY)`` selects both ties under every reading (UTC+14 with `end` excluded included).
LAST_DAY = dt.date(2026, 1, 12)
WINDOW = RunWindow(dt.datetime(2026, 1, 10, tzinfo=UTC), dt.datetime(2026, 1, 11, tzinfo=UTC), "test")
NOW = dt.datetime(2026, 1, 14, tzinfo=UTC)
#: Every reading of ``start``/``end`` the sandbox models: ``end`` included or not, dates read in UTC, UTC+14, UTC-11.
READINGS = {
    "utc-inclusive": (True, "UTC"),
    "utc-exclusive": (False, "UTC"),
    "utc+14-inclusive": (True, "Pacific/Kiritimati"),
    "utc+14-exclusive": (False, "Pacific/Kiritimati"),
    "utc-11-inclusive": (True, "Pacific/Pago_Pago"),
    "utc-11-exclusive": (False, "Pacific/Pago_Pago"),
}
SWITCHES: dict[str, dict[str, Any]] = {
    "ties-shuffled": {"shuffle_ties": True, "tie_seed": 5},
    "rows-deleted": {"faults": Faults(deletions_per_request=3, max_deletions=60, deletion_seed=5)},
}
#: Bounds of one read: requests answered by the sandbox (19 to 35 measured here), and seconds (under 0.4 measured).
MAX_REQUESTS = 60
MAX_SECONDS = 30.0


def _stamp(instant: dt.datetime) -> str:
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dataset() -> Dataset:
    """Return 120 posts a day from 2026-01-08 to 01-12 (midnight and 23:59:59.999 included), and on 01-10 a tie of
    180 rows at 12:00 over the two TikTok accounts and one of 40 at 18:00 on a YouTube account."""
    dataset = Dataset.empty(targets_per_platform=2, seed=3)
    tiktok = [target.id for target in dataset.targets if target.platform == "tiktok"]
    youtube = next(target.id for target in dataset.targets if target.platform == "youtube")
    rng = random.Random(11)
    rows: list[dict[str, Any]] = []
    for day in range(8, 13):
        midnight = dt.datetime(2026, 1, day, tzinfo=UTC)
        instants = [midnight, midnight + dt.timedelta(days=1, milliseconds=-1)]
        instants += [midnight + dt.timedelta(seconds=rng.uniform(0, 86_399)) for _ in range(118)]
        rows += [{"publishedAt": _stamp(instant)} for instant in instants]
    noon, evening = dt.datetime(2026, 1, 10, 12, tzinfo=UTC), dt.datetime(2026, 1, 10, 18, tzinfo=UTC)
    rows += [{"publishedAt": _stamp(noon), "targetId": tiktok[n % 2]} for n in range(180)]
    rows += [{"publishedAt": _stamp(evening), "targetId": youtube} for _ in range(40)]
    dataset.insert(rows, rng=random.Random(12))
    return dataset


def _selected(server: SandboxServer, start: dt.date, end: dt.date) -> set[str]:
    """Return the ids one unpaged request ``(start, end)`` selects now, under the server's reading of dates."""
    query = PostsQuery(start=start, end=end, limit=10**6)
    rows, _ = server.dataset.query(
        query, now=NOW, end_inclusive=server.end_inclusive, date_timezone=server.date_timezone
    )
    return {row["id"] for row in rows}


def _in_window(server: SandboxServer) -> set[str]:
    return {row["id"] for row in server.dataset.rows if WINDOW.start <= _instant(row) < WINDOW.end}


def _instant(row: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(row["publishedAt"].replace("Z", "+00:00"))


def _read(reader: str, hook: GenviralHook) -> list[dict[str, Any]]:
    if reader == "iter_posts":
        return list(hook.iter_posts(start=DAY, end=LAST_DAY))
    return list(hook.iter_window(WINDOW))


def _expected(reader: str, server: SandboxServer) -> set[str]:
    if reader == "iter_posts":
        return _selected(server, DAY, LAST_DAY)
    return _in_window(server)


@pytest.mark.parametrize("reader", ["iter_posts", "iter_window"])
@pytest.mark.parametrize("switch", list(SWITCHES), ids=list(SWITCHES))
@pytest.mark.parametrize("reading", list(READINGS.values()), ids=list(READINGS))
def test_both_readers_read_exactly_with_a_switch_on_under_every_date_reading(
    genviral_sandbox_factory: SandboxFactory,
    genviral_connection: Any,
    reader: str,
    switch: str,
    reading: tuple[bool, str],
) -> None:
    end_inclusive, zone = reading
    settings = dict(SWITCHES[switch])
    if "faults" in settings:  # each test its own faults: the deletion count is theirs
        settings["faults"] = Faults(**settings["faults"].as_dict())
    server = genviral_sandbox_factory(
        dataset=_dataset(), now=NOW, end_inclusive=end_inclusive, date_timezone=zone, **settings
    )
    hook = GenviralHook(genviral_conn_id=genviral_connection(server, max_retry_wait=1))
    existed_before = _expected(reader, server)
    began = time.monotonic()

    rows = _read(reader, hook)

    seconds = time.monotonic() - began
    ids = [row["id"] for row in rows]
    repeated = [row_id for row_id, count in Counter(ids).items() if count > 1]
    kept = (
        set(ids)
        if reader == "iter_posts"
        else {row["id"] for row in rows if WINDOW.start <= _instant(row) < WINDOW.end}
    )
    deleted = set(server.stats.deleted)
    stayed = existed_before - deleted
    assert repeated == []
    assert stayed - kept == set(), f"{len(stayed - kept)} row(s) that existed for the whole read were not read"
    assert kept <= existed_before
    assert server.stats.total <= MAX_REQUESTS and seconds < MAX_SECONDS
    if switch == "rows-deleted":
        assert len(deleted) >= 3 * 5 and deleted & existed_before  # the deletions happened, and hit what was read
    else:
        assert kept == existed_before
