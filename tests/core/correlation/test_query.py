"""What a correlation search accepts: ids as given or rendered, ``match``, ``since``, and how ids are named."""

from __future__ import annotations

import datetime as dt

import pytest

from genviral_provider.core.correlation.query import CorrelationQuery, describe_ids, parse_ids, parse_since
from genviral_provider.exceptions import GenviralInvalidParameterError

SINCE = dt.datetime(2026, 1, 10, 12, tzinfo=dt.timezone.utc)


# ------------------------------------------------------------------------------------------ the ids


def test_ids_come_as_a_list_or_a_tuple() -> None:
    assert parse_ids("genviral_post_ids", ["a", "b"]) == ("a", "b")
    assert parse_ids("genviral_post_ids", ("a",)) == ("a",)
    assert parse_ids("genviral_post_ids", None) == ()


@pytest.mark.parametrize("rendered", ["['a', 'b']", '["a", "b"]', " ('a', 'b') "])
def test_ids_rendered_as_text_by_a_template_are_read_back(rendered: str) -> None:
    assert parse_ids("genviral_post_ids", rendered) == ("a", "b")


def test_a_plain_string_is_one_id() -> None:
    assert parse_ids("external_ids", "automation-1") == ("automation-1",)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["a", ""], "genviral_post_ids contains a blank id ''"),
        (["a", "  "], "genviral_post_ids contains a blank id '  '"),
        ([" a"], "genviral_post_ids contains ' a', with surrounding spaces"),
        (["a", "b", "a"], "genviral_post_ids contains 'a' more than once"),
        (["a", 7], r"genviral_post_ids contains 7 \(int\): ids are strings"),
        ({"a": 1}, "genviral_post_ids must be a list of id strings, got dict"),
        (42, "genviral_post_ids must be a list of id strings, got int 42"),
        ("None", "genviral_post_ids is 'None': its template rendered nothing"),
        ("[a, b]", r"genviral_post_ids '\[a, b\]' looks like a rendered list but cannot be read"),
    ],
)
def test_bad_ids_are_refused_naming_the_value(value: object, message: str) -> None:
    with pytest.raises(GenviralInvalidParameterError, match=message):
        parse_ids("genviral_post_ids", value)


def test_at_least_one_id_is_required() -> None:
    with pytest.raises(GenviralInvalidParameterError, match="No ids to wait for"):
        CorrelationQuery.parse(genviral_post_ids=[], external_ids=None, since=SINCE)


def test_an_id_in_both_lists_is_refused() -> None:
    with pytest.raises(GenviralInvalidParameterError, match="'x' is in both genviral_post_ids and external_ids"):
        CorrelationQuery.parse(genviral_post_ids=["x"], external_ids=["x"], since=SINCE)


def test_an_external_id_longer_than_the_api_allows_is_refused() -> None:
    with pytest.raises(GenviralInvalidParameterError, match="129 characters long"):
        CorrelationQuery.parse(external_ids=["e" * 129], since=SINCE)


def test_match_is_all_or_any() -> None:
    with pytest.raises(GenviralInvalidParameterError, match="Unknown match 'some': allowed are all, any"):
        CorrelationQuery.parse(genviral_post_ids=["a"], match="some", since=SINCE)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-10T12:00:00Z", SINCE),
        ("2026-01-10T13:00:00+01:00", SINCE),
        (dt.datetime(2026, 1, 10, 12), SINCE),
        (dt.date(2026, 1, 10), dt.datetime(2026, 1, 10, tzinfo=dt.timezone.utc)),
        ("2026-01-10", dt.datetime(2026, 1, 10, tzinfo=dt.timezone.utc)),
    ],
)
def test_since_is_read_as_an_aware_utc_moment(value: object, expected: dt.datetime) -> None:
    assert parse_since(value) == expected
    assert parse_since(value).tzinfo == dt.timezone.utc


@pytest.mark.parametrize("value", ["yesterday", None, 1700000000])
def test_a_since_that_is_no_moment_is_refused(value: object) -> None:
    with pytest.raises(GenviralInvalidParameterError, match="is not a moment"):
        parse_since(value)


def test_ids_are_described_by_kind() -> None:
    text = describe_ids(["b", "x"], ["a", "b"], ["x", "y"])
    assert text == "genviral_post_ids ['b'] and external_ids ['x']"
