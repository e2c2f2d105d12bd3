"""The posts endpoint's contract: what is refused before any request, and what is sent."""

from __future__ import annotations

import datetime as dt

import pytest

from genviral_provider.core.api.query import page_request, posts_filter
from genviral_provider.exceptions import GenviralError, GenviralInvalidParameterError


def test_dates_are_sent_as_iso_calendar_dates() -> None:
    window = posts_filter("2026-01-01", dt.date(2026, 1, 31))
    assert window.params() == {"start": "2026-01-01", "end": "2026-01-31"}


def test_preset_is_sent_as_range() -> None:
    assert posts_filter(date_range="90d").params() == {"range": "90d"}


def test_platforms_and_accounts_are_comma_joined() -> None:
    window = posts_filter(platforms=["tiktok", "instagram"], accounts=("t1", "t2"))
    assert window.params() == {"platforms": "tiktok,instagram", "accounts": "t1,t2"}


def test_comma_separated_string_is_accepted_for_a_filter() -> None:
    assert posts_filter(platforms="tiktok,youtube").platforms == ("tiktok", "youtube")


def test_duplicate_filter_values_are_sent_once() -> None:
    assert posts_filter(platforms=["tiktok", "tiktok"]).platforms == ("tiktok",)


def test_page_request_carries_paging_and_order() -> None:
    request = page_request(posts_filter(), limit=25, offset=50, sort_by="views", sort_order="desc")
    assert request.params() == {"sortBy": "views", "sortOrder": "desc", "limit": "25", "offset": "50"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "2026-01-01"}, "'start' was given without 'end'"),
        ({"end": "2026-01-01"}, "'end' was given without 'start'"),
        ({"start": "2026-02-01", "end": "2026-01-01"}, "start 2026-02-01 is after end 2026-01-01"),
        ({"start": "2026-1-1", "end": "2026-01-02"}, "start '2026-1-1' is not a date"),
        ({"start": "2026-01-01", "end": "yesterday"}, "end 'yesterday' is not a date"),
        ({"start": "2026-01-01", "end": "2026-02-30"}, "end '2026-02-30' is not a date"),
        ({"start": dt.datetime(2026, 1, 1), "end": "2026-01-02"}, "is a datetime"),
        ({"date_range": "7d"}, "Unknown date_range '7d': allowed presets are 14d, 30d, 90d, 1y, all"),
        ({"date_range": "30d", "start": "2026-01-01", "end": "2026-01-02"}, "given together with start/end"),
        ({"platforms": ["tiktok", ""]}, "platforms contains a blank"),
        ({"platforms": ["tiktok,instagram"]}, "'tiktok,instagram' contains a separator"),
        ({"accounts": [" t1"]}, "' t1' contains a separator or surrounding spaces"),
        ({"accounts": [None]}, "accounts contains a blank or non-string value None"),
    ],
)
def test_bad_window_is_refused_naming_the_value(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(GenviralInvalidParameterError, match=message.replace("(", r"\(")):
        posts_filter(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0}, "limit 0 is out of range: allowed are integers 1..100"),
        ({"limit": 101}, "limit 101 is out of range"),
        ({"limit": True}, "limit True is out of range"),
        ({"offset": -1}, "offset -1 is out of range: allowed are integers 0..10000"),
        ({"offset": 10_001}, "offset 10001 is out of range"),
        ({"sort_by": "engagement"}, "Unknown sort_by 'engagement': allowed are published_at, views"),
        ({"sort_order": "up"}, "Unknown sort_order 'up': allowed are asc, desc"),
    ],
)
def test_bad_page_is_refused_naming_the_value(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(GenviralInvalidParameterError, match=message):
        page_request(posts_filter(), **kwargs)  # type: ignore[arg-type]


def test_invalid_parameter_is_an_airflow_exception_and_a_value_error() -> None:
    with pytest.raises(GenviralError) as caught:
        posts_filter(date_range="week")
    assert isinstance(caught.value, ValueError)


def test_describe_names_the_window_and_filters() -> None:
    window = posts_filter("2026-01-01", "2026-01-31", platforms=["tiktok"], accounts=["t1"])
    assert window.describe() == "2026-01-01..2026-01-31 platforms=tiktok accounts=t1"


def test_a_misspelled_platform_is_refused_naming_the_known_ones() -> None:
    from genviral_provider.core.api.query import platform_values

    assert platform_values("tiktok,youtube") == ("tiktok", "youtube")
    with pytest.raises(
        GenviralInvalidParameterError, match=r"Unknown platform\(s\) 'tiktk'.*tiktok, instagram, youtube"
    ):
        posts_filter(platforms=["tiktk"])
