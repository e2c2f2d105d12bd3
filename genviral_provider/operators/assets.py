"""The Asset a posts operator updates by default: its folder before any template, without connection id."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, ObjectStoragePath

from genviral_provider.core.output.locations import location_uri


def default_asset(output_path: str | ObjectStoragePath | None) -> Asset | None:
    """Return the Asset an ``output_path`` updates: its URI up to the first template expression, no connection id.

    ``None`` when that leaves no location (e.g. ``s3://{{ var.value.bucket }}/posts``): pass ``asset=`` then.
    """
    if not output_path:
        return None
    text = str(output_path)
    static = text.split("{{", 1)[0].split("{%", 1)[0]
    if static != text:
        static = static.rsplit("/", 1)[0]  # the last folder complete before the template
    uri = location_uri(static)
    return Asset(uri=uri) if uri is not None else None


def as_list(outlets: Any) -> list[Any]:
    if outlets is None:
        return []
    return list(outlets) if isinstance(outlets, list | tuple) else [outlets]
