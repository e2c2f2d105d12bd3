"""Long-running processes of the end-to-end run: each in its own process group, logged to a file, stopped at exit.

Every service binds 127.0.0.1 on a free port. :class:`Services` starts them in order, waits until each is ready
and stops them in reverse order: on normal exit, on an exception, on SIGINT/SIGTERM and at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
import psutil
import psycopg2

LOCALHOST = "127.0.0.1"


class ServiceError(RuntimeError):
    """A service did not start, or died."""


def free_port() -> int:
    """Return a port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    """Return whether something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOCALHOST, port)) == 0


def http_ok(url: str) -> bool:
    """Return whether a GET of ``url`` answers below 500."""
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


_STARTED = time.monotonic()


def say(message: str) -> None:
    """Print a progress line with the minutes and seconds since the run began."""
    minutes, seconds = divmod(int(time.monotonic() - _STARTED), 60)
    print(f"[{minutes:02d}:{seconds:02d}] {message}", flush=True)


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.5) -> None:
    """Poll ``condition`` until it holds.

    :raises TimeoutError: naming ``what`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Service:
    """One process, started in a new session so that it and its children can be stopped as a group.

    :param name: short name, also the log file's stem.
    :param argv: the command.
    :param log_dir: where ``<name>.log`` (stdout and stderr) goes.
    :param env: the full environment.
    :param cwd: the working directory.
    :param ready: returns True once the service answers.
    :param ready_timeout: seconds to wait for ``ready``.
    """

    name: str
    argv: Sequence[str]
    log_dir: Path
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    cwd: Path | None = None
    ready: Callable[[], bool] = lambda: True
    ready_timeout: float = 60.0
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """The file holding the service's output."""
        return self.log_dir / f"{self.name}.log"

    @property
    def pid(self) -> int:
        """The process id of the service's main process."""
        if self.process is None:
            raise ServiceError(f"{self.name} is not started")
        return self.process.pid

    def start(self) -> None:
        """Start the process and wait until it is ready.

        :raises ServiceError: if it exits first or is not ready in time (with the end of its log).
        """
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        """Start the process (without waiting for it to be ready)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(self.env),
                cwd=self.cwd,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        """Wait until the service is ready.

        :raises ServiceError: if it exits first or is not ready in time (with the end of its log).
        """
        assert self.process is not None, "spawn() first"
        try:
            wait_until(self._ready_or_dead, timeout=self.ready_timeout, what=f"{self.name} to be ready")
        except TimeoutError as error:
            raise ServiceError(f"{error}\n{self.log_tail()}") from error
        if not self.alive():
            raise ServiceError(f"{self.name} exited with {self.process.returncode}\n{self.log_tail()}")

    def _ready_or_dead(self) -> bool:
        return not self.alive() or self.ready()

    def alive(self) -> bool:
        """Return whether the main process still runs."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """Send SIGTERM to the process group, then SIGKILL to whatever is left after ``timeout`` (idempotent)."""
        if self.process is None:
            return
        pgid = self.process.pid  # start_new_session: the group id is the leader's pid
        _signal_group(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        # Children (task processes, pool workers) may outlive the leader: the group goes in any case.
        _signal_group(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        """Return the last lines of the service's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"(no log at {self.log_path})"
        return f"--- last lines of {self.log_path} ---\n" + "\n".join(text)


def processes_in_sessions(sessions: set[int]) -> list[str]:
    """Return ``pid title`` of every live (not zombie) process in one of the sessions."""
    left = []
    for process in psutil.process_iter(["status", "cmdline"]):
        with contextlib.suppress(psutil.Error, OSError):
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getsid(process.pid) in sessions:
                left.append(f"{process.pid} {' '.join(process.info['cmdline'] or [])[:100]}")
    return left


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


class Services:
    """The services of one run, stopped in reverse start order whatever happens."""

    def __init__(self) -> None:
        self._running: list[Service] = []
        self._cleanups: list[Callable[[], None]] = []
        self.sessions: set[int] = set()  # every session ever started: for the check that nothing outlives the run
        atexit.register(self.stop_all)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    def start(self, *services: Service) -> list[Service]:
        """Start services together, then wait until each is ready; each is stopped by :meth:`stop_all` anyway."""
        for service in services:
            self._running.append(service)
            service.spawn()
            self.sessions.add(service.pid)
        for service in services:
            service.wait_ready()
        return list(services)

    def stop(self, service: Service) -> None:
        """Stop one service now."""
        service.stop()
        if service in self._running:
            self._running.remove(service)

    def on_stop(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` after every service is stopped (e.g. to remove a data directory)."""
        self._cleanups.append(cleanup)

    def stop_all(self) -> None:
        """Stop every running service, newest first, then run the cleanups (idempotent)."""
        while self._running:
            self._running.pop().stop()
        while self._cleanups:
            with contextlib.suppress(Exception):
                self._cleanups.pop()()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()


# ---------------------------------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path:
    """Return the newest Debian PostgreSQL server's bin directory."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        raise ServiceError("PostgreSQL is not installed: run e2e/install.sh (apt-get install postgresql)")
    return Path(found[-1]).parent


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1, owned by the ``postgres`` user, in a temporary folder."""

    port: int
    data_root: Path
    database: str = "airflow"

    @classmethod
    def create(cls, port: int, services: Services) -> Postgres:
        """Return a cluster in a new temporary folder (removed again when the services stop); see :meth:`init`."""
        root = Path(tempfile.mkdtemp(prefix="genviral-e2e-pg-"))
        services.on_stop(lambda: shutil.rmtree(root, ignore_errors=True))
        return cls(port=port, data_root=root)

    def init(self) -> None:
        """Initialise the empty cluster, owned by the ``postgres`` user (the server refuses to run as root)."""
        shutil.chown(self.data_root, user="postgres", group="postgres")
        initdb = [str(postgres_bin() / "initdb"), "-D", str(self.data_root / "data"), "-U", "postgres", "-A", "trust"]
        _run_as_postgres([*initdb, "-E", "UTF8", "--no-sync"], cwd=self.data_root)

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the Airflow database."""
        return self.url_of(self.database)

    def url_of(self, database: str) -> str:
        """The SQLAlchemy URL of a database of the cluster."""
        return f"postgresql+psycopg2://postgres@{LOCALHOST}:{self.port}/{database}"

    def service(self, log_dir: Path) -> Service:
        """Return the server as a service (not started)."""
        settings = {
            "listen_addresses": LOCALHOST,
            "unix_socket_directories": str(self.data_root),
            "max_connections": "200",
            "fsync": "off",  # a throwaway cluster: durability buys nothing here
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        options = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
        argv = [str(postgres_bin() / "postgres"), "-D", str(self.data_root / "data"), "-p", str(self.port), *options]
        return Service(
            name="postgres",
            argv=["runuser", "-u", "postgres", "--", *argv],
            log_dir=log_dir,
            cwd=self.data_root,
            ready=lambda: self._accepting(),
        )

    def _accepting(self) -> bool:
        result = subprocess.run(
            [str(postgres_bin() / "pg_isready"), "-h", LOCALHOST, "-p", str(self.port)],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def locate_try(self, ti_id: str) -> tuple[str, str, int] | None:
        """Return (run id, task id, try number) of a task instance id: each try of a task has an id of its own.

        Before Airflow 3.4 a past try moves to ``task_instance_history``; from 3.4 every try stays in ``task_instance``.
        """
        query = "SELECT run_id, task_id, try_number FROM task_instance WHERE id = %(id)s"
        history = (
            " UNION ALL SELECT run_id, task_id, try_number FROM task_instance_history WHERE task_instance_id = %(id)s"
        )
        connection = psycopg2.connect(self.url.replace("+psycopg2", ""))
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT to_regclass('task_instance_history') IS NOT NULL")
                if cursor.fetchone() == (True,):
                    query += history
                cursor.execute(query, {"id": ti_id})
                row = cursor.fetchone()
        finally:
            connection.close()
        return None if row is None else (str(row[0]), str(row[1]), int(row[2]))

    def create_database(self, name: str | None = None) -> None:
        """Create a database: the Airflow database by default."""
        createdb = [str(postgres_bin() / "createdb"), "-h", LOCALHOST, "-p", str(self.port), "-U", "postgres"]
        subprocess.run([*createdb, name or self.database], check=True, capture_output=True)


def _run_as_postgres(argv: Sequence[str], cwd: Path) -> None:
    command = ["runuser", "-u", "postgres", "--", *argv]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)
    if result.returncode != 0:
        raise ServiceError(f"{argv[0]} failed ({result.returncode}): {result.stderr or result.stdout}")


# ---------------------------------------------------------------------------------------- the others


def redis_service(port: int, log_dir: Path, work_dir: Path) -> Service:
    """Return Debian's redis-server on 127.0.0.1 without persistence (not started)."""
    argv = ["redis-server", "--port", str(port), "--bind", LOCALHOST, "--save", "", "--appendonly", "no"]
    return Service(
        name="redis",
        argv=[*argv, "--daemonize", "no", "--dir", str(work_dir)],
        log_dir=log_dir,
        ready=lambda: port_open(port),
    )


def moto_service(python: Path, port: int, log_dir: Path, cwd: Path) -> Service:
    """Return moto's S3-compatible server on 127.0.0.1 (not started)."""
    moto_server = python.parent / "moto_server"
    return Service(
        name="moto",
        argv=[str(moto_server), "-H", LOCALHOST, "-p", str(port)],
        log_dir=log_dir,
        cwd=cwd,
        ready=lambda: http_ok(f"http://{LOCALHOST}:{port}/moto-api/"),
    )


@dataclass(frozen=True)
class SandboxSpec:
    """The dataset the sandbox serves: ``days`` days from ``start`` with ``rows_per_day`` rows each."""

    start: str
    days: int
    rows_per_day: int
    seed: int
    api_key: str


def sandbox_service(python: Path, port: int, spec: SandboxSpec, log_dir: Path, cwd: Path) -> Service:
    """Return the Genviral sandbox API, run from the installed provider package (not started)."""
    argv = [str(python), "-m", "genviral_provider.sandbox", "--port", str(port), "--start", spec.start]
    argv += ["--days", str(spec.days), "--rows-per-day", str(spec.rows_per_day), "--seed", str(spec.seed)]
    return Service(
        name="sandbox",
        argv=[*argv, "--api-key", spec.api_key],
        log_dir=log_dir,
        cwd=cwd,
        ready=lambda: http_ok(f"http://{LOCALHOST}:{port}/_sandbox/stats"),
    )
