"""Cluster policy of the end-to-end deployment (copied to ``$AIRFLOW_HOME/config/``): shorter sensor waits.

The example DAG's sensor waits up to six hours and polls every 30 seconds, and the daily DAG's freshness gate polls
every 5 minutes; the run cannot wait that long. Deployments tune such settings without editing DAGs in exactly
this way.
"""

from __future__ import annotations

import os
from typing import Any

SENSOR = ("genviral_wait_for_post_analytics", "wait_for_analytics")
GATE = ("genviral_posts_daily", "wait_for_fresh_analytics")


def task_policy(task: Any) -> None:
    """Shorten the example sensors' timeout and poke interval to the values the environment gives."""
    if (task.dag_id, task.task_id) == GATE:
        if poke_interval := os.environ.get("GENVIRAL_E2E_GATE_POKE_INTERVAL"):
            task.poke_interval = float(poke_interval)
        return
    if (task.dag_id, task.task_id) != SENSOR:
        return
    if timeout := os.environ.get("GENVIRAL_E2E_SENSOR_TIMEOUT"):
        task.timeout = float(timeout)
    if poke_interval := os.environ.get("GENVIRAL_E2E_SENSOR_POKE_INTERVAL"):
        task.poke_interval = float(poke_interval)
