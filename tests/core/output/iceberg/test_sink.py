"""IcebergSink against a real SQL catalog: exact windows, idempotent re-runs, concurrent commits, evolution."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from genviral_provider.core.output.iceberg.sink import IcebergSink, snapshot_properties
from genviral_provider.exceptions import GenviralError, GenviralInvalidParameterError, GenviralSchemaChangeError
from tests.conftest import needs_iceberg
from tests.core.output.iceberg.conftest import (
    LOG,
    TABLE,
    day_window,
    posts,
    rows_per_day,
    table_rows,
    write_window,
)

pytestmark = needs_iceberg


def test_the_first_write_creates_a_table_partitioned_by_day_with_the_parquet_columns(catalog: Any) -> None:
    write_window(catalog, day_window(1), posts(1, 3))
    table = catalog.load_table(TABLE)
    types = {field.name: str(field.field_type) for field in table.schema().fields}
    assert types["publishedAt"] == "timestamptz"
    assert types["metrics_views"] == "long"
    assert types["extra_fields"] == "string"
    assert all(not field.required for field in table.schema().fields)
    assert [(str(field.transform), field.name) for field in table.spec().fields] == [("day", "publishedAt_day")]


def test_consecutive_windows_each_hold_exactly_their_rows(catalog: Any) -> None:
    for day in (1, 2, 3):
        committed = write_window(catalog, day_window(day), posts(day, 5 + day))
        assert committed.row_count == 5 + day
    assert rows_per_day(catalog) == {"2026-01-01": 6, "2026-01-02": 7, "2026-01-03": 8}
    row = next(row for row in table_rows(catalog) if row["id"] == "d2-3")
    assert (row["metrics_views"], row["metrics_likes"], row["caption"], row["extra_fields"]) == (30, 3, "post 3", None)


def test_a_rerun_replaces_the_window_in_one_commit_and_leaves_other_days(catalog: Any) -> None:
    write_window(catalog, day_window(1), posts(1, 4), run_id="first")
    write_window(catalog, day_window(2), posts(2, 4), run_id="day2")
    before = {snapshot.snapshot_id for snapshot in catalog.load_table(TABLE).snapshots()}
    committed = write_window(catalog, day_window(1), posts(1, 3, tag="again-"), run_id="rerun")
    table = catalog.load_table(TABLE)
    new = [snapshot for snapshot in table.snapshots() if snapshot.snapshot_id not in before]
    # One commit: its delete and its append, both carrying the run's properties; readers only see the last one.
    assert [snapshot.summary.operation.value for snapshot in new] == ["delete", "append"]
    assert {snapshot.summary["genviral.run-id"] for snapshot in new} == {"rerun"}
    assert committed.snapshot_id == table.current_snapshot().snapshot_id
    assert [row["id"] for row in table_rows(catalog) if row["id"].startswith(("d1", "again"))] == [
        "again-d1-0",
        "again-d1-1",
        "again-d1-2",
    ]
    assert rows_per_day(catalog) == {"2026-01-01": 3, "2026-01-02": 4}


def test_a_run_of_several_groups_is_one_commit_of_a_delete_and_an_append_per_group(catalog: Any) -> None:
    write_window(catalog, day_window(1), posts(1, 4), run_id="first")
    table = catalog.load_table(TABLE)
    before, commits_before = {snapshot.snapshot_id for snapshot in table.snapshots()}, len(table.metadata.metadata_log)
    # 25 rows staged in batches of 5 and appended in groups of at least 10: groups of 10, 10 and 5 rows.
    committed = write_window(
        catalog, day_window(1), posts(1, 25, tag="g-"), run_id="grouped", group_rows=10, stage_batch_rows=5
    )
    table = catalog.load_table(TABLE)
    new = [snapshot for snapshot in table.snapshots() if snapshot.snapshot_id not in before]
    assert [snapshot.summary.operation.value for snapshot in new] == ["delete", "append", "append", "append"]
    assert [snapshot.summary["added-records"] for snapshot in new[1:]] == ["10", "10", "5"]
    assert {snapshot.summary["genviral.run-id"] for snapshot in new} == {"grouped"}
    assert len(table.metadata.metadata_log) == commits_before + 1  # one new metadata file: one commit
    assert committed.snapshot_id == table.current_snapshot().snapshot_id == new[-1].snapshot_id
    assert [row["id"] for row in table_rows(catalog)] == sorted(f"g-d1-{n}" for n in range(25))


def test_the_same_rows_again_give_the_same_table(catalog: Any) -> None:
    write_window(catalog, day_window(1), posts(1, 5))
    first = table_rows(catalog)
    write_window(catalog, day_window(1), posts(1, 5))
    assert table_rows(catalog) == first


def test_a_rerun_that_finds_no_rows_empties_its_window(catalog: Any) -> None:
    write_window(catalog, day_window(1), posts(1, 4))
    write_window(catalog, day_window(2), posts(2, 2))
    committed = write_window(catalog, day_window(1), [])
    assert (
        committed.row_count == 0 and committed.snapshot_id == catalog.load_table(TABLE).current_snapshot().snapshot_id
    )
    assert rows_per_day(catalog) == {"2026-01-02": 2}


def test_a_window_narrower_than_a_day_replaces_only_its_hours(catalog: Any) -> None:
    write_window(catalog, day_window(1), posts(1, 24))
    window = day_window(1)
    morning = type(window)(window.start, window.start.replace(hour=6), "explicit")
    write_window(catalog, morning, [row for row in posts(1, 3, tag="m-")])
    ids = [row["id"] for row in table_rows(catalog)]
    assert len(ids) == 18 + 3 and "d1-5" not in ids and "d1-6" in ids and "m-d1-2" in ids


class CommitsInBetween:
    """The real catalog, where another run commits a window right after the first table load: that load is stale."""

    def __init__(self, catalog: Any, day: int) -> None:
        self.catalog = catalog
        self.day = day
        self.loads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.catalog, name)

    def load_table(self, identifier: str) -> Any:
        table = self.catalog.load_table(identifier)
        self.loads += 1
        if self.loads == 1:
            write_window(self.catalog, day_window(self.day), posts(self.day, 6, tag="other-"))
        return table


def test_a_commit_after_another_runs_commit_of_another_day_keeps_both(catalog: Any) -> None:
    write_window(catalog, day_window(2), posts(2, 2))
    committed = write_window(CommitsInBetween(catalog, day=2), day_window(1), posts(1, 5))
    assert committed.row_count == 5
    assert rows_per_day(catalog) == {"2026-01-01": 5, "2026-01-02": 6}


def test_a_commit_refused_because_another_run_wrote_the_same_window_is_made_again(catalog: Any) -> None:
    write_window(catalog, day_window(1), posts(1, 2))
    waits: list[float] = []
    committed = write_window(CommitsInBetween(catalog, day=1), day_window(1), posts(1, 5), sleep=waits.append)
    assert committed.attempts == 2 and len(waits) == 1
    assert [row["id"] for row in table_rows(catalog)] == [f"d1-{n}" for n in range(5)]  # the later run, once


@pytest.mark.parametrize(("day_a", "day_b"), [(1, 2), (3, 3)], ids=["two-days", "the-same-day"])
def test_two_runs_committing_at_once_both_land_exactly(catalog: Any, day_a: int, day_b: int) -> None:
    write_window(catalog, day_window(1), posts(1, 1))  # the table exists before the race
    barrier = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def run(day: int, tag: str) -> None:
        try:
            with IcebergSink(catalog, TABLE, day_window(day), log=LOG) as sink:
                sink.write(posts(day, 7, tag=tag))
                barrier.wait()
                sink.commit({"genviral.run-id": tag})
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(day, tag)) for day, tag in ((day_a, "a-"), (day_b, "b-"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    per_day = rows_per_day(catalog)
    if day_a == day_b:
        ids = {
            row["id"][:2] for row in table_rows(catalog) if row["id"].endswith(tuple(f"d{day_a}-{n}" for n in range(7)))
        }
        assert per_day[f"2026-01-0{day_a}"] == 7 and len(ids) == 1  # one run's rows, complete: the last to commit
    else:
        assert per_day == {"2026-01-01": 7, "2026-01-02": 7}


def test_a_new_scalar_field_becomes_a_nullable_column_in_the_same_commit(catalog: Any) -> None:
    write_window(catalog, day_window(1), posts(1, 2))
    committed = write_window(
        catalog, day_window(2), posts(2, 2, shareUrl="https://x", metrics={"views": 1, "reposts": 4, "likes": 2})
    )
    assert committed.added_columns == ("shareUrl", "metrics_reposts")
    types = {field.name: str(field.field_type) for field in catalog.load_table(TABLE).schema().fields}
    assert (types["shareUrl"], types["metrics_reposts"]) == ("string", "long")
    by_id = {row["id"]: row for row in table_rows(catalog)}
    assert (by_id["d2-1"]["shareUrl"], by_id["d2-1"]["metrics_reposts"]) == ("https://x", 4)
    assert (by_id["d1-1"]["shareUrl"], by_id["d1-1"]["metrics_reposts"]) == (None, None)
    assert by_id["d2-1"]["extra_fields"] is None


def test_nested_values_and_a_new_fields_later_other_type_go_to_extra_fields(catalog: Any) -> None:
    rows = posts(1, 2, tags={"a": [1, 2]})
    rows[0]["score"], rows[1]["score"] = 5, "high"
    write_window(catalog, day_window(1), rows)
    by_id = {row["id"]: row for row in table_rows(catalog)}
    assert by_id["d1-0"]["score"] == 5 and json.loads(by_id["d1-0"]["extra_fields"]) == {"tags": {"a": [1, 2]}}
    assert by_id["d1-1"]["score"] is None
    assert json.loads(by_id["d1-1"]["extra_fields"]) == {"score": "high", "tags": {"a": [1, 2]}}


def test_an_incompatible_type_change_fails_naming_it_before_anything_is_committed(catalog: Any) -> None:
    write_window(catalog, day_window(1), posts(1, 2, score=5))
    snapshot = catalog.load_table(TABLE).current_snapshot().snapshot_id
    with pytest.raises(GenviralSchemaChangeError) as raised:
        write_window(catalog, day_window(1), posts(1, 3, score="five"))
    assert (raised.value.field, raised.value.old_type, raised.value.new_type) == ("score", "long", "string")
    assert (
        "'score'" in str(raised.value) and "long" in str(raised.value) and "Nothing was committed" in str(raised.value)
    )
    assert catalog.load_table(TABLE).current_snapshot().snapshot_id == snapshot
    assert len(table_rows(catalog)) == 2


def test_text_in_a_metric_column_fails_naming_the_metric(catalog: Any) -> None:
    with pytest.raises(GenviralSchemaChangeError, match=r"'metrics_views'.*long.*string"):
        write_window(catalog, day_window(1), posts(1, 1, metrics={"views": "many"}))
    assert catalog.load_table(TABLE).current_snapshot() is None


def test_a_failure_while_reading_commits_nothing_and_removes_the_staged_rows(catalog: Any, tmp_path: Any) -> None:
    write_window(catalog, day_window(1), posts(1, 2))
    snapshot = catalog.load_table(TABLE).current_snapshot().snapshot_id
    stage_dir = tmp_path / "stage"
    stage_dir.mkdir()

    def failing() -> Iterator[dict[str, Any]]:
        yield from posts(1, 3, tag="new-")
        raise GenviralError("the API went away")

    with pytest.raises(GenviralError, match="went away"):
        write_window(catalog, day_window(1), failing(), stage_dir=str(stage_dir))
    assert catalog.load_table(TABLE).current_snapshot().snapshot_id == snapshot
    assert list(stage_dir.iterdir()) == []


def test_a_table_without_namespace_is_refused_naming_it(catalog: Any) -> None:
    with pytest.raises(GenviralInvalidParameterError, match=r"table 'posts' is not '<namespace>\.<table>'"):
        IcebergSink(catalog, "posts", day_window(1), log=LOG)


def test_rows_are_staged_in_bounded_batches_and_committed_in_groups(catalog: Any) -> None:
    from genviral_provider.core.output.iceberg import staging

    with IcebergSink(catalog, TABLE, day_window(1), log=LOG) as sink:
        assert sink.stage is not None
        sink.stage.batch_rows = 100
        sink.write(posts(1, 1_050))
        assert len(list(sink.stage.folder.iterdir())) == 11  # ten full batches and the rest
        groups = list(sink.stage.groups(catalog.load_table(TABLE).schema().as_arrow(), group_rows=300))
        assert [group.num_rows for group in groups] == [300, 300, 300, 150]
        sink.commit({})
    assert staging.STAGE_BATCH_ROWS <= staging.COMMIT_GROUP_ROWS
    assert len(table_rows(catalog)) == 1_050


def test_the_snapshot_properties_carry_the_manifest() -> None:
    manifest = {
        "window": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-02T00:00:00+00:00", "source": "data_interval"},
        "row_count": 12,
        "api_requests": 3,
        "run": {"run_id": "scheduled__2026-01-01", "dag_id": "d", "task_id": "t", "try_number": 2},
        "api_dates": {"start": "2025-12-31", "end": "2026-01-02"},
        "filters": {"platforms": ["tiktok"], "accounts": []},
        "provider": {"version": "0.1.0"},
        "freshness": {"watermark": "2026-01-02T01:00:00+00:00", "targets": {"t1": {"last_refreshed_at": "x"}}},
    }
    properties = snapshot_properties(manifest)
    assert properties["genviral.window.start"] == "2026-01-01T00:00:00+00:00"
    assert properties["genviral.window.source"] == "data_interval"
    assert properties["genviral.row-count"] == "12"
    assert properties["genviral.api-requests"] == "3"
    assert properties["genviral.run-id"] == "scheduled__2026-01-01"
    assert json.loads(properties["genviral.freshness.targets"]) == {"t1": "x"}
    assert properties["genviral.api-dates"] == "2025-12-31..2026-01-02"
    assert json.loads(properties["genviral.filters"]) == {"platforms": ["tiktok"]}
    assert (properties["genviral.try-number"], properties["genviral.provider-version"]) == ("2", "0.1.0")
    assert len(json.dumps(properties)) < 1_000
    assert all(isinstance(value, str) for value in properties.values())
