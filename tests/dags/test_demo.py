"""The pure pieces of scripts/demo.py (`make demo`): backfill dates, run progress, the summary, stopping processes.

The demo itself starts a whole Airflow and takes minutes: it is run by `make demo`, not by the unit suite.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import pathlib
import signal
import sys
import time
import warnings
from types import ModuleType

import pytest

from tests.conftest import dag_bag, needs_iceberg, scheduler_dag
from tests.dags.conftest import DAGS_DIR, REPO, UTC


def _load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("genviral_demo_script", REPO / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


demo = _load_demo()


def _write_day(
    base: pathlib.Path, day: str, platforms: list[str], *, manifest: bool = True, manifest_rows: int | None = None
) -> None:
    folder = base / "posts" / f"published_date={day}"
    folder.mkdir(parents=True)
    lines = [json.dumps({"id": f"{day}-{n}", "platform": platform}) for n, platform in enumerate(platforms)]
    (folder / "part-00000.jsonl").write_text("".join(line + "\n" for line in lines))
    if manifest:
        rows = len(platforms) if manifest_rows is None else manifest_rows
        document = {"row_count": rows, "files": [{"name": "part-00000.jsonl", "rows": rows}]}
        (folder / "_manifest.json").write_text(json.dumps(document))


# ------------------------------------------------------------------------------------------------ dates


def test_backfill_dates_are_the_seven_days_before_today() -> None:
    assert demo.backfill_dates(dt.date(2026, 3, 2)) == (dt.date(2026, 2, 23), dt.date(2026, 3, 1))


def test_backfill_command_names_the_dates_and_caps_active_runs() -> None:
    command = demo.backfill_command(dt.date(2026, 2, 23), dt.date(2026, 3, 1))

    assert command == [
        "backfill",
        "create",
        "--dag-id",
        "genviral_posts_daily",
        "--from-date",
        "2026-02-23",
        "--to-date",
        "2026-03-01",
        "--max-active-runs",
        "3",
    ]


def test_the_backfill_dates_give_airflow_exactly_the_seven_complete_days_before_today() -> None:

    today = dt.date(2026, 3, 2)
    first, last = demo.backfill_dates(today)
    dag = dag_bag(str(DAGS_DIR / "genviral_posts_daily.py")).dags["genviral_posts_daily"]

    def midnight(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), UTC)

    infos = list(scheduler_dag(dag).iter_dagrun_infos_between(midnight(first), midnight(last)))
    assert [info.data_interval.start.date() for info in infos] == demo.days_between(first, last)
    assert len(infos) == 7
    assert infos[-1].data_interval.end == midnight(today)


def test_days_between_includes_both_ends() -> None:
    assert demo.days_between(dt.date(2026, 2, 27), dt.date(2026, 3, 1)) == [
        dt.date(2026, 2, 27),
        dt.date(2026, 2, 28),
        dt.date(2026, 3, 1),
    ]


def test_clock_shows_minutes_and_seconds() -> None:
    assert [demo.clock(s) for s in (0, 65.9, 600)] == ["0:00", "1:05", "10:00"]


# ------------------------------------------------------------------------------------------------ progress


def test_describe_runs_counts_states_finished_first() -> None:
    runs = [{"state": state} for state in ("queued", "running", "success", "success", "failed")]

    assert demo.describe_runs(runs) == "2 success, 1 failed, 1 running, 1 queued"
    assert demo.describe_runs([]) == "no runs yet"


def test_runs_done_needs_every_day_covered_and_every_run_finished() -> None:
    days = [dt.date(2026, 1, 5), dt.date(2026, 1, 6)]
    day5 = {"logical_date": "2026-01-05T00:00:00Z", "state": "success"}
    day6 = {"logical_date": "2026-01-06T00:00:00+00:00", "state": "failed"}

    assert demo.runs_done([day5, day6], days)
    assert not demo.runs_done([day5], days)
    assert not demo.runs_done([day5, {**day6, "state": "running"}], days)
    assert not demo.runs_done([day5, day6, {"logical_date": None, "state": "queued"}], days)
    assert demo.runs_done([])


# ------------------------------------------------------------------------------------------------ summary


def test_read_posts_output_counts_rows_per_platform_through_the_manifests(tmp_path: pathlib.Path) -> None:
    _write_day(tmp_path, "2026-01-05", ["tiktok", "tiktok", "youtube"])
    _write_day(tmp_path, "2026-01-06", ["instagram"])
    _write_day(tmp_path, "2026-01-07", ["tiktok"], manifest=False)  # not published: ignored

    days = demo.read_posts_output(tmp_path)

    assert sorted(days) == ["2026-01-05", "2026-01-06"]
    assert dict(days["2026-01-05"].rows_by_platform) == {"tiktok": 2, "youtube": 1}
    assert (days["2026-01-05"].rows, days["2026-01-05"].manifest_rows) == (3, 3)
    assert days["2026-01-06"].files == ["posts/published_date=2026-01-06/part-00000.jsonl"]


def test_format_summary_tabulates_days_and_platforms_with_totals(tmp_path: pathlib.Path) -> None:
    _write_day(tmp_path, "2026-01-05", ["tiktok", "tiktok", "youtube"])
    _write_day(tmp_path, "2026-01-06", ["instagram"])
    correlated = {"run_id=manual__x": [{"genviralPostId": "a"}, {"genviralPostId": "a"}, {"genviralPostId": "b"}]}

    lines = demo.format_summary(
        demo.read_posts_output(tmp_path), correlated, base=tmp_path, api_counts={"2026-01-05": 3, "2026-01-06": 1}
    )

    assert lines[0].split() == ["published_date", "instagram", "tiktok", "youtube", "rows", "manifest", "api"]
    assert lines[1].split() == ["2026-01-05", "0", "2", "1", "3", "3", "3"]
    assert lines[2].split() == ["2026-01-06", "1", "0", "0", "1", "1", "1"]
    assert lines[3].split() == ["total", "1", "2", "1", "4"]
    assert f"2 data file(s) and 2 manifest(s) under {tmp_path / 'posts'}" in lines
    assert lines[-1].startswith("3 correlated row(s) for 2 post id(s)")


def test_text_chart_draws_one_bar_per_day_scaled_to_the_busiest_and_split_by_platform(tmp_path: pathlib.Path) -> None:
    _write_day(tmp_path, "2026-01-05", ["tiktok"] * 2 + ["youtube"] * 2)
    _write_day(tmp_path, "2026-01-06", ["tiktok"])

    lines = demo.text_chart(demo.read_posts_output(tmp_path), width=8)

    assert lines == ["# tiktok  = youtube", "2026-01-05 ####==== 4", "2026-01-06 ## 1"]
    assert demo.text_chart({}) == []


def test_write_chart_draws_a_png_of_posts_per_day(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("matplotlib")
    _write_day(tmp_path, "2026-01-05", ["tiktok", "youtube", "instagram"])
    _write_day(tmp_path, "2026-01-06", ["tiktok"])

    path = demo.write_chart(demo.read_posts_output(tmp_path), tmp_path / "charts" / "posts.png")

    assert path == tmp_path / "charts" / "posts.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_write_chart_writes_nothing_and_says_so_by_returning_none(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_day(tmp_path, "2026-01-05", ["tiktok"])
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError

    assert demo.write_chart(demo.read_posts_output(tmp_path), tmp_path / "posts.png") is None
    assert not (tmp_path / "posts.png").exists()


def test_describe_analysis_folders_counts_targets_and_checkpoint_rows(tmp_path: pathlib.Path) -> None:
    targets = tmp_path / "targets" / "snapshot_date=2026-01-15"
    targets.mkdir(parents=True)
    (targets / "part-00000.jsonl").write_text('{"id": "t1"}\n{"id": "t2"}\n')
    # _write_day writes <base>/posts/published_date=D/: move it up to checkpoints/age=48h/published_date=D/.
    _write_day(tmp_path / "checkpoints" / "age=48h", "2026-01-12", ["tiktok", "youtube"])
    (tmp_path / "checkpoints" / "age=48h" / "posts").rename(tmp_path / "checkpoints" / "age=48h" / "moved")
    for folder in (tmp_path / "checkpoints" / "age=48h" / "moved").iterdir():
        folder.rename(tmp_path / "checkpoints" / "age=48h" / folder.name)

    assert demo.describe_analysis_folders(tmp_path) == [
        f"targets dimension: 2 analytics target(s) in {targets}",
        "checkpoint age=48h of posts published 2026-01-12: 2 rows",
    ]


def test_summary_problems_name_missing_days_and_counts_that_disagree(tmp_path: pathlib.Path) -> None:
    _write_day(tmp_path, "2026-01-05", ["tiktok", "tiktok"])
    _write_day(tmp_path, "2026-01-06", ["tiktok"], manifest_rows=5)
    _write_day(tmp_path, "2026-01-07", ["tiktok"])
    posts = demo.read_posts_output(tmp_path)
    days = [dt.date(2026, 1, day) for day in (5, 6, 7, 8)]

    problems = demo.summary_problems(posts, days, {"2026-01-05": 2, "2026-01-06": 1, "2026-01-07": 4})

    assert problems == [
        "2026-01-06: 1 rows in the files, the manifest says 5",
        "2026-01-07: 1 rows written, the API has 4",
        "2026-01-08: no published folder",
    ]
    assert demo.summary_problems(posts, days[:1], {"2026-01-05": 2}) == []


def test_read_correlated_output_reads_each_run_folder(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "correlated" / "run_id=manual__2026-01-15T12_00_00_00_00"
    folder.mkdir(parents=True)
    (folder / "rows.jsonl").write_text('{"id": "r1"}\n{"id": "r2"}\n')

    assert demo.read_correlated_output(tmp_path) == {folder.name: [{"id": "r1"}, {"id": "r2"}]}


# ------------------------------------------------------------------------------------------------ processes


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie, killed but not yet reaped by its new parent, does not)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_stop_all_ends_each_process_group_with_its_children(tmp_path: pathlib.Path) -> None:
    processes = demo.Processes(tmp_path)
    child_pid_file = tmp_path / "child.pid"
    script = (
        "import pathlib, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        f"pathlib.Path({str(child_pid_file)!r}).write_text(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    parent = processes.start("parent", [sys.executable, "-c", script], os.environ)
    deadline = time.monotonic() + 20
    while not child_pid_file.exists() or not child_pid_file.read_text():
        assert time.monotonic() < deadline, "the test process did not start its child"
        time.sleep(0.05)
    child_pid = int(child_pid_file.read_text())

    processes.stop_all(grace=2)

    assert parent.poll() is not None
    deadline = time.monotonic() + 5
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # the killed child is reaped by init
    assert not _alive(child_pid)
    assert processes.started == []
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN


def test_check_alive_names_a_process_that_exited(tmp_path: pathlib.Path) -> None:
    processes = demo.Processes(tmp_path)
    process = processes.start("short", [sys.executable, "-c", "raise SystemExit(3)"], os.environ)
    process.wait(timeout=20)

    with pytest.raises(demo.DemoError, match=r"short exited with status 3: see .*short\.log"):
        processes.check_alive()
    processes.stop_all(grace=1)


def test_describe_refreshes_counts_free_ones_and_credits_without_the_platforms_own() -> None:
    ledger = {
        "refreshes": [
            {"wasFree": True, "credits_used": 0},
            {"wasFree": False, "credits_used": 2},
            {"wasFree": True, "credits_used": 0, "scheduled": True},
        ],
        "credits": 3,
    }
    assert demo.describe_refreshes(ledger) == "Analytics refreshes: 2 (1 free), 2 credit(s) spent, 3 left"


# ------------------------------------------------------------------------------------------------ --iceberg


def _posts_table(tmp_path: pathlib.Path) -> object:
    """A posts table in a sqlite catalog: two days committed as the sink commits them, the first one twice."""
    import pyarrow as pa
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("demo", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=(tmp_path / "wh").as_uri())
    catalog.create_namespace("genviral")
    schema = pa.schema([("publishedAt", pa.timestamp("us", tz="UTC")), ("platform", pa.string())])
    table = catalog.create_table("genviral.posts", schema=schema)

    def commit(day: int, platforms: list[str]) -> None:
        start = dt.datetime(2026, 1, day, tzinfo=UTC)
        rows = pa.table(
            {"publishedAt": [start + dt.timedelta(hours=n) for n in range(len(platforms))], "platform": platforms},
            schema=schema,
        )
        properties = {
            "genviral.window.start": start.isoformat(),
            "genviral.window.end": (start + dt.timedelta(days=1)).isoformat(),
            "genviral.row-count": str(len(platforms)),
            "genviral.run-id": f"backfill__2026-01-0{day}",
        }
        window = (
            f"publishedAt >= '{start.isoformat()}' and publishedAt < '{(start + dt.timedelta(days=1)).isoformat()}'"
        )
        with warnings.catch_warnings():  # a day's first commit deletes nothing: quiet, as in the sink
            warnings.filterwarnings("ignore", message="Delete operation did not match any records")
            table.overwrite(rows, overwrite_filter=window, snapshot_properties=properties)

    commit(5, ["tiktok"])
    commit(6, ["tiktok", "instagram"])
    commit(5, ["tiktok", "instagram", "tiktok"])  # a re-run of the 5th replaces its rows
    return table


@needs_iceberg
def test_the_iceberg_demo_reads_rows_per_day_and_the_row_count_of_each_days_last_commit(
    tmp_path: pathlib.Path,
) -> None:
    days = demo.read_iceberg_posts(_posts_table(tmp_path))

    assert {name: (dict(day.rows_by_platform), day.manifest_rows) for name, day in days.items()} == {
        "2026-01-05": ({"tiktok": 2, "instagram": 1}, 3),
        "2026-01-06": ({"tiktok": 1, "instagram": 1}, 2),
    }
    assert demo.summary_problems(days, [dt.date(2026, 1, 5), dt.date(2026, 1, 6)]) == []
    lines = demo.format_summary(days, {}, base=tmp_path, iceberg_table="genviral.posts")
    assert "2 day(s) in the Iceberg table genviral.posts" in lines[-1] and "data file" not in "".join(lines)


@needs_iceberg
def test_the_iceberg_demo_prints_the_snapshot_history_oldest_first(tmp_path: pathlib.Path) -> None:
    lines = demo.describe_iceberg_history(_posts_table(tmp_path))

    described = [(line.split(": ", 1)[1].split(", run ")[0]) for line in lines]
    assert described == [
        "append    window 2026-01-05..2026-01-06, 1 row(s)",
        "append    window 2026-01-06..2026-01-07, 2 row(s)",
        "delete    window 2026-01-05..2026-01-06, 3 row(s)",
        "append    window 2026-01-05..2026-01-06, 3 row(s)",
    ]
    assert lines[-1].endswith("run backfill__2026-01-05")


# ------------------------------------------------------------------------------------------------ the CLI


def _failing_first(marker: pathlib.Path, times: int, message: str) -> list[str]:
    """A command that fails `times` times with `message` (counting in `marker`), then succeeds."""
    script = (
        "import pathlib, sys\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "runs = int(marker.read_text()) if marker.exists() else 0\n"
        "marker.write_text(str(runs + 1))\n"
        f"if runs < {times}:\n"
        f"    sys.exit({message!r})\n"
        "print('created')\n"
    )
    return [sys.executable, "-c", script]


def test_run_cli_runs_a_command_again_when_sqlite_was_locked(tmp_path: pathlib.Path) -> None:
    marker, said = tmp_path / "runs", list[str]()
    command = _failing_first(marker, 2, "sqlite3.OperationalError: database is locked")
    status, output = demo.run_cli(command, os.environ, log_path=tmp_path / "cli.log", say=said.append, wait=0)
    assert (status, output, marker.read_text()) == (0, "created", "3")
    assert len(said) == 2 and "locked" in said[0]
    logged = (tmp_path / "cli.log").read_text().splitlines()
    assert logged.count("sqlite3.OperationalError: database is locked") == 2 and logged.count("created") == 1


def test_run_cli_gives_up_after_its_attempts_and_never_repeats_other_failures(tmp_path: pathlib.Path) -> None:
    locked, other = tmp_path / "locked", tmp_path / "other"
    command = _failing_first(locked, 9, "database is locked")
    status, output = demo.run_cli(command, os.environ, log_path=tmp_path / "cli.log", attempts=3, wait=0)
    assert (status, output, locked.read_text()) == (1, "database is locked", "3")
    status, output = demo.run_cli(
        _failing_first(other, 9, "DAG not found"), os.environ, log_path=tmp_path / "cli.log", wait=0
    )
    assert (status, output, other.read_text()) == (1, "DAG not found", "1")


@needs_iceberg
def test_the_iceberg_demo_counts_the_metrics_snapshots_table_per_snapshot_date(tmp_path: pathlib.Path) -> None:
    import pyarrow as pa
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("demo", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=(tmp_path / "wh").as_uri())
    catalog.create_namespace("genviral")
    schema = pa.schema([("snapshot_date", pa.date32()), ("platform", pa.string())])
    table = catalog.create_table(demo.SNAPSHOTS_TABLE, schema=schema)
    first, second = dt.date(2026, 1, 14), dt.date(2026, 1, 15)
    table.append(pa.table({"snapshot_date": [first, first, second], "platform": ["tiktok", "x", "tiktok"]}, schema))

    snapshots = demo.read_iceberg_snapshots(table)

    assert {name: dict(day.rows_by_platform) for name, day in snapshots.items()} == {
        "2026-01-14": {"tiktok": 1, "x": 1},
        "2026-01-15": {"tiktok": 1},
    }
    lines = demo.format_summary({}, {}, base=tmp_path, snapshots=snapshots, iceberg_table="genviral.posts")
    assert "metrics snapshot of 2026-01-14: 2 rows of recent posts in genviral.metrics_snapshots" in lines


@needs_iceberg
def test_the_iceberg_demo_counts_the_checkpoints_table_per_age_and_day(tmp_path: pathlib.Path) -> None:
    import pyarrow as pa
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("demo", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=(tmp_path / "wh").as_uri())
    catalog.create_namespace("genviral")
    schema = pa.schema([("checkpoint_age", pa.string()), ("publishedAt", pa.timestamp("us", tz="UTC"))])
    table = catalog.create_table(demo.CHECKPOINTS_TABLE, schema=schema)
    fourth, ninth = dt.datetime(2026, 1, 4, 9, tzinfo=UTC), dt.datetime(2026, 1, 9, 23, tzinfo=UTC)
    table.append(pa.table({"checkpoint_age": ["48h", "48h", "7d"], "publishedAt": [fourth, ninth, fourth]}, schema))

    assert demo.describe_iceberg_checkpoints(table) == [
        "checkpoint age=48h of posts published 2026-01-04: 1 rows in genviral.post_checkpoints",
        "checkpoint age=48h of posts published 2026-01-09: 1 rows in genviral.post_checkpoints",
        "checkpoint age=7d of posts published 2026-01-04: 1 rows in genviral.post_checkpoints",
    ]
