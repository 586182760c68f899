"""Fault suite fixtures: private RabbitMQ and FerretDB for the session, the system as processes per test, the report."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from minsheng_core.paths import REPO_ROOT
from tests.fault.pipeline import REPORT_HEADER, Count, FaultSystem
from tests.fault.servers import Ferret, RabbitNode, remove_tree

REPORT_FILE = REPO_ROOT / "var" / "fault-report.md"
_ROWS: list[Count] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fault: fault injection on private servers (stops, kills, restarts them)")


@dataclass
class PrivateServers:
    rabbit: RabbitNode
    ferret: Ferret
    base: Path


@pytest.fixture(scope="session")
def private_servers() -> Iterator[PrivateServers]:
    """A RabbitMQ node and a FerretDB of the suite's own, which it may stop and restart; the shared ones stay up."""
    for why in (RabbitNode.available(), Ferret.available()):
        if why:
            pytest.fail(f"the fault suite needs its own servers: {why}")
    base = Path(tempfile.mkdtemp(prefix="minsheng-fault-"))
    servers = PrivateServers(RabbitNode(base / "rabbitmq"), Ferret(base / "ferretdb"), base)
    try:
        servers.ferret.start()
        servers.rabbit.start()
        yield servers
    finally:
        servers.rabbit.stop()
        servers.ferret.stop()
        if os.environ.get("MINSHENG_FAULT_KEEP"):
            print(f"fault suite: logs and data kept in {base}")
        else:
            remove_tree(base)


@pytest.fixture
async def fault_system(private_servers: PrivateServers, model_dir: Path) -> AsyncIterator[FaultSystem]:
    """Classifier, store, web, WeChat, hotline and survey as uvicorn processes on a fresh vhost and database."""
    tag = f"fault_{uuid.uuid4().hex[:10]}"
    base = private_servers.base / tag
    base.mkdir()
    system = FaultSystem(private_servers.rabbit, private_servers.ferret, base, model_dir, tag)
    try:
        await system.start()
        yield system
    finally:
        # A test that failed halfway through an outage leaves its server down: the next test needs it.
        for server in (private_servers.rabbit, private_servers.ferret):
            if not server.running:
                await asyncio.to_thread(server.start)
        await system.close()


@pytest.fixture
def fault_report():
    """Add a scenario's count to the report printed (and written to var/fault-report.md) at the end of the run."""
    return _ROWS.append


def report_text() -> str:
    rows = sorted(_ROWS, key=lambda c: c.scenario)
    channels = "\n".join(f"- {c.scenario}: stored by channel {c.by_channel}" for c in rows)
    return f"{REPORT_HEADER}\n" + "\n".join(c.row() for c in rows) + f"\n\n{channels}\n"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _ROWS:
        return
    text = report_text()
    REPORT_FILE.parent.mkdir(parents=True, exist_ok=True)
    REPORT_FILE.write_text("# Fault injection report\n\n" + text, encoding="utf-8")
    terminalreporter.section("fault injection report (var/fault-report.md)")
    terminalreporter.write(text)
