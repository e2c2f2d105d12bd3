"""Issue 21: a row the reader cannot place (epoch ms, a naive time, no publishedAt) fails the read, naming it,
unless the user allows skipping a bounded number; every RFC 3339 form is placed in its own day."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.core.output.folder import MANIFEST_NAME
from genviral_provider.exceptions import GenviralIncompleteWindowError, GenviralInvalidParameterError
from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.operators.genviral import GenviralPostsOperator
from tests.hostile.conftest import LeakCheck
from tests.hostile.posts import answer_posts, targets_or_posts
from tests.hostile.server import Exchange, HostileServer
from tests.operators.conftest import operator_context, read_output

Start = Callable[..., HostileServer]
UTC = dt.timezone.utc
DAY = dt.date(2026, 1, 10)
#: Rows of 2026-01-10 (UTC) in RFC 3339's forms, and two just outside it that only their offset places.
RFC_3339_ROWS = {
    "upper-z": "2026-01-10T00:00:00Z",
    "lower-z": "2026-01-10T01:00:00z",
    "lower-t": "2026-01-10t02:00:00Z",
    "space": "2026-01-10 03:00:00Z",
    "offset": "2026-01-10T12:00:00+05:30",
    "negative-offset": "2026-01-10T14:00:00-09:00",
    "unknown-offset": "2026-01-10T15:00:00-00:00",
    "nanoseconds": "2026-01-10T16:00:00.123456789Z",
    "one-digit-fraction": "2026-01-10T17:00:00.5+00:00",
    "east-of-utc-yet-in-the-day": "2026-01-11T00:30:00+01:00",  # 2026-01-10T23:30Z
    "west-of-utc-so-the-next-day": "2026-01-10T23:30:00-01:00",  # 2026-01-11T00:30Z
    "the-day-before-by-its-offset": "2026-01-10T00:30:00+01:00",  # 2026-01-09T23:30Z
}
IN_THE_DAY = set(RFC_3339_ROWS) - {"west-of-utc-so-the-next-day", "the-day-before-by-its-offset"}
UNPLACEABLE: dict[str, dict[str, Any]] = {
    "epoch-ms": {"id": "epoch-ms", "publishedAt": 1768046400000},
    "naive": {"id": "naive", "publishedAt": "2026-01-10T12:00:00"},
    "missing": {"id": "missing"},
}


def _posts(held: list[dict[str, Any]]) -> Callable[[Exchange], None]:
    def behave(exchange: Exchange) -> None:  # any date reading: the server holds one day and what it cannot place
        answer_posts(exchange, held, key=lambda row: str(row.get("id")))

    return behave


def _rfc_3339_rows() -> list[dict[str, Any]]:
    return [{"id": name, "analyticsId": name, "publishedAt": text} for name, text in RFC_3339_ROWS.items()]


def _operator(server: HostileServer, genviral_connection: Any, tmp_path: pathlib.Path, **kwargs: Any) -> Any:
    operator = GenviralPostsOperator(
        task_id="posts", output_path=f"file://{tmp_path}/posts", genviral_conn_id=genviral_connection(server), **kwargs
    )
    context = operator_context(
        data_interval_start=dt.datetime(2026, 1, 10, tzinfo=UTC),
        data_interval_end=dt.datetime(2026, 1, 11, tzinfo=UTC),
        run_after=dt.datetime(2026, 4, 1, tzinfo=UTC),
    )
    return lambda: operator.execute(context)


def test_every_rfc_3339_form_lands_in_its_own_day(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, tmp_path: pathlib.Path
) -> None:
    server = hostile(targets_or_posts(_posts(_rfc_3339_rows())), max_requests=30)

    result = _operator(server, genviral_connection, tmp_path)()

    written = [row["id"] for row in read_output(tmp_path / "posts").rows]
    assert sorted(written) == sorted(IN_THE_DAY)  # each once, none of the other days
    assert result["row_count"] == len(IN_THE_DAY)
    leaks.assert_clean()


@pytest.mark.parametrize("name", list(UNPLACEABLE))
def test_an_unplaceable_row_fails_the_task_naming_it(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, tmp_path: pathlib.Path, name: str
) -> None:
    row = UNPLACEABLE[name]
    server = hostile(targets_or_posts(_posts([*_rfc_3339_rows(), row])), max_requests=30)

    with pytest.raises(GenviralIncompleteWindowError) as error:
        _operator(server, genviral_connection, tmp_path)()

    message = leaks.error(error.value)
    assert f"Row {name} " in message
    assert ("no publishedAt" if name == "missing" else repr(row["publishedAt"])) in message
    assert "max_unplaceable_rows" in message
    assert not (tmp_path / "posts").exists()  # no manifest published
    leaks.assert_clean()


def test_a_bound_skips_that_many_unplaceable_rows_and_counts_them(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, tmp_path: pathlib.Path
) -> None:
    server = hostile(targets_or_posts(_posts([*_rfc_3339_rows(), *UNPLACEABLE.values()])), max_requests=30)

    _operator(server, genviral_connection, tmp_path, max_unplaceable_rows=3)()

    manifest = json.loads((tmp_path / "posts" / MANIFEST_NAME).read_text())
    assert manifest["rows_without_published_at"] == 3
    assert sorted(row["id"] for row in read_output(tmp_path / "posts").rows) == sorted(IN_THE_DAY)
    leaks.assert_clean()


def test_one_unplaceable_row_past_the_bound_fails_the_task(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck, tmp_path: pathlib.Path
) -> None:
    server = hostile(targets_or_posts(_posts([*_rfc_3339_rows(), *UNPLACEABLE.values()])), max_requests=30)

    with pytest.raises(GenviralIncompleteWindowError, match=r"More than 2 row\(s\)") as error:
        _operator(server, genviral_connection, tmp_path, max_unplaceable_rows=2)()

    leaks.error(error.value)
    assert not (tmp_path / "posts").exists()
    leaks.assert_clean()


def test_a_bound_that_is_not_a_count_fails_before_any_request(
    hostile: Start, genviral_connection: Any, tmp_path: pathlib.Path
) -> None:
    server = hostile(targets_or_posts(_posts(_rfc_3339_rows())), max_requests=30)

    with pytest.raises(GenviralInvalidParameterError, match=r"max_unplaceable_rows -1 is not a row count"):
        _operator(server, genviral_connection, tmp_path, max_unplaceable_rows=-1)()

    assert server.requests == 0


def test_iter_posts_fails_on_an_unplaceable_row_unless_allowed(
    hostile: Start, genviral_connection: Any, leaks: LeakCheck
) -> None:
    server = hostile(_posts([*_rfc_3339_rows(), UNPLACEABLE["naive"]]), max_requests=30)
    hook = GenviralHook(genviral_conn_id=genviral_connection(server, max_retries=0))

    with pytest.raises(GenviralIncompleteWindowError, match=r"Row naive has publishedAt '2026-01-10T12:00:00'"):
        list(hook.iter_posts(start=DAY, end=DAY))
    stream = hook.iter_posts(start=DAY, end=DAY, max_unplaceable_rows=1)
    assert sorted(row["id"] for row in stream) == sorted(RFC_3339_ROWS)  # iter_posts keeps its dates' neighbours
    assert stream.unplaceable.skipped == 1
    with pytest.raises(GenviralInvalidParameterError):
        hook.iter_posts(start=DAY, end=DAY, max_unplaceable_rows=True)
    leaks.assert_clean()
