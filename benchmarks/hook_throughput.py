"""Hook throughput against the sandbox: concurrency speed-up, and behaviour under a rate limit.

Run with ``python -m benchmarks.hook_throughput``. Every figure is a ratio against a baseline measured in the
same run: a plain sequential page-by-page ``requests`` loop, and the server's configured rate limit.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import requests

from genviral_provider.hooks.genviral import GenviralHook
from genviral_provider.sandbox import Dataset, SandboxServer

START = dt.date(2026, 1, 1)


@dataclass
class Run:
    rows: int
    seconds: float
    requests: int
    refused: int


def sequential_baseline(server: SandboxServer, start: dt.date, end: dt.date) -> Run:
    """Read the window the plain way: one page after another until hasMore is false."""
    server.stats.reset()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {server.api_key}"
    began, rows, offset = time.perf_counter(), 0, 0
    while True:
        params: dict[str, Any] = {"start": start, "end": end, "limit": 100, "offset": offset, "sortOrder": "asc"}
        data = session.get(f"{server.url}/api/partner/v1/analytics/summary/posts", params=params).json()["data"]
        rows += len(data["posts"])
        offset += 100
        if not data["hasMore"]:
            break
    return Run(rows, time.perf_counter() - began, server.stats.total, server.stats.rate_limited)


def hook_read(server: SandboxServer, start: dt.date, end: dt.date, **extra: Any) -> Run:
    """Read the window with GenviralHook.iter_posts."""
    os.environ["AIRFLOW_CONN_GENVIRAL_BENCH"] = json.dumps(
        {"conn_type": "genviral", "host": server.url, "password": server.api_key, "extra": extra}
    )
    server.stats.reset()
    hook = GenviralHook(genviral_conn_id="genviral_bench")
    hook.client  # noqa: B018 - resolve the connection before the clock starts, as the baseline's session is
    began = time.perf_counter()
    rows = sum(1 for _ in hook.iter_posts(start, end))
    return Run(rows, time.perf_counter() - began, server.stats.total, server.stats.rate_limited)


def concurrency_speedup() -> dict[str, Any]:
    """A 6,000-row window at 50 ms per request: the hook against the sequential loop."""
    dataset = Dataset.generate(start=START, days=6, rows_per_day=1000, seed=1)
    end = START + dt.timedelta(days=5)
    with SandboxServer(dataset=dataset) as server:
        server.faults.latency = 0.05
        baseline = sequential_baseline(server, START, end)
        hook = hook_read(server, START, end, max_concurrency=8)
    assert baseline.rows == hook.rows == 6000, (baseline, hook)
    return {
        "rows": hook.rows,
        "sequential_s": round(baseline.seconds, 2),
        "sequential_requests": baseline.requests,
        "hook_s": round(hook.seconds, 2),
        "hook_requests": hook.requests,
        "speedup": round(baseline.seconds / hook.seconds, 1),
    }


def rate_limit_use(limit: float = 20.0, *, retry_after: bool) -> dict[str, Any]:
    """A window that needs ~300 requests against a server admitting ``limit`` requests/s."""
    dataset = Dataset.generate(start=START, days=9, rows_per_day=3000, seed=2)
    end = START + dt.timedelta(days=8)
    with SandboxServer(dataset=dataset) as server:
        server.faults.update(latency=0.02, rate_limit=limit, rate_limit_retry_after=retry_after)
        time.sleep(1.5)  # let the token bucket fill
        run = hook_read(server, START, end, max_concurrency=8, max_retry_wait=120)
    accepted = run.requests - run.refused
    return {
        "retry_after_header": retry_after,
        "rows": run.rows,
        "seconds": round(run.seconds, 1),
        "requests": run.requests,
        "refused": run.refused,
        "accepted_per_s": round(accepted / run.seconds, 1),
        "limit_used": round(accepted / run.seconds / limit, 2),
        "refused_share": round(run.refused / run.requests, 3),
    }


def main() -> None:
    logging.getLogger("airflow.task.hooks").setLevel(logging.ERROR)  # retries are expected here
    print("concurrency:", json.dumps(concurrency_speedup()))
    for retry_after in (False, True):
        print("rate limit 20/s:", json.dumps(rate_limit_use(retry_after=retry_after)))


if __name__ == "__main__":
    main()
