"""Shared fixtures: a throwaway AIRFLOW_HOME, and a `genviral_default` connection pointed at the sandbox.

The sandbox fixtures themselves (`genviral_sandbox`, `genviral_sandbox_factory`) come from the package's
pytest plugin, registered as an entry point.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Before anything imports Airflow: its configuration is read once, at import.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="genviral-tests-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.join(_AIRFLOW_HOME, "dags")

ConnectionSetter = Callable[..., str]


@pytest.fixture
def genviral_connection(monkeypatch: pytest.MonkeyPatch) -> ConnectionSetter:
    """Return a function that defines a `genviral` connection through AIRFLOW_CONN_<ID> (JSON form)."""

    def define(
        server: Any, *, conn_id: str = "genviral_default", password: str | None = None, **extra: Any
    ) -> str:
        conn = {
            "conn_type": "genviral",
            "host": server.url,
            "password": server.api_key if password is None else password,
            "extra": extra,
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    return define


@pytest.fixture
def sandbox_conn(genviral_sandbox: Any, genviral_connection: ConnectionSetter) -> Iterator[str]:
    """The default sandbox, reachable as connection `genviral_default` (fast retries for tests)."""
    yield genviral_connection(genviral_sandbox, max_retry_wait=5)
