"""The one place where the provider adapts to the Airflow version it runs on (3.0.6 and later).

Names that moved between Airflow versions are imported here, from where the running Airflow has them, so that
the rest of the package imports them from here. Each feature that needs a newer Airflow than the oldest supported
is gated here, and says once in the log which feature is off and which version brings it.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from airflow import __version__ as _airflow_version
from airflow.sdk import Connection
from asgiref.sync import sync_to_async

from genviral_provider.core.log import Log


def _release(version: str) -> tuple[int, ...]:
    """Return a version's release numbers: ``"3.1.8rc1"`` gives ``(3, 1, 8)``."""
    found = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(part) for part in found.group().split(".")) if found else ()


#: The running Airflow's release, as numbers (``(3, 1, 8)``; a pre-release or local build counts as its release).
AIRFLOW_VERSION = _release(_airflow_version)


def airflow_at_least(version: str) -> bool:
    """Whether the running Airflow is ``version`` (``"3.3"``, ``"3.3.2"``) or later."""
    return _release(version) <= AIRFLOW_VERSION


AIRFLOW_V_3_1_PLUS = airflow_at_least("3.1")
AIRFLOW_V_3_2_PLUS = airflow_at_least("3.2")

# The Task SDK took over BaseHook in 3.1, and the task exceptions and the configuration in 3.2; their old homes
# still work there but warn.
if AIRFLOW_V_3_1_PLUS or TYPE_CHECKING:
    from airflow.sdk import BaseHook
else:
    from airflow.hooks.base import BaseHook
if AIRFLOW_V_3_2_PLUS or TYPE_CHECKING:
    from airflow.sdk.configuration import conf
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.sdk.lineage import HookLineageCollector, get_hook_lineage_collector
else:
    from airflow.configuration import conf
    from airflow.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.lineage.hook import HookLineageCollector, get_hook_lineage_collector

__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseHook",
    "HookLineageCollector",
    "TaskDeferred",
    "add_partition",
    "aextra_dejson",
    "aget_connection",
    "airflow_at_least",
    "amask_secret",
    "conf",
    "get_hook_lineage_collector",
    "task_state_store",
]

_LOG = logging.getLogger(__name__)
_SAID: set[str] = set()


def add_partition(event: Any, key: str | None, *, log: Log) -> None:
    """Give an outlet's Asset event its partition key (``published_date``, ``snapshot_date``…), where Airflow can.

    Partition-aware DAGs downstream then react to one day. ``OutletEventAccessor.add_partitions`` came with
    Airflow 3.3. Airflow 3.2 gives an event only its run's ``partition_key`` (set by a partitioned timetable, not
    by the task: apache/airflow#58474); there and before, the event goes without the day (its ``extra`` still
    names the folder).
    """
    if key is None:
        return
    if hasattr(event, "add_partitions"):
        event.add_partitions(key)
    else:
        _say_once(
            log,
            "partition_key",
            "Asset events carry no partition_key from the task on this Airflow: that needs 3.3 or later "
            "(3.2 gives an event only its run's partition_key, from a partitioned timetable).",
        )


def task_state_store(context: Any, *, log: Log) -> Any | None:
    """Return the task instance's state store (kept between the pokes of a rescheduled try), or None before 3.3.

    ``context["task_state_store"]`` came with Airflow 3.3; without it, a reschedule-mode sensor starts each poke
    afresh.
    """
    store = context.get("task_state_store")
    if store is None:
        _say_once(
            log,
            "task_state_store",
            "No task state store on this Airflow (it needs 3.3 or later): a rescheduled sensor keeps nothing "
            "between pokes.",
        )
    return store


#: Whether Airflow masks a connection's secrets asynchronously: from Airflow 3.3.2 (Task SDK 1.3.2), which brought
#: ``Connection.aextra_dejson``. On 3.2.0 to 3.3.1, ``BaseHook.aget_connection`` exists but masks the secrets (and
#: ``extra_dejson`` the extras) with a blocking call to the supervisor, which must not run on the triggerer's loop;
#: before 3.3.2 these calls therefore run in a worker thread.
_ASYNC_MASKING = hasattr(Connection, "aextra_dejson")


async def aget_connection(conn_id: str) -> Connection:
    """Get a connection without blocking the event loop (in a worker thread before Airflow 3.3.2)."""
    if _ASYNC_MASKING:
        return await BaseHook.aget_connection(conn_id)
    _say_once(
        _LOG,
        "async_masking",
        "Connections are read and their secrets masked in a worker thread on this Airflow: asynchronous masking "
        "in the triggerer needs 3.3.2 or later.",
    )
    connection: Connection = await sync_to_async(BaseHook.get_connection)(conn_id)
    return connection


async def aextra_dejson(conn: Connection) -> dict[str, Any]:
    """Read a connection's extras without blocking the event loop (in a worker thread before Airflow 3.3.2)."""
    if _ASYNC_MASKING:
        extra: dict[str, Any] = await conn.aextra_dejson()
        return extra
    return await sync_to_async(lambda: conn.extra_dejson)()


async def amask_secret(secret: str) -> None:
    """Mask a secret without blocking the event loop (``amask_secret`` from Airflow 3.3.2, else in a thread)."""
    from airflow.sdk import log as sdk_log

    amask = getattr(sdk_log, "amask_secret", None) if _ASYNC_MASKING else None
    if amask is not None:
        await amask(secret)
    else:
        await sync_to_async(sdk_log.mask_secret)(secret)


def _say_once(log: Log | logging.Logger, feature: str, message: str) -> None:
    if feature not in _SAID:
        _SAID.add(feature)
        log.info(message)
