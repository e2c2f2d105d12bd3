"""A checkpoints table: each run's rows under its checkpoint_age, a re-run replacing that age's window only."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest

from genviral_provider.core.output.iceberg.sink import Committed, IcebergSink
from genviral_provider.exceptions import GenviralInvalidParameterError
from tests.conftest import needs_iceberg
from tests.core.output.iceberg.conftest import LOG, TABLE, day_window, posts, write_window

pytestmark = needs_iceberg

CHECKPOINTS = "genviral.post_checkpoints"


def _checkpoint(catalog: Any, age: str, day: int, rows: list[dict[str, Any]], run_id: str = "run") -> Committed:
    with IcebergSink(catalog, CHECKPOINTS, day_window(day), log=LOG, checkpoint_age=age) as sink:
        sink.write(rows)
        return sink.commit({"genviral.run-id": run_id})


def _per_age_and_day(catalog: Any) -> Counter[tuple[str, str]]:
    rows = catalog.load_table(CHECKPOINTS).scan().to_arrow().to_pylist()
    return Counter((row["checkpoint_age"], row["publishedAt"].date().isoformat()) for row in rows)


def test_a_checkpoints_table_is_partitioned_by_age_then_publication_day(catalog: Any) -> None:
    _checkpoint(catalog, "48h", 1, posts(1, 3))
    table = catalog.load_table(CHECKPOINTS)
    assert [(str(field.transform), field.name) for field in table.spec().fields] == [
        ("identity", "checkpoint_age"),
        ("day", "publishedAt_day"),
    ]
    assert str(table.schema().find_field("checkpoint_age").field_type) == "string"
    assert table.current_snapshot().summary["genviral.checkpoint-age"] == "48h"


def test_a_rerun_replaces_only_its_age_and_day(catalog: Any) -> None:
    for age, day, count in (("48h", 1, 3), ("48h", 2, 4), ("7d", 1, 5), ("7d", 2, 6)):
        _checkpoint(catalog, age, day, posts(day, count))
    _checkpoint(catalog, "48h", 1, posts(1, 2, tag="again-"), run_id="rerun")
    assert _per_age_and_day(catalog) == {
        ("48h", "2026-01-01"): 2,
        ("48h", "2026-01-02"): 4,
        ("7d", "2026-01-01"): 5,
        ("7d", "2026-01-02"): 6,
    }
    rows = catalog.load_table(CHECKPOINTS).scan(row_filter="checkpoint_age = '48h'").to_arrow().to_pylist()
    assert sorted(row["id"] for row in rows if row["publishedAt"].day == 1) == ["again-d1-0", "again-d1-1"]


def test_the_same_checkpoint_again_gives_the_same_rows(catalog: Any) -> None:
    _checkpoint(catalog, "48h", 1, posts(1, 4))
    first = sorted(catalog.load_table(CHECKPOINTS).scan().to_arrow().to_pylist(), key=lambda row: row["id"])
    _checkpoint(catalog, "48h", 1, posts(1, 4))
    again = sorted(catalog.load_table(CHECKPOINTS).scan().to_arrow().to_pylist(), key=lambda row: row["id"])
    assert again == first and len(first) == 4


def test_a_posts_table_refuses_a_checkpoint_age(catalog: Any) -> None:
    write_window(catalog, day_window(1), posts(1, 1))
    with pytest.raises(GenviralInvalidParameterError, match=r"checkpoint_age '48h' is given, but table genviral.posts"):
        IcebergSink(catalog, TABLE, day_window(1), log=LOG, checkpoint_age="48h").__enter__()


def test_a_checkpoints_table_refuses_a_run_without_its_age(catalog: Any) -> None:
    _checkpoint(catalog, "48h", 1, posts(1, 1))
    with pytest.raises(GenviralInvalidParameterError, match=r"holds checkpoints .* no checkpoint_age is given"):
        IcebergSink(catalog, CHECKPOINTS, day_window(1), log=LOG).__enter__()


def test_a_snapshot_date_and_a_checkpoint_age_together_are_refused(catalog: Any) -> None:
    with pytest.raises(GenviralInvalidParameterError, match=r"snapshot_date '2026-01-02' and checkpoint_age '48h'"):
        IcebergSink(
            catalog, CHECKPOINTS, day_window(1), log=LOG, snapshot_date=dt.date(2026, 1, 2), checkpoint_age="48h"
        )
