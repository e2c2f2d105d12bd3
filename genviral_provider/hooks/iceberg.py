"""The Iceberg catalog of ``output_format="iceberg"``, from an Airflow connection or, without one, the embedded one.

The connection's extra holds pyiceberg's catalog properties (``{"type": "rest", "uri": ..., "warehouse": ...}``);
its password, when set, goes where the catalog type reads its secret (see
:func:`~genviral_provider.core.output.iceberg.catalog.catalog_config`) and is masked in the task's logs, as are
the extra's secret-looking values. Without that connection, the embedded catalog: SQL on sqlite under
``$AIRFLOW_HOME/genviral_iceberg/``, its warehouse beside it, so that a first run needs nothing set up.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk.log import mask_secret

from genviral_provider.core.log import Log
from genviral_provider.core.output.iceberg.catalog import CatalogConfig, catalog_config, embedded_config
from genviral_provider.version_compat import AirflowNotFoundException, BaseHook

#: The connection the catalog is read from when ``catalog_conn_id`` is not given.
DEFAULT_CATALOG_CONN_ID = "genviral_iceberg"

_embedded_logged: set[str] = set()  # the embedded catalogs this process already announced


def iceberg_catalog_config(catalog_conn_id: str, *, log: Log) -> CatalogConfig:
    """Return the catalog of a connection, or the embedded catalog when no such connection exists.

    :param catalog_conn_id: the Airflow connection holding the catalog's properties in its extra.
    :param log: where the embedded catalog is announced (once per process and location).
    :raises GenviralInvalidParameterError: for an unknown catalog type or a password it has no place for.
    """
    try:
        conn = BaseHook.get_connection(catalog_conn_id)
    except AirflowNotFoundException:
        return _embedded(catalog_conn_id, log)
    if conn.password:
        mask_secret(conn.password)
    config = catalog_config(catalog_conn_id, conn.extra_dejson, login=conn.login, password=conn.password)
    for secret in config.secrets:
        mask_secret(secret)
    return config


def _embedded(catalog_conn_id: str, log: Log) -> CatalogConfig:
    home = os.environ.get("AIRFLOW_HOME") or str(Path("~/airflow").expanduser())
    config = embedded_config(home, name=catalog_conn_id)
    if config.properties["uri"] not in _embedded_logged:
        _embedded_logged.add(config.properties["uri"])
        log.info(
            "No Airflow connection %r: writing to the embedded Iceberg catalog (SQL on sqlite at %s, warehouse %s). "
            "Define the connection (its extra: pyiceberg catalog properties) to write to your own catalog.",
            catalog_conn_id,
            config.properties["uri"],
            config.properties["warehouse"],
        )
    return config
