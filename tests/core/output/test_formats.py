def test_unknown_fields_are_top_level_keys_and_metrics_the_layout_has_no_column_for() -> None:
    from genviral_provider.core.output.formats import FieldDrift, unknown_fields

    row = {"id": "a", "publishedAt": "2026-01-05T00:00:00Z", "newKey": 1, "metrics": {"views": 3, "reposts": 1}}
    assert unknown_fields(row) == ["newKey", "metrics.reposts"]
    assert unknown_fields({"id": "b", "metrics": None}) == []

    drift = FieldDrift()
    assert list(drift.track([row, {"id": "c"}, row])) == [row, {"id": "c"}, row]
    assert drift.counts == {"newKey": 2, "metrics.reposts": 2}
