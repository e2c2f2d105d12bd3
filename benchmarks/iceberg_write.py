"""Iceberg versus Parquet: a 100,000-row window written by the operator to a table and to a folder, time and memory.

Run with ``python -m benchmarks.iceberg_write`` (``--write-docs`` also rewrites the Iceberg section of
docs/performance.md). The sandbox serves from this process; each measured run is a fresh Python process, whose
peak resident memory (``VmHWM``, reset to the current RSS once imports, the connection and the libraries are
loaded) is compared with its RSS at that moment. The baseline, measured in the same run, is the Parquet folder:
the same window through ``output_format="parquet"``. The Iceberg run commits into a SQL catalog on sqlite with a
local warehouse (the embedded catalog's layout) in a temporary folder.
"""

from __future__ import annotations

import argparse
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

from benchmarks.operator_memory import _reset_peak, _status_kib
from genviral_provider.sandbox import Dataset, SandboxServer

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "performance.md"
SECTION = "## Iceberg: a window written to a table"
START = dt.date(2026, 1, 1)
DAYS = 25
ROWS_PER_DAY = 4_000  # 100,000 rows in the window
LIMIT_MIB = 300
TIMES = "\u00d7"
MODES = {
    "parquet": '`output_format="parquet"`, a folder (baseline)',
    "iceberg": '`output_format="iceberg"`, one commit into a table',
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run both modes against one sandbox; print the table; return 1 if the Iceberg run exceeds the limit."""
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
        _write_docs(table, {r["mode"]: r["library_mib"] for r in results})
    iceberg = next(r for r in results if r["mode"] == "iceberg")
    return 1 if iceberg["growth_mib"] >= LIMIT_MIB or iceberg["rows"] != DAYS * ROWS_PER_DAY else 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.iceberg_write", description=__doc__)
    parser.add_argument("--write-docs", action="store_true", help="rewrite the Iceberg section of performance.md")
    parser.add_argument("--child", choices=list(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _run_child(mode: str, server: SandboxServer, output: pathlib.Path) -> dict[str, Any]:
    connection = {"conn_type": "genviral", "host": server.url, "password": server.api_key}
    catalog = {
        "conn_type": "generic",
        "extra": {"type": "sql", "uri": f"sqlite:///{output}/catalog.db", "warehouse": (output / "warehouse").as_uri()},
    }
    env = {
        **os.environ,
        "AIRFLOW_CONN_GENVIRAL_DEFAULT": json.dumps(connection),
        "AIRFLOW_CONN_GENVIRAL_ICEBERG": json.dumps(catalog),
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "benchmarks.iceberg_write", "--child", mode, "--output", str(output)]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} run failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _child(args: argparse.Namespace) -> int:
    import logging

    logging.disable(logging.WARNING)  # execute() outside a task runner warns; the figures are what matter
    from genviral_provider.operators.genviral import GenviralPostsOperator

    start = dt.datetime.combine(START, dt.time(), dt.timezone.utc)
    where: dict[str, Any] = (
        {"table": "genviral.posts"} if args.child == "iceberg" else {"output_path": f"file://{args.output}/posts"}
    )
    operator = GenviralPostsOperator(
        task_id="posts",
        start=start.isoformat(),
        end=(start + dt.timedelta(days=DAYS)).isoformat(),
        output_format=args.child,
        **where,
    )
    operator.hook.client  # noqa: B018 - resolve the connection before measuring
    library = _load_libraries(args.child)
    baseline = _reset_peak()
    began = time.perf_counter()
    result = operator.execute({})  # type: ignore[arg-type]
    seconds = time.perf_counter() - began
    peak = _status_kib("VmHWM")
    print(
        json.dumps(
            {
                "mode": args.child,
                "rows": result["row_count"],
                "seconds": round(seconds, 1),
                "baseline_mib": round(baseline / 1024, 1),
                "peak_mib": round(peak / 1024, 1),
                "growth_mib": round((peak - baseline) / 1024, 1),
                "library_mib": round(library / 1024, 1),
            }
        )
    )
    return 0


def _load_libraries(mode: str) -> int:
    """Load what a mode writes with (pyarrow; pyiceberg and its catalog), a fixed cost; return the RSS it took."""
    import io

    before = _status_kib("VmRSS")
    import pyarrow.parquet as pq

    from genviral_provider.core.output.formats import parquet_schema

    pq.ParquetWriter(io.BytesIO(), parquet_schema()).close()
    if mode == "iceberg":
        import pyiceberg.catalog.sql
        import pyiceberg.io.pyarrow  # noqa: F401
        import pyiceberg_core  # noqa: F401
    return _status_kib("VmRSS") - before


def _table(results: list[dict[str, Any]]) -> str:
    baseline = next(r for r in results if r["mode"] == "parquet")
    lines = [
        "| writer | rows | seconds | time vs. Parquet | peak memory growth | memory vs. Parquet |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        time_ratio = r["seconds"] / max(baseline["seconds"], 0.1)
        memory_ratio = r["growth_mib"] / max(baseline["growth_mib"], 0.1)
        lines.append(
            f"| {MODES[r['mode']]} | {r['rows']:,} | {r['seconds']} | {time_ratio:.2f}{TIMES} | "
            f"{r['growth_mib']} MiB | {memory_ratio:.2f}{TIMES} |"
        )
    return "\n".join(lines)


def _write_docs(table: str, libraries: dict[str, float]) -> None:
    text = DOCS.read_text() if DOCS.exists() else "# Performance\n"
    section = f"""{SECTION} (`benchmarks/iceberg_write.py`)

A {DAYS * ROWS_PER_DAY:,}-row window ({DAYS} days of {ROWS_PER_DAY:,} posts) read from the sandbox by
`GenviralPostsOperator` and written once as a Parquet folder (the baseline, measured in the same run) and once as
one commit into an Iceberg table (SQL catalog on sqlite, local warehouse, partitioned by day: {DAYS} partitions).
Each run is a fresh process; the memory figure is its peak resident memory (`VmHWM`) minus its RSS once Airflow,
the connection and the writing libraries are loaded (pyarrow: {libraries.get("parquet")} MiB; pyarrow, pyiceberg
and its catalog: {libraries.get("iceberg")} MiB, measured apart and not counted).

{table}

The Iceberg sink flattens rows in batches of 5,000 and stages each batch on local disk as Arrow; the commit reads
the stage back in groups of about 10,000 rows (one Arrow table of that size at a time, appended with pyiceberg's
`Transaction.append` as one snapshot of the run's commit, one data file per day in it), so memory is bounded
by the group, not by the window: measured on `IcebergSink` alone (rows fed
from memory, the commit measured apart, before the move to `Transaction.append`), 40,000, 100,000 and 200,000
rows grow the commit by 113, 104 and 112 MiB.
Most of that is pyiceberg's writer (its thread pool writes a group's day partitions in parallel, each with its own
Parquet buffers); the rest is the read path the Parquet run has too.
Timings on this shared 2-core machine vary by ±40 % between runs; the ratio is of the same run. The benchmark exits
with status 1 if the Iceberg run exceeds {LIMIT_MIB} MiB or commits another number of rows than the window holds.
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
