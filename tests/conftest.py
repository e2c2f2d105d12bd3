"""Shared fixtures: a throwaway AIRFLOW_HOME, and a `genviral_default` connection pointed at the sandbox.

The sandbox fixtures themselves (`genviral_sandbox`, `genviral_sandbox_factory`) come from the package's
pytest plugin, which is opt-in: registered here through `pytest_plugins`.
"""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Before anything imports Airflow: its configuration is read once, at import.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="genviral-tests-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.join(_AIRFLOW_HOME, "dags")

pytest_plugins = ["genviral_provider.sandbox.pytest_plugin"]

#: Airflow's deprecation warnings fail the test that causes them, so that no deprecated API creeps back.
AIRFLOW_DEPRECATIONS = (
    "airflow.exceptions.RemovedInAirflow4Warning",
    "airflow.sdk.exceptions.RemovedInAirflow4Warning",
    "airflow.exceptions.AirflowProviderDeprecationWarning",
    "airflow.utils.deprecation_tools.DeprecatedImportWarning",
)

ConnectionSetter = Callable[..., str]

#: For tests of the Iceberg sink: pyiceberg's SQL catalog needs SQLAlchemy 2, which Airflow 3.0 forbids (it pins < 2),
#: so on 3.0 the `iceberg` extra cannot be installed beside Airflow (the Makefile leaves it out there).
needs_iceberg = pytest.mark.needs_airflow("3.1", "The Iceberg sink (pyiceberg's SQL catalog needs SQLAlchemy 2)")


def pytest_configure(config: pytest.Config) -> None:
    """Turn Airflow's deprecation warnings into errors; register the ``needs_airflow`` marker.

    Not in pyproject.toml's ``filterwarnings``: pytest imports the warning classes named there (and so Airflow,
    which reads its configuration once, at import) before this file has set AIRFLOW_HOME.
    """
    from genviral_provider.version_compat import AIRFLOW_V_3_2_PLUS

    for category in AIRFLOW_DEPRECATIONS:
        if not _importable(category):  # older Airflow lacks some of them (3.1 has no SDK RemovedInAirflow4Warning)
            continue
        config.addinivalue_line("filterwarnings", f"error::{category}")
        if not AIRFLOW_V_3_2_PLUS:
            # Before 3.2, Airflow's own modules and the providers it resolves with (common-compat's lazy imports)
            # still use names it deprecates: shown, not ours to fix. Warnings the provider's code causes still fail.
            config.addinivalue_line("filterwarnings", rf"default::{category}:airflow\.")
    config.addinivalue_line(
        "markers",
        "needs_airflow(version, feature): the test exercises a feature that Airflow brings in `version`; "
        "skipped on older Airflow with a reason naming both",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test marked ``needs_airflow("3.3", "the task state store")`` on an Airflow older than that."""
    from airflow import __version__

    from genviral_provider.version_compat import airflow_at_least

    for marker in item.iter_markers(name="needs_airflow"):
        version, feature = marker.args
        if not airflow_at_least(version):
            pytest.skip(f"{feature} needs Airflow {version} or later; this is Airflow {__version__}")


def scheduler_dag(dag: Any) -> Any:
    """Return ``dag`` serialized and back, as the scheduler and backfills see it (``iter_dagrun_infos_between``).

    The serializer is ``DagSerialization`` from Airflow 3.2, ``SerializedDAG`` before.
    """
    from genviral_provider.version_compat import AIRFLOW_V_3_2_PLUS

    if AIRFLOW_V_3_2_PLUS:
        from airflow.serialization.serialized_objects import DagSerialization as serialization
    else:
        from airflow.serialization.serialized_objects import SerializedDAG as serialization  # type: ignore[assignment]
    return serialization.deserialize_dag(serialization.serialize_dag(dag))


def dag_bag(dag_folder: str, **kwargs: Any) -> Any:
    """Parse ``dag_folder`` as the DAG processor does (``DagBag`` moved to ``airflow.dag_processing`` in 3.2)."""
    from genviral_provider.version_compat import AIRFLOW_V_3_2_PLUS

    if AIRFLOW_V_3_2_PLUS:
        from airflow.dag_processing.dagbag import DagBag
    else:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(dag_folder=dag_folder, **kwargs)


def task_runtime_hooks() -> Any:
    """Return the hooks a worker discovers (the Task SDK's own providers manager from Airflow 3.2, before it core's)."""
    from genviral_provider.version_compat import AIRFLOW_V_3_2_PLUS

    if AIRFLOW_V_3_2_PLUS:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        return ProvidersManagerTaskRuntime().hooks
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager().hooks


def serde_round_trip(value: Any) -> Any:
    """Return ``value`` serialized and deserialized by Airflow's serde (the Task SDK's from Airflow 3.2)."""
    from genviral_provider.version_compat import AIRFLOW_V_3_2_PLUS

    if AIRFLOW_V_3_2_PLUS:
        from airflow.sdk.serde import deserialize, serialize
    else:
        from airflow.serialization.serde import deserialize, serialize  # type: ignore[no-redef]
    return deserialize(serialize(value))


def masked(text: str) -> str:
    """Return ``text`` as Airflow's secrets masker writes it to a log (the masker moved in 3.1 and 3.2)."""
    from genviral_provider.version_compat import AIRFLOW_V_3_1_PLUS

    if AIRFLOW_V_3_1_PLUS:
        from airflow.sdk._shared.secrets_masker import redact
    else:
        from airflow.sdk.execution_time.secrets_masker import redact  # type: ignore[no-redef]
    return str(redact(text))


def _importable(dotted_name: str) -> bool:
    module_name, _, attribute = dotted_name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    return hasattr(module, attribute)


