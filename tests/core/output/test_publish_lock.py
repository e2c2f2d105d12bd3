"""The publish lock: exclusive create where the store refuses a second one, and a warning, once, where it does not.

Real files on the local disk (``O_EXCL``) and fsspec's memory filesystem. The stores that cannot exist here, an
S3-compatible store that ignores ``If-None-Match`` and an fsspec filesystem with no ``"xb"`` mode, are the local
filesystem with that one behaviour changed. A real S3 server's conditional PUT is checked by ``make e2e``
(phase ``lock``), as moto is not installed beside these tests.
"""

from __future__ import annotations

import json
import logging
import pathlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from genviral_provider.core.output import publish_lock
from genviral_provider.core.output.folder import MANIFEST_NAME, OutputSpec, StagedOutput
from genviral_provider.core.output.publish_lock import PublishLock, refuses_second_create

LOG = logging.getLogger("test_publish_lock")


class OverwritingFileSystem(LocalFileSystem):
    """A store that accepts mode "xb" and overwrites anyway, as S3-compatible stores ignoring If-None-Match do."""

    protocol = ("overwriting",)

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        return super()._open(path, mode.replace("x", "w"), *args, **kwargs)


class NoExclusiveModeFileSystem(LocalFileSystem):
    """A store whose fsspec filesystem has no "xb" mode at all (older s3fs, many others)."""

    protocol = ("noexclusive",)

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        if "x" in mode:
            raise NotImplementedError(f"File mode not supported: {mode}")
        return super()._open(path, mode, *args, **kwargs)


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test is a task process of its own: nothing warned yet."""
    monkeypatch.setattr(publish_lock, "_WARNED", set())
    yield


@pytest.mark.parametrize(
    ("fs", "refuses"),
    [(LocalFileSystem(), True), (MemoryFileSystem(), True), (OverwritingFileSystem(), False)],
    ids=["local", "memory", "overwriting"],
)
def test_the_probe_tells_stores_that_refuse_a_second_create(tmp_path: pathlib.Path, fs: Any, refuses: bool) -> None:
    probe = str(tmp_path / "probe") if not isinstance(fs, MemoryFileSystem) else f"/{tmp_path.name}/probe"
    if isinstance(fs, MemoryFileSystem):
        fs.makedirs(f"/{tmp_path.name}", exist_ok=True)

    assert refuses_second_create(fs, probe) is refuses
    assert not fs.exists(probe)  # the probe is removed again


def test_the_probe_says_no_for_a_filesystem_without_exclusive_mode(tmp_path: pathlib.Path) -> None:
    assert refuses_second_create(NoExclusiveModeFileSystem(), str(tmp_path / "probe")) is False
    assert not (tmp_path / "probe").exists()


def test_the_lock_is_an_exclusively_created_file_holding_the_token(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "_publish.lock"
    with PublishLock(LocalFileSystem(), str(path), "run-a", LOG) as lock:
        assert lock.held
        assert json.loads(path.read_bytes())["token"] == "run-a"
        assert not PublishLock(LocalFileSystem(), str(path), "run-b", LOG)._try_acquire()
        assert json.loads(path.read_bytes())["token"] == "run-a"  # the second create changed nothing
    assert not path.exists()


def test_a_second_run_waits_until_the_first_releases(tmp_path: pathlib.Path) -> None:
    path, order = str(tmp_path / "_publish.lock"), []
    first = PublishLock(LocalFileSystem(), path, "run-a", LOG)
    first.__enter__()

    def second() -> None:
        with PublishLock(LocalFileSystem(), path, "run-b", LOG):
            order.append("b holds")

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(1.2)  # two polls of the waiting run
    assert thread.is_alive() and order == []  # still waiting: its exclusive creates were refused
    order.append("a releases")
    first.__exit__(None, None, None)
    thread.join(timeout=10)
    assert order == ["a releases", "b holds"]


def test_a_store_without_exclusive_create_publishes_unlocked_and_warns_once(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    fs, folder = OverwritingFileSystem(), str(tmp_path / "posts")
    caplog.set_level(logging.WARNING, logger=LOG.name)

    for label in ("first", "second"):
        with StagedOutput(fs, folder, OutputSpec(), log=LOG) as staged:
            staged.write([{"id": label, "publishedAt": "2026-01-05T10:00:00Z"}])
            staged.publish({"run_label": label})

    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "overwriting store did not refuse a second exclusive create" in warnings[0]
    assert "publishing without a lock" in warnings[0] and "docs/iceberg.md" in warnings[0]
    assert json.loads((tmp_path / "posts" / MANIFEST_NAME).read_text())["run_label"] == "second"
    assert not (tmp_path / "posts" / "_staging").exists()  # no lock file, no probe left behind


def test_a_lock_without_exclusive_create_is_not_held_and_leaves_no_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "_publish.lock"
    with PublishLock(NoExclusiveModeFileSystem(), str(path), "run-a", LOG) as lock:
        assert not lock.held
        assert not path.exists()
    assert list(tmp_path.iterdir()) == []
