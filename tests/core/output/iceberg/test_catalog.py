"""Catalog properties: types, where a password goes, redaction, the embedded catalog, unreachable catalogs."""

from __future__ import annotations

import pathlib
import socket

import pytest

from genviral_provider.core.output.iceberg.catalog import (
    catalog_config,
    embedded_config,
    open_catalog,
    table_identifier,
)
from genviral_provider.exceptions import GenviralIcebergError, GenviralInvalidParameterError
from tests.conftest import needs_iceberg

pytestmark = needs_iceberg


def test_an_unknown_catalog_type_is_refused_naming_it_and_the_allowed_ones() -> None:
    with pytest.raises(GenviralInvalidParameterError, match=r"catalog type 'nessie'.*allowed are rest, sql"):
        catalog_config("c", {"type": "nessie"})


def test_a_catalog_without_type_or_inferable_uri_is_refused() -> None:
    with pytest.raises(GenviralInvalidParameterError, match="catalog type None"):
        catalog_config("c", {"warehouse": "s3://b/w"})


def test_a_rest_uri_gives_the_rest_type_and_the_password_its_credential() -> None:
    config = catalog_config("c", {"uri": "https://cat.example"}, login="client", password="s3cr3t")
    assert config.catalog_type == "rest"
    assert config.properties["credential"] == "client:s3cr3t"
    assert "s3cr3t" not in config.describe() and "s3cr3t" in config.secrets


def test_a_sql_password_goes_into_the_database_uri_and_is_redacted() -> None:
    config = catalog_config("c", {"type": "sql", "uri": "postgresql+psycopg://u@db:5432/ice"}, password="p@ss/w")
    assert config.properties["uri"] == "postgresql+psycopg://u:p%40ss%2Fw@db:5432/ice"
    assert config.redacted(config.properties["uri"]) == "postgresql+psycopg://u:***@db:5432/ice"


def test_a_password_for_a_catalog_type_without_secret_is_refused() -> None:
    with pytest.raises(GenviralInvalidParameterError, match="type 'hive' has a password"):
        catalog_config("c", {"type": "hive", "uri": "thrift://h:9083"}, password="x")


def test_secret_properties_in_the_extra_are_redacted() -> None:
    config = catalog_config("c", {"type": "rest", "uri": "https://x", "token": "tok123"})
    assert config.redacted("sent tok123") == "sent ***"


@pytest.mark.parametrize("table", ["posts", ".posts", "genviral.", "a..posts", "", None, 3])
def test_a_table_must_be_namespace_dot_table(table: object) -> None:
    with pytest.raises(GenviralInvalidParameterError, match=r"is not '<namespace>\.<table>'"):
        table_identifier(table)


def test_a_namespace_may_have_levels() -> None:
    assert table_identifier(" analytics.genviral.posts ") == ("analytics.genviral", "posts")


def test_the_embedded_catalog_lives_under_home_and_is_created_on_open(tmp_path: pathlib.Path) -> None:
    config = embedded_config(tmp_path, name="genviral_iceberg")
    assert config.embedded and config.properties["uri"] == f"sqlite:///{tmp_path}/genviral_iceberg/catalog.db"
    assert config.properties["warehouse"] == (tmp_path / "genviral_iceberg" / "warehouse").as_uri()
    open_catalog(config).create_namespace("genviral")
    assert (tmp_path / "genviral_iceberg" / "catalog.db").is_file()


def test_an_unreachable_catalog_fails_naming_it_without_its_secret() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    config = catalog_config(
        "lake", {"type": "rest", "uri": uri, "oauth2-server-uri": f"{uri}/v1/oauth/tokens"}, password="hunter2"
    )
    with pytest.raises(
        GenviralIcebergError, match=rf"'lake' \(rest at http://127.0.0.1:{port}\) cannot be reached"
    ) as raised:
        open_catalog(config)
    assert "hunter2" not in str(raised.value)
