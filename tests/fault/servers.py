"""Process control for the fault suite: a private RabbitMQ node, a private FerretDB and the services as real processes,
so that a test can stop, kill and restart them without touching the shared servers the rest of the suite uses."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

from minsheng_core.paths import REPO_ROOT

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # Debian's script itself, not the wrapper that su's
FERRETDB_BINARY = REPO_ROOT / "var" / "bin" / "ferretdb"  # built by scripts/infra up from deploy/ferretdb
USER, PASSWORD = "guest", "guest"


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait(condition, timeout: float, what: str, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{_tail(log) if log else ''}")
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready within {timeout} s:\n{_tail(log) if log else ''}")


def _stop(process: subprocess.Popen | None, sig: int, timeout: float) -> None:
    """Signal one process we started and wait for it; its whole group (ours) is killed if it does not go."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # started with its own session: the group is ours alone
        process.wait(10)


class RabbitNode:
    """A second RabbitMQ node (own name, ports, data and log directories, management plugin) run as this user."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.name = f"minsheng-fault-{os.getpid()}@localhost"
        self.amqp_port, self.management_port, self.dist_port = free_port(), free_port(), free_port()
        self.log = base / "rabbitmq.out"
        self._process: subprocess.Popen | None = None
        base.mkdir(parents=True, exist_ok=True)
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.management_port}\n"
            # queue counters fresh within a quarter of a second (the default is 5 s)
            "collect_statistics_interval = 250\n",
            encoding="utf-8",
        )
        (base / "enabled_plugins").write_text("[rabbitmq_management].\n", encoding="utf-8")
        (base / "rabbitmq-env.conf").write_text("", encoding="utf-8")  # not /etc/rabbitmq's

    @staticmethod
    def available() -> str | None:
        """Why a private node cannot run here, or None."""
        if not RABBITMQ_SERVER.exists():
            return f"{RABBITMQ_SERVER} is missing (Debian's rabbitmq-server; scripts/infra up installs it)"
        return None

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        b = self.base
        return env | {
            "HOME": str(b),  # the Erlang cookie is created here, apart from the shared node's
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(b / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(b / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(b / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(b / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(b / "mnesia"),
            "RABBITMQ_LOG_BASE": str(b / "log"),
            "RABBITMQ_PID_FILE": str(b / "rabbitmq.pid"),
        }

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 90) -> None:
        """Start (or restart, keeping its data) and wait until AMQP clients are accepted."""
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                [str(RABBITMQ_SERVER)],
                env=self._env(),
                cwd=self.base,  # where an Erlang crash dump would land
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait(lambda: port_open(self.amqp_port), timeout, "private RabbitMQ", self._process, self.log)

    def stop(self, timeout: float = 60) -> None:
        """A clean stop (the script turns SIGTERM into the broker's own shutdown)."""
        _stop(self._process, signal.SIGTERM, timeout)
        _wait(lambda: not port_open(self.amqp_port), 10, "private RabbitMQ stop")

    def management(self) -> httpx.Client:
        """The HTTP API client, once the management listener answers (it starts after AMQP)."""
        _wait(lambda: port_open(self.management_port), 60, "private RabbitMQ management", self._process, self.log)
        return httpx.Client(base_url=f"http://127.0.0.1:{self.management_port}", auth=(USER, PASSWORD), timeout=30)

    def add_vhost(self, vhost: str) -> str:
        """Create a vhost with full rights for the test user; returns its AMQP URL."""
        with self.management() as api:
            api.put(f"/api/vhosts/{quote(vhost, safe='')}").raise_for_status()
            rights = {"configure": ".*", "write": ".*", "read": ".*"}
            api.put(f"/api/permissions/{quote(vhost, safe='')}/{USER}", json=rights).raise_for_status()
        return self.url(vhost)

    def delete_vhost(self, vhost: str) -> None:
        with self.management() as api:
            api.delete(f"/api/vhosts/{quote(vhost, safe='')}")

    def url(self, vhost: str) -> str:
        return f"amqp://{USER}:{PASSWORD}@127.0.0.1:{self.amqp_port}/{quote(vhost, safe='')}"

    def queue(self, vhost: str, name: str) -> dict:
        """The management API's view of one queue (counters refresh every half second)."""
        with self.management() as api:
            response = api.get(f"/api/queues/{quote(vhost, safe='')}/{quote(name, safe='')}")
            response.raise_for_status()
            return response.json()


class Ferret:
    """A second FerretDB (the project's embedded build) on its own port and SQLite directory."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.data = base / "data"
        self.log = base / "ferretdb.out"
        self._process: subprocess.Popen | None = None
        base.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def available() -> str | None:
        if not os.access(FERRETDB_BINARY, os.X_OK):
            return f"{FERRETDB_BINARY} is missing (scripts/infra up builds it from deploy/ferretdb)"
        return None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30) -> None:
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                [str(FERRETDB_BINARY), "-listen", f"127.0.0.1:{self.port}", "-data", str(self.data)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait(lambda: port_open(self.port), timeout, "private FerretDB", self._process, self.log)

    def stop(self, timeout: float = 30) -> None:
        _stop(self._process, signal.SIGTERM, timeout)
        _wait(lambda: not port_open(self.port), 10, "private FerretDB stop")

    def pause(self) -> None:
        """Freeze the database (SIGSTOP): every write in flight waits, connections stay open."""
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._process.send_signal(signal.SIGCONT)


@dataclass
class Service:
    """One service as uvicorn runs it in production: its own process, configured by environment variables."""

    name: str
    factory: str  # "package.module:create_app"
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    _process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Start the process; `wait_ready` waits for its lifespan to finish (uvicorn listens only then)."""
        command = [sys.executable, "-m", "uvicorn", self.factory, "--factory", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--no-access-log", "--log-level", "warning", "--timeout-graceful-shutdown", "5"]
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                command, env=os.environ | self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO_ROOT
            )

    def wait_ready(self, timeout: float = 90) -> None:
        def healthy() -> bool:
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait(healthy, timeout, f"service {self.name}", self._process, self.log)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, unacknowledged deliveries go back to the broker."""
        _stop(self._process, signal.SIGKILL, 10)

    def stop(self) -> None:
        _stop(self._process, signal.SIGTERM, 15)


def start_all(services: list[Service], timeout: float = 120) -> None:
    """Start the processes together (they import and load in parallel), then wait for each."""
    for service in services:
        service.start()
    for service in services:
        service.wait_ready(timeout)


def stop_all(services: list[Service]) -> None:
    """SIGTERM to every process first, then wait for each: their graceful shutdowns overlap."""
    for service in services:
        if service._process is not None and service._process.poll() is None:
            service._process.send_signal(signal.SIGTERM)
    for service in services:
        service.stop()


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
