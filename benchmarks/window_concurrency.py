"""How long a 20,000-row day takes to read, at 50 ms and 500 ms per request: the operator's plan against the hook.

Run with ``python -m benchmarks.window_concurrency``. For each latency the sandbox adds, one day of 20,000 rows
(rows follow the time of day) is read as one daily window two ways, each with ``max_concurrency=8``:

- baseline: ``GenviralHook.iter_posts(*window.api_dates())`` (the window reader, which pages concurrently);
- plan: ``GenviralHook.iter_window`` (the operator's reader), whose scans fetch the pages they know they need at once.

It prints, per latency, the seconds, requests and most requests in flight of each, and the plan's time against the
baseline measured in the same run. It exits with status 1 if either misses a row of the window.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from genviral_provider.core.reading.run_window import RunWindow
from genviral_provider.core.rows import Row, published_at
from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.sandbox import Dataset, SandboxServer

START = dt.date(2026, 1, 1)
DAY = dt.date(2026, 1, 2)
ROWS_PER_DAY = 20_000
LATENCIES = (0.05, 0.5)


@dataclass
class Run:
    rows: int
    seconds: float
    requests: int
    max_in_flight: int


def _hook(server: SandboxServer) -> GenviralHook:
    os.environ["AIRFLOW_CONN_GENVIRAL_BENCH"] = json.dumps(
        {"conn_type": "genviral", "host": server.url, "password": server.api_key, "extra": {"max_concurrency": 8}}
    )
    hook = GenviralHook(genviral_conn_id="genviral_bench")
    hook.client  # noqa: B018 - resolve the connection before the clock starts
    return hook


def _timed(server: SandboxServer, read: str, window: RunWindow) -> Run:
    hook = _hook(server)
    server.stats.reset()
    began = time.perf_counter()
    rows: Iterator[Row] = hook.iter_posts(*window.api_dates()) if read == "iter_posts" else hook.iter_window(window)
    kept = {row["id"] for row in rows if (t := published_at(row)) is not None and window.contains(t)}
    return Run(len(kept), time.perf_counter() - began, server.stats.total, server.stats.max_in_flight)


def compare(latency: float) -> dict[str, Any]:
    """Read one 20,000-row day both ways at ``latency`` seconds per request."""
    dataset = Dataset.generate(start=START, days=3, rows_per_day=ROWS_PER_DAY, seed=3)
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.timezone.utc)
    window = RunWindow(start, start + dt.timedelta(days=1), "benchmark")
    with SandboxServer(dataset=dataset) as server:
        server.faults.latency = latency
        baseline = _timed(server, "iter_posts", window)
        plan = _timed(server, "iter_window", window)
    return {
        "latency_s": latency,
        "rows": plan.rows,
        "baseline_rows": baseline.rows,
        "baseline": {
            "seconds": round(baseline.seconds, 2),
            "requests": baseline.requests,
            "in_flight": baseline.max_in_flight,
        },
        "plan": {"seconds": round(plan.seconds, 2), "requests": plan.requests, "in_flight": plan.max_in_flight},
        "plan_vs_baseline": round(plan.seconds / baseline.seconds, 2),
    }


def main() -> None:
    logging.getLogger("airflow.task.hooks").setLevel(logging.WARNING)
    failed = False
    for latency in LATENCIES:
        result = compare(latency)
        failed |= result["rows"] != result["baseline_rows"] or result["rows"] == 0
        print("window concurrency:", json.dumps(result), flush=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
