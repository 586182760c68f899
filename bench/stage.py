"""A fresh vhost and database for each measurement, and the services as real processes on them."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
from pymongo import MongoClient

from minsheng_core.paths import REPO_ROOT

AMQP_HOST = os.environ.get("MINSHENG_BENCH_AMQP_HOST", "127.0.0.1:5672")
MANAGEMENT_URL = os.environ.get("MINSHENG_BENCH_RABBITMQ_MANAGEMENT", "http://127.0.0.1:15672")
RABBIT_USER, RABBIT_PASSWORD = "guest", "guest"
MONGO_URL = os.environ.get("MINSHENG_BENCH_MONGO_URL", "mongodb://127.0.0.1:27017/")
WORK_DIR = REPO_ROOT / "var" / "bench"


@dataclass(frozen=True)
class Stage:
    """A vhost and a database that exist only for one measurement."""

    name: str
    amqp_url: str
    mongo_url: str
    database: str
    directory: Path


@contextlib.contextmanager
def fresh_stage(prefix: str) -> Iterator[Stage]:
    """Create the vhost and a working directory; remove vhost and database afterwards."""
    name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
    auth = (RABBIT_USER, RABBIT_PASSWORD)
    directory = WORK_DIR / name
    directory.mkdir(parents=True, exist_ok=True)
    with httpx.Client(base_url=MANAGEMENT_URL, auth=auth, timeout=30) as api:
        api.put(f"/api/vhosts/{name}").raise_for_status()
        everything = {"configure": ".*", "write": ".*", "read": ".*"}
        api.put(f"/api/permissions/{name}/{RABBIT_USER}", json=everything).raise_for_status()
        try:
            yield Stage(name, f"amqp://{RABBIT_USER}:{RABBIT_PASSWORD}@{AMQP_HOST}/{quote(name)}", MONGO_URL, name, directory)
        finally:
            api.delete(f"/api/vhosts/{name}")
            with MongoClient(MONGO_URL) as client:
                client.drop_database(name)


# name → (application factory, env prefix, port)
SERVICES = {
    "classifier": ("minsheng_classifier.app:create_app", "MINSHENG_CLASSIFIER_", 18001),
    "store": ("minsheng_store.app:create_app", "MINSHENG_STORE_", 18002),
    "intake-web": ("minsheng_intake_web.app:create_app", "MINSHENG_WEB_", 18000),
}


@dataclass
class Service:
    """A service running as its own uvicorn process, as in production."""

    name: str
    port: int
    process: subprocess.Popen
    log: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def peak_rss_mib(self) -> float:
        """The process's peak resident memory (VmHWM), in MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_service(stage: Stage, name: str, **settings: str) -> Service:
    """Start one service on the stage and wait until it is ready."""
    factory, prefix, port = SERVICES[name]
    today = date.today()  # the window spans yesterday to tomorrow: the campaign's zone may be a day ahead
    env = {
        **os.environ,
        f"{prefix}AMQP_URL": stage.amqp_url,
        f"{prefix}MONGO_URL": stage.mongo_url,
        f"{prefix}MONGO_DATABASE": stage.database,
        f"{prefix}CAMPAIGN_OPENS_ON": str(today - timedelta(days=1)),
        f"{prefix}CAMPAIGN_CLOSES_ON": str(today + timedelta(days=1)),
        f"{prefix}LOG_FORMAT": "json",
        f"{prefix}LOG_LEVEL": "warning",
        **{f"{prefix}{key.upper()}": value for key, value in settings.items()},
    }
    log = stage.directory / f"{name}.log"
    command = [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port", str(port)]
    command.append("--no-access-log")
    process = subprocess.Popen(command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    service = Service(name, port, process, log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited at start; see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200:
                return service
        time.sleep(0.3)
    service.stop()
    raise RuntimeError(f"{name} not ready within 180 s; see {log}")


def start_pipeline(stage: Stage) -> dict[str, Service]:
    """Classifier, store and the web intake on the stage (rate limits lifted: the load comes from one address)."""
    services = {
        "classifier": start_service(stage, "classifier"),
        "store": start_service(stage, "store"),
    }
    services["intake-web"] = start_service(
        stage,
        "intake-web",
        outbox_path=str(stage.directory / "web-outbox.sqlite3"),
        submissions_rate="100000000/minute",
        lookups_rate="100000000/minute",
    )
    return services
