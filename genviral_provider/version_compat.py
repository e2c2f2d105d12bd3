"""The one place where the provider adapts to the Airflow version it runs on.

Each feature that needs a newer Airflow than the oldest supported is gated here, and says once in the task log
which feature is off and which version brings it.
"""

from __future__ import annotations

from typing import Any

from genviral_provider.core.log import Log

_SAID: set[str] = set()


def add_partition(event: Any, key: str | None, *, log: Log) -> None:
    """Give an outlet's Asset event its partition key (``published_date``, ``snapshot_date``…), where Airflow can.

    Partition-aware DAGs downstream then react to one day. ``OutletEventAccessor.add_partitions`` came with
    Airflow 3.3; before it, the event goes without a partition key (its ``extra`` still names the folder).
    """
    if key is None:
        return
    if hasattr(event, "add_partitions"):
        event.add_partitions(key)
    else:
        _say_once(log, "partition_key", "Asset events carry no partition_key on this Airflow: that needs 3.3 or later.")


def _say_once(log: Log, feature: str, message: str) -> None:
    if feature not in _SAID:
        _SAID.add(feature)
        log.info(message)
