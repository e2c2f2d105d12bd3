"""Issue 21: 70-98 rows sharing one publishedAt, listed in a new order on every request, are read exactly once by
both readers, whatever the page alignment (a page of 100 holds such a group with a row on each side)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.core.reading.run_window import RunWindow
from genviral_provider.exceptions import GenviralIncompleteWindowError
from genviral_provider.hooks.genviral import GenviralHook
from tests.hostile.conftest import LeakCheck
from tests.hostile.server import Exchange, HostileServer

Start = Callable[..., HostileServer]
UTC = dt.timezone.utc
DAY = dt.datetime(2026, 1, 10, tzinfo=UTC)
TIED_AT = DAY + dt.timedelta(hours=12)
#: Rows before the tied group: where the group falls against pages of 100 that overlap by 10 (or by 4).
ALIGNMENTS = [0, 5, 45, 85, 89, 90, 95, 150]


def _stamp(instant: dt.datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _held(before: int, tied: int, after: int = 60) -> list[dict[str, Any]]:
    def row(name: str, instant: dt.datetime) -> dict[str, Any]:
        return {"id": name, "analyticsId": name, "publishedAt": _stamp(instant), "platform": "tiktok"}

    return [
        *(row(f"before-{n}", TIED_AT - dt.timedelta(seconds=before - n)) for n in range(before)),
        *(row(f"tied-{n}", TIED_AT) for n in range(tied)),
        *(row(f"after-{n}", TIED_AT + dt.timedelta(seconds=1 + n)) for n in range(after)),
    ]


def _ties_reshuffled(held: list[dict[str, Any]]) -> Callable[[Exchange], None]:
    """Answer sorted by publishedAt, ties in a new order on every request (the API documents no tie-breaker)."""

    def behave(exchange: Exchange) -> None:
        order = random.Random(exchange.number)
        ordered = sorted(held, key=lambda row: (row["publishedAt"], order.random()))
        if exchange.params.get("sortOrder", "desc") == "desc":
            ordered = sorted(held, key=lambda row: (row["publishedAt"], order.random()), reverse=True)
        page = ordered[exchange.offset : exchange.offset + min(exchange.limit, 100)]
        exchange.page(page, len(ordered), exchange.offset + len(page) < len(ordered))

    return behave


def _hook(server: HostileServer, genviral_connection: Any) -> GenviralHook:
    return GenviralHook(genviral_conn_id=genviral_connection(server, max_retries=0))


def _assert_exactly_once(rows: list[dict[str, Any]], held: list[dict[str, Any]]) -> None:
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids))
    assert set(ids) == {row["id"] for row in held}


@pytest.mark.parametrize("tied", [70, 85, 98])
@pytest.mark.parametrize("before", ALIGNMENTS)
def test_iter_posts_reads_tied_rows_exactly_once(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, before: int, tied: int
) -> None:
    held = _held(before, tied)
    server = hostile(_ties_reshuffled(held), max_requests=150)

    rows = list(_hook(server, genviral_connection).iter_posts(start=DAY.date(), end=DAY.date()))

    _assert_exactly_once(rows, held)
    assert server.requests <= 6  # the tie is read from the row before it, not stepped back to
    leaks.assert_clean()


@pytest.mark.parametrize("tied", [70, 85, 98])
@pytest.mark.parametrize("before", ALIGNMENTS)
def test_iter_window_reads_tied_rows_exactly_once(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, before: int, tied: int
) -> None:
    held = _held(before, tied)
    server = hostile(_ties_reshuffled(held), max_requests=250)  # its seam repairs step back slowly: up to 180
    window = RunWindow(DAY, DAY + dt.timedelta(days=1), "test")

    rows = list(_hook(server, genviral_connection).iter_window(window))

    _assert_exactly_once(rows, held)
    leaks.assert_clean()


@pytest.mark.parametrize("before", [0, 45, 95])
def test_a_tie_larger_than_a_page_can_hold_fails_naming_it(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, before: int
) -> None:
    server = hostile(_ties_reshuffled(_held(before, 150)), max_requests=300)

    with pytest.raises(GenviralIncompleteWindowError, match="share one publishedAt") as error:
        list(_hook(server, genviral_connection).iter_posts(start=DAY.date(), end=DAY.date()))

    leaks.error(error.value)
    assert not server.overrun
    leaks.assert_clean()
