"""Issue 21: a server that ignores ``start``/``end`` and answers its default 30 days fails the read, naming dates."""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.core.reading.run_window import RunWindow
from genviral_provider.exceptions import GenviralAPIContradictionError
from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.operators.genviral import GenviralPostsOperator
from tests.hostile.conftest import LeakCheck
from tests.hostile.posts import answer_posts, targets_or_posts
from tests.hostile.server import Exchange, HostileServer
from tests.operators.conftest import operator_context

Start = Callable[..., HostileServer]
UTC = dt.timezone.utc
#: What the server holds: 500 posts over its "last 30 days", 2026-03-01..2026-03-30, whatever dates are asked.
DEFAULT_RANGE_START = dt.datetime(2026, 3, 1, tzinfo=UTC)
POSTS = [
    {
        "id": f"post-{n}",
        "analyticsId": f"post-{n}",
        "publishedAt": (DEFAULT_RANGE_START + n * dt.timedelta(days=30) / 500).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "platform": "tiktok",
    }
    for n in range(500)
]


def _ignores_dates(exchange: Exchange) -> None:
    answer_posts(exchange, POSTS)


def _hook(server: HostileServer, genviral_connection: Any) -> GenviralHook:
    return GenviralHook(genviral_conn_id=genviral_connection(server, max_retries=0))


def _refused(error: pytest.ExceptionInfo[GenviralAPIContradictionError], asked: str, leaks: LeakCheck) -> str:
    message = leaks.error(error.value)
    assert "ignored the dates asked" in message
    assert asked in message  # the dates asked
    assert "2026-03-" in message  # and the dates seen
    return message


@pytest.mark.parametrize("day", ["2026-01-10", "2026-03-15"], ids=["before-the-default-range", "inside-it"])
def test_iter_posts_refuses_rows_outside_the_dates_asked(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, day: str
) -> None:
    server = hostile(_ignores_dates, max_requests=20)

    with pytest.raises(GenviralAPIContradictionError) as error:
        list(_hook(server, genviral_connection).iter_posts(start=day, end=day))

    _refused(error, f"{day}..{day}", leaks)
    assert server.requests == 1
    assert {exchange.params["start"] for exchange in server.exchanges} == {day}  # the client did send the dates
    leaks.assert_clean()


def test_iter_window_refuses_rows_outside_the_dates_asked(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck
) -> None:
    server = hostile(_ignores_dates, max_requests=20)
    window = RunWindow(dt.datetime(2026, 1, 10, tzinfo=UTC), dt.datetime(2026, 1, 11, tzinfo=UTC), "test")

    with pytest.raises(GenviralAPIContradictionError) as error:
        list(_hook(server, genviral_connection).iter_window(window))

    _refused(error, "2026-01-10", leaks)
    assert server.requests <= 2
    leaks.assert_clean()


def test_a_backfill_of_an_older_day_fails_instead_of_publishing_an_empty_day(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, tmp_path: pathlib.Path
) -> None:
    server = hostile(targets_or_posts(_ignores_dates), max_requests=20)
    operator = GenviralPostsOperator(
        task_id="posts", output_path=f"file://{tmp_path}/posts", genviral_conn_id=genviral_connection(server)
    )
    context = operator_context(
        data_interval_start=dt.datetime(2026, 1, 10, tzinfo=UTC),
        data_interval_end=dt.datetime(2026, 1, 11, tzinfo=UTC),
        run_after=dt.datetime(2026, 4, 1, tzinfo=UTC),
    )

    with pytest.raises(GenviralAPIContradictionError) as error:
        operator.execute(context)

    _refused(error, "2026-01-10", leaks)
    assert not (tmp_path / "posts").exists()  # nothing published: no manifest saying the day is covered
    assert server.requests <= 3
    leaks.assert_clean()


def test_rows_within_14_hours_of_the_dates_asked_are_read(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck
) -> None:
    day = dt.date(2026, 3, 10)
    first = dt.datetime(2026, 3, 9, 10, tzinfo=UTC)  # 00:00 at UTC+14
    last = dt.datetime(2026, 3, 12, 13, 59, 59, tzinfo=UTC)  # 23:59:59 of the day after at UTC-14, `end` included
    held = [{"id": f"p{n}", "publishedAt": t.isoformat().replace("+00:00", "Z")} for n, t in enumerate([first, last])]
    server = hostile(lambda exchange: answer_posts(exchange, held), max_requests=20)

    rows = list(_hook(server, genviral_connection).iter_posts(start=day, end=day + dt.timedelta(days=1)))

    assert [row["id"] for row in rows] == ["p0", "p1"]
    leaks.assert_clean()
