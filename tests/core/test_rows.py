"""Row identity and the one reader of instants: every RFC 3339 form placed, nothing else guessed."""

from __future__ import annotations

import datetime as dt

import pytest

from genviral_provider.core.rows import parse_utc, published_at, row_key

UTC = dt.timezone.utc
AT = dt.datetime(2026, 2, 12, 17, 42, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-02-12T17:42:02Z", AT),
        ("2026-02-12T17:42:02z", AT),
        ("2026-02-12t17:42:02Z", AT),
        ("2026-02-12t17:42:02z", AT),
        ("2026-02-12 17:42:02Z", AT),
        ("2026-02-12T17:42:02+00:00", AT),
        ("2026-02-12T17:42:02-00:00", AT),
        ("2026-02-12T19:12:02+01:30", AT),
        ("2026-02-12T03:42:02-14:00", AT),
        ("2026-02-12T17:42:02.000Z", AT),
        ("2026-02-12T17:42:02.5Z", AT.replace(microsecond=500000)),
        ("2026-02-12T17:42:02.123456789Z", AT.replace(microsecond=123456)),
        ("2026-02-12T17:42:02.0000000000001z", AT),
        ("2026-12-31T23:59:60Z", dt.datetime(2027, 1, 1, tzinfo=UTC)),
        ("2026-12-31T23:59:60.25+00:00", dt.datetime(2027, 1, 1, tzinfo=UTC)),
        ("  2026-02-12T17:42:02Z ", AT),
    ],
)
def test_every_rfc_3339_form_is_placed(text: str, expected: dt.datetime) -> None:
    assert published_at({"publishedAt": text}) == expected


@pytest.mark.parametrize(
    "value",
    [
        "2026-02-12T17:42:02",  # a local time of an unknown zone
        "2026-02-12T17:42:02.000",
        "2026-02-12",
        1770918122000,  # epoch milliseconds
        1770918122,
        "1770918122000",
        "20260212",  # digits that ISO's basic format would read as a date
        "",
        "yesterday",
        None,
    ],
)
def test_a_value_that_names_no_instant_is_not_placed(value: object) -> None:
    assert published_at({"publishedAt": value}) is None


def test_a_missing_published_at_is_not_placed() -> None:
    assert published_at({"id": "r1"}) is None


def test_a_naive_value_is_read_in_the_zone_given() -> None:
    assert parse_utc("2026-02-12T18:42:02", naive=dt.timezone(dt.timedelta(hours=1))) == AT


def test_rows_are_identified_by_analytics_id_then_id() -> None:
    assert row_key({"analyticsId": "a", "id": "b"}) == "a"
    assert row_key({"id": "b"}) == "b"
    assert row_key({"x": 1}) == row_key({"x": 1}) != row_key({"x": 2})
