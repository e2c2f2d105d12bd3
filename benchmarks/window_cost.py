"""Requests spent per window, under every reading of the API's dates, against the pages the window's rows need.

Run with ``python -m benchmarks.window_cost`` (or name sizes: ``"300 rows/day"``, ``busy``). For each reading the
sandbox offers (UTC with ``end`` inclusive or exclusive, dates read in UTC+14 or UTC-11), and for days of a few
hundred rows (with and without posts exactly at midnight), of several thousand, and of 12,000 (more than offsets
reach), it reads one-day windows, the 24 hourly windows of a day, windows of several days and a 30-day backfill of
daily windows two ways, counting the requests the sandbox answered and checking that exactly the window's rows were
kept:

- baseline: the covering dates read whole (``iter_posts(*window.api_dates())``), what the operator did before;
- plan: :class:`~genviral_provider.core.reading.plan.WindowPlanReader`, what the operator does now.

A window's rows need ``max(1, ceil(rows / 100))`` pages; the target is at most 1.25 times that plus 3 requests.
Each window is read by a fresh reader, as each operator run is (nothing learned from one window helps the next).
The benchmark exits with status 1 if a window misses a row, or if any window misses the target.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from genviral_provider.core.api.client import GenviralClient
from genviral_provider.core.api.query import posts_filter
from genviral_provider.core.api.settings import ClientSettings
from genviral_provider.core.reading.plan import WindowPlanReader
from genviral_provider.core.reading.run_window import RunWindow, WindowFilter
from genviral_provider.core.reading.window import WindowReader
from genviral_provider.core.rows import Row, published_at, row_key
from genviral_provider.sandbox import Dataset, SandboxServer

UTC = dt.timezone.utc
START = dt.date(2026, 1, 1)
DAYS = 34
READINGS: dict[str, tuple[bool, str]] = {
    "UTC, end inclusive": (True, "UTC"),
    "UTC, end exclusive": (False, "UTC"),
    "UTC+14, end exclusive": (False, "Pacific/Kiritimati"),
    "UTC-11, end inclusive": (True, "Pacific/Pago_Pago"),
}
SIZES = {"300 rows/day": 300, "5,000 rows/day": 5000, "300 rows/day, none at midnight": -300}
FILTERS = posts_filter()


@dataclass
class Cost:
    windows: int = 0
    rows: int = 0
    pages_needed: int = 0
    requests: int = 0
    worst_ratio: float = 0.0  # of requests to the bound's budget, per window

    def add(self, rows: int, requests: int) -> None:
        needed = pages_needed(rows)
        self.windows += 1
        self.rows += rows
        self.pages_needed += needed
        self.requests += requests
        self.worst_ratio = max(self.worst_ratio, requests / (1.25 * needed + 3))

    def as_dict(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "rows": self.rows,
            "pages_needed": self.pages_needed,
            "requests": self.requests,
            "per_page_needed": round(self.requests / self.pages_needed, 2),
            "bound": round(1.25 * self.pages_needed + 3 * self.windows, 2),
            "worst_window_vs_bound": round(self.worst_ratio, 2),
        }


def pages_needed(rows: int) -> int:
    """Return the pages of 100 a window's rows need (one, to learn that an empty window is empty)."""
    return max(1, math.ceil(rows / 100))


def baseline_rows(client: GenviralClient, window: RunWindow) -> Iterator[Row]:
    first, last = window.api_dates()
    return WindowReader(client).rows(posts_filter(first, last))


def plan_rows(client: GenviralClient, window: RunWindow) -> Iterator[Row]:
    return WindowPlanReader(client, window, FILTERS).rows()


def expected_ids(dataset: Dataset, window: RunWindow) -> set[str]:
    return {row_key(r) for r in dataset.rows if (t := published_at(r)) is not None and window.contains(t)}


