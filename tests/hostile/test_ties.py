"""Issue 21: 70-98 rows sharing one publishedAt, listed in a new order on every request, are read exactly once by
both readers, whatever the page alignment (a page of 100 holds such a group with a row on each side).

Issue 17 item 5: a larger tie is read exactly by splitting the part by account, where each account's tie fits a
page; a tie too large even for one account fails naming its instant, its count and the filter."""

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


def _held(before: int, tied: int, after: int = 60, *, accounts: int = 1) -> list[dict[str, Any]]:
    """Return rows around a tie of ``tied`` rows, every row (tied or not) of one of ``accounts`` TikTok accounts."""

    def row(name: str, n: int, instant: dt.datetime) -> dict[str, Any]:
        account = f"acct-{n % accounts}"
        return {"id": name, "analyticsId": name, "publishedAt": _stamp(instant), "platform": "tiktok", "at": account}

    return [
        *(row(f"before-{n}", n, TIED_AT - dt.timedelta(seconds=before - n)) for n in range(before)),
        *(row(f"tied-{n}", n, TIED_AT) for n in range(tied)),
        *(row(f"after-{n}", n, TIED_AT + dt.timedelta(seconds=1 + n)) for n in range(after)),
    ]


def _targets(held: list[dict[str, Any]]) -> list[dict[str, Any]]:
    accounts = sorted({row["at"] for row in held})
    return [{"id": a, "platform": "tiktok", "identifier": f"@{a}", "last_refreshed_at": None} for a in accounts]


def _ties_reshuffled(held: list[dict[str, Any]]) -> Callable[[Exchange], None]:
    """Answer sorted by publishedAt, ties in a new order on every request (the API documents no tie-breaker);
    the platform and account filters apply, and ``/analytics/targets`` lists the accounts."""

    def behave(exchange: Exchange) -> None:
        if exchange.path.endswith("/analytics/targets"):
            exchange.ok({"workspace_id": None, "targets": _targets(held)})
            return
        platforms, accounts = exchange.params.get("platforms"), exchange.params.get("accounts")
        chosen = [
            row
            for row in held
            if (platforms is None or row["platform"] in platforms.split(","))
            and (accounts is None or row["at"] in accounts.split(","))
        ]
        order = random.Random(exchange.number)
        descending = exchange.params.get("sortOrder", "desc") == "desc"
        ordered = sorted(chosen, key=lambda row: (row["publishedAt"], order.random()), reverse=descending)
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
    server = hostile(_ties_reshuffled(held), max_requests=150)
    window = RunWindow(DAY, DAY + dt.timedelta(days=1), "test")

    rows = list(_hook(server, genviral_connection).iter_window(window))

    _assert_exactly_once(rows, held)
    assert server.requests <= 10  # a seam repair reads from the row before the tie (it stepped back: up to 59)
    leaks.assert_clean()


def _read(reader: str, server: HostileServer, genviral_connection: Any) -> list[dict[str, Any]]:
    hook = _hook(server, genviral_connection)
    if reader == "iter_posts":
        return list(hook.iter_posts(start=DAY.date(), end=DAY.date()))
    return list(hook.iter_window(RunWindow(DAY, DAY + dt.timedelta(days=1), "test")))


#: Requests a tie beyond a page may cost, for both readers: the part read until the tie is met, the targets, one
#: count per account, and the window read again per account (measured at most 14 and 24 for iter_posts, 25 and 45
#: for iter_window, which reads the date before and after too).
TIE_SPLIT_BOUND = {150: 30, 350: 50}


@pytest.mark.parametrize("reader", ["iter_posts", "iter_window"])
@pytest.mark.parametrize(("tied", "accounts"), [(150, 2), (350, 4)])
@pytest.mark.parametrize("before", [0, 45, 95])
def test_a_tie_beyond_a_page_is_read_exactly_by_account(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, reader: str, tied: int, accounts: int, before: int
) -> None:
    held = _held(before, tied, accounts=accounts)
    server = hostile(_ties_reshuffled(held), max_requests=TIE_SPLIT_BOUND[tied] + 1)

    rows = _read(reader, server, genviral_connection)

    _assert_exactly_once(rows, held)
    assert server.requests <= TIE_SPLIT_BOUND[tied]
    leaks.assert_clean()


@pytest.mark.parametrize("reader", ["iter_posts", "iter_window"])
@pytest.mark.parametrize("before", [0, 45, 95])
def test_a_tie_too_large_for_one_account_fails_naming_instant_count_and_filter(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, reader: str, before: int
) -> None:
    held = _held(before, 150, accounts=1)
    server = hostile(_ties_reshuffled(held), max_requests=40)

    with pytest.raises(GenviralIncompleteWindowError) as error:
        _read(reader, server, genviral_connection)

    message = str(error.value)
    assert "150 rows" in message and TIED_AT.isoformat() in message
    assert "platforms=tiktok" in message and "accounts=acct-0" in message
    assert not server.overrun
    leaks.error(error.value)
    leaks.assert_clean()
