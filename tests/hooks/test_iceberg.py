"""The Iceberg catalog's connection: properties from the extra, the password placed and masked, the embedded default."""

from __future__ import annotations

import json
import logging
import pathlib

import pytest

from genviral_provider.exceptions import GenviralInvalidParameterError
from genviral_provider.hooks import iceberg as hook_module
from genviral_provider.hooks.iceberg import iceberg_catalog_config
from tests.conftest import masked as _masked

LOG = logging.getLogger("tests.iceberg")


def _define(monkeypatch: pytest.MonkeyPatch, conn_id: str, **conn: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "generic", **conn}))


def test_the_extra_gives_the_properties_and_the_password_the_rest_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"type": "rest", "uri": "https://catalog.example/api", "warehouse": "lake"}
    _define(monkeypatch, "lake", login="client-7", password="pw-4f1c9e", extra=extra)
    config = iceberg_catalog_config("lake", log=LOG)
    assert (config.name, config.embedded) == ("lake", False)
    assert config.properties == {**extra, "credential": "client-7:pw-4f1c9e"}
    assert _masked("sent client-7:pw-4f1c9e") == "sent client-7:***"


def test_secret_looking_values_of_the_extra_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"type": "rest", "uri": "https://catalog.example", "s3.secret-access-key": "sk-93af01"}
    _define(monkeypatch, "lake2", extra=extra)
    iceberg_catalog_config("lake2", log=LOG)
    assert "sk-93af01" not in _masked("key sk-93af01")


def test_an_unknown_type_in_the_extra_is_refused_naming_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    _define(monkeypatch, "lake3", extra={"type": "delta"})
    with pytest.raises(GenviralInvalidParameterError, match=r"catalog 'lake3' has catalog type 'delta'"):
        iceberg_catalog_config("lake3", log=LOG)


def test_without_the_connection_the_embedded_catalog_is_announced_once(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setattr(hook_module, "_embedded_logged", set())
    with caplog.at_level(logging.INFO, logger=LOG.name):
        first = iceberg_catalog_config("genviral_iceberg", log=LOG)
        second = iceberg_catalog_config("genviral_iceberg", log=LOG)
    assert first == second and first.embedded
    assert first.properties["uri"] == f"sqlite:///{tmp_path}/genviral_iceberg/catalog.db"
    warehouse = (tmp_path / "genviral_iceberg" / "warehouse").as_uri()
    assert [record.getMessage() for record in caplog.records if "embedded Iceberg catalog" in record.getMessage()] == [
        f"No Airflow connection 'genviral_iceberg': writing to the embedded Iceberg catalog (SQL on sqlite at "
        f"sqlite:///{tmp_path}/genviral_iceberg/catalog.db, warehouse {warehouse}). "
        "Define the connection (its extra: pyiceberg catalog properties) to write to your own catalog."
    ]
