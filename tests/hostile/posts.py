"""A posts endpoint for hostile servers: pages over whatever rows a test gives, sorted and offset as asked."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tests.hostile.server import Exchange

Rows = Sequence[dict[str, Any]]


def answer_posts(exchange: Exchange, rows: Rows, *, key: Callable[[dict[str, Any]], Any] | None = None) -> None:
    """Answer a posts request with ``rows`` sorted by ``key`` (default ``publishedAt``) in the order asked, paged.

    Filters nothing: the test decides which rows the server holds for the request.
    """
    ordered = sorted(rows, key=key or (lambda row: str(row.get("publishedAt"))))
    if exchange.params.get("sortOrder", "desc") == "desc":
        ordered.reverse()
    limit = min(exchange.limit, 100)
    page = ordered[exchange.offset : exchange.offset + limit]
    exchange.page(page, len(ordered), exchange.offset + len(page) < len(ordered))


def targets_or_posts(posts: Callable[[Exchange], None]) -> Callable[[Exchange], None]:
    """Return a behaviour answering ``/analytics/targets`` with one fresh TikTok target, and posts with ``posts``."""

    def behave(exchange: Exchange) -> None:
        if exchange.path.endswith("/analytics/targets"):
            target = {"id": "t1", "platform": "tiktok", "identifier": "@a", "last_refreshed_at": "2026-04-01T00:00:00Z"}
            exchange.ok({"workspace_id": None, "targets": [target]})
        else:
            posts(exchange)

    return behave
