"""Storage locations as users write them and as Assets and lineage name them."""

from __future__ import annotations

import posixpath
import re
from urllib.parse import urlsplit, urlunsplit


def normalised_location(location: str) -> str:
    """Return a location with its path's ``.`` and ``..`` segments and repeated slashes resolved.

    ``file:///data/posts/../other`` becomes ``file:///data/other``, so that checks on the path (is it inside
    the asset's folder?) see the folder that will be written. A relative path stays relative.
    """
    text = location.strip()
    parts = urlsplit(text)
    if not parts.path:
        return text
    path = posixpath.normpath(parts.path)
    if path.startswith("//"):  # normpath keeps a leading double slash (POSIX): it means nothing here
        path = "/" + path.lstrip("/")
    if parts.scheme:
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))
    return path


def location_uri(location: str) -> str | None:
    """Return the URI of a storage location without the connection id, or ``None`` if it names no location.

    ``s3://aws_default@bucket/posts/`` becomes ``s3://bucket/posts`` (the connection id is how Airflow reaches
    the bucket, not part of its name); ``/data/posts`` becomes ``file:///data/posts``. This is the URI of the
    output's Asset and lineage. Relative local paths name no location (workers' directories differ).
    """
    parts = urlsplit(location.strip())
    path = parts.path.rstrip("/")
    if parts.scheme in ("", "file", "local"):
        if parts.netloc or not path.startswith("/"):
            return None
        return f"file://{path}"
    host = parts.netloc.rpartition("@")[2]
    if not host or parts.query or parts.fragment:
        return None
    return f"{parts.scheme}://{host}{path}"


#: A Hive-style partition folder at the end of a path: ``published_date=2026-01-05``.
_PARTITION = re.compile(r"/([A-Za-z_][A-Za-z0-9_]*)=([^/]*)$")


def split_partition(uri: str) -> tuple[str, dict[str, str]]:
    """Split a folder URI into its dataset root and the Hive-style partition folders at its end.

    ``…/posts/published_date=2026-01-05`` gives ``("…/posts", {"published_date": "2026-01-05"})``.
    """
    root, partition = uri.rstrip("/"), dict[str, str]()
    while (match := _PARTITION.search(root)) is not None:
        partition = {match.group(1): match.group(2), **partition}
        root = root[: match.start()]
    return root, partition


def partition_key(uri: str) -> str | None:
    """The partition key of a folder for Asset events: its one partition value, or ``k=v/k=v`` for several.

    ``…/posts/published_date=2026-01-05`` gives ``2026-01-05``; a folder without partition folders gives ``None``.
    """
    _, partition = split_partition(uri)
    if len(partition) == 1:
        return next(iter(partition.values()))
    return "/".join(f"{key}={value}" for key, value in partition.items()) or None
