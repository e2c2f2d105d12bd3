"""Bring up the whole production-shaped stack, and switch it from LocalExecutor to CeleryExecutor.

PostgreSQL (metadata), Redis (Celery broker), moto (S3), the Genviral sandbox (the API), then Airflow's
scheduler, DAG processor, API server and triggerer. Everything binds 127.0.0.1 on free ports and is stopped by
:class:`~e2e.services.Services` however the run ends.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from e2e.airflow import AirflowApi, AirflowCli, AirflowSettings, api_server, celery_worker, component
from e2e.data import S3Output, Sandbox
from e2e.services import (
    LOCALHOST,
    Postgres,
    SandboxSpec,
    Service,
    Services,
    free_port,
    moto_service,
    redis_service,
    sandbox_service,
    say,
)

REPO = Path(__file__).resolve().parent.parent
POSTS_DAG = "genviral_posts_daily"
SENSOR_DAG = "genviral_wait_for_post_analytics"
BUCKET = "genviral-e2e"
PREFIX = "genviral"
#: The Iceberg catalog's database on the run's PostgreSQL, and its warehouse in the bucket.
ICEBERG_DATABASE = "iceberg"
ICEBERG_WAREHOUSE = f"s3://{BUCKET}/iceberg"
#: The sandbox's data: ``DATA_DAYS`` days ending today (UTC); backfills cover the ``BACKFILL_DAYS`` before today,
#: so the days on either side of the backfill hold posts that must not leak into it.
DATA_DAYS = 32
BACKFILL_DAYS = 30
#: The sensor timeout and poke interval the cluster policy (airflow_local_settings.py) sets, in seconds.
SENSOR_TIMEOUT = 60
SENSOR_POKE_INTERVAL = 5
#: The freshness gate's poke interval under the cluster policy, in seconds.
GATE_POKE_INTERVAL = 5
_PYCACHE = shutil.ignore_patterns("__pycache__")


@dataclass
class Layout:
    """Where one run keeps its files (all under the output folder, which is emptied first)."""

    root: Path

    @property
    def logs(self) -> Path:
        """Component and CLI logs."""
        return self.root / "logs"

    @property
    def airflow_home(self) -> Path:
        """AIRFLOW_HOME (task logs under ``logs/``)."""
        return self.root / "airflow"

    @property
    def work(self) -> Path:
        """Working directory of non-Airflow services."""
        return self.root / "work"

    @property
    def screenshots(self) -> Path:
        """Browser screenshots."""
        return self.root / "screenshots"

    @property
    def marker(self) -> Path:
        """The file that marks a folder as an end-to-end run's output, and so safe to empty."""
        return self.root / ".genviral-e2e-output"

    def reset(self) -> None:
        """Empty the output folder (only if a previous run made it) and create the sub-folders.

        :raises SystemExit: if the folder holds anything else, rather than delete it.
        """
        if self.root.exists() and any(self.root.iterdir()) and not self.marker.exists():
            raise SystemExit(f"{self.root} is not empty and not an earlier run's output: choose another --output")
        shutil.rmtree(self.root, ignore_errors=True)
        for folder in (self.logs, self.airflow_home, self.work, self.screenshots):
            folder.mkdir(parents=True)
        self.marker.touch()


