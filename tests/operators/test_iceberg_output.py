"""GenviralPostsOperator with output_format="iceberg": runs' windows against the sandbox into a real SQL catalog.

``execute()`` is called with the context values Airflow would pass (the runs of real timetables), over HTTP to the
sandbox, into a pyiceberg SQL catalog on sqlite in a temp dir, named by an Airflow connection (or not: embedded).
GenviralCheckpointPostsOperator, which commits each checkpoint age into the checkpoints table, is tested at the end.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import pathlib
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG, Asset

from genviral_provider.core.output.checkpoints import CheckpointInterval
from genviral_provider.core.output.iceberg.catalog import embedded_config, open_catalog
from genviral_provider.exceptions import GenviralIcebergError, GenviralInvalidParameterError, GenviralSchemaChangeError
from genviral_provider.operators.checkpoints import GenviralCheckpointPostsOperator
from genviral_provider.operators.genviral import GenviralPostsOperator
from genviral_provider.operators.lineage import PostsLineage, operator_lineage
from genviral_provider.sandbox import SandboxServer
from tests.conftest import needs_iceberg, scheduler_dag
from tests.operators.conftest import operator_context, operator_dataset, rows_between

pytestmark = needs_iceberg

UTC = dt.timezone.utc
CATALOG_CONN = "genviral_iceberg_test"


@pytest.fixture
def sandbox(genviral_sandbox_factory: Callable[..., SandboxServer], genviral_connection: Callable[..., str]) -> Any:
    server = genviral_sandbox_factory(dataset=operator_dataset())
    genviral_connection(server, max_retry_wait=2)
    return server


@pytest.fixture
def catalog_conn(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An Airflow connection whose extra names a SQL catalog on sqlite under tmp_path; returns the catalog."""
    config = embedded_config(tmp_path / "lake", name=CATALOG_CONN)
    conn = {"conn_type": "generic", "extra": dict(config.properties)}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CATALOG_CONN.upper()}", json.dumps(conn))
    return open_catalog(config)


def _day(day: int) -> dt.datetime:
    return dt.datetime(2026, 1, day, tzinfo=UTC)


def _operator(**arguments: Any) -> GenviralPostsOperator:
    defaults = {"task_id": "posts", "output_format": "iceberg", "table": "genviral.posts"}
    return GenviralPostsOperator(**{**defaults, "catalog_conn_id": CATALOG_CONN, **arguments})


def _run_day(operator: GenviralPostsOperator, day: int) -> dict[str, Any]:
    return operator.execute(operator_context(data_interval_start=_day(day), data_interval_end=_day(day + 1)))


def _ids_between(catalog: Any, start: dt.datetime, end: dt.datetime) -> list[str]:
    rows = catalog.load_table("genviral.posts").scan().to_arrow().to_pylist()
    return sorted(row["id"] for row in rows if start <= row["publishedAt"] < end)


@pytest.mark.parametrize(
    "schedule",
    [
        'CronDataIntervalTimetable("0 0 * * *", timezone="UTC")',
        '"@daily"',
        'CronTriggerTimetable("0 0 * * *", timezone="UTC", interval=dt.timedelta(days=1))',
    ],
    ids=["CronDataIntervalTimetable", "@daily", "CronTriggerTimetable-interval"],
)
def test_consecutive_runs_of_a_timetable_hold_exactly_their_windows(
    sandbox: SandboxServer, catalog_conn: Any, schedule: str
) -> None:
    from airflow.timetables.interval import CronDataIntervalTimetable  # noqa: F401 - used by eval
    from airflow.timetables.trigger import CronTriggerTimetable  # noqa: F401 - used by eval

    dag = DAG("posts_iceberg", schedule=eval(schedule), start_date=pendulum.datetime(2025, 1, 1, tz="UTC"))
    windows = []
    for info in scheduler_dag(dag).iter_dagrun_infos_between(_day(5), _day(7)):
        result = _operator().execute(
            operator_context(
                dag,
                logical_date=info.logical_date,
                data_interval_start=info.data_interval.start,
                data_interval_end=info.data_interval.end,
                run_after=info.run_after,
            )
        )
        window = tuple(dt.datetime.fromisoformat(result["window"][key]) for key in ("start", "end"))
        windows.append(window)
        assert result["row_count"] == len(rows_between(sandbox.dataset, *window))
    assert len(windows) == 3 and all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    for start, end in windows:
        assert _ids_between(catalog_conn, start, end) == sorted(rows_between(sandbox.dataset, start, end))
    assert len(_ids_between(catalog_conn, windows[0][0], windows[-1][1])) == sum(
        len(rows_between(sandbox.dataset, *window)) for window in windows
    )


