"""OpenLineage for the posts operator: the API window read as input, the folder written as output.

Imported only when the OpenLineage provider asks an operator for its lineage, so that
``apache-airflow-providers-openlineage`` stays optional (the ``openlineage`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass
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

from genviral_provider.core.api.query import POSTS_PATH

#: The name of the input dataset within the API's namespace: the endpoint the rows come from.
API_DATASET_NAME = POSTS_PATH.lstrip("/")
#: The key of :class:`GenviralWindowDatasetFacet` in the input dataset's facets.
WINDOW_FACET = "genviralWindow"


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


@attr.define
class GenviralWindowDatasetFacet(DatasetFacet):  # type: ignore[misc,unused-ignore]
    """The part of the Genviral API a run read: the window of publication times and the filters.

    Its ``_schemaURL`` is OpenLineage's generic ``DatasetFacet`` (this project publishes no schema of its own).

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


@attr.define
class DatasetVersionFacet(DatasetFacet):  # type: ignore[misc,unused-ignore]
    """OpenLineage's standard ``version`` facet: the Iceberg snapshot a run committed.

    Defined here, as the facets the common-compat provider re-exports do not include it.

    :param datasetVersion: the snapshot id.
    """

    datasetVersion: str  # camelCase, as OpenLineage names facet fields

    @staticmethod
    def _get_schema() -> str:
        return (
            "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
        )


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
    namespace, name = dataset_location(lineage.output_uri)
    statistics = OutputStatisticsOutputDatasetFacet(rowCount=lineage.row_count, fileCount=lineage.file_count)
    facets: dict[str, Any] = {}
    if lineage.snapshot_id is not None:
        facets["version"] = DatasetVersionFacet(datasetVersion=str(lineage.snapshot_id))
    return OutputDataset(namespace=namespace, name=name, facets=facets, outputFacets={"outputStatistics": statistics})


def dataset_location(uri: str) -> tuple[str, str]:
    """Return the OpenLineage ``(namespace, name)`` of a storage URI, as Airflow's providers name them.

    ``file:///data/posts`` gives ``("file", "/data/posts")``; ``s3://bucket/posts/d`` gives
    ``("s3://bucket", "posts/d")``.
    """
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return (f"file://{parts.netloc}" if parts.netloc else "file"), parts.path
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")
