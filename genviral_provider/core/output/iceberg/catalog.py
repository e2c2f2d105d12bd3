"""An Iceberg catalog from plain pyiceberg properties: checked, opened and probed before any API request.

The properties are pyiceberg's (``type``, ``uri``, ``warehouse``, ``credential``, ``s3.*`` ...); a secret given
apart (an Airflow connection's password) goes where its catalog type reads one. With no properties at all, the
embedded catalog: SQL on sqlite under ``<home>/genviral_iceberg/``, its warehouse a folder beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from genviral_provider.exceptions import GenviralIcebergError, GenviralInvalidParameterError

#: The catalog types pyiceberg knows (``pyiceberg.catalog.CatalogType``), as the ``type`` property names them.
CATALOG_TYPES = ("rest", "sql", "glue", "hive", "dynamodb", "bigquery", "in-memory")
#: Where each catalog type reads a secret; ``sql`` has its database password in ``uri``.
SECRET_PROPERTIES = {
    "rest": "credential",
    "glue": "glue.secret-access-key",
    "dynamodb": "dynamodb.secret-access-key",
}
#: The folder of the embedded catalog, under the home folder given (Airflow's ``AIRFLOW_HOME``).
EMBEDDED_FOLDER = "genviral_iceberg"


@dataclass(frozen=True)
class CatalogConfig:
    """A catalog's name and properties, and the secret values in them (to mask, and to redact from errors).

    :param name: the catalog's name (the connection id): it names the table's Asset, ``iceberg://<name>/<table>``.
    :param properties: pyiceberg's catalog properties.
    :param secrets: the values in ``properties`` never to show.
    :param embedded: whether this is the embedded sqlite catalog.
    """

    name: str
    properties: Mapping[str, str]
    secrets: Sequence[str] = field(default_factory=tuple)
    embedded: bool = False

    @property
    def catalog_type(self) -> str:
        """Return the catalog's type, as pyiceberg infers it when ``type`` is not given."""
        given = self.properties.get("type")
        uri = str(self.properties.get("uri", ""))
        return given or ("rest" if uri.startswith("http") else "hive" if uri.startswith("thrift") else "")

    def describe(self) -> str:
        """Return ``'name' (type at uri)`` with every secret redacted."""
        where = self.properties.get("uri") or self.properties.get("warehouse") or "no uri"
        return f"{self.name!r} ({self.catalog_type or 'no type'} at {self.redacted(str(where))})"

    def redacted(self, text: str) -> str:
        """Return ``text`` with every secret replaced by ``***``."""
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***").replace(quote(secret, safe=""), "***")
        return text


def catalog_config(
    name: str, properties: Mapping[str, Any], *, login: str | None = None, password: str | None = None
) -> CatalogConfig:
    """Return a catalog's config from its properties, with ``password`` (and ``login``) where its type reads them.

    ``rest``: ``credential`` = ``login:password`` (OAuth2 client credentials), or the password alone. ``glue``,
    ``dynamodb``: the secret access key (``login``: the access key id). ``sql``: the password of ``uri``'s user.

    :raises GenviralInvalidParameterError: for an unknown catalog type, or a password its type has no place for.
    """
    config = CatalogConfig(name, {key: str(value) for key, value in properties.items()})
    kind = config.catalog_type
    if "py-catalog-impl" not in config.properties and kind not in CATALOG_TYPES:
        raise GenviralInvalidParameterError(
            f"Iceberg catalog {name!r} has catalog type {kind or None!r}: allowed are {', '.join(CATALOG_TYPES)} "
            "(the 'type' property of the connection's extra), or a 'py-catalog-impl' class."
        )
    secrets = [value for key, value in config.properties.items() if _is_secret(key)]
    if not password:
        return CatalogConfig(name, config.properties, tuple(secrets))
    resolved = dict(config.properties)
    if kind == "sql":
        resolved["uri"] = _with_password(resolved.get("uri", ""), login, password)
    elif kind in SECRET_PROPERTIES:
        resolved[SECRET_PROPERTIES[kind]] = f"{login}:{password}" if login and kind == "rest" else password
        if login and kind != "rest":
            resolved[f"{kind}.access-key-id"] = login
    else:
        raise GenviralInvalidParameterError(
            f"Iceberg catalog {name!r} of type {kind!r} has a password, but that catalog type reads no secret: "
            "put its settings in the connection's extra and leave the password empty."
        )
    return CatalogConfig(name, resolved, (*secrets, password))