def measure(
    server: SandboxServer,
    client: GenviralClient,
    dataset: Dataset,
    windows: list[RunWindow],
    read: Callable[[GenviralClient, RunWindow], Iterator[Row]],
) -> Cost:
    cost = Cost()
    for window in windows:
        server.stats.reset()
        kept = [row_key(row) for row in WindowFilter(window).rows(read(client, window))]
        expected = expected_ids(dataset, window)
        if len(kept) != len(set(kept)) or set(kept) != expected:
            sys.exit(
                f"{window.describe()}: {len(set(kept))} rows kept ({len(kept)} with repeats), {len(expected)} expected"
            )
        cost.add(len(expected), server.stats.total)
    return cost


def day_windows(first: dt.date, days: int) -> list[RunWindow]:
    return [
        RunWindow(_midnight(first + dt.timedelta(days=i)), _midnight(first + dt.timedelta(days=i + 1)), "benchmark")
        for i in range(days)
    ]


def hour_windows(day: dt.date, hours: range) -> list[RunWindow]:
    base = _midnight(day)
    return [RunWindow(base + dt.timedelta(hours=h), base + dt.timedelta(hours=h + 1), "benchmark") for h in hours]


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=UTC)


def generated(per_day: int) -> Dataset:
    """Return DAYS days of rows: the sandbox's (with posts at 00:00:00.000Z and 23:59:59.999Z of every day, which
    show a UTC date's edges for free), or for a negative count, as many at uniformly random instants only."""
    if per_day > 0:
        return Dataset.generate(start=START, days=DAYS, rows_per_day=per_day, seed=11)
    rng = random.Random(11)
    dataset = Dataset.empty(seed=11)
    span = DAYS * 86_400
    first = _midnight(START)
    dataset.insert(
        {"publishedAt": (first + dt.timedelta(seconds=rng.uniform(0.001, span))).isoformat(timespec="milliseconds")}
        for _ in range(-per_day * DAYS)
    )
    return dataset


def long_windows(first: dt.date) -> list[RunWindow]:
    """Return windows of several days: three whole days, a week, and three days from 06:00 UTC."""
    start = _midnight(first)
    return [
        RunWindow(start, start + dt.timedelta(days=3), "benchmark"),
        RunWindow(start, start + dt.timedelta(days=7), "benchmark"),
        RunWindow(start + dt.timedelta(hours=6), start + dt.timedelta(days=3, hours=6), "benchmark"),
    ]


def run(size: str, per_day: int) -> list[dict[str, Any]]:
    dataset = generated(per_day)
    kinds = {
        "one-day windows": day_windows(START + dt.timedelta(days=10), 3),
        "hourly windows": hour_windows(START + dt.timedelta(days=12), range(24)),
        "multi-day windows": long_windows(START + dt.timedelta(days=14)),
        "30-day backfill": day_windows(START + dt.timedelta(days=2), 30),
    }
    return measure_readings(size, dataset, kinds)


def busy_days() -> list[dict[str, Any]]:
    """Days of 12,000 rows, more than one filter set reaches through offsets (10,100)."""
    dataset = Dataset.generate(start=START, days=8, rows_per_day=12_000, seed=13)
    kinds = {
        "one-day windows": day_windows(START + dt.timedelta(days=2), 2),
        "hourly windows": hour_windows(START + dt.timedelta(days=4), range(0, 24, 5)),
        "multi-day windows": [
            RunWindow(_midnight(START + dt.timedelta(days=2)), _midnight(START + dt.timedelta(days=5)), "benchmark")
        ],
    }
    return measure_readings("12,000 rows/day", dataset, kinds)


