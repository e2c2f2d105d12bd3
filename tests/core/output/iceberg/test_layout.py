"""RowLayout: the Parquet layout's columns, new scalar fields as columns, type changes refused with their names."""

from __future__ import annotations

import json

import pytest

from genviral_provider.core.output.formats import PARQUET_COLUMNS
from genviral_provider.core.output.iceberg.layout import RowLayout, fits, value_kind
from genviral_provider.exceptions import GenviralSchemaChangeError
from tests.conftest import needs_iceberg

pytestmark = needs_iceberg

ROW = {"id": "p1", "publishedAt": "2026-01-01T00:00:00Z", "metrics": {"views": 3}}


def _layout() -> RowLayout:
    return RowLayout(dict(PARQUET_COLUMNS), table="genviral.posts")


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, "null"),
        (True, "boolean"),
        (3, "int"),
        (2**63, "json"),
        (1.5, "float"),
        (float("nan"), "json"),
        ("x", "string"),
        ("\ud800", "json"),
        ({}, "object"),
        ([], "array"),
    ],
)
def test_value_kinds(value: object, kind: str) -> None:
    assert value_kind(value) == kind


def test_ints_fit_double_columns_and_whole_floats_fit_long_ones() -> None:
    assert fits("float", 3) and fits("int", 3.0) and fits("int", None)
    assert not fits("int", 3.5) and not fits("string", 3) and not fits("boolean", 1)


def test_known_fields_fill_the_parquet_columns() -> None:
    layout = _layout()
    record = layout.record(ROW)
    assert record["id"] == "p1" and record["metrics_views"] == 3 and record["extra_fields"] is None
    assert layout.added == {}


def test_new_scalar_fields_and_metrics_become_columns_and_nested_ones_stay_json() -> None:
    layout = _layout()
    record = layout.record({**ROW, "isAd": True, "meta": {"k": 1}, "metrics": {"views": 3, "watchTime": 1.5}})
    assert layout.added == {"isAd": "boolean", "metrics_watchTime": "float"}
    assert record["isAd"] is True and record["metrics_watchTime"] == 1.5
    assert json.loads(record["extra_fields"]) == {"meta": {"k": 1}}


def test_a_new_field_without_a_value_is_kept_in_extra_fields_not_a_column() -> None:
    layout = _layout()
    record = layout.record({**ROW, "later": None})
    assert layout.added == {} and json.loads(record["extra_fields"]) == {"later": None}


def test_a_value_that_does_not_fit_an_existing_column_names_field_and_both_types() -> None:
    layout = RowLayout({**dict(PARQUET_COLUMNS), "score": "int"}, table="genviral.posts")
    with pytest.raises(GenviralSchemaChangeError) as raised:
        layout.record({**ROW, "score": {"value": 3}})
    assert (raised.value.field, raised.value.old_type, raised.value.new_type) == ("score", "long", "object (nested)")
    assert "genviral.posts" in str(raised.value) and "'p1'" in str(raised.value)


def test_a_fractional_engagement_in_a_long_metric_is_a_type_change() -> None:
    with pytest.raises(GenviralSchemaChangeError, match=r"'metrics_likes'.*long.*double"):
        _layout().record({**ROW, "metrics": {"likes": 2.5}})


def test_the_type_change_error_survives_pickling_with_its_fields() -> None:
    import pickle

    with pytest.raises(GenviralSchemaChangeError) as raised:
        _layout().record({**ROW, "metrics": {"views": "many"}})
    copy = pickle.loads(pickle.dumps(raised.value))
    assert (str(copy), copy.field, copy.old_type, copy.new_type) == (
        str(raised.value),
        "metrics_views",
        "long",
        "string",
    )
