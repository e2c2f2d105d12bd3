"""What the distribution declares, read from the sources (fast; `make dist` builds, installs and checks the wheel)."""

from __future__ import annotations

import ast
import pathlib
import re
import sys

import pytest

import genviral_provider

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
#: The distribution each third-party top-level module comes from.
DISTRIBUTIONS = {
    "airflow": "apache-airflow",
    "asgiref": "asgiref",
    "httpx": "httpx",
    "requests": "requests",
    "pyarrow": "pyarrow",
    "pyiceberg": "pyiceberg",
    "openlineage": "openlineage-python",
    "attr": "attrs",
    "pytest": "pytest",
}
#: The distributions of the Airflow providers the code imports (they share the ``airflow`` package).
PROVIDERS = {
    "airflow.providers.openlineage": "apache-airflow-providers-openlineage",
    "airflow.providers.common.compat": "apache-airflow-providers-common-compat",
}
#: Modules whose imports belong to an extra (or, for the pytest plugin, to pytest itself), not to the core.
OPTIONAL_MODULES = {
    "genviral_provider/operators/lineage.py": "openlineage",
    "genviral_provider/sandbox/pytest_plugin.py": "pytest (the plugin is only loaded by pytest)",
}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower()


def _third_party_imports(path: pathlib.Path) -> set[str]:
    """Return the third-party distributions a module imports (at any depth, lazily or not)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    stdlib = set(sys.stdlib_module_names) | {"genviral_provider", "__future__"}
    distributions = set()
    for name in names:
        top = name.split(".")[0]
        if top in stdlib:
            continue
        if name.startswith("airflow.providers."):
            (provider,) = [
                dist for prefix, dist in PROVIDERS.items() if name == prefix or name.startswith(prefix + ".")
            ]
            distributions.add(provider)
        else:
            distributions.add(DISTRIBUTIONS.get(top, top))
    return distributions


def test_the_core_dependencies_are_exactly_what_the_code_imports() -> None:
    imported: set[str] = set()
    for path in sorted((REPO / "genviral_provider").rglob("*.py")):
        relative = str(path.relative_to(REPO))
        if relative not in OPTIONAL_MODULES:
            imported |= _third_party_imports(path)
    imported.discard("pyarrow")  # imported lazily, for output_format="parquet": the parquet extra
    imported.discard("pyiceberg")  # imported lazily, for output_format="iceberg": the iceberg extra
    # Imported lazily by the hook's connection-form methods, which only Airflow 3.0/3.1's API server calls, and
    # there the FAB provider brings it; without it the form has no extra fields (tests/test_provider_info.py).
    imported.discard("wtforms")
    assert imported == {_name(requirement) for requirement in PROJECT["dependencies"]}


def test_the_optional_imports_are_declared_in_their_extras() -> None:
    extras = {name: {_name(dep) for dep in deps} for name, deps in PROJECT["optional-dependencies"].items()}
    lineage = _third_party_imports(REPO / "genviral_provider/operators/lineage.py")
    assert lineage - {"apache-airflow"} == extras["openlineage"]
    assert "apache-airflow-providers-openlineage" in extras["dev"]
    assert "pyarrow" in extras["parquet"] and "pyarrow" in extras["dev"]
    # Not in dev: the Makefile adds the iceberg extra to dev installs where Airflow allows it (not 3.0, SQLAlchemy < 2).
    assert "pyiceberg" in extras["iceberg"] and "pyiceberg" not in extras["dev"]


def test_no_pytest_plugin_is_registered_by_installing_the_provider() -> None:
    assert set(PROJECT["entry-points"]) == {"apache_airflow_provider"}


def test_the_license_file_is_the_declared_apache_license() -> None:
    text = (REPO / "LICENSE").read_text()
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_changelog_has_the_current_version_and_an_unreleased_section() -> None:
    headings = re.findall(r"^## (.+)$", (REPO / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert headings[0] == "Unreleased"
    assert genviral_provider.__version__ in headings


def test_the_sdist_ships_the_changelog() -> None:
    assert "include CHANGELOG.md" in (REPO / "MANIFEST.in").read_text().splitlines()