def test_a_rerun_is_one_more_commit_with_the_same_rows(sandbox: SandboxServer, catalog_conn: Any) -> None:
    first = _run_day(_operator(), 5)
    rows = catalog_conn.load_table("genviral.posts").scan().to_arrow().sort_by("id").to_pylist()
    again = _run_day(_operator(), 5)
    table = catalog_conn.load_table("genviral.posts")
    assert table.scan().to_arrow().sort_by("id").to_pylist() == rows
    assert again["snapshot_id"] == table.current_snapshot().snapshot_id != first["snapshot_id"]
    operations = [snapshot.summary.operation.value for snapshot in table.snapshots()]
    assert operations == ["append", "delete", "append"]  # the re-run's commit: its delete and its append


def test_the_xcom_is_small_and_the_snapshot_carries_the_manifest(sandbox: SandboxServer, catalog_conn: Any) -> None:
    result = _run_day(_operator(), 5)
    assert set(result) == {
        "table", "catalog", "uri", "snapshot_id", "row_count", "added_columns", "window", "freshness_watermark",
        "stale_targets",
    }  # fmt: skip
    assert result["uri"] == f"iceberg://{CATALOG_CONN}/genviral.posts"
    assert len(json.dumps(result)) < 1_000
    summary = catalog_conn.load_table("genviral.posts").current_snapshot().summary
    assert summary["genviral.row-count"] == str(result["row_count"])
    assert summary["genviral.window.start"] == "2026-01-05T00:00:00+00:00"
    assert summary["genviral.window.source"] == "data interval"
    assert int(summary["genviral.api-requests"]) >= 1
    assert summary["genviral.api-dates"] == "2026-01-05..2026-01-06"  # UTC, end inclusive: the sandbox's reading
    targets = json.loads(summary["genviral.freshness.targets"])
    assert targets and all(isinstance(when, str) for when in targets.values())
    assert summary["genviral.freshness.watermark"] == result["freshness_watermark"]


class OutletEvents:
    """``outlet_events`` as Airflow's accessor gives them: one event per outlet, looked up by its Asset.

    Keyed by the URI, as Airflow keys them by the asset's unique key: Airflow 3.1's Asset cannot be hashed.
    """

    def __init__(self) -> None:
        self.by_uri: dict[str, SimpleNamespace] = {}

    def __getitem__(self, asset: Asset) -> SimpleNamespace:
        return self.by_uri.setdefault(asset.uri, SimpleNamespace(extra={}))


def test_the_asset_and_lineage_name_the_table_and_its_snapshot(sandbox: SandboxServer, catalog_conn: Any) -> None:
    operator = _operator()
    assert operator.outlets == [Asset(f"iceberg://{CATALOG_CONN}/genviral.posts")]
    events = OutletEvents()
    result = operator.execute(
        operator_context(data_interval_start=_day(5), data_interval_end=_day(6), outlet_events=events)
    )
    assert operator.asset is not None
    extra = events[operator.asset].extra
    assert (extra["path"], extra["table"], extra["snapshot_id"]) == (
        result["uri"],
        "genviral.posts",
        result["snapshot_id"],
    )
    assert operator._lineage is not None
    output = operator_lineage(PostsLineage(**operator._lineage)).outputs[0]
    assert (output.namespace, output.name) == (f"iceberg://{CATALOG_CONN}", "genviral.posts")
    assert output.facets["version"].datasetVersion == str(result["snapshot_id"])


