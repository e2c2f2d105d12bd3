"""Output folders: formats, parts, the manifest, and atomic publishing on a local disk and on an object store."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from genviral_provider import __version__
from genviral_provider.core.output import folder as output
from genviral_provider.core.output.folder import (
    OutputSpec,
    StagedOutput,
)
from genviral_provider.core.output.formats import PARQUET_COLUMNS, flatten_row, parquet_schema
from genviral_provider.core.output.locations import location_uri
from genviral_provider.core.output.manifest import build_manifest
from genviral_provider.core.reading.run_window import RunWindow
from genviral_provider.exceptions import GenviralError, GenviralInvalidParameterError
from genviral_provider.sandbox import AWKWARD_CAPTIONS, Dataset

UTC = dt.timezone.utc


def sample_rows(count: int = 7) -> list[dict[str, Any]]:
    rows = Dataset.generate(start=dt.date(2026, 1, 1), days=1, rows_per_day=count, seed=5).rows
    return [dict(row) for row in rows]


@pytest.fixture(params=["local", "object store"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[Any, str]]:
    """A filesystem and a folder on it: a local disk, or an in-memory store without directories or renames."""
    if request.param == "local":
        yield LocalFileSystem(), f"{tmp_path}/posts"
        return
    fs = MemoryFileSystem()
    root = f"/bucket-{uuid.uuid4().hex}"
    yield fs, f"{root}/posts"
    fs.rm(root, recursive=True) if fs.exists(root) else None


def publish(fs: Any, folder: str, rows: list[dict[str, Any]], spec: OutputSpec | None = None) -> StagedOutput:
    with StagedOutput(fs, folder, spec or OutputSpec()) as staged:
        staged.write(rows)
        staged.publish({"row_count": len(rows)})
    return staged


def names(fs: Any, folder: str) -> list[str]:
    return sorted(str(path).rstrip("/").rsplit("/", 1)[-1] for path in fs.ls(folder, detail=False))


def read_jsonl(fs: Any, path: str) -> list[dict[str, Any]]:
    data = fs.cat_file(path)
    text = gzip.decompress(data).decode() if path.endswith(".gz") else data.decode()
    return [json.loads(line) for line in text.split("\n") if line]


# ----------------------------------------------------------------------------------------------- JSON Lines


def test_json_lines_hold_every_row_unchanged_one_per_line(store: tuple[Any, str]) -> None:
    fs, folder = store
    rows = sample_rows(5) + [{**sample_rows(1)[0], "caption": caption} for caption in AWKWARD_CAPTIONS]
    rows.append({"id": "legacy", "publishedAt": "2026-01-01T00:00:00.000Z", "caption": "sep\u2028arators\u2029"})
    publish(fs, folder, rows)
    raw = fs.cat_file(f"{folder}/part-00000.jsonl")
    assert raw.count(b"\n") == len(rows)  # captions with newlines or U+2028 never break a line
    assert b"\xe2\x80\xa8" not in raw
    assert read_jsonl(fs, f"{folder}/part-00000.jsonl") == rows
    assert "🔥".encode() in raw  # UTF-8, not \\u escapes


def test_gzip_json_lines_read_back_identically(store: tuple[Any, str]) -> None:
    fs, folder = store
    rows = sample_rows(30)
    publish(fs, folder, rows, OutputSpec.validated("jsonl", "gzip", 1_000))
    assert names(fs, folder) == ["_manifest.json", "part-00000.jsonl.gz"]
    assert read_jsonl(fs, f"{folder}/part-00000.jsonl.gz") == rows


def test_rows_roll_over_to_new_parts_and_the_manifest_lists_them(store: tuple[Any, str]) -> None:
    fs, folder = store
    rows = sample_rows(7)
    publish(fs, folder, rows, OutputSpec(rows_per_file=3))
    manifest = json.loads(fs.cat_file(f"{folder}/_manifest.json"))
    assert [(f["name"], f["rows"]) for f in manifest["files"]] == [
        ("part-00000.jsonl", 3),
        ("part-00001.jsonl", 3),
        ("part-00002.jsonl", 1),
    ]
    assert all(f["bytes"] == fs.size(f"{folder}/{f['name']}") for f in manifest["files"])
    assert [row for f in manifest["files"] for row in read_jsonl(fs, f"{folder}/{f['name']}")] == rows


def test_an_empty_window_still_publishes_one_empty_part(store: tuple[Any, str]) -> None:
    fs, folder = store
    publish(fs, folder, [])
    assert names(fs, folder) == ["_manifest.json", "part-00000.jsonl"]
    assert fs.cat_file(f"{folder}/part-00000.jsonl") == b""


# ----------------------------------------------------------------------------------------- atomic publishing


def test_a_republish_replaces_the_output_and_removes_stale_parts_only(store: tuple[Any, str]) -> None:
    fs, folder = store
    publish(fs, folder, sample_rows(7), OutputSpec(rows_per_file=2))
    fs.pipe_file(f"{folder}/README.txt", b"not ours")  # the folder exists now
    fs.pipe_file(f"{folder}/part-1.csv", b"not ours either")
    rows = sample_rows(3)
    publish(fs, folder, rows, OutputSpec.validated("jsonl", "gzip", 10))
    assert names(fs, folder) == ["README.txt", "_manifest.json", "part-00000.jsonl.gz", "part-1.csv"]
    assert read_jsonl(fs, f"{folder}/part-00000.jsonl.gz") == rows
    assert json.loads(fs.cat_file(f"{folder}/_manifest.json"))["row_count"] == 3


def test_a_failure_while_writing_leaves_the_previous_output_untouched(store: tuple[Any, str]) -> None:
    fs, folder = store
    publish(fs, folder, sample_rows(4), OutputSpec(rows_per_file=2))
    before = {name: fs.cat_file(f"{folder}/{name}") for name in names(fs, folder)}

    def failing_rows() -> Iterator[dict[str, Any]]:
        yield from sample_rows(5)  # two parts staged and closed, a third open
        raise GenviralError("the API failed midway")

    with pytest.raises(GenviralError, match="midway"), StagedOutput(fs, folder, OutputSpec(rows_per_file=2)) as staged:
        staged.write(failing_rows())
    assert {name: fs.cat_file(f"{folder}/{name}") for name in names(fs, folder)} == before  # no _staging either


def test_a_failure_into_a_new_folder_leaves_nothing_behind(tmp_path: Any) -> None:
    fs, folder = LocalFileSystem(), f"{tmp_path}/new/posts"
    with pytest.raises(GenviralError), StagedOutput(fs, folder, OutputSpec()) as staged:
        staged.write(_rows_then_failure())
    assert not fs.exists(folder)


def test_files_are_staged_until_published(store: tuple[Any, str]) -> None:
    fs, folder = store
    with StagedOutput(fs, folder, OutputSpec(), token="attempt1") as staged:
        staged.write(sample_rows(2))
        assert staged.data_files() == []
        assert fs.exists(f"{folder}/_staging/attempt1/part-00000.jsonl")
        assert not fs.exists(f"{folder}/_manifest.json")
        staged.publish({})
    assert names(fs, folder) == ["_manifest.json", "part-00000.jsonl"]


def test_publishing_sweeps_staging_left_by_a_killed_attempt(
    store: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output, "ABANDONED_STAGING_AGE", -1.0)  # the killed attempt's files count as a day old
    fs, folder = store
    fs.makedirs(f"{folder}/_staging/killed", exist_ok=True)
    fs.pipe_file(f"{folder}/_staging/killed/part-00000.jsonl", b"{}\n")
    publish(fs, folder, sample_rows(2))
    assert names(fs, folder) == ["_manifest.json", "part-00000.jsonl"]


# ----------------------------------------------------------------------------------------------------- Parquet


def test_parquet_has_a_flat_typed_schema_and_the_rows_values(store: tuple[Any, str]) -> None:
    fs, folder = store
    rows = sample_rows(12)
    publish(fs, folder, rows, OutputSpec.validated("parquet", "zstd", 5))
    tables = [pq.read_table(fs.open(f"{folder}/part-0000{i}.parquet", "rb")) for i in range(3)]
    table = pa.concat_tables(tables)
    assert table.schema == parquet_schema()
    assert table.schema.names == [name for name, _ in PARQUET_COLUMNS]
    assert table.column("id").to_pylist() == [row["id"] for row in rows]
    assert table.column("metrics_views").to_pylist() == [row["metrics"]["views"] for row in rows]
    assert table.column("engagementRate").to_pylist() == [row["engagementRate"] for row in rows]
    assert table.column("publishedAt").to_pylist()[0] == dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert table.column("extra_fields").to_pylist() == [None] * 12


def test_flattening_keeps_unknown_fields_and_fills_missing_ones_with_null() -> None:
    row = {
        "id": "r1",
        "publishedAt": "2026-01-05T10:00:00.000Z",
        "metrics": {"views": 10.0, "likes": 2, "reach": 99},
        "durationSeconds": 27,
        "platformPostId": 7391929919011,
        "newField": {"a": 1},
    }
    flat = flatten_row(row)
    assert flat["analyticsId"] is None and flat["metrics_saves"] is None  # legacy rows omit keys
    assert (flat["metrics_views"], flat["metrics_likes"], flat["durationSeconds"]) == (10, 2, 27.0)
    assert flat["platformPostId"] == "7391929919011"
    assert json.loads(flat["extra_fields"]) == {"metrics": {"reach": 99}, "newField": {"a": 1}}
    assert flat["publishedAt"] == dt.datetime(2026, 1, 5, 10, tzinfo=UTC)


def test_a_value_a_column_cannot_hold_is_a_clear_error() -> None:
    with pytest.raises(GenviralError, match=r"Row 'r1': field metrics_views holds '1.2k'.*output_format='jsonl'"):
        flatten_row({"id": "r1", "metrics": {"views": "1.2k"}})


# ---------------------------------------------------------------------------------------------- options, URIs


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("csv", None, 10), "Unknown output_format 'csv'"),
        (("jsonl", "zstd", 10), "compression 'zstd' is not available for jsonl"),
        (("parquet", "lzma", 10), "compression 'lzma' is not available for parquet"),
        (("jsonl", None, 0), "rows_per_file 0 is not a positive integer"),
        (("jsonl", None, True), "rows_per_file True is not a positive integer"),
    ],
)
def test_bad_output_options_are_refused(arguments: tuple[Any, ...], message: str) -> None:
    with pytest.raises(GenviralInvalidParameterError, match=message):
        OutputSpec.validated(*arguments)


@pytest.mark.parametrize(
    ("location", "uri"),
    [
        ("file:///data/posts/", "file:///data/posts"),
        ("/data/posts", "file:///data/posts"),
        ("s3://aws_default@bucket/genviral/posts", "s3://bucket/genviral/posts"),
        ("gs://bucket", "gs://bucket"),
        ("data/posts", None),
        ("file://data/posts", None),
        ("s3://", None),
        ("", None),
    ],
)
def test_location_uri_names_the_storage_without_the_connection_id(location: str, uri: str | None) -> None:
    assert location_uri(location) == uri


def test_the_manifest_records_window_filters_counts_and_provenance() -> None:
    window = RunWindow(dt.datetime(2026, 1, 5, tzinfo=UTC), dt.datetime(2026, 1, 6, tzinfo=UTC), "data interval")
    manifest = build_manifest(
        window=window,
        filters={"platforms": ("tiktok",), "accounts": ()},
        counts={"rows": 3, "rows_outside_window": 5, "rows_without_published_at": 1},
        api_parts=[{"filter": {"start": "2026-01-04", "end": "2026-01-07"}, "totalCount": 9}],
        api_pages=1,
        spec=OutputSpec(),
        extracted_at=dt.datetime(2026, 1, 6, 1, tzinfo=UTC),
        run={"dag_id": "d", "run_id": "r"},
    )
    assert manifest["window"] == {
        "start": "2026-01-05T00:00:00+00:00",
        "end": "2026-01-06T00:00:00+00:00",
        "source": "data interval",
    }
    assert manifest["api_dates"] == {"start": "2026-01-04", "end": "2026-01-07"}
    assert manifest["filters"] == {"platforms": ["tiktok"], "accounts": []}
    assert (manifest["row_count"], manifest["rows_outside_window"], manifest["rows_without_published_at"]) == (3, 5, 1)
    assert manifest["api"]["parts"][0]["totalCount"] == 9
    assert manifest["provider"] == {"name": "airflow-provider-genviral", "version": __version__}
    assert manifest["extracted_at"] == "2026-01-06T01:00:00+00:00"
    assert json.loads(json.dumps(manifest)) == manifest


def _rows_then_failure() -> Iterator[dict[str, Any]]:
    yield sample_rows(1)[0]
    raise GenviralError("boom")
