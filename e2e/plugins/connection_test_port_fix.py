"""Airflow plugin of the end-to-end deployment: the upstream fix for the UI's Test button on port-less connections.

Airflow 3.3.2's UI posts ``port: 0`` for a connection without a port (``Number(null)``), and the API server takes
that for a different destination than the stored ``NULL``: every Test of such a connection (``genviral``, ``aws``,
``http`` without a port, ...) answers ``400 The host or port to test differs from the stored connection``.
apache/airflow#73298 fixes it in the API by treating port 0 as blank; this applies the same change, and only where
the installed Airflow still has the bug. The run's summary says whether it was applied.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

_routes: Any
try:
    from airflow.api_fastapi.core_api.routes.public import connections as _routes
except ImportError:  # pragma: no cover - an Airflow without this route
    _routes = None


def _same_endpoint(requested: Any, stored: Any) -> bool:
    """Return whether the requested and stored host/port are the same destination; blank, None and 0 are unset."""

    def normalised(value: Any) -> Any:
        return None if value is None or value == "" or value == 0 else value

    return bool(normalised(requested) == normalised(stored))


PATCHED = False
if _routes is not None and hasattr(_routes, "_same_endpoint") and not _routes._same_endpoint(0, None):
    _routes._same_endpoint = _same_endpoint
    PATCHED = True


class ConnectionTestPortFix(AirflowPlugin):
    """Registers nothing: importing the module applies the fix in the API server."""

    name = "e2e_connection_test_port_fix"