def test_without_the_catalog_connection_the_embedded_catalog_under_airflow_home_is_used(
    sandbox: SandboxServer, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    result = _run_day(_operator(catalog_conn_id="genviral_iceberg"), 5)
    catalog = open_catalog(embedded_config(tmp_path / "home", name="genviral_iceberg"))  # its tables by name
    assert len(catalog.load_table("genviral.posts").scan().to_arrow()) == result["row_count"] > 0
    assert (tmp_path / "home" / "genviral_iceberg" / "catalog.db").is_file()


def test_a_new_api_field_becomes_a_column(sandbox: SandboxServer, catalog_conn: Any) -> None:
    _run_day(_operator(), 5)
    sandbox.dataset.insert([{"boostedBy": "ads-team"}], default_published_at=_day(6) + dt.timedelta(hours=3))
    result = _run_day(_operator(), 6)
    assert result["added_columns"] == ["boostedBy"]
    values = catalog_conn.load_table("genviral.posts").scan().to_arrow().column("boostedBy").to_pylist()
    assert values.count("ads-team") == 1 and values.count(None) == len(values) - 1


def test_an_incompatible_type_change_fails_before_the_commit(sandbox: SandboxServer, catalog_conn: Any) -> None:
    sandbox.dataset.insert([{"boostScore": 3}], default_published_at=_day(5) + dt.timedelta(hours=3))
    _run_day(_operator(), 5)
    snapshot = catalog_conn.load_table("genviral.posts").current_snapshot().snapshot_id
    sandbox.dataset.insert([{"boostScore": "high"}], default_published_at=_day(6) + dt.timedelta(hours=3))
    with pytest.raises(GenviralSchemaChangeError, match=r"'boostScore' changed type.*long column.*string value"):
        _run_day(_operator(), 6)
    assert catalog_conn.load_table("genviral.posts").current_snapshot().snapshot_id == snapshot


def test_metrics_snapshots_replace_only_their_snapshot_date(sandbox: SandboxServer, catalog_conn: Any) -> None:
    def snapshot(date: str) -> dict[str, Any]:
        operator = _operator(table="genviral.metrics_snapshots", snapshot_date=date, start="2026-01-03", end=date)
        return operator.execute(operator_context())

    first = snapshot("2026-01-05")
    snapshot("2026-01-06")
    sandbox.dataset.insert([{"caption": "late"}], default_published_at=_day(4) + dt.timedelta(hours=1))
    again = snapshot("2026-01-05")
    table = catalog_conn.load_table("genviral.metrics_snapshots")
    counts: dict[str, int] = {}
    for row in table.scan().to_arrow().to_pylist():
        counts[row["snapshot_date"].isoformat()] = counts.get(row["snapshot_date"].isoformat(), 0) + 1
    expected_6 = len(rows_between(sandbox.dataset, _day(3), _day(6))) - 1  # read before the late post existed
    assert counts == {"2026-01-05": again["row_count"], "2026-01-06": expected_6}
    assert again["row_count"] == first["row_count"] + 1 == len(rows_between(sandbox.dataset, _day(3), _day(5)))
    assert table.current_snapshot().summary["genviral.snapshot-date"] == "2026-01-05"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"table": "posts"}, r"table 'posts' is not '<namespace>\.<table>'"),
        ({"table": None}, r"output_format='iceberg' needs table="),
        (
            {"table": None, "output_path": "file:///tmp/x"},
            r"needs table=.* \(output_path 'file:///tmp/x' is for jsonl and parquet\)",
        ),
        (
            {"output_format": "parquet"},
            r"output_path is None .* 'parquet' \(table 'genviral.posts' is written only with output_format='iceberg'\)",
        ),
        ({"snapshot_date": "tomorrow"}, r"snapshot_date 'tomorrow' is not a date: give YYYY-MM-DD"),
    ],
)
def test_bad_arguments_fail_before_any_request(sandbox: SandboxServer, arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(GenviralInvalidParameterError, match=message):
        _run_day(_operator(**arguments), 5)
    assert sandbox.stats.total == 0


def test_an_unknown_catalog_type_fails_before_any_request(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BAD_LAKE", json.dumps({"conn_type": "generic", "extra": {"type": "nessie"}}))
    with pytest.raises(GenviralInvalidParameterError, match=r"'bad_lake' has catalog type 'nessie'"):
        _run_day(_operator(catalog_conn_id="bad_lake"), 5)
    assert sandbox.stats.total == 0


def test_an_unreachable_catalog_fails_before_any_request_without_its_secret(
    sandbox: SandboxServer, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "not-a-db").mkdir()  # sqlite cannot open a folder as its database
    extra = {"type": "sql", "uri": f"sqlite:///{tmp_path}/not-a-db", "warehouse": tmp_path.as_uri(), "token": "t0k3n"}
    monkeypatch.setenv("AIRFLOW_CONN_DOWN_LAKE", json.dumps({"conn_type": "generic", "extra": extra}))
    with pytest.raises(GenviralIcebergError, match=r"'down_lake' \(sql at sqlite:///.*\) cannot be reached") as raised:
        _run_day(_operator(catalog_conn_id="down_lake"), 5)
    assert "t0k3n" not in str(raised.value)
    assert sandbox.stats.total == 0


def test_a_missing_iceberg_extra_is_named_before_any_request(
    sandbox: SandboxServer, catalog_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pyiceberg_core", None)  # what an environment without it imports
    with pytest.raises(GenviralInvalidParameterError, match=r"needs pyiceberg-core: pip install .*\[iceberg\]"):
        _run_day(_operator(), 5)
    assert sandbox.stats.total == 0
    assert os.environ.get("AIRFLOW_HOME")  # the conftest's throwaway home, untouched by this test


def test_a_dag_run_reads_the_catalog_connection_and_returns_the_small_xcom(
    sandbox: SandboxServer, catalog_conn: Any, run_one_task: Callable[..., Any]
) -> None:
    state, xcom, error = run_one_task(
        "genviral_provider.operators.genviral.GenviralPostsOperator",
        "posts_iceberg_run",
        output_format="iceberg",
        table="genviral.{{ params.get('namespace_suffix', 'posts') }}",
        catalog_conn_id=CATALOG_CONN,
        start="2026-01-05",
        end="2026-01-06",
    )
    assert (state, error) == ("success", None)
    assert xcom["table"] == "genviral.posts" and xcom["uri"] == f"iceberg://{CATALOG_CONN}/genviral.posts"
    expected = sorted(rows_between(sandbox.dataset, _day(5), _day(6)))
    assert _ids_between(catalog_conn, _day(5), _day(6)) == expected and xcom["row_count"] == len(expected)


def test_rows_that_cannot_be_placed_fail_the_commit_unless_a_bound_allows_skipping_them(
    sandbox: SandboxServer, catalog_conn: Any
) -> None:
    from genviral_provider.exceptions import GenviralError

    sandbox.dataset.insert([{"_omit": ["publishedAt"]}], default_published_at=_day(5) + dt.timedelta(hours=12))
    with pytest.raises(GenviralError, match="publishedAt"):
        _run_day(_operator(), 5)
    assert not catalog_conn.table_exists("genviral.posts") or not _ids_between(catalog_conn, _day(5), _day(6))

    result = _run_day(_operator(max_unplaceable_rows=1), 5)

    assert result["row_count"] == len(rows_between(sandbox.dataset, _day(5), _day(6))) > 0
    summary = catalog_conn.load_table("genviral.posts").current_snapshot().summary.additional_properties
    assert [value for key, value in summary.items() if key.endswith("rows-without-published-at")] == ["1"]


# Checkpoints: GenviralCheckpointPostsOperator gets the plan's keyword arguments, one age's window each.
CHECKPOINTS = "genviral.post_checkpoints"


def _plan(end_day: int) -> list[dict[str, str]]:
    end = dt.datetime(2026, 1, end_day, tzinfo=UTC)
    return CheckpointInterval(end - dt.timedelta(days=1), end).plan("file:///unused", [24, 48])


def _write_checkpoint(entry: dict[str, Any], **arguments: Any) -> dict[str, Any]:
    operator = GenviralCheckpointPostsOperator(
        task_id="write_checkpoint",
        output_format="iceberg",
        table=CHECKPOINTS,
        catalog_conn_id=CATALOG_CONN,
        **{**entry, **arguments},
    )
    return operator.execute(operator_context())


def _per_age_and_day(catalog: Any) -> Counter[tuple[str, str]]:
    rows = catalog.load_table(CHECKPOINTS).scan().to_arrow().to_pylist()
    return Counter((row["checkpoint_age"], row["publishedAt"].date().isoformat()) for row in rows)


def test_each_age_of_a_plan_commits_its_window_under_its_age(sandbox: SandboxServer, catalog_conn: Any) -> None:
    results = [_write_checkpoint(entry) for entry in _plan(6)]
    assert [(r["checkpoint_age"], r["table"]) for r in results] == [("24h", CHECKPOINTS), ("48h", CHECKPOINTS)]
    expected = {
        ("24h", "2026-01-04"): len(rows_between(sandbox.dataset, _day(4), _day(5))),
        ("48h", "2026-01-03"): len(rows_between(sandbox.dataset, _day(3), _day(4))),
    }
    assert all(count > 0 for count in expected.values())
    assert _per_age_and_day(catalog_conn) == expected
    assert [r["row_count"] for r in results] == [expected[("24h", "2026-01-04")], expected[("48h", "2026-01-03")]]


def test_a_rerun_of_one_age_replaces_only_its_rows(sandbox: SandboxServer, catalog_conn: Any) -> None:
    for entry in (*_plan(6), *_plan(7)):
        _write_checkpoint(entry)
    before = _per_age_and_day(catalog_conn)
    rows = sorted(catalog_conn.load_table(CHECKPOINTS).scan().to_arrow().to_pylist(), key=lambda row: row["id"])
    _write_checkpoint(_plan(7)[1])  # 48h of the 4th, again
    assert _per_age_and_day(catalog_conn) == before and len(before) == 4
    again = sorted(catalog_conn.load_table(CHECKPOINTS).scan().to_arrow().to_pylist(), key=lambda row: row["id"])
    assert again == rows


@pytest.mark.parametrize("age", [None, "72h", "two days"])
def test_a_bad_checkpoint_age_fails_before_any_request(sandbox: SandboxServer, catalog_conn: Any, age: Any) -> None:
    with pytest.raises(GenviralInvalidParameterError, match=rf"checkpoint_age {age!r} is not allowed"):
        _write_checkpoint(_plan(6)[0], checkpoint_age=age)
    assert sandbox.stats.total == 0
