"""Run a service as a real HTTP server and fuzz it with schemathesis from its own /openapi.json."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tests.fuzz.targets import TRANSCRIPTS_TOKEN, Target

# What every case is checked for: no 5xx; only the status codes and content types the schema documents; bodies that
# match the documented schema; and a request the schema calls invalid refused with a 4xx (our validation is at least
# as strict as what we publish). Left out: positive_data_acceptance (random ids name nothing: 404 is right), the
# stateful checks (our schemas have no links) and ignored_auth (the anonymous run checks every secured operation).
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)


class ServiceMissing(Exception):
    """The target's package is not installed (yet): the service is being written."""


@dataclass
class RunningService:
    target: Target
    base_url: str
    headers: dict[str, str]  # the authenticated run's headers (empty for a public service)
    spec: dict[str, Any]

    def secured(self) -> set[str]:
        """Operations ("METHOD /path") that must refuse a request without credentials."""
        out = set(self.target.secured_without_scheme)
        global_security = self.spec.get("security")
        for path, ops in self.spec.get("paths", {}).items():
            for method, op in ops.items():
                if isinstance(op, dict) and (op.get("security") or global_security):
                    out.add(f"{method.upper()} {path}")
        return out


def load_target(target: Target) -> tuple[Any, Any]:
    """(create_app, settings class) of a target, or ServiceMissing with the reason."""
    if importlib.util.find_spec(target.package) is None:
        raise ServiceMissing(f"{target.name}: package {target.package} is not installed yet")
    try:
        app_module = importlib.import_module(f"{target.package}.app")
        settings_module = importlib.import_module(f"{target.package}.settings")
    except ModuleNotFoundError as exc:
        raise ServiceMissing(f"{target.name}: {exc}") from None
    create_app = getattr(app_module, "create_app", None)
    settings_class = getattr(settings_module, target.settings_class, None)
    if create_app is None or settings_class is None:
        raise ServiceMissing(f"{target.name}: no create_app or {target.settings_class} yet")
    return create_app, settings_class


def build_settings(
    target: Target, settings_class: Any, amqp_url: str, mongo_url: str, database: str, directory: Path, ctx: dict
) -> Any:
    """The service's settings on the test's own vhost and database, with the campaign open around today."""
    today = date.today()
    common = dict(
        environment="test",
        amqp_url=amqp_url,
        mongo_url=mongo_url,
        mongo_database=database,
        campaign_opens_on=today - timedelta(days=2),
        campaign_closes_on=today + timedelta(days=2),
        log_format="json",
    )
    return settings_class(**common, **target.extra_settings(directory, ctx))


class ServerThread:
    """uvicorn serving an app (lifespan included) on a free local port, in a background thread."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_config=None, access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="fuzzed-service", daemon=True)

    def start(self, timeout: float = 120.0) -> str:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the service stopped during start-up (see its log)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start within {timeout} s")
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def admin_headers(target: Target, mongo_url: str, database: str) -> dict[str, str]:
    """The authenticated run's headers: an administrator's staff token, or the service's own token."""
    if target.auth == "transcripts":
        return {"Authorization": f"Bearer {TRANSCRIPTS_TOKEN}"}
    if target.auth == "none":
        return {}
    from pymongo import AsyncMongoClient

    from minsheng_core.staff import Role, StaffDirectory

    async def sign_in() -> str:
        client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
        try:
            directory = StaffDirectory(client[database])
            member = await directory.create("fuzz-admin", "a fuzzing password", Role.ADMIN, "fuzz-admin")
            return await directory.open_session(member)
        finally:
            await client.close()

    return {"Authorization": f"Bearer {asyncio.run(sign_in())}"}


