"""Property-based fuzzing of every HTTP API from its own OpenAPI schema (schemathesis): no 5xx, only documented
status codes and content types, bodies that match the documented schemas, invalid input refused with a 4xx — and,
without credentials, every secured operation refuses with 401/403.

``FUZZ_MAX_EXAMPLES`` (default 20) bounds the generated cases per operation and phase, ``FUZZ_SEED`` replays a run,
``FUZZ_SERVICES=store,notifier`` fuzzes only those services. Under CI (``CI`` set) the seed is fixed unless given, so
that a change is judged on the same cases as the one before it; elsewhere every run draws new ones (the seed of a
failing run is in its report, to replay it).
"""

from __future__ import annotations

import os

import pytest

from tests.fuzz.conftest import RUNS
from tests.fuzz.harness import FuzzRun, RunningService, ServerThread, ServiceMissing, fetch_spec, load_target, run_schemathesis
from tests.fuzz.targets import Target

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "20"))
# Without credentials only valid requests are worth sending: each must be refused before anything else is looked at.
ANONYMOUS_EXAMPLES = max(3, MAX_EXAMPLES // 2)
CI_SEED = 20191020
SEED = int(os.environ["FUZZ_SEED"]) if os.environ.get("FUZZ_SEED") else (CI_SEED if os.environ.get("CI") else None)


def _assert_clean(run: FuzzRun) -> None:
    RUNS.append(run)
    untested = [r.operation for r in run.operations.values() if r.cases == 0]
    assert not untested, f"{run.service} ({run.mode}): operations the fuzzer never reached: {untested}"
    assert run.failures == 0, run.failure_report()


def test_every_operation_answers_bad_input_as_documented(fuzzed: RunningService) -> None:
    run = run_schemathesis(fuzzed, "admin", max_examples=MAX_EXAMPLES, generation="all", seed=SEED)
    assert run.cases > 0
    _assert_clean(run)


def test_without_credentials_secured_operations_refuse_and_nothing_fails(fuzzed: RunningService) -> None:
    # The fuzzing phase alone: the boundary values of the coverage phase all stop at the same credential check.
    run = run_schemathesis(
        fuzzed, "anonymous", max_examples=ANONYMOUS_EXAMPLES, generation="positive", seed=SEED, phases=("fuzzing",)
    )
    secured = fuzzed.secured()
    if fuzzed.target.auth != "none":
        assert secured, f"{fuzzed.target.name} authenticates but its schema declares no secured operation"
        refused = sum(run.operations[op].statuses[401] + run.operations[op].statuses[403] for op in secured)
        assert refused > 0
    _assert_clean(run)


def test_a_service_not_written_yet_is_skipped_with_its_reason() -> None:
    with pytest.raises(ServiceMissing, match="minsheng_not_written_yet is not installed yet"):
        load_target(Target("future-service", "minsheng_not_written_yet", "FutureSettings", "none"))


def test_the_harness_finds_server_errors_undocumented_answers_and_open_doors() -> None:
    """A small app with one bug of each kind the suite exists to catch: each must be reported."""
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.security import HTTPBearer

    from minsheng_core.http import install_common

    app = FastAPI(title="Minsheng faulty")
    install_common(app)

    @app.get("/divide")
    async def divide(by: int) -> dict[str, float]:
        return {"result": 1 / by}  # by=0: a 500

    @app.get("/things/{name}")
    async def thing(name: str) -> dict[str, str]:
        raise HTTPException(status_code=404, detail="no such thing")  # a 404 the schema does not declare

    @app.get("/secret", dependencies=[Depends(HTTPBearer(auto_error=False))])
    async def secret() -> dict[str, str]:
        return {"secret": "for anyone"}  # declares a bearer token, never checks it

    server = ServerThread(app)
    base_url = server.start()
    try:
        service = RunningService(Target("faulty", "faulty", "-", "none"), base_url, {}, fetch_spec(base_url))
        found = run_schemathesis(service, "admin", max_examples=30, seed=1)
        checks = {(op, f.check) for op, r in found.operations.items() for f in r.findings.values()}
        assert ("GET /divide", "not_a_server_error") in checks
        assert ("GET /things/{name}", "status_code_conformance") in checks
        anonymous = run_schemathesis(service, "anonymous", max_examples=3, generation="positive", phases=("fuzzing",), seed=1)
        assert anonymous.operations["GET /secret"].failures > 0
    finally:
        server.stop()