class Deployment:
    """The running stack and handles to drive it: Airflow's CLI and API, the sandbox, the S3 output."""

    def __init__(self, layout: Layout, services: Services, dags_source: Path) -> None:
        self.layout = layout
        self.services = services
        self.python = Path(sys.executable)
        today = dt.datetime.now(dt.timezone.utc).date()
        self.backfill_first = today - dt.timedelta(days=BACKFILL_DAYS)
        self.backfill_last = today - dt.timedelta(days=1)
        self.sandbox_spec = SandboxSpec(
            start=(today - dt.timedelta(days=DATA_DAYS - 1)).isoformat(),
            days=DATA_DAYS,
            rows_per_day=40,
            seed=7,
            api_key=f"gva_e2e_{secrets.token_hex(3)}.{secrets.token_hex(16)}",
        )
        self.dags_source = dags_source
        self.components: dict[str, Service] = {}
        self.executor = "LocalExecutor"
        self.ports = {name: free_port() for name in ("postgres", "redis", "moto", "sandbox", "api")}
        self.postgres = Postgres.create(self.ports["postgres"], services)
        self.s3 = S3Output(f"http://{LOCALHOST}:{self.ports['moto']}", BUCKET, PREFIX)
        self.sandbox = Sandbox(f"http://{LOCALHOST}:{self.ports['sandbox']}", self.sandbox_spec.api_key)
        self.settings = self._airflow_settings()
        self.cli = AirflowCli(self.settings)
        self.api = AirflowApi(self.settings)

    @property
    def api_key(self) -> str:
        """The sandbox's API key: the secret that must never reach a log."""
        return self.sandbox_spec.api_key

    @property
    def iceberg_catalog_properties(self) -> dict[str, str]:
        """The pyiceberg properties of the Iceberg catalog: SQL on PostgreSQL, its warehouse on moto's S3."""
        return {
            "type": "sql",
            "uri": self.postgres.url_of(ICEBERG_DATABASE),
            "warehouse": ICEBERG_WAREHOUSE,
            "s3.endpoint": f"http://{LOCALHOST}:{self.ports['moto']}",
            "s3.access-key-id": "e2e",
            "s3.secret-access-key": "e2e-secret",
            "s3.region": "us-east-1",
            "s3.path-style-access": "true",
        }

    def _airflow_settings(self) -> AirflowSettings:
        genviral = {
            "conn_type": "genviral",
            "host": self.sandbox.url,
            "password": self.api_key,
            "extra": {"max_retries": 8, "max_retry_wait": 60, "max_concurrency": 4},
        }
        aws = {
            "conn_type": "aws",
            "login": "e2e",
            "password": "e2e-secret",
            "extra": {"endpoint_url": f"http://{LOCALHOST}:{self.ports['moto']}", "region_name": "us-east-1"},
        }
        return AirflowSettings(
            python=self.python,
            home=self.layout.airflow_home,
            dags_folder=self.layout.airflow_home / "dags",
            log_dir=self.layout.logs,
            database_url=self.postgres.url,
            broker_url=f"redis://{LOCALHOST}:{self.ports['redis']}/0",
            genviral_connection=genviral,
            aws_connection=aws,
            output_base=f"s3://aws_default@{BUCKET}/{PREFIX}",
            api_port=self.ports["api"],
            extra_env={
                "GENVIRAL_E2E_SENSOR_TIMEOUT": str(SENSOR_TIMEOUT),
                "GENVIRAL_E2E_SENSOR_POKE_INTERVAL": str(SENSOR_POKE_INTERVAL),
                "GENVIRAL_E2E_GATE_POKE_INTERVAL": str(GATE_POKE_INTERVAL),
                # The catalog of the Iceberg phase, as a user would give it (docs/iceberg.md).
                "AIRFLOW_CONN_GENVIRAL_ICEBERG": json.dumps(
                    {"conn_type": "generic", "extra": self.iceberg_catalog_properties}
                ),
            },
        )

    # ------------------------------------------------------------------------------------------ startup

    def start(self) -> None:
        """Start the backing services, prepare Airflow, start its components (LocalExecutor)."""
        say("starting PostgreSQL, Redis, moto (S3) and the sandbox")
        self._start_backing_services()
        say("migrating the metadata database")
        self._prepare_airflow()
        say("starting the API server, DAG processor, triggerer and scheduler (LocalExecutor)")
        self._start_airflow("LocalExecutor")
        say(f"Airflow is up at {self.settings.api_url}")

    def _start_backing_services(self) -> None:
        logs, work = self.layout.logs, self.layout.work
        self.postgres.init()
        self.services.start(
            self.postgres.service(logs),
            redis_service(self.ports["redis"], logs, work),
            moto_service(self.python, self.ports["moto"], logs, work),
            sandbox_service(self.python, self.ports["sandbox"], self.sandbox_spec, logs, work),
        )
        self.postgres.create_database()
        self.postgres.create_database(ICEBERG_DATABASE)
        self.s3.create_bucket()

    def _prepare_airflow(self) -> None:
        self.settings.prepare()
        shutil.copytree(self.dags_source, self.settings.dags_folder, ignore=_PYCACHE)
        (self.settings.home / "config").mkdir(exist_ok=True)
        shutil.copy(Path(__file__).parent / "airflow_local_settings.py", self.settings.home / "config")
        self.cli.run("db", "migrate", timeout=600)

    def _start_airflow(self, executor: str) -> None:
        self.executor = self.cli.executor = executor
        names = ("dag-processor", "triggerer", "scheduler")
        self._start_components(api_server(self.settings), *(component(self.settings, n, [n], executor) for n in names))
        self.api.wait_healthy(["metadatabase", "scheduler", "triggerer", "dag_processor"])
        for dag_id in (POSTS_DAG, SENSOR_DAG):
            self.api.wait_dag_parsed(dag_id)
            self.api.patch(f"/dags/{dag_id}", {"is_paused": False})

    def _start_components(self, *services: Service) -> None:
        for service in self.services.start(*services):
            self.components[service.name] = service

    # ------------------------------------------------------------------------------------------ executors

    def switch_to_celery(self, workers: int = 2) -> None:
        """Replace the LocalExecutor scheduler with a CeleryExecutor one and start ``workers`` Celery workers."""
        say(f"switching to CeleryExecutor: stopping the scheduler, starting {workers} Celery workers")
        self.services.stop(self.components.pop("scheduler"))
        self.executor = self.cli.executor = "CeleryExecutor"
        scheduler = component(self.settings, "scheduler", ["scheduler"], "CeleryExecutor")
        self._start_components(*(celery_worker(self.settings, index) for index in range(1, workers + 1)), scheduler)
        self.api.wait_healthy(["scheduler"])
        say("CeleryExecutor scheduler and workers are up")

    def locate_try(self, ti_id: str) -> tuple[str, str, int] | None:
        """Return (run id, task id, try number) of a task instance id, from the metadata database."""
        return self.postgres.locate_try(ti_id)

    def component_sessions(self) -> set[int]:
        """The session ids of the running Airflow components (each leads its own session)."""
        return {service.pid for service in self.components.values() if service.alive()}

    def log_files(self) -> list[Path]:
        """Every log file of every component: service logs, CLI output, Airflow's task and component logs."""
        found = [path for path in self.layout.root.rglob("*") if path.is_file() and _is_log(path)]
        return sorted(found)


def _is_log(path: Path) -> bool:
    return path.suffix in (".log", ".json", ".txt") or "logs" in path.parts
