"""Items 10-12: an output path cannot escape its asset; concurrent publishers never mix; JSON is strict."""

from __future__ import annotations

import json
import math
import pathlib
import threading
from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem

from genviral_provider.core.api.client import GenviralClient
from genviral_provider.core.api.query import posts_filter
from genviral_provider.core.output import publish_lock
from genviral_provider.core.output.folder import (
    MANIFEST_NAME,
    OutputSpec,
    StagedOutput,
)
from genviral_provider.core.output.formats import strict_json_line
from genviral_provider.core.output.locations import normalised_location
from genviral_provider.core.output.publish_lock import PublishLock
from genviral_provider.core.reading.window import WindowReader
from genviral_provider.exceptions import GenviralError, GenviralInvalidParameterError
from tests.hostile.conftest import LeakCheck, fast_settings
from tests.hostile.server import HostileServer

Start = Callable[..., HostileServer]


# ------------------------------------------------------------------------------ 10: '..' in the output path


@pytest.mark.parametrize(
    ("location", "normalised"),
    [
        ("file:///data/posts/../other", "file:///data/other"),
        ("file:///data/posts/./2026//01/", "file:///data/posts/2026/01"),
        ("s3://aws_default@bucket/posts/../../x", "s3://aws_default@bucket/x"),
        ("/data/posts/..", "/data"),
        ("file:////data/posts", "file:///data/posts"),
    ],
)
def test_locations_are_normalised_before_any_check(location: str, normalised: str) -> None:
    assert normalised_location(location) == normalised


def test_an_output_path_that_climbs_out_of_its_asset_is_refused(tmp_path: pathlib.Path) -> None:
    from airflow.sdk import Asset

    from genviral_provider.operators.genviral import GenviralPostsOperator

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "part-00000.jsonl").write_text("{}\n")  # another folder's data: must survive
    operator = GenviralPostsOperator(
        task_id="posts", output_path=f"file://{tmp_path}/posts/../other", asset=Asset(f"file://{tmp_path}/posts")
    )
    with pytest.raises(GenviralInvalidParameterError, match=rf"output_path 'file://{tmp_path}/other' is not inside"):
        operator._output_folder()
    assert (tmp_path / "other" / "part-00000.jsonl").read_text() == "{}\n"


# ------------------------------------------------------------------------------ 11: concurrent publishers


def _staged(fs: Any, folder: str, label: str, parts: int) -> StagedOutput:
    staged = StagedOutput(fs, folder, OutputSpec(rows_per_file=1), owner=f"dag/posts/{label}")
    staged.__enter__()
    staged.write([{"id": f"{label}-{n}", "run": label} for n in range(parts)])
    return staged


def _folder_state(folder: pathlib.Path) -> tuple[str, set[str]]:
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    names = {f["name"] for f in manifest["files"]}
    runs = {json.loads(line)["run"] for name in names for line in (folder / name).read_text().splitlines()}
    on_disk = {path.name for path in folder.glob("part-*")}
    assert on_disk == names, f"data files {on_disk} are not the manifest's {names}"
    assert len(runs) == 1, f"the folder mixes runs {runs}"
    return manifest["run_label"], runs


def test_a_publish_leaves_another_runs_staging_alone(tmp_path: pathlib.Path) -> None:
    fs, folder = LocalFileSystem(), str(tmp_path / "posts")
    first, second = _staged(fs, folder, "a", 2), _staged(fs, folder, "b", 1)

    first.publish({"run_label": "a"})
    assert fs.exists(f"{second.staging}/part-00000.jsonl")  # still there to be published
    second.publish({"run_label": "b"})

    assert _folder_state(tmp_path / "posts") == ("b", {"b"})
    assert not (tmp_path / "posts" / "_staging").exists()


@pytest.mark.parametrize("attempt", range(5))
def test_two_runs_publishing_at_once_never_mix(tmp_path: pathlib.Path, attempt: int) -> None:
    fs, folder = LocalFileSystem(), str(tmp_path / "posts")
    runs = [_staged(fs, folder, "a", 3), _staged(fs, folder, "b", 1)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def publish(staged: StagedOutput, label: str) -> None:
        try:
            start.wait(timeout=10)
            staged.publish({"run_label": label})
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=publish, args=(run, label)) for run, label in zip(runs, "ab", strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors
    label, data_runs = _folder_state(tmp_path / "posts")
    assert data_runs == {label}  # the last publisher won completely: its manifest over its own files only
    assert not (tmp_path / "posts" / "_staging").exists()


def test_a_publisher_waits_for_the_lock_and_gives_up_clearly(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publish_lock, "PUBLISH_LOCK_WAIT", 0.5)
    monkeypatch.setattr(publish_lock, "PUBLISH_LOCK_POLL", 0.05)
    fs, folder = LocalFileSystem(), str(tmp_path / "posts")
    staged = _staged(fs, folder, "a", 1)
    lock = PublishLock(fs, f"{folder}/_staging/_publish.lock", "other-run", staged.log)

    with lock, pytest.raises(GenviralError, match=r"Another run \(other-run\) has been publishing"):
        staged.publish({"run_label": "a"})
    staged.discard()
    assert not fs.exists(f"{folder}/{MANIFEST_NAME}")


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path: pathlib.Path) -> None:
    fs, folder = LocalFileSystem(), str(tmp_path / "posts")
    staged = _staged(fs, folder, "a", 1)
    fs.pipe_file(f"{folder}/_staging/_publish.lock", json.dumps({"token": "dead", "acquired_at": 0}).encode())

    staged.publish({"run_label": "a"})
    assert _folder_state(tmp_path / "posts") == ("a", {"a"})


