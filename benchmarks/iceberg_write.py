"""Iceberg versus Parquet: a 100,000-row window written by the operator to a table and to a folder, time and memory.

Run with ``python -m benchmarks.iceberg_write`` (``--write-docs`` also rewrites the Iceberg section of
docs/performance.md). The sandbox serves from this process; each measured run is a fresh Python process, whose
peak resident memory (``VmHWM``, reset to the current RSS once imports, the connection and the libraries are
loaded) is compared with its RSS at that moment. The baseline, measured in the same run, is the Parquet folder:
the same window through ``output_format="parquet"``. The Iceberg run commits into a SQL catalog on sqlite with a
local warehouse (the embedded catalog's layout) in a temporary folder.
"""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks._children import (
    DAYS,
    ROWS_PER_DAY,
    TIMES,
    load_pyarrow,
    measure,
    parse,
    run_children,
    status_kib,
    window,
    write_section,
)
from genviral_provider.sandbox import SandboxServer

SECTION = "## Iceberg: a window written to a table"
LIMIT_MIB = 300
MODES = {
    "parquet": '`output_format="parquet"`, a folder (baseline)',
    "iceberg": '`output_format="iceberg"`, one commit into a table',
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run both modes against one sandbox; print the table; return 1 if the Iceberg run exceeds the limit."""
    args = parse("benchmarks.iceberg_write", __doc__, MODES, argv)
    if args.child:
        return _child(args.child, args.output)
    results = run_children("benchmarks.iceberg_write", MODES, _catalog_env)
    table = _table(results)
    print(table)
    if args.write_docs:
        _write_docs(table, {r["mode"]: r["library_mib"] for r in results})
    iceberg = next(r for r in results if r["mode"] == "iceberg")
    return 1 if iceberg["growth_mib"] >= LIMIT_MIB or iceberg["rows"] != DAYS * ROWS_PER_DAY else 0


def _catalog_env(server: SandboxServer, output: pathlib.Path) -> dict[str, str]:
    """The ``genviral_iceberg`` connection: a SQL catalog on sqlite with a local warehouse, in the run's folder."""
    extra = {"type": "sql", "uri": f"sqlite:///{output}/catalog.db", "warehouse": (output / "warehouse").as_uri()}
    return {"AIRFLOW_CONN_GENVIRAL_ICEBERG": json.dumps({"conn_type": "generic", "extra": extra})}


def _child(mode: str, folder: str) -> int:
    import logging

    logging.disable(logging.WARNING)  # execute() outside a task runner warns; the figures are what matter
    from genviral_provider.operators.genviral import GenviralPostsOperator

    start, end = window()
    where: dict[str, Any] = (
        {"table": "genviral.posts"} if mode == "iceberg" else {"output_path": f"file://{folder}/posts"}
    )
    operator = GenviralPostsOperator(
        task_id="posts", start=start.isoformat(), end=end.isoformat(), output_format=mode, **where
    )
    operator.hook.client  # noqa: B018 - resolve the connection before measuring
    library = _load_libraries(mode)
    return measure(mode, lambda: int(operator.execute({})["row_count"]), library)  # type: ignore[arg-type]


def _load_libraries(mode: str) -> int:
    """Load what a mode writes with (pyarrow; pyiceberg and its catalog), a fixed cost; return the RSS it took."""
    library = load_pyarrow()
    if mode == "iceberg":
        before = status_kib("VmRSS")
        import pyiceberg.catalog.sql
        import pyiceberg.io.pyarrow  # noqa: F401
        import pyiceberg_core  # noqa: F401

        library += status_kib("VmRSS") - before
    return library


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
    write_section(SECTION, section)


if __name__ == "__main__":
    sys.exit(main())
