"""OpenLineage for the posts operator: the API window read as input, the dataset written as output.

The output is named at the dataset's root (``…/posts``, or the Iceberg table), not per day, so that lineage graphs
get one node per dataset across runs; the partition a run wrote (``published_date=…``) is in its
``subset`` facet. Imported only when the OpenLineage provider asks an operator for its lineage, so that
``apache-airflow-providers-openlineage`` (and the ``openlineage-python`` it brings) stays optional (the
``openlineage`` extra).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attr
from airflow.providers.common.compat.openlineage.facet import (
    Dataset,
    DatasetFacet,
    OutputDataset,
    OutputStatisticsOutputDatasetFacet,
)
from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.generated.base_subset_dataset import (
    OutputSubsetOutputDatasetFacet,
    Partition,
    PartitionSubsetCondition,
)
from openlineage.client.generated.data_quality_metrics_dataset import DataQualityMetricsDatasetFacet
from openlineage.client.generated.dataset_version_dataset import DatasetVersionDatasetFacet
from openlineage.client.generated.datasource_dataset import DatasourceDatasetFacet
from openlineage.client.generated.schema_dataset import SchemaDatasetFacet, SchemaDatasetFacetFields
from openlineage.client.generated.storage_dataset import StorageDatasetFacet

from genviral_provider.core.api.query import POSTS_PATH
from genviral_provider.core.output.formats import PARQUET_COLUMNS
from genviral_provider.core.output.locations import split_partition

#: The name of the input dataset within the API's namespace: the endpoint the rows come from.
API_DATASET_NAME = POSTS_PATH.lstrip("/")
#: The key of :class:`GenviralWindowDatasetFacet` in the input dataset's facets.
WINDOW_FACET = "genviralWindow"
#: Where the JSON schema of :class:`GenviralWindowDatasetFacet` ships: in the package, beside this module.
WINDOW_FACET_SCHEMA = Path(__file__).with_name("genviral_window_facet.json")
#: OpenLineage's ``fileFormat`` of each output format; its ``storageLayer`` is the table format, or none for files.
FILE_FORMATS = {"jsonl": "json", "parquet": "parquet", "iceberg": "parquet"}


@dataclass(frozen=True)
class PostsLineage:
    """What one run of the operator read and wrote, kept by ``execute()`` for OpenLineage.

    :param base_url: the API's base URL (its host names the input's namespace).
    :param window: the window's instants, ``{"start", "end"}`` in ISO 8601, ``[start, end)``.
    :param api_dates: the first and last API dates requested, ``YYYY-MM-DD``.
    :param api_dates_read: each API date range requested, ``{"start", "end"}``, in order.
    :param platforms: the platform filter, or ``None`` for all.
    :param accounts: the account filter, or ``None`` for all.
    :param row_count: the rows kept (written, or returned through XCom).
    :param output_uri: the folder written, without connection id; ``None`` when nothing was written.
    :param file_count: the data files written.
    :param snapshot_id: the Iceberg snapshot committed, when the output is a table (its dataset's version).
    :param file_format: the operator's ``output_format``.
    :param size_bytes: the data files' size, when known.
    """

    base_url: str
    window: dict[str, str]
    api_dates: tuple[str, str]
    api_dates_read: list[dict[str, str]]
    platforms: list[str] | None
    accounts: list[str] | None
    row_count: int
    output_uri: str | None = None
    file_count: int = 0
    snapshot_id: int | None = None
    file_format: str = "jsonl"
    size_bytes: int | None = None


@attr.define
class GenviralWindowDatasetFacet(DatasetFacet):  # type: ignore[misc,unused-ignore]
    """The part of the Genviral API a run read: the window of publication times and the filters.

    Its JSON schema ships in the package (``genviral_window_facet.json``); ``_schemaURL`` names it.

    :param start: the window's first instant (ISO 8601, UTC).
    :param end: the first instant after the window.
    :param apiStartDate: the first API date requested.
    :param apiEndDate: the last API date requested.
    :param apiDatesRead: each date range requested, ``{"start", "end"}``, in order.
    :param platforms: only these platforms (``None``: all).
    :param accounts: only these analytics target ids (``None``: all).
    """

    start: str
    end: str
    apiStartDate: str  # camelCase, as OpenLineage names facet fields
    apiEndDate: str
    apiDatesRead: list[dict[str, str]] = attr.field(factory=list)
    platforms: list[str] | None = None
    accounts: list[str] | None = None

    @staticmethod
    def _get_schema() -> str:
        return str(window_facet_schema()["$id"])


def operator_lineage(lineage: PostsLineage) -> Any:
    """Return the ``OperatorLineage`` of a run: the API window as input, the written folder (if any) as output."""
    outputs = [] if lineage.output_uri is None else [_output_dataset(lineage)]
    return OperatorLineage(inputs=[_input_dataset(lineage)], outputs=outputs)


def _input_dataset(lineage: PostsLineage) -> Any:
    window = GenviralWindowDatasetFacet(
        start=lineage.window["start"],
        end=lineage.window["end"],
        apiStartDate=lineage.api_dates[0],
        apiEndDate=lineage.api_dates[1],
        apiDatesRead=lineage.api_dates_read,
        platforms=lineage.platforms,
        accounts=lineage.accounts,
    )
    namespace = f"genviral://{urlsplit(lineage.base_url).netloc}"
    return Dataset(namespace=namespace, name=API_DATASET_NAME, facets={WINDOW_FACET: window})


def _output_dataset(lineage: PostsLineage) -> Any:
    assert lineage.output_uri is not None
    root, partition = split_partition(lineage.output_uri)
    namespace, name = dataset_location(root)
    table = lineage.file_format == "iceberg"
    facets: dict[str, Any] = {
        "datasource": DatasourceDatasetFacet(name=namespace, uri=namespace),
        "storage": StorageDatasetFacet(
            storageLayer="iceberg" if table else "files", fileFormat=FILE_FORMATS.get(lineage.file_format)
        ),
        "dataQualityMetrics": DataQualityMetricsDatasetFacet(
            columnMetrics={}, rowCount=lineage.row_count, bytes=lineage.size_bytes, fileCount=lineage.file_count
        ),
    }
    if lineage.file_format in ("parquet", "iceberg"):  # the flat typed columns (JSON Lines keeps the API's rows)
        fields = [SchemaDatasetFacetFields(name=column, type=kind) for column, kind in PARQUET_COLUMNS]
        facets["schema"] = SchemaDatasetFacet(fields=fields)
    if lineage.snapshot_id is not None:
        facets["version"] = DatasetVersionDatasetFacet(datasetVersion=str(lineage.snapshot_id))
    output_facets: dict[str, Any] = {
        "outputStatistics": OutputStatisticsOutputDatasetFacet(
            rowCount=lineage.row_count, fileCount=lineage.file_count, size=lineage.size_bytes
        )
    }
    if partition:
        condition = PartitionSubsetCondition(partitions=[Partition(dimensions=partition)])
        output_facets["subset"] = OutputSubsetOutputDatasetFacet(outputCondition=condition)
    return OutputDataset(namespace=namespace, name=name, facets=facets, outputFacets=output_facets)


@cache
def window_facet_schema() -> dict[str, Any]:
    """The JSON schema of the ``genviralWindow`` facet, as shipped in the package."""
    schema: dict[str, Any] = json.loads(WINDOW_FACET_SCHEMA.read_text(encoding="utf-8"))
    return schema


def dataset_location(uri: str) -> tuple[str, str]:
    """Return the OpenLineage ``(namespace, name)`` of a storage URI, as Airflow's providers name them.

    ``file:///data/posts`` gives ``("file", "/data/posts")``; ``s3://bucket/posts/d`` gives
    ``("s3://bucket", "posts/d")``.
    """
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return (f"file://{parts.netloc}" if parts.netloc else "file"), parts.path
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")
