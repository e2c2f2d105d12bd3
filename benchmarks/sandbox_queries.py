"""Sandbox query speed on 100,000 rows, against a plain filter-and-sort baseline measured in the same run.

Run with ``python -m benchmarks.sandbox_queries``. The sandbox must answer pages in milliseconds so that
hook and operator benchmarks measure the client, not the stand-in server.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time

from genviral_provider.sandbox import Dataset, PostsQuery, published_window

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)


def plain_page(rows: list[dict[str, object]], query: PostsQuery) -> list[dict[str, object]]:
    """Filter and sort every row for each page: what an index spares."""
    low, high = published_window(query, now=NOW)
    start = dt.datetime.fromtimestamp((low or 0) / 1000, tz=dt.timezone.utc).isoformat()[:19]
    end = dt.datetime.fromtimestamp((high or 0) / 1000, tz=dt.timezone.utc).isoformat()[:19]
    matching = [r for r in rows if r["platform"] == "tiktok" and start <= str(r["publishedAt"])[:19] < end]
    matching.sort(key=lambda r: (str(r["publishedAt"]), str(r["id"])))
    return matching[query.offset : query.offset + query.limit]


def main() -> None:
    began = time.perf_counter()
    dataset = Dataset.generate(start=dt.date(2026, 1, 1), days=100, rows_per_day=1000, seed=1)
    generated_s = time.perf_counter() - began
    query = PostsQuery(
        start=dt.date(2026, 1, 10),
        end=dt.date(2026, 3, 1),
        platforms=frozenset({"tiktok"}),
        sort_order="asc",
        limit=100,
    )
    offsets = range(0, 2_000, 100)
    began = time.perf_counter()
    for offset in offsets:
        dataset.query(dataclasses.replace(query, offset=offset), now=NOW)
    indexed_ms = (time.perf_counter() - began) * 1000 / len(offsets)
    rows = dataset.rows
    began = time.perf_counter()
    for offset in offsets:
        plain_page(rows, dataclasses.replace(query, offset=offset))
    plain_ms = (time.perf_counter() - began) * 1000 / len(offsets)
    figures = {
        "rows": len(dataset),
        "generate_s": round(generated_s, 2),
        "indexed_ms_per_page": round(indexed_ms, 2),
        "plain_ms_per_page": round(plain_ms, 1),
        "speedup": round(plain_ms / indexed_ms),
    }
    print("sandbox queries:", json.dumps(figures))


if __name__ == "__main__":
    main()
