"""The two sides of every exactness check: the sandbox's posts (the truth) and what landed in S3.

Both are read without the provider: plain HTTP against the sandbox's documented API, and boto3 against the
S3-compatible server, so a bug in the provider cannot hide itself in the check.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3
import httpx

POSTS_PATH = "/api/partner/v1/analytics/summary/posts"
DAY_FOLDER = re.compile(r"published_date=(\d{4}-\d{2}-\d{2})$")
DATA_FILE = re.compile(r"part-\d{5}\.(?:jsonl|jsonl\.gz)$")
MANIFEST = "_manifest.json"
STAGING = "_staging"

Row = dict[str, Any]


def published_day(row: Row) -> dt.date:
    """Return the UTC day of a row's ``publishedAt``."""
    return dt.datetime.fromisoformat(str(row["publishedAt"]).replace("Z", "+00:00")).astimezone(dt.timezone.utc).date()


def days_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """Return every day from ``first`` to ``last``, both included."""
    return [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]


class Sandbox:
    """The sandbox API: posts through the documented endpoint with the key, faults and stats through admin paths."""

    def __init__(self, url: str, api_key: str) -> None:
        self.url = url
        self._api = httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {api_key}"})
        self._admin = httpx.Client(base_url=url, timeout=30)

    def posts_on(self, day: dt.date) -> list[Row]:
        """Return every post published on a UTC day (paged; the sandbox must have no faults set)."""
        rows: list[Row] = []
        while True:
            params = {"start": day.isoformat(), "end": day.isoformat(), "sortBy": "published_at"}
            params |= {"sortOrder": "asc", "limit": "100", "offset": str(len(rows))}
            response = self._api.get(POSTS_PATH, params=params)
            response.raise_for_status()
            data = response.json()["data"]
            rows.extend(data["posts"])
            if not data["hasMore"] or not data["posts"]:
                break
        return [row for row in rows if published_day(row) == day]

    def posts_by_day(self, days: Iterable[dt.date]) -> dict[dt.date, list[Row]]:
        """Return the posts of each day."""
        return {day: self.posts_on(day) for day in days}

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        """Change fault settings (see ``POST /_sandbox/faults``); return them all."""
        return dict(self._admin_call("POST", "/_sandbox/faults", settings))

    def reset(self) -> None:
        """Clear faults and request statistics."""
        self._admin_call("POST", "/_sandbox/reset", {})

    def stats(self) -> dict[str, Any]:
        """Return the request statistics."""
        return dict(self._admin_call("GET", "/_sandbox/stats", None))

    def lag_targets(self, last_refreshed_at: dt.datetime) -> None:
        """Make every target's cache lag: its posts published after ``last_refreshed_at`` are not served yet."""
        self._admin_call("POST", "/_sandbox/targets", {"last_refreshed_at": last_refreshed_at.isoformat()})

    def apply_settings(self, **settings: Any) -> dict[str, Any]:
        """Change settings (see ``POST /_sandbox/settings``, e.g. ``refresh_seconds``); return them all."""
        return dict(self._admin_call("POST", "/_sandbox/settings", settings))

    def refreshes(self) -> dict[str, Any]:
        """Return the refreshes made (``refreshes``) and the credits left (``credits``)."""
        return dict(self._admin_call("GET", "/_sandbox/refreshes", None))

    def insert(self, rows: list[Row]) -> list[Row]:
        """Insert (partial) rows; return them completed."""
        return list(self._admin_call("POST", "/_sandbox/posts", rows)["posts"])

    def _admin_call(self, method: str, path: str, body: Any) -> Any:
        response = self._admin.request(method, path, json=body) if body is not None else self._admin.get(path)
        response.raise_for_status()
        return response.json()["data"]


@dataclass
class DayFolder:
    """One ``published_date=`` folder as found in S3."""

    day: dt.date
    manifest: dict[str, Any] | None = None
    data_files: dict[str, list[Row]] = field(default_factory=dict)
    other_keys: list[str] = field(default_factory=list)

    @property
    def rows(self) -> list[Row]:
        """Every row of every data file, in file order."""
        return [row for name in sorted(self.data_files) for row in self.data_files[name]]


@dataclass
class Listing:
    """Everything under the output base: day folders, staging leftovers, and keys that fit nowhere."""

    folders: dict[dt.date, DayFolder]
    staging_keys: list[str]
    stray_keys: list[str]
    keys: dict[str, str]  # key -> ETag, to tell whether objects were rewritten


class S3Output:
    """Reads the DAGs' output under ``s3://<bucket>/<prefix>`` with boto3."""

    def __init__(self, endpoint_url: str, bucket: str, prefix: str) -> None:
        self.endpoint_url = endpoint_url
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="e2e",
            aws_secret_access_key="e2e-secret",
        )

    def create_bucket(self) -> None:
        """Create the bucket."""
        self.client.create_bucket(Bucket=self.bucket)

    def keys(self, under: str = "") -> dict[str, str]:
        """Return key -> ETag of every object under ``<prefix>/<under>``."""
        found: dict[str, str] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/{under}"):
            for item in page.get("Contents", []):
                found[item["Key"]] = item["ETag"]
        return found

    def read(self, key: str) -> bytes:
        """Return an object's bytes."""
        return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def read_jsonl(self, key: str) -> list[Row]:
        """Return the rows of a JSON Lines object (gzip when its name ends in ``.gz``)."""
        body = self.read(key)
        text = (gzip.decompress(body) if key.endswith(".gz") else body).decode("utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def posts_listing(self) -> Listing:
        """Read every object under ``<prefix>/posts/``."""
        keys = self.keys("posts/")
        folders: dict[dt.date, DayFolder] = {}
        staging: list[str] = []
        stray: list[str] = []
        by_folder: dict[str, list[str]] = defaultdict(list)
        for key in sorted(keys):
            relative = key[len(self.prefix) + len("/posts/") :]
            folder = relative.partition("/")[0]
            (staging if STAGING in key.split("/") else by_folder[folder]).append(key)
        for folder, folder_keys in by_folder.items():
            match = DAY_FOLDER.fullmatch(folder)
            if match is None:
                stray.extend(folder_keys)
                continue
            folders[dt.date.fromisoformat(match.group(1))] = self._day_folder(
                dt.date.fromisoformat(match.group(1)), folder_keys
            )
        return Listing(folders=folders, staging_keys=staging, stray_keys=stray, keys=keys)

    def _day_folder(self, day: dt.date, keys: list[str]) -> DayFolder:
        folder = DayFolder(day=day)
        for key in keys:
            name = key.rsplit("/", 1)[-1]
            if name == MANIFEST:
                folder.manifest = json.loads(self.read(key))
            elif DATA_FILE.fullmatch(name):
                folder.data_files[name] = self.read_jsonl(key)
            else:
                folder.other_keys.append(key)
        return folder
