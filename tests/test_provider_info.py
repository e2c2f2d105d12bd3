"""Provider discovery: what Airflow reads from get_provider_info() and the entry point."""

from __future__ import annotations

import importlib
import json
import pathlib
import sys
from importlib.metadata import distribution, entry_points

import airflow
import jsonschema
import pytest

import genviral_provider
from genviral_provider import get_provider_info
from genviral_provider.core.api.settings import EXTRA_DEFAULTS
from tests.conftest import task_runtime_hooks


def test_provider_info_validates_against_airflows_schema() -> None:
    schema = json.loads((pathlib.Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_package_name_is_the_distribution_name() -> None:
    assert get_provider_info()["package-name"] == distribution("airflow-provider-genviral").metadata["Name"]


def test_entry_point_points_at_get_provider_info() -> None:
    (entry,) = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("genviral_provider")]
    assert entry.load() is get_provider_info


def test_every_module_named_in_provider_info_imports() -> None:
    info = get_provider_info()
    for role in ("hooks", "operators", "sensors", "triggers"):
        for module in info[role][0]["python-modules"]:
            importlib.import_module(module)


def test_connection_form_relabels_hides_and_declares_every_extra() -> None:
    (conn_type,) = get_provider_info()["connection-types"]
    behaviour = conn_type["ui-field-behaviour"]
    assert conn_type["hook-name"] == "Genviral"
    assert behaviour["relabeling"] == {"password": "API key", "host": "Base URL"}
    assert behaviour["placeholders"]["host"] == "https://www.genviral.io"
    assert set(behaviour["hidden-fields"]) == {"schema", "login", "port", "extra"}
    assert set(conn_type["conn-fields"]) == set(EXTRA_DEFAULTS)
    for name, field in conn_type["conn-fields"].items():
        assert field["schema"]["default"] == EXTRA_DEFAULTS[name]


def test_airflow_discovers_the_hook() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.providers["airflow-provider-genviral"].version == genviral_provider.__version__
    hook = task_runtime_hooks()["genviral"]
    assert hook is not None and hook.hook_name == "Genviral"


def test_the_api_server_serves_the_connection_form_on_every_airflow() -> None:
    """What the UI renders: 3.2+ read provider info itself, 3.0 and 3.1 call the hook's two form methods.

    In a process of its own, as an API server starts: there the providers' hooks are first imported with FAB mocked.
    """
    import subprocess
    import sys

    code = (
        "import json\n"
        "from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService\n"
        "[meta] = [m for m in HookMetaService.hook_meta_data() if m.connection_type == 'genviral']\n"
        "print(json.dumps(meta.model_dump(mode='json')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    meta = json.loads(done.stdout.strip().splitlines()[-1])
    standard = meta["standard_fields"]
    assert meta["hook_name"] == "Genviral"
    assert (standard["password"]["title"], standard["host"]["title"]) == ("API key", "Base URL")
    assert standard["host"]["placeholder"] == "https://www.genviral.io"
    assert all(standard[name]["hidden"] for name in ("url_schema", "login", "port"))
    fields = meta["extra_fields"]
    assert set(fields) == set(EXTRA_DEFAULTS)
    assert fields["max_concurrency"]["schema"]["type"] == ["integer", "null"]
    assert fields["max_concurrency"]["value"] == 8
    assert fields["timeout"]["description"].startswith("Seconds to wait")


def test_the_hooks_form_methods_say_what_provider_info_says() -> None:
    from genviral_provider.hooks.genviral import GenviralHook

    (conn_type,) = get_provider_info()["connection-types"]
    behaviour = GenviralHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == conn_type["ui-field-behaviour"]["hidden-fields"]
    assert behaviour["relabeling"] == conn_type["ui-field-behaviour"]["relabeling"]
    widgets = GenviralHook.get_connection_form_widgets()
    assert sorted(widgets) == sorted(conn_type["conn-fields"])


def test_without_wtforms_the_form_keeps_its_labels_and_has_no_extra_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    from genviral_provider.hooks.genviral import GenviralHook

    monkeypatch.setitem(sys.modules, "wtforms", None)  # what `import wtforms` sees where it is not installed
    assert GenviralHook.get_connection_form_widgets() == {}
    assert GenviralHook.get_ui_field_behaviour()["relabeling"] == {"password": "API key", "host": "Base URL"}


def test_get_provider_info_is_import_light() -> None:
    import subprocess
    import sys

    code = "import sys, genviral_provider; genviral_provider.get_provider_info(); print('airflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