# ------------------------------------------------------------------------------ 12: strict JSON


def test_a_lone_surrogate_is_written_losslessly_as_strict_json(hostile: Start, leaks: LeakCheck) -> None:
    body = '{"ok": true, "code": 200, "message": "ok", "data": {"posts": [{"id": "r1", "caption": "a\\ud800b"}], '
    body += '"totalCount": 1, "hasMore": false}}'
    server = hostile(lambda ex: ex.json(200, body))
    row = next(WindowReader(GenviralClient(fast_settings(server))).rows(posts_filter("2026-01-01", "2026-01-01")))

    line = strict_json_line(row)
    text = line.decode("utf-8")  # valid UTF-8
    assert "\\ud800" in text
    assert json.loads(text) == row  # nothing lost
    leaks.assert_clean()


def test_big_integers_are_written_exactly_to_json_lines() -> None:
    row = {"id": "r1", "metrics": {"views": 2**70}}
    assert json.loads(strict_json_line(row)) == row


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"id": "r1", "metrics": {"views": math.nan}}, "metrics.views"),
        ({"id": "r2", "engagementRate": math.inf}, "engagementRate"),
        ({"id": "r3", "tags": [1.0, -math.inf]}, r"tags\[1\]"),
    ],
)
def test_nan_and_infinity_fail_naming_the_row_and_field(row: dict[str, Any], field: str) -> None:
    with pytest.raises(GenviralError, match=rf"Row '{row['id']}': field {field} holds .*no NaN or Infinity"):
        strict_json_line(row)


def test_nan_from_the_api_fails_the_write_not_with_a_raw_error(hostile: Start, tmp_path: pathlib.Path) -> None:
    body = '{"ok": true, "code": 200, "message": "ok", "data": {"posts": [{"id": "r1", "metrics": {"views": NaN}}], '
    body += '"totalCount": 1, "hasMore": false}}'
    server = hostile(lambda ex: ex.json(200, body))
    reader = WindowReader(GenviralClient(fast_settings(server)))
    fs, folder = LocalFileSystem(), str(tmp_path / "posts")

    with (
        pytest.raises(GenviralError, match=r"Row 'r1': field metrics\.views holds nan"),
        StagedOutput(fs, folder, OutputSpec()) as staged,
    ):
        staged.write(reader.rows(posts_filter("2026-01-01", "2026-01-01")))
    assert not (tmp_path / "posts").exists()  # nothing half-written left behind


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"id": "r1", "metrics": {"views": 2**70}}, "metrics_views"),
        ({"id": "r2", "caption": "a\ud800b"}, "caption"),
        ({"id": "r3", "boost": {"rate": math.inf}}, r"boost\.rate"),  # an unknown field, bound for extra_fields
    ],
)
def test_parquet_refuses_what_its_columns_cannot_hold_by_name(
    tmp_path: pathlib.Path, row: dict[str, Any], field: str
) -> None:
    fs, folder = LocalFileSystem(), str(tmp_path / "posts")
    with (
        pytest.raises(GenviralError, match=rf"Row '{row['id']}': field {field} holds"),
        StagedOutput(fs, folder, OutputSpec.validated("parquet", None, 10)) as staged,
    ):
        staged.write([row])


def test_parquet_keeps_nan_and_escapes_surrogates_in_extra_fields(tmp_path: pathlib.Path) -> None:
    fs, folder = LocalFileSystem(), str(tmp_path / "posts")
    with StagedOutput(fs, folder, OutputSpec.validated("parquet", None, 10)) as staged:
        staged.write([{"id": "r1", "engagementRate": math.nan, "note": "x\udc00"}])
        staged.publish({})
    table = pq.read_table(f"{folder}/part-00000.parquet").to_pylist()[0]
    assert math.isnan(table["engagementRate"])
    assert json.loads(table["extra_fields"]) == {"note": "x\udc00"}


def test_a_publish_removes_staging_of_its_own_killed_tries_but_not_of_other_runs(tmp_path: pathlib.Path) -> None:
    fs, folder = LocalFileSystem(), str(tmp_path / "posts")
    killed = StagedOutput(fs, folder, OutputSpec(), owner="dag/posts/manual__1")
    killed.__enter__()
    killed.write([{"id": "k"}])  # then the process dies: no publish, no discard
    other = _staged(fs, folder, "other", 1)  # another run of the same folder, still writing
    retry = StagedOutput(fs, folder, OutputSpec(), owner="dag/posts/manual__1")

    with retry:
        retry.write([{"id": "r", "run": "retry"}])
        retry.publish({"run_label": "retry"})

    assert not fs.exists(killed.staging)
    assert fs.exists(f"{other.staging}/part-00000.jsonl")
    assert killed.token.split("-")[0] == retry.token.split("-")[0] != other.token.split("-")[0]


def test_a_publish_whose_staged_files_vanished_leaves_the_folder_whole(tmp_path: pathlib.Path) -> None:
    fs, folder = LocalFileSystem(), str(tmp_path / "posts")
    _staged(fs, folder, "a", 1).publish({"run_label": "a"})
    staged = _staged(fs, folder, "b", 2)
    fs.rm(f"{staged.staging}/part-00001.jsonl")  # removed by a later try of the same task

    with pytest.raises(GenviralError, match=r"Staged file\(s\) part-00001.jsonl under .* vanished"):
        staged.publish({"run_label": "b"})
    staged.discard()
    assert _folder_state(tmp_path / "posts") == ("a", {"a"})
