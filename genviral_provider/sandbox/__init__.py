"""A local stand-in for the Genviral Partner API's analytics endpoints, built on the standard library only.

In tests, use the pytest fixtures (``genviral_sandbox``, ``genviral_sandbox_factory``) or start one yourself::

    from genviral_provider.sandbox import Dataset, SandboxServer

    dataset = Dataset.generate(start=date(2026, 1, 1), days=14, rows_per_day=40)
    with SandboxServer(dataset=dataset, now=datetime(2026, 1, 15, 12, tzinfo=UTC)) as sandbox:
        sandbox.faults.script = ["429:2", "cut", "ok"]  # the next three API requests
        ...  # point a client at sandbox.url with the key sandbox.api_key

From another process, run ``python -m genviral_provider.sandbox --port 8080`` and drive it through the admin
endpoints: ``POST /_sandbox/posts``, ``POST /_sandbox/faults``, ``GET /_sandbox/stats``, ``POST /_sandbox/reset``
(and ``GET``/``POST /_sandbox/settings`` for the window-semantics and cache options).

The posts endpoint serves an analytics cache (see :mod:`genviral_provider.sandbox.refreshes`): live by default,
so every row is served; ``targets_refreshed_at`` makes targets lag, and refreshes catch them up::

    with SandboxServer(targets_refreshed_at=datetime(2026, 1, 14, 12, tzinfo=UTC), credits=5) as sandbox:
        ...  # rows published after 2026-01-14T12:00Z are hidden until their target's refresh completes
"""

from genviral_provider.sandbox.dataset import (
    AWKWARD_CAPTIONS,
    LEGACY_OMITTED_KEYS,
    PLATFORMS,
    Dataset,
    PostsQuery,
    Target,
    format_instant,
    format_published_at,
    published_window,
)
from genviral_provider.sandbox.faults import Fault, Faults, parse_script_entry
from genviral_provider.sandbox.refreshes import CacheSettings, RefreshError, RefreshLedger
from genviral_provider.sandbox.server import (
    POSTS_PATH,
    REFRESHES_PATH,
    SANDBOX_API_KEY,
    TARGETS_PATH,
    InvalidQuery,
    RequestRecord,
    SandboxServer,
    Stats,
    default_dataset,
    parse_posts_query,
)

__all__ = [
    "AWKWARD_CAPTIONS",
    "LEGACY_OMITTED_KEYS",
    "PLATFORMS",
    "POSTS_PATH",
    "REFRESHES_PATH",
    "SANDBOX_API_KEY",
    "TARGETS_PATH",
    "CacheSettings",
    "Dataset",
    "Fault",
    "Faults",
    "InvalidQuery",
    "PostsQuery",
    "RefreshError",
    "RefreshLedger",
    "RequestRecord",
    "SandboxServer",
    "Stats",
    "Target",
    "default_dataset",
    "format_instant",
    "format_published_at",
    "parse_posts_query",
    "parse_script_entry",
    "published_window",
]
