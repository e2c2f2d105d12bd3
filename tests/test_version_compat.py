"""The version gates: a feature the running Airflow has is used; one it lacks is said once, naming the version."""

from __future__ import annotations

import logging

import pytest
from airflow.sdk import Asset
from airflow.sdk.definitions.asset import AssetUniqueKey
from airflow.sdk.execution_time.context import OutletEventAccessor

from genviral_provider import version_compat
from genviral_provider.version_compat import add_partition, airflow_at_least, task_state_store

LOG = logging.getLogger("tests.version_compat")


@pytest.fixture(autouse=True)
def nothing_said_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(version_compat, "_SAID", set())


def _event() -> OutletEventAccessor:
    return OutletEventAccessor(key=AssetUniqueKey.from_asset(Asset(name="posts", uri="file:///lake/posts")))


def test_release_numbers_ignore_pre_release_and_local_parts() -> None:
    assert version_compat._release("3.1.8rc1") == (3, 1, 8)
    assert version_compat._release("3.3.2+astro.1") == (3, 3, 2)
    assert airflow_at_least("3.0") and not airflow_at_least("99.0")


def test_a_partition_key_goes_on_the_event_or_is_said_once_to_need_3_3(caplog: pytest.LogCaptureFixture) -> None:
    event = _event()
    with caplog.at_level(logging.INFO, logger=LOG.name):
        add_partition(event, "2026-01-05", log=LOG)
        add_partition(event, "2026-01-06", log=LOG)
        add_partition(event, None, log=LOG)
    said = [r.getMessage() for r in caplog.records]
    if airflow_at_least("3.3"):
        assert event.partition_keys == {"2026-01-05", "2026-01-06"}
        assert said == []
    else:
        assert not hasattr(event, "partition_keys")
        assert len(said) == 1 and "needs 3.3 or later" in said[0], said


def test_no_task_state_store_is_said_once_and_a_present_one_is_returned(caplog: pytest.LogCaptureFixture) -> None:
    store = object()
    with caplog.at_level(logging.INFO, logger=LOG.name):
        assert task_state_store({"task_state_store": store}, log=LOG) is store
        assert task_state_store({}, log=LOG) is None
        assert task_state_store({}, log=LOG) is None
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "task state store" in said[0] and "3.3 or later" in said[0], said
