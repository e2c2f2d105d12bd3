"""Pytest fixtures that start a Genviral sandbox per test and stop it afterwards.

Register with ``pytest_plugins = ["genviral_provider.sandbox.pytest_plugin"]`` (or the ``pytest11`` entry point).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from genviral_provider.sandbox.server import SandboxServer, default_dataset

#: The clock of the default sandbox: a day after its 14 days of rows (2026-01-01 .. 2026-01-14) end.
DEFAULT_NOW = dt.datetime(2026, 1, 15, 12, 0, tzinfo=dt.timezone.utc)

SandboxFactory = Callable[..., SandboxServer]


@pytest.fixture
def genviral_sandbox_factory() -> Iterator[SandboxFactory]:
    """Return a callable that starts a sandbox from :class:`SandboxServer` keyword arguments.

    Every argument passes through, the analytics cache's included (``targets_refreshed_at``, ``credits``,
    ``refresh_seconds``...). Without ``dataset``, the server gets the default dataset; without ``now``,
    :data:`DEFAULT_NOW`.
    Every server started is stopped at teardown.
    """
    started: list[SandboxServer] = []

    def start(**kwargs: Any) -> SandboxServer:
        kwargs.setdefault("now", DEFAULT_NOW)
        server = SandboxServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def genviral_sandbox() -> Iterator[SandboxServer]:
    """Return a started sandbox over 14 days x 40 rows from 2026-01-01, with now = 2026-01-15T12:00Z."""
    with SandboxServer(dataset=default_dataset(), now=DEFAULT_NOW) as server:
        yield server
