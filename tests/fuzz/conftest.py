"""Each fuzzed service runs once per module on its own vhost and database; the per-operation table is written to
var/fuzz-report.md and printed at the end of the run."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from minsheng_core.paths import VAR_DIR
from tests.conftest import AMQP_HOST, MANAGEMENT_URL, MONGO_URL, RABBIT_PASSWORD, RABBIT_USER, unique
from tests.fuzz.harness import (
    FuzzRun,
    RunningService,
    ServerThread,
    ServiceMissing,
    admin_headers,
    build_settings,
    fetch_spec,
    load_target,
    report_table,
    write_report,
)
from tests.fuzz.targets import TARGETS

REPORT_FILE = VAR_DIR / "fuzz-report.md"
RUNS: list[FuzzRun] = []
SKIPPED: list[str] = []


def _selected() -> list[str]:
    """All targets, or those named in FUZZ_SERVICES (comma-separated) to fuzz one service while fixing it."""
    wanted = {name.strip() for name in os.environ.get("FUZZ_SERVICES", "").split(",") if name.strip()}
    return [t.name for t in TARGETS if not wanted or t.name in wanted]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fuzzed" in metafunc.fixturenames:
        metafunc.parametrize("fuzzed", _selected(), indirect=True, scope="module")


@pytest.fixture(scope="module")
def fuzzed(request: pytest.FixtureRequest) -> Iterator[RunningService]:
    """The named service as a real HTTP server on a fresh vhost and database, with an administrator's headers."""
    target = next(t for t in TARGETS if t.name == request.param)
    try:
        create_app, settings_class = load_target(target)
    except ServiceMissing as exc:
        SKIPPED.append(str(exc))
        pytest.skip(str(exc))
    ctx = {"model_dir": request.getfixturevalue("model_dir")} if target.needs_model else {}
    vhost, database = unique("fuzz"), unique("fuzz")
    directory = Path(tempfile.mkdtemp(prefix=f"fuzz-{target.name}-"))
    management = httpx.Client(base_url=MANAGEMENT_URL, auth=(RABBIT_USER, RABBIT_PASSWORD), timeout=30)
    management.put(f"/api/vhosts/{quote(vhost, safe='')}").raise_for_status()
    permissions = {"configure": ".*", "write": ".*", "read": ".*"}
    management.put(f"/api/permissions/{quote(vhost, safe='')}/{RABBIT_USER}", json=permissions).raise_for_status()
    amqp_url = f"amqp://{RABBIT_USER}:{RABBIT_PASSWORD}@{AMQP_HOST}/{quote(vhost, safe='')}"
    server = None
    try:
        settings = build_settings(target, settings_class, amqp_url, MONGO_URL, database, directory, ctx)
        server = ServerThread(create_app(settings))
        base_url = server.start()
        yield RunningService(target, base_url, admin_headers(target, MONGO_URL, database), fetch_spec(base_url))
    finally:
        if server is not None:
            server.stop()
        management.delete(f"/api/vhosts/{quote(vhost, safe='')}")
        management.close()
        _drop_database(database)
        shutil.rmtree(directory, ignore_errors=True)


def _drop_database(name: str) -> None:
    from pymongo import MongoClient

    client: MongoClient = MongoClient(MONGO_URL)
    try:
        client.drop_database(name)
    finally:
        client.close()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not RUNS and not SKIPPED:
        return
    write_report(REPORT_FILE, RUNS, SKIPPED)
    terminalreporter.section("fuzzing the HTTP APIs (cases and failures per operation)")
    terminalreporter.write_line(report_table(RUNS))
    for run in RUNS:
        if run.errors or any(result.findings for result in run.operations.values()):
            terminalreporter.write_line(run.failure_report())
    for reason in SKIPPED:
        terminalreporter.write_line(f"skipped: {reason}")
    terminalreporter.write_line(f"report: {REPORT_FILE}")
