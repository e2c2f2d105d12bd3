"""Run every benchmark: ``python -m benchmarks`` (``make bench``). Figures go in docs/performance.md."""

from __future__ import annotations

import importlib

BENCHMARKS = (
    "benchmarks.sandbox_queries",
    "benchmarks.hook_throughput",
    "benchmarks.operator_memory",
    "benchmarks.window_cost",
    "benchmarks.window_concurrency",
    "benchmarks.iceberg_write",
)

for name in BENCHMARKS:
    print(f"== {name}", flush=True)
    importlib.import_module(name).main()