def _is_secret(key: str) -> bool:
    return any(word in key.lower() for word in ("secret", "credential", "token", "password"))


def _with_password(uri: str, login: str | None, password: str) -> str:
    parts = urlsplit(uri)
    if not parts.hostname:
        raise GenviralInvalidParameterError(
            f"Iceberg SQL catalog uri {uri!r} names no database host for the connection's password: give e.g. "
            "'postgresql+psycopg://user@host/db' in the extra's 'uri'."
        )
    user = quote(login or parts.username or "", safe="")
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, f"{user}:{quote(password, safe='')}@{host}", parts.path, parts.query, ""))


def embedded_config(home: str | Path, *, name: str) -> CatalogConfig:
    """Return the embedded catalog under ``<home>/genviral_iceberg/``: ``catalog.db`` (sqlite), ``warehouse/``."""
    folder = Path(home).resolve() / EMBEDDED_FOLDER
    properties = {
        "type": "sql",
        "uri": f"sqlite:///{folder / 'catalog.db'}",
        "warehouse": (folder / "warehouse").as_uri(),
    }
    return CatalogConfig(name, properties, (), embedded=True)


def table_identifier(table: Any) -> tuple[str, str]:
    """Return ``(namespace, table)`` of ``namespace.table`` (the namespace may have levels: ``a.b.posts``).

    :raises GenviralInvalidParameterError: for anything else, naming the value.
    """
    text = table.strip() if isinstance(table, str) else ""
    namespace, _, name = text.rpartition(".")
    if not namespace or not name or any(not part.strip() for part in namespace.split(".")):
        raise GenviralInvalidParameterError(
            f"table {table!r} is not '<namespace>.<table>': give e.g. table='genviral.posts' (the namespace is "
            "created on first write)."
        )
    return namespace, name


def require_pyiceberg() -> None:
    """Check that the ``iceberg`` extra is installed.

    :raises GenviralInvalidParameterError: naming what is missing and the extra to install.
    """
    for module in ("pyiceberg", "pyarrow", "pyiceberg_core"):
        try:
            __import__(module)
        except ImportError:
            raise GenviralInvalidParameterError(
                f"output_format='iceberg' needs {module.replace('_', '-')}: "
                "pip install 'airflow-provider-genviral[iceberg]'."
            ) from None


def open_catalog(config: CatalogConfig) -> Any:
    """Open the catalog and list its namespaces once, so that an unreachable catalog fails now.

    :raises GenviralIcebergError: when the catalog cannot be opened or reached, naming it (secrets redacted).
    """
    require_pyiceberg()
    from pyiceberg.catalog import load_catalog

    uri = str(config.properties.get("uri", ""))
    if config.catalog_type == "sql" and uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)  # sqlite makes no folders
    try:
        catalog = load_catalog(config.name, **config.properties)
        catalog.list_namespaces()
    except ImportError as error:
        raise GenviralInvalidParameterError(
            f"Iceberg catalog {config.describe()} needs a module that is not installed: {error}. Install "
            "pyiceberg's extra for that catalog type (e.g. pyiceberg[sql-postgres], pyiceberg[glue])."
        ) from None
    except Exception as error:
        raise GenviralIcebergError(
            f"Iceberg catalog {config.describe()} cannot be reached: {type(error).__name__}: "
            f"{config.redacted(str(error))[:500]}. Nothing was read from the API nor committed."
        ) from None
    return catalog