def uneven_days(per_day: int, count: int = 40) -> list[dict[str, Any]]:
    """Read ``count`` random windows (15 minutes to a week) of uneven days with the plan only; report how many
    miss the target and the worst. Reported, not enforced: the target is met on evenly spread rows."""
    dataset = Dataset.uneven(start=START, days=DAYS, rows_per_day=per_day, seed=3)
    rng = random.Random(5)
    first = _midnight(START + dt.timedelta(days=3))
    windows = []
    for _ in range(count):
        start = first + dt.timedelta(minutes=15 * rng.randrange(0, 20 * 96))
        windows.append(
            RunWindow(start, start + dt.timedelta(hours=rng.choice([0.25, 1, 1, 3, 6, 24, 24, 48, 168])), "x")
        )
    results = []
    for reading in READINGS:
        with served(dataset, reading) as (server, client):
            costs = [measure(server, client, dataset, [window], plan_rows) for window in windows]
        over = [cost for cost in costs if cost.worst_ratio > 1.0]
        worst = max(costs, key=lambda cost: cost.worst_ratio)
        results.append(
            {
                "size": f"uneven, {per_day:,} rows/day on average",
                "reading": reading,
                "windows": count,
                "over_target": len(over),
                "over_target_longer_than_a_day": sum(
                    1
                    for c, w in zip(costs, windows, strict=True)
                    if c.worst_ratio > 1.0 and w.end - w.start > dt.timedelta(days=1)
                ),
                "worst_window_vs_bound": round(worst.worst_ratio, 2),
                "worst": {"rows": worst.rows, "requests": worst.requests},
            }
        )
        print(json.dumps(results[-1]), flush=True)
    return results


@contextlib.contextmanager
def served(dataset: Dataset, reading: str) -> Iterator[tuple[SandboxServer, GenviralClient]]:
    """Serve ``dataset`` from a sandbox reading dates as ``reading`` says; yield it and a client of it."""
    end_inclusive, zone = READINGS[reading]
    with SandboxServer(dataset=dataset, end_inclusive=end_inclusive, date_timezone=zone) as server:
        settings = ClientSettings.from_connection(
            conn_id="bench", host=server.url, port=None, password=server.api_key, extra={}
        )
        client = GenviralClient(settings)
        try:
            yield server, client
        finally:
            client.close()


def measure_readings(size: str, dataset: Dataset, kinds: dict[str, list[RunWindow]]) -> list[dict[str, Any]]:
    results = []
    for reading in READINGS:
        with served(dataset, reading) as (server, client):
            for name, windows in kinds.items():
                before = measure(server, client, dataset, windows, baseline_rows)
                after = measure(server, client, dataset, windows, plan_rows)
                results.append(
                    {
                        "size": size,
                        "reading": reading,
                        "windows": name,
                        "baseline": before.as_dict(),
                        "plan": after.as_dict(),
                        "saving": round(before.requests / after.requests, 1),
                    }
                )
                print(json.dumps(results[-1]), flush=True)
    return results


def wall_time(latency: float = 0.05) -> dict[str, Any]:
    """Time one 5,000-row day (UTC, `end` inclusive) both ways against a sandbox answering after ``latency``."""
    dataset = Dataset.generate(start=START, days=6, rows_per_day=5000, seed=12)
    window = day_windows(START + dt.timedelta(days=2), 1)[0]
    figures: dict[str, Any] = {"latency_s": latency}
    with SandboxServer(dataset=dataset) as server:
        server.faults.latency = latency
        settings = ClientSettings.from_connection(
            conn_id="bench", host=server.url, port=None, password=server.api_key, extra={"max_concurrency": 8}
        )
        client = GenviralClient(settings)
        for name, read in (("baseline", baseline_rows), ("plan", plan_rows)):
            server.stats.reset()
            began = time.perf_counter()
            rows = sum(1 for _ in WindowFilter(window).rows(read(client, window)))
            figures[name] = {"rows": rows, "requests": server.stats.total, "s": round(time.perf_counter() - began, 2)}
        client.close()
    return figures


def main() -> None:
    logging.getLogger("genviral_provider").setLevel(logging.WARNING)
    failures = []
    chosen = [name for name in sys.argv[1:] if name in SIZES] if sys.argv[1:] else list(SIZES)
    results = [result for size in chosen for result in run(size, SIZES[size])]
    if not sys.argv[1:] or "busy" in sys.argv[1:]:
        results += busy_days()
    for result in results:
        if result["plan"]["worst_window_vs_bound"] > 1.0:
            failures.append(f"{result['size']}, {result['reading']}, {result['windows']}")
    if not sys.argv[1:] or "uneven" in sys.argv[1:]:
        for per_day in (300, 5000):
            uneven_days(per_day)
    print("wall time:", json.dumps(wall_time()), flush=True)
    if failures:
        sys.exit(f"over the target (1.25 x pages needed + 3): {'; '.join(failures)}")


if __name__ == "__main__":
    main()
