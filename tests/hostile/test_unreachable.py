"""An API that does not answer at all ends the sensors' try at once, instead of being waited on until timeout."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from genviral_provider.sandbox import SandboxServer
from tests.conftest import TaskOutcome

SENSORS: dict[str, tuple[str, dict[str, Any]]] = {
    "freshness": (
        "genviral_provider.sensors.genviral.GenviralAnalyticsFreshnessSensor",
        {"fresh_after": "2026-01-15T00:00:00+00:00"},
    ),
    "posts": ("genviral_provider.sensors.genviral.GenviralPostAnalyticsSensor", {"genviral_post_ids": ["p-1"]}),
}


def closed_port() -> int:
    """A loopback port nothing listens on: every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
@pytest.mark.parametrize("sensor", sorted(SENSORS))
def test_an_unreachable_api_fails_the_try_instead_of_waiting_for_the_timeout(
    genviral_sandbox: SandboxServer,
    genviral_connection: Callable[..., str],
    run_one_task: Callable[..., TaskOutcome],
    sensor: str,
    deferrable: bool,
) -> None:
    genviral_connection(genviral_sandbox, max_retries=1, max_retry_wait=1)
    conn = json.loads(os.environ["AIRFLOW_CONN_GENVIRAL_DEFAULT"])
    os.environ["AIRFLOW_CONN_GENVIRAL_DEFAULT"] = json.dumps({**conn, "host": f"http://127.0.0.1:{closed_port()}"})
    operator, arguments = SENSORS[sensor]
    started = time.monotonic()

    state, _, error = run_one_task(
        operator,
        f"unreachable_{sensor}_{deferrable}",
        deferrable=deferrable,
        poke_interval=0.5,
        timeout=120,
        **arguments,
    )

    assert state == "failed", error
    assert error is not None and "no response" in error and "Connection" in error, error
    assert "timed out" not in error
    assert time.monotonic() - started < 60  # well before the 120 s timeout
    assert genviral_sandbox.stats.total == 0