@pytest.fixture
def genviral_connection(monkeypatch: pytest.MonkeyPatch) -> ConnectionSetter:
    """Return a function that defines a `genviral` connection through AIRFLOW_CONN_<ID> (JSON form)."""

    def define(server: Any, *, conn_id: str = "genviral_default", password: str | None = None, **extra: Any) -> str:
        conn = {
            "conn_type": "genviral",
            "host": server.url,
            "password": server.api_key if password is None else password,
            "extra": extra,
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    return define


@pytest.fixture
def sandbox_conn(genviral_sandbox: Any, genviral_connection: ConnectionSetter) -> Iterator[str]:
    """The default sandbox, reachable as connection `genviral_default` (fast retries for tests)."""
    yield genviral_connection(genviral_sandbox, max_retry_wait=5)


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """Migrate a sqlite metadata DB in the throwaway AIRFLOW_HOME (once per session); return AIRFLOW_HOME."""
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ.copy()
    )
    return _AIRFLOW_HOME


@pytest.fixture
def run_dag_file(airflow_db: str) -> Iterator[Callable[..., Any]]:
    """Return a function that writes DAG source into the DAGs folder, imports it and runs `dag.test()`.

    `dag.test()` only runs DAGs that live in a file of the DAGs folder (it serializes them into the metadata DB
    itself), so tests write real files (removed at teardown). `adjust`, if given, may change the loaded DAG (e.g. a
    shorter poke interval) before it runs. Returns the finished DagRun.
    """
    import importlib.util
    import pathlib

    from genviral_provider.version_compat import AIRFLOW_V_3_1_PLUS

    dags_folder = pathlib.Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dags_folder.mkdir(parents=True, exist_ok=True)
    written: list[pathlib.Path] = []

    def run(source: str, dag_id: str, *, adjust: Callable[[Any], None] | None = None, **test_kwargs: Any) -> Any:
        path = dags_folder / f"{dag_id}.py"
        path.write_text(source)
        written.append(path)
        spec = importlib.util.spec_from_file_location(f"test_dag_{dag_id}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        dag = next(v for v in vars(module).values() if getattr(v, "dag_id", None) == dag_id)
        if adjust is not None:
            adjust(dag)
        if not AIRFLOW_V_3_1_PLUS:
            write_dags_folder_to_db()
        return dag.test(**test_kwargs)

    yield run
    for path in written:
        path.unlink(missing_ok=True)


def write_dags_folder_to_db() -> None:
    """Record the DAGs folder's DAGs and their assets in the metadata DB, as the DAG processor would.

    ``dag.test()`` records only what it needs: 3.0's nothing (a task whose outlet asset was never recorded, so never
    made active, fails with ``AirflowInactiveAssetInInletOrOutletException``), 3.1's the folder only while the tested
    DAG is new to the DB, 3.3's the folder on every call. A test that needs a sibling DAG recorded calls this.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.utils.session import create_session

    from genviral_provider.version_compat import AIRFLOW_V_3_1_PLUS

    folder = pathlib.Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    if not AIRFLOW_V_3_1_PLUS:
        from airflow.models.dagbag import DagBag

        DagBag(dag_folder=str(folder), include_examples=False).sync_to_db("dags-folder", None)
        return
    try:
        from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import BundleDagBag, sync_bag_to_db  # type: ignore[no-redef]
    sync_bag_to_db(BundleDagBag(dag_folder=str(folder), bundle_path=folder), "dags-folder", None)


ONE_TASK_DAG = """
import datetime
import datetime as dt
import pathlib

from airflow.sdk import DAG, task

from {module} import {cls}


class Recording({cls}):
    # Records what the task raised last (deferrals aside): failure callbacks do not see it on every Airflow 3.x.
    def execute(self, context):
        with self._recorded():
            return super().execute(context)

    def execute_complete(self, context, event=None):
        with self._recorded():
            return super().execute_complete(context, event)

    def _recorded(self):
        import contextlib

        @contextlib.contextmanager
        def record():
            try:
                yield
            except BaseException as error:
                if type(error).__name__ != "TaskDeferred":
                    pathlib.Path({error_file!r}).write_text(f"{{type(error).__name__}}: {{error}}")
                raise

        return record()


with DAG({dag_id!r}, schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)) as dag:
    {task_id} = Recording(task_id={task_id!r}, {arguments})
    {upstream}
"""

#: What a one-task DAG run left: the task's state, its XCom (return value) and what it raised.
TaskOutcome = tuple[str, Any, "str | None"]


@pytest.fixture
def run_one_task(run_dag_file: Callable[..., Any], tmp_path: Any) -> Callable[..., TaskOutcome]:
    """Return a function that runs one operator (``module.cls``, keyword arguments as literals) in a DAG run.

    ``upstream`` is DAG code placed after the task, which may wire an upstream task with ``>> <task_id>``.
    """

    def run(
        operator: str, dag_id: str, *, task_id: str = "operator", upstream: str = "", **arguments: Any
    ) -> TaskOutcome:
        module, _, cls = operator.rpartition(".")
        error_file = tmp_path / f"{dag_id}.error"
        source = ONE_TASK_DAG.format(
            module=module,
            cls=cls,
            dag_id=dag_id,
            task_id=task_id,
            upstream=upstream,
            error_file=str(error_file),
            arguments=", ".join(f"{name}={value!r}" for name, value in arguments.items()),
        )
        dag_run = run_dag_file(source, dag_id)
        state = str(dag_run.get_task_instance(task_id).state)
        return state, return_value(dag_run, task_id), error_file.read_text() if error_file.exists() else None

    return run


def return_value(dag_run: Any, task_id: str) -> Any:
    """Return the XCom a task of a finished run returned (``None`` if none)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key="return_value")
        rows = session.scalars(query).all()
        return XComModel.deserialize_value(rows[0]) if rows else None
