"""A real Airflow deployment for the end-to-end run: its configuration, components, CLI and REST API.

Configuration is all environment variables (``AIRFLOW__SECTION__KEY``), so every component and every CLI call
sees the same settings; nothing is written to ``airflow.cfg``. The provider comes from the virtualenv it was
installed into as a wheel: components run with a working directory outside the source tree.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from e2e.services import LOCALHOST, Service, free_port, http_ok, wait_until

ADMIN_USER = "admin"
TERMINAL_RUN_STATES = frozenset({"success", "failed"})
#: Task states after which a task instance does nothing more on its own.
FINISHED_TASK_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


@dataclass
class AirflowSettings:
    """What differs between deployments: folders, ports, URLs and the connections' secrets."""

    python: Path
    home: Path
    dags_folder: Path
    log_dir: Path
    database_url: str
    broker_url: str
    genviral_connection: Mapping[str, Any]
    aws_connection: Mapping[str, Any]
    output_base: str
    api_port: int
    parallelism: int = 4
    celery_concurrency: int = 2
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.worker_log_port = free_port()
        self.trigger_log_port = free_port()
        self.admin_password = secrets.token_urlsafe(16)
        self._secrets = {
            "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        }

    @property
    def api_url(self) -> str:
        """The API server's base URL (UI, REST API and execution API)."""
        return f"http://{LOCALHOST}:{self.api_port}"

    @property
    def passwords_file(self) -> Path:
        """The simple auth manager's passwords file, written before the API server starts."""
        return self.home / "passwords.json"

    def prepare(self) -> None:
        """Create AIRFLOW_HOME and the admin's password (so none is generated and printed)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.passwords_file.write_text(json.dumps({ADMIN_USER: self.admin_password}))

    def env(self, executor: str = "LocalExecutor") -> dict[str, str]:
        """Return the environment of every Airflow process for ``executor``."""
        settings = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "2",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "5",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
            "AIRFLOW__API__HOST": LOCALHOST,
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
            # A task whose supervising worker was killed is failed after 30 s without heartbeat, not 5 minutes.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.database_url.replace("+psycopg2", ""),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.celery_concurrency),
            "AIRFLOW_CONN_GENVIRAL_DEFAULT": json.dumps(self.genviral_connection),
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(self.aws_connection),
            "AIRFLOW_VAR_GENVIRAL_OUTPUT_BASE": self.output_base,
            **self._secrets,
            **self.extra_env,
        }
        base = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
        base.pop("PYTHONPATH", None)  # the provider must come from the installed wheel, never the source tree
        base["PATH"] = f"{self.python.parent}:{base.get('PATH', '/usr/bin:/bin')}"
        return {**base, **settings}


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


class AirflowCli:
    """Runs ``airflow`` commands with the deployment's environment, appending their output to ``cli.log``."""

    def __init__(self, settings: AirflowSettings) -> None:
        self.settings = settings
        self.executor = "LocalExecutor"

    def run(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``airflow <args>``; return the finished process.

        :raises RuntimeError: with its output, when ``check`` and it exits non-zero.
        """
        return self._run([str(self.settings.python.parent / "airflow"), *args], timeout=timeout, check=check)

    def _run(self, argv: list[str], *, timeout: float, check: bool) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            argv,
            env=self.settings.env(self.executor),
            cwd=self.settings.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        with open(self.settings.log_dir / "cli.log", "a") as log:
            log.write(f"$ {' '.join(argv)}  -> {result.returncode}\n{result.stdout}{result.stderr}\n")
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:4])} exited {result.returncode}:\n{result.stderr[-3000:]}")
        return result

    def python(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the deployment's Python (as a task would see it) with ``args``."""
        return self._run([str(self.settings.python), *args], timeout=120, check=True)

    def json(self, *args: str) -> Any:
        """Run a command with ``-o json`` and return its parsed output."""
        out = self.run(*args, "-o", "json").stdout
        return json.loads(out[out.index("[") if "[" in out else 0 :])


def component(settings: AirflowSettings, name: str, args: Sequence[str], executor: str, **extra_env: str) -> Service:
    """Return one Airflow component (``airflow <args>``) as a service (not started)."""
    return Service(
        name=name,
        argv=[str(settings.python.parent / "airflow"), *args],
        log_dir=settings.log_dir,
        env={**settings.env(executor), **extra_env},
        cwd=settings.home,
        ready_timeout=120,
    )


def api_server(settings: AirflowSettings) -> Service:
    """Return the API server (UI, REST API, execution API) on 127.0.0.1."""
    service = component(settings, "api-server", ["api-server", "--port", str(settings.api_port)], "LocalExecutor")
    service.ready = lambda: http_ok(f"{settings.api_url}/api/v2/monitor/health")
    return service


def celery_worker(settings: AirflowSettings, index: int) -> Service:
    """Return Celery worker number ``index``, serving its logs on a port of its own."""
    args = ["celery", "worker", "--celery-hostname", f"e2e-worker{index}@%h", "--without-gossip", "--without-mingle"]
    worker = component(
        settings,
        f"celery-worker{index}",
        args,
        "CeleryExecutor",
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
    )
    worker.ready = lambda: " ready." in worker.log_path.read_text(errors="replace")
    return worker


class AirflowApi:
    """The REST API (``/api/v2``) as the admin user."""

    def __init__(self, settings: AirflowSettings) -> None:
        self.settings = settings
        self._client = httpx.Client(base_url=settings.api_url, timeout=30)
        self._token: str | None = None

    def token(self) -> str:
        """Return a JWT for the admin (fetched once)."""
        if self._token is None:
            body = {"username": ADMIN_USER, "password": self.settings.admin_password}
            response = self._client.post("/auth/token", json=body)
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request; return the parsed JSON body (None when empty).

        :raises httpx.HTTPStatusError: on a status of 400 or more (with the body in the message).
        """
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        for attempt in range(3):
            try:
                response = self._client.request(method, path, headers=headers, **kwargs)
                break
            except httpx.TransportError:
                if attempt == 2:
                    raise
                time.sleep(2)
        if response.status_code >= 400:
            raise httpx.HTTPStatusError(
                f"{method} {path} -> {response.status_code}: {response.text[:500]}",
                request=response.request,
                response=response,
            )
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        """GET ``/api/v2<path>`` with query parameters."""
        return self.request("GET", f"/api/v2{path}", params=params)

    def post(self, path: str, body: Any) -> Any:
        """POST ``body`` as JSON to ``/api/v2<path>``."""
        return self.request("POST", f"/api/v2{path}", json=body)

    def patch(self, path: str, body: Any) -> Any:
        """PATCH ``/api/v2<path>`` with ``body`` as JSON."""
        return self.request("PATCH", f"/api/v2{path}", json=body)

    def health(self) -> dict[str, Any]:
        """Return the monitor health report (no auth needed)."""
        return dict(httpx.get(f"{self.settings.api_url}/api/v2/monitor/health", timeout=10).json())

    def wait_healthy(self, components: Sequence[str], timeout: float = 180) -> None:
        """Wait until the health report calls each component (e.g. ``scheduler``) healthy."""

        def healthy() -> bool:
            try:
                report = self.health()
            except (httpx.HTTPError, ValueError):
                return False
            return all(report.get(name, {}).get("status") == "healthy" for name in components)

        wait_until(healthy, timeout=timeout, what=f"{', '.join(components)} to report healthy", interval=2)

    def dag_runs(self, dag_id: str, **filters: Any) -> list[dict[str, Any]]:
        """Return every run of a DAG matching the filters (paged)."""
        return list(self._paged(f"/dags/{dag_id}/dagRuns", "dag_runs", **filters))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Return the task instances of one run."""
        return list(self._paged(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances"))

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Return every try of a task instance, oldest first."""
        body = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
        return list(body["task_instances"])

    def _paged(self, path: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            body = self.get(path, limit=100, offset=offset, **params)
            page = body[key]
            yield from page
            offset += len(page)
            if not page or offset >= body.get("total_entries", 0):
                return

    def wait_dag_parsed(self, dag_id: str, timeout: float = 180) -> None:
        """Wait until the DAG processor has serialised a DAG."""

        def parsed() -> bool:
            try:
                self.get(f"/dags/{dag_id}")
                self.get(f"/dags/{dag_id}/details")
            except httpx.HTTPStatusError:
                return False
            return True

        wait_until(parsed, timeout=timeout, what=f"DAG {dag_id} to be parsed", interval=2)


def isoformat(moment: dt.datetime) -> str:
    """Format an aware datetime as the API does (``Z`` for UTC)."""
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(text: str | None) -> dt.datetime | None:
    """Parse an API timestamp (``None`` stays ``None``)."""
    return None if text is None else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def run_day(run: dict[str, Any]) -> dt.date | None:
    """Return the day a run is for: its logical date's or, for a partitioned run without one, its partition date's."""
    moment = parse_time(run.get("logical_date") or run.get("partition_date"))
    return None if moment is None else moment.date()
