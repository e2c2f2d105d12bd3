"""Operator memory: a 100,000-row window written to storage, streaming versus holding the rows in a list.

Run with ``python -m benchmarks.operator_memory`` (``--write-docs`` also rewrites the operator section of
docs/performance.md). The sandbox serves from this process; each measured run is a fresh Python process, whose
peak resident memory (``VmHWM``, reset to the current RSS once imports and the connection are done) is compared
with its RSS at that moment. The baseline, measured in the same run, reads the same window into a list and then
writes it, as an operator without streaming would.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from genviral_provider.sandbox import Dataset, SandboxServer

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "performance.md"
SECTION = "## Operator: streaming memory"
START = dt.date(2026, 1, 1)
DAYS = 25
ROWS_PER_DAY = 4_000  # 100,000 rows in the window
LIMIT_MIB = 150
TIMES = "\u00d7"
MODES = {
    "buffered": "rows read into a list, then written as JSON Lines (baseline)",
    "jsonl": "`GenviralPostsOperator`, JSON Lines",
    "jsonl-gzip": "`GenviralPostsOperator`, JSON Lines + gzip",
    "parquet": "`GenviralPostsOperator`, Parquet",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run every mode against one sandbox; print the table; return 1 if a streaming run exceeds the limit."""
    args = _parse(argv)
    if args.child:
        return _child(args)
    began = time.perf_counter()
    dataset = Dataset.generate(start=START, days=DAYS, rows_per_day=ROWS_PER_DAY, seed=11)
    print(f"Generated {len(dataset):,} rows in {time.perf_counter() - began:.1f}s.", flush=True)
    results = []
    with SandboxServer(dataset=dataset) as server, tempfile.TemporaryDirectory() as folder:
        for mode in MODES:
            results.append(_run_child(mode, server, pathlib.Path(folder) / mode))
            print(json.dumps(results[-1]), flush=True)
    table = _table(results)
    print(table)
    if args.write_docs:
        _write_docs(table, next(r["library_mib"] for r in results if r["mode"] == "parquet"))
    over = [r["mode"] for r in results if r["mode"] != "buffered" and r["growth_mib"] >= LIMIT_MIB]
    return 1 if over else 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.operator_memory", description=__doc__)
    parser.add_argument("--write-docs", action="store_true", help="rewrite the operator section of performance.md")
    parser.add_argument("--child", choices=list(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _run_child(mode: str, server: SandboxServer, output: pathlib.Path) -> dict[str, Any]:
    connection = {"conn_type": "genviral", "host": server.url, "password": server.api_key}
    env = {**os.environ, "AIRFLOW_CONN_GENVIRAL_DEFAULT": json.dumps(connection), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "benchmarks.operator_memory", "--child", mode, "--output", str(output)]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} run failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _child(args: argparse.Namespace) -> int:
    import logging

    logging.disable(logging.WARNING)  # execute() outside a task runner warns; the figures are what matter
    from genviral_provider.core.output.folder import OutputSpec, StagedOutput
    from genviral_provider.core.reading.run_window import RunWindow, WindowFilter
    from genviral_provider.operators.genviral import GenviralPostsOperator

    start = dt.datetime.combine(START, dt.time(), dt.timezone.utc)
    window = RunWindow(start, start + dt.timedelta(days=DAYS), "benchmark")
    output = f"file://{args.output}"
    operator = GenviralPostsOperator(
        task_id="posts",
        output_path=output,
        start=window.start.isoformat(),
        end=window.end.isoformat(),
        output_format="parquet" if args.child == "parquet" else "jsonl",
        compression="gzip" if args.child == "jsonl-gzip" else None,
    )
    operator.hook.client  # noqa: B018 - resolve the connection before measuring
    library = _load_pyarrow() if args.child == "parquet" else 0
    baseline = _reset_peak()
    began = time.perf_counter()
    if args.child == "buffered":
        rows = list(WindowFilter(window).rows(operator.hook.iter_posts(*window.api_dates())))
        with StagedOutput(_local_fs(), args.output, OutputSpec()) as staged:
            staged.write(rows)
            staged.publish({"row_count": len(rows)})
        count = len(rows)
    else:
        count = operator.execute({})["row_count"]  # type: ignore[arg-type]
    seconds = time.perf_counter() - began
    peak = _status_kib("VmHWM")
    print(
        json.dumps(
            {
                "mode": args.child,
                "rows": count,
                "seconds": round(seconds, 1),
                "baseline_mib": round(baseline / 1024, 1),
                "peak_mib": round(peak / 1024, 1),
                "growth_mib": round((peak - baseline) / 1024, 1),
                "library_mib": round(library / 1024, 1),
            }
        )
    )
    return 0


def _load_pyarrow() -> int:
    """Load pyarrow's libraries (a fixed cost, paid once per process, whatever the rows); return the RSS it took."""
    import io

    before = _status_kib("VmRSS")
    import pyarrow.parquet as pq

    from genviral_provider.core.output.formats import parquet_schema

    pq.ParquetWriter(io.BytesIO(), parquet_schema()).close()
    return _status_kib("VmRSS") - before


def _local_fs() -> Any:
    from fsspec.implementations.local import LocalFileSystem

    return LocalFileSystem()


def _reset_peak() -> int:
    """Reset the peak RSS to the current RSS (Linux ``clear_refs``); return the current RSS in KiB."""
    with contextlib.suppress(OSError):  # not Linux, or not allowed: the peak then includes imports
        pathlib.Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS")


def _status_kib(field: str) -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _table(results: list[dict[str, Any]]) -> str:
    baseline = next(r for r in results if r["mode"] == "buffered")
    lines = [
        "| writer | rows | seconds | peak memory growth | vs. baseline |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        factor = baseline["growth_mib"] / max(r["growth_mib"], 0.1)
        ratio = f"1.0{TIMES}" if r is baseline else f"**{factor:.0f}{TIMES} less**"
        lines.append(f"| {MODES[r['mode']]} | {r['rows']:,} | {r['seconds']} | {r['growth_mib']} MiB | {ratio} |")
    return "\n".join(lines)


def _write_docs(table: str, library: float) -> None:
    text = DOCS.read_text() if DOCS.exists() else "# Performance\n"
    section = f"""{SECTION} (`benchmarks/operator_memory.py`)

A {DAYS * ROWS_PER_DAY:,}-row window ({DAYS} days of {ROWS_PER_DAY:,} posts) read from the sandbox and written to
a local folder. Each run is a fresh process; the figure is its peak resident memory (`VmHWM`) minus its RSS
once Airflow is imported and the connection resolved. The baseline reads the same rows into a list first.

{table}

Loading pyarrow's libraries for Parquet adds {library} MiB once per process, whatever the rows; it is measured
apart and not counted above.

The operator holds the pages in flight (at most twice `max_concurrency` pages of 100 rows), the ids of the rows
of two date parts (to drop the rows that adjacent parts share), and at most one Parquet batch of 5,000
flattened rows; never the window. The target is under {LIMIT_MIB} MiB for 100,000 rows; the benchmark exits
with status 1 if a streaming run exceeds it.
"""
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        following = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + (text[following:] if following >= 0 else "")
    DOCS.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
