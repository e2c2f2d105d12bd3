"""What the memory benchmarks share: one 100,000-row window, a fresh process per measured run, and the docs page.

A measured run is a child process (``python -m <benchmark> --child MODE --output DIR``) against the sandbox this
process serves: its peak resident memory (``VmHWM``, reset to the current RSS once imports, the connection and the
writing libraries are loaded) is compared with its RSS at that moment, so that each figure is what the run itself
holds. A benchmark's section of docs/performance.md is rewritten whole, except its ``### Earlier runs``
subsection: the before/after notes of past changes, which a later run cannot measure again.
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
from collections.abc import Callable, Iterable
from typing import Any

from genviral_provider.sandbox import Dataset, SandboxServer

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "performance.md"
START = dt.date(2026, 1, 1)
DAYS = 25
ROWS_PER_DAY = 4_000  # 100,000 rows in the window
TIMES = "\u00d7"
EARLIER_RUNS = "### Earlier runs"

#: What a benchmark adds to a child's environment, given the sandbox and the run's output folder.
ChildEnv = Callable[[SandboxServer, pathlib.Path], dict[str, str]]


def parse(prog: str, description: str | None, modes: Iterable[str], argv: Any) -> argparse.Namespace:
    """The command line every memory benchmark takes (``--child`` and ``--output`` are the children's)."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=description)
    parser.add_argument("--write-docs", action="store_true", help="rewrite this benchmark's section of performance.md")
    parser.add_argument("--child", choices=list(modes), help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def window() -> tuple[dt.datetime, dt.datetime]:
    """The benchmarks' window: ``DAYS`` days from ``START``, in UTC."""
    start = dt.datetime.combine(START, dt.time(), dt.timezone.utc)
    return start, start + dt.timedelta(days=DAYS)


def run_children(module: str, modes: Iterable[str], child_env: ChildEnv | None = None) -> list[dict[str, Any]]:
    """Serve the window from a sandbox and run one child per mode against it; return (and print) their results."""
    began = time.perf_counter()
    dataset = Dataset.generate(start=START, days=DAYS, rows_per_day=ROWS_PER_DAY, seed=11)
    print(f"Generated {len(dataset):,} rows in {time.perf_counter() - began:.1f}s.", flush=True)
    results = []
    with SandboxServer(dataset=dataset) as server, tempfile.TemporaryDirectory() as folder:
        for mode in modes:
            output = pathlib.Path(folder) / mode
            extra = child_env(server, output) if child_env else {}
            results.append(_run_child(module, mode, server, output, extra))
            print(json.dumps(results[-1]), flush=True)
    return results


def _run_child(
    module: str, mode: str, server: SandboxServer, output: pathlib.Path, extra: dict[str, str]
) -> dict[str, Any]:
    connection = {"conn_type": "genviral", "host": server.url, "password": server.api_key}
    env = {**os.environ, "AIRFLOW_CONN_GENVIRAL_DEFAULT": json.dumps(connection), "PYTHONPATH": str(ROOT), **extra}
    command = [sys.executable, "-m", module, "--child", mode, "--output", str(output)]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} run failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(mode: str, run: Callable[[], int], library_kib: int) -> int:
    """In a child: reset the peak, ``run()`` (which returns its row count), print the figures as one JSON line."""
    baseline = _reset_peak()
    began = time.perf_counter()
    rows = run()
    seconds = time.perf_counter() - began
    peak = status_kib("VmHWM")
    figures = {
        "mode": mode,
        "rows": rows,
        "seconds": round(seconds, 1),
        "baseline_mib": round(baseline / 1024, 1),
        "peak_mib": round(peak / 1024, 1),
        "growth_mib": round((peak - baseline) / 1024, 1),
        "library_mib": round(library_kib / 1024, 1),
    }
    print(json.dumps(figures))
    return 0


def load_pyarrow() -> int:
    """Load pyarrow's libraries (a fixed cost, paid once per process, whatever the rows); return the RSS it took."""
    import io

    before = status_kib("VmRSS")
    import pyarrow.parquet as pq

    from genviral_provider.core.output.formats import parquet_schema

    pq.ParquetWriter(io.BytesIO(), parquet_schema()).close()
    return status_kib("VmRSS") - before


def _reset_peak() -> int:
    """Reset the peak RSS to the current RSS (Linux ``clear_refs``); return the current RSS in KiB."""
    with contextlib.suppress(OSError):  # not Linux, or not allowed: the peak then includes imports
        pathlib.Path("/proc/self/clear_refs").write_text("5")
    return status_kib("VmRSS")


def status_kib(field: str) -> int:
    """A memory figure of this process from ``/proc/self/status``, in KiB (the peak from ``getrusage`` elsewhere)."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def write_section(title: str, section: str) -> None:
    """Replace the section headed ``title`` in docs/performance.md by ``section``, keeping its ``Earlier runs``."""
    text = DOCS.read_text() if DOCS.exists() else "# Performance\n"
    start = text.find(title)
    if start < 0:
        DOCS.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    following = text.find("\n## ", start + len(title))
    end = following if following >= 0 else len(text)
    earlier = text.find(EARLIER_RUNS, start, end)
    kept = "\n" + text[earlier:end].strip("\n") + "\n" if earlier >= 0 else ""
    DOCS.write_text(text[:start] + section + kept + text[end:])
