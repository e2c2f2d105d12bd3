"""A folder's publish lock: at most one run swaps its files in at a time, on the stores that can promise it.

The lock is a file the store itself refuses to create twice: ``open(path, "xb")``, which is ``O_EXCL`` on a local
disk, a ``PUT`` with ``If-None-Match: *`` on S3 through s3fs (AWS since 2024, MinIO, R2, moto), and a check under
one process's lock in fsspec's memory filesystem. Whether a store keeps that promise is tested, not assumed: some
S3-compatible stores ignore the header and overwrite, and an older s3fs or another fsspec filesystem may accept
mode ``"xb"`` and write anyway. So before taking the lock, a probe creates a file in the run's own staging folder
twice: the store must refuse the second create (``FileExistsError``).

A store that does not refuse it has no lock to offer: the run publishes without one and says so once per task
(per process and store), rather than fall back to check-then-write, which only narrows the race. Two runs
publishing the same folder at that same moment can then leave one's manifest beside the other's files.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from typing import Any, Protocol

from genviral_provider.core.log import Log
from genviral_provider.core.rows import UTC, parse_utc
from genviral_provider.exceptions import GenviralError

PUBLISH_LOCK_NAME = "_publish.lock"
#: Seconds a publish lock is held at most by a live run; an older one was left by a killed run.
PUBLISH_LOCK_STALE_AFTER = 600.0
#: Seconds a run waits for another run's publish before failing (its task retry publishes later).
PUBLISH_LOCK_WAIT = PUBLISH_LOCK_STALE_AFTER + 60.0
PUBLISH_LOCK_POLL = 0.5
#: The stores (fsspec protocols) already warned about in this process: a task warns once.
_WARNED: set[str] = set()


class LockStore(Protocol):
    """The part of an fsspec filesystem the lock uses."""

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        """Open a file."""

    def rm(self, path: str, recursive: bool = False, **kwargs: Any) -> None:
        """Remove a file."""

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """Describe a path (its modification time, when the store knows it)."""


def refuses_second_create(fs: LockStore, probe: str) -> bool:
    """Whether ``fs`` refuses to create ``probe`` exclusively once it exists (the probe is removed again).

    :param probe: a path no one else writes (in the run's own staging folder).
    """
    try:
        with fs.open(probe, "xb") as handle:
            handle.write(b"probe")
    except (ValueError, NotImplementedError, TypeError):  # the filesystem has no exclusive mode at all
        return False
    try:
        with fs.open(probe, "xb") as handle:
            handle.write(b"probe again")
    except FileExistsError:
        return True
    except (ValueError, NotImplementedError, TypeError, OSError):  # refused, but not as "exists": unusable
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            fs.rm(probe)
    return False


def store_name(fs: Any) -> str:
    """Return the store's fsspec protocol, e.g. ``s3`` or ``file``."""
    protocol = getattr(fs, "protocol", None) or type(fs).__name__
    return str(protocol if isinstance(protocol, str) else protocol[0])


class PublishLock:
    """The lock a run holds while it swaps its files into a folder: at most one run publishes at a time.

    Taken by creating the lock file exclusively, once :func:`refuses_second_create` showed the store refuses a
    second exclusive create; else not taken at all, with one warning per task. A lock older than
    :data:`PUBLISH_LOCK_STALE_AFTER` seconds was left by a killed run and is taken over.

    :param fs: the folder's filesystem.
    :param path: the lock file.
    :param token: the run's staging token, written into the lock.
    :param log: where waits, takeovers and a store without exclusive create are reported.
    :param probe: where to test exclusive create (default: beside the lock, named after ``token``).
    """

    def __init__(
        self, fs: LockStore, path: str, token: str, log: Log, *, probe: str | None = None, clock: Any = time.time
    ) -> None:
        self.fs, self.path, self.token, self.log, self.clock = fs, path, token, log, clock
        self.probe = probe or f"{path}.{token}.probe"
        self.held = False

    def __enter__(self) -> PublishLock:
        if not refuses_second_create(self.fs, self.probe):
            self._warn_unlocked()
            return self
        deadline = self.clock() + PUBLISH_LOCK_WAIT
        reported = False
        while not self._try_acquire():
            holder = self._read()
            age = self.clock() - self._acquired_at(holder)
            if age > PUBLISH_LOCK_STALE_AFTER:
                self.log.warning("Taking over the publish lock %s, held for %.0fs by a run that died.", self.path, age)
                self._remove()
                continue
            if self.clock() > deadline:
                raise GenviralError(
                    f"Another run ({holder.get('token') if isinstance(holder, dict) else '?'}) has been publishing "
                    f"to this folder for {age:.0f}s (lock {self.path}); gave up after {PUBLISH_LOCK_WAIT}s. "
                    "The task's retry will publish once it is done."
                )
            if not reported:
                self.log.info("Another run is publishing to the same folder; waiting for it to finish.")
                reported = True
            time.sleep(PUBLISH_LOCK_POLL)
        self.held = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        holder = self._read() if self.held else None
        if isinstance(holder, dict) and holder.get("token") == self.token:
            self._remove()
        self.held = False

    def _warn_unlocked(self) -> None:
        store = store_name(self.fs)
        if store in _WARNED:
            return
        _WARNED.add(store)
        self.log.warning(
            "The %s store did not refuse a second exclusive create of the probe %s, so runs "
            "publishing to the same folder cannot take turns: publishing without a lock. Two runs publishing one "
            "folder at the same moment may leave one's manifest beside the other's files. Run one at a time "
            "(max_active_runs=1, or one pool slot for the task), or write an Iceberg table (docs/iceberg.md), "
            "which commits atomically. Readers listing the folder never see an atomic swap here "
            "(docs/object-storage.md).",
            store,
            self.probe,
        )

    def _try_acquire(self) -> bool:
        content = json.dumps({"token": self.token, "acquired_at": self.clock()}).encode()
        try:
            with self.fs.open(self.path, "xb") as handle:
                handle.write(content)
        except FileExistsError:
            return False
        return True

    def _acquired_at(self, holder: Any) -> float:
        """When the lock was taken: from its content, else (still being written) from the file, else now."""
        if isinstance(holder, dict) and isinstance(holder.get("acquired_at"), int | float):
            return float(holder["acquired_at"])
        try:
            return modified(self.fs.info(self.path)) or self.clock()
        except (OSError, NotImplementedError):
            return float(self.clock())

    def _read(self) -> Any:
        try:
            with self.fs.open(self.path, "rb") as handle:
                return json.loads(handle.read())
        except (FileNotFoundError, ValueError):
            return None

    def _remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self.path)


def modified(info: Mapping[str, Any]) -> float | None:
    """Return a file's modification time (seconds since the epoch) from fsspec's ``info``, if the store says."""
    for name in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(name)
        if isinstance(value, int | float):
            return float(value)
        moment = parse_utc(value, naive=UTC)
        if moment is not None:
            return moment.timestamp()
    return None