def fetch_spec(base_url: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/openapi.json", timeout=30)
    response.raise_for_status()
    return response.json()


# ---------------------------------------------------------------------------------------------------------------------
# The schemathesis run and what it found, per operation


@dataclass
class Finding:
    """One distinct failure: which check, the status answered, a one-line reason and how to reproduce it."""

    check: str
    status: int | None
    title: str
    message: str
    curl: str
    case: Any = field(default=None, repr=False)  # the schemathesis Case, to replay it
    flaky: bool = False  # a 5xx that the same request, sent again, did not give

    def key(self) -> tuple[str, int | None, str]:
        return self.check, self.status, self.title

    def line(self) -> str:
        message = " ".join(self.message.split())[:300]
        flaky = " [did not reproduce when sent again: not counted]" if self.flaky else ""
        return f"{self.check} ({self.status}){flaky}: {self.title} — {message}\n      {self.curl[:600]}"


@dataclass
class OperationResult:
    operation: str  # "METHOD /path"
    cases: int = 0  # requests that reached the service
    statuses: Counter[int] = field(default_factory=Counter)
    findings: dict[tuple, Finding] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        return sum(1 for finding in self.findings.values() if not finding.flaky)


@dataclass
class FuzzRun:
    service: str
    mode: str  # "admin" or "anonymous"
    operations: dict[str, OperationResult] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # the engine's own errors (schema problems, unreachable service)
    seconds: float = 0.0
    seed: int | None = None  # FUZZ_SEED=<seed> replays the run

    def result(self, operation: str) -> OperationResult:
        return self.operations.setdefault(operation, OperationResult(operation))

    @property
    def cases(self) -> int:
        return sum(r.cases for r in self.operations.values())

    @property
    def failures(self) -> int:
        return sum(r.failures for r in self.operations.values()) + len(self.errors)

    def failure_report(self) -> str:
        lines = [f"{self.service} ({self.mode}, seed {self.seed}): {self.failures} failure(s)"]
        for result in self.operations.values():
            for finding in result.findings.values():
                lines.append(f"  {result.operation}: {finding.line()}")
        lines += [f"  engine error: {error}" for error in self.errors]
        return "\n".join(lines)


def schemathesis_config(
    headers: dict[str, str],
    max_examples: int,
    mode: str,
    seed: int | None,
    known_values: dict[str, list[Any]],
    phases: tuple[str, ...] = ("examples", "coverage", "fuzzing"),
) -> Any:
    from schemathesis import Config

    checks: dict[str, Any] = {"enabled": False, **{name: {"enabled": True} for name in CHECKS}}
    # A schema-violating body can also be refused as too large to read (413) before it is validated: a right refusal.
    refusals = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5XX"]
    checks["negative_data_rejection"]["expected-statuses"] = refusals
    dictionaries = {f"known{i}": {"values": values} for i, values in enumerate(known_values.values())}
    parameters = {key: {"dictionary": f"known{i}", "probability": 0.5} for i, key in enumerate(known_values)}
    data: dict[str, Any] = {
        "workers": 1,
        "continue-on-failure": True,
        "request-timeout": 30,
        "headers": headers,
        "warnings": False,
        "generation": {"mode": mode, "max-examples": max_examples, "allow-x00": True},
        "phases": {phase: {"enabled": phase in phases} for phase in ("examples", "coverage", "fuzzing", "stateful")},
        "checks": checks,
        "dictionaries": dictionaries,
        "parameters": parameters,
    }
    if seed is not None:
        data["seed"] = seed
    return Config.from_dict(data)


def run_schemathesis(
    service: RunningService,
    mode: str,
    *,
    max_examples: int,
    generation: str = "all",
    seed: int | None = None,
    phases: tuple[str, ...] = ("examples", "coverage", "fuzzing"),
) -> FuzzRun:
    """Fuzz every operation of the service's schema; authenticated ("admin") or with no credentials ("anonymous")."""
    import schemathesis
    from schemathesis.engine import events

    headers = service.headers if mode == "admin" else {}
    config = schemathesis_config(headers, max_examples, generation, seed, service.target.known_values, phases)
    schema = schemathesis.openapi.from_dict(service.spec, config=config)
    schema.config.base_url = service.base_url
    run = FuzzRun(service.target.name, mode, seed=config.seed)
    secured = service.secured()
    started = time.monotonic()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _collect(run, event.recorder, secured if mode == "anonymous" else set())
        elif isinstance(event, events.NonFatalError):
            run.errors.append(f"{event.label}: {event.info.title}: {event.info.message}"[:500])
        elif isinstance(event, events.FatalError):
            run.errors.append(f"fatal: {event.exception!r}"[:500])
    _replay_server_errors(run, service.base_url, headers)
    run.seconds = time.monotonic() - started
    # Operations the engine never reached still get their row (with 0 cases, which the test flags).
    for path, ops in service.spec.get("paths", {}).items():
        for method in ops:
            if method in ("get", "put", "post", "patch", "delete"):
                run.result(f"{method.upper()} {path}")
    return run


def _replay_server_errors(run: FuzzRun, base_url: str, headers: dict[str, str]) -> None:
    """Send each request that got a 5xx again: one that now succeeds met a passing outage of the shared broker or
    database (other suites restart them), not a bug of the service; it is reported but not counted."""
    for result in run.operations.values():
        for finding in result.findings.values():
            if finding.status is None or finding.status < 500 or finding.case is None:
                continue
            time.sleep(1)
            try:
                again = finding.case.call(base_url=base_url, headers=headers, timeout=30)
            except Exception:  # the service itself is gone: that reproduces
                continue
            finding.flaky = again.status_code < 500


def _label_operation(label: str) -> str:
    return label.split(" -> ")[0].strip()


def _collect(run: FuzzRun, recorder: Any, secured: set[str]) -> None:
    from schemathesis.engine import Status

    for case_id, interaction in recorder.interactions.items():
        node = recorder.cases.get(case_id)
        operation = node.value.operation.label if node is not None else _label_operation(recorder.label)
        result = run.result(operation)
        result.cases += 1
        status = interaction.response.status_code if interaction.response is not None else None
        if status is not None:
            result.statuses[status] += 1
        # Without credentials, a secured operation answers 401 or 403 (or 413 to a body too large to read):
        # anything else would mean it served, or looked at, the request before checking who sent it.
        if operation in secured and status not in (401, 403, 413):
            curl = node.value.as_curl_command() if node is not None else ""
            case = node.value if node is not None else None
            finding = Finding("anonymous_refused", status, "answered a request without credentials", "", curl, case)
            result.findings.setdefault(finding.key(), finding)
    for case_id, checks in recorder.checks.items():
        node = recorder.cases.get(case_id)
        if node is None:
            continue
        result = run.result(node.value.operation.label)
        for check in checks:
            if check.status != Status.FAILURE or check.failure_info is None:
                continue
            failure = check.failure_info.failure
            response = recorder.interactions.get(case_id)
            status = response.response.status_code if response is not None and response.response is not None else None
            finding = Finding(
                check.name, status, failure.title, failure.message or "", check.failure_info.code_sample, node.value
            )
            result.findings.setdefault(finding.key(), finding)


# ---------------------------------------------------------------------------------------------------------------------
# The report: one row per operation and run


def report_table(runs: list[FuzzRun]) -> str:
    lines = [
        "| service | run | operation | cases | failures | statuses |",
        "|---|---|---|---:|---:|---|",
    ]
    for run in runs:
        for result in sorted(run.operations.values(), key=lambda r: r.operation.split(" ", 1)[::-1]):
            statuses = ", ".join(f"{code}×{n}" for code, n in sorted(result.statuses.items()))
            lines.append(
                f"| {run.service} | {run.mode} | `{result.operation}` | {result.cases} | {result.failures} | {statuses} |"
            )
    total_cases = sum(run.cases for run in runs)
    total_failures = sum(run.failures for run in runs)
    lines.append(f"| **total** | | {sum(len(r.operations) for r in runs)} operation runs | {total_cases} | {total_failures} | |")
    return "\n".join(lines)


def write_report(path: Path, runs: list[FuzzRun], skipped: list[str]) -> None:
    by_service: dict[str, list[FuzzRun]] = defaultdict(list)
    for run in runs:
        by_service[run.service].append(run)
    parts = [
        "# Fuzzing the HTTP APIs from their OpenAPI schemas",
        "",
        f"schemathesis checks: {', '.join(CHECKS)}; without credentials every secured operation must answer 401/403.",
        "",
        report_table(runs),
    ]
    if skipped:
        parts += ["", "Skipped:", *[f"- {reason}" for reason in skipped]]
    failing = [run for run in runs if run.errors or any(r.findings for r in run.operations.values())]
    if failing:
        parts += ["", "## Failures", "", "```", *[run.failure_report() for run in failing], "```"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
