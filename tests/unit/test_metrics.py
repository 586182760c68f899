"""Prometheus metrics of the HTTP layer: /metrics, counts by route template, no raw paths (in-process apps only)."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client.parser import text_string_to_metric_families

from minsheng_core import metrics
from minsheng_core.http import install_common, service_name


def app_for(service: str, static: Path | None = None) -> FastAPI:
    app = FastAPI(title=f"Minsheng {service}")
    install_common(app)

    @app.get("/api/v1/suggestions/{suggestion_id}")
    async def one(suggestion_id: str) -> dict:
        return {"id": suggestion_id}

    @app.post("/api/v1/suggestions")
    async def create(body: dict) -> dict:
        return body

    if static is not None:
        app.mount("/static", StaticFiles(directory=static), name="static")
    return app


def samples(text: str, name: str, **labels: str) -> list[float]:
    """Values of the samples called ``name`` whose labels include ``labels``."""
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]


async def call(app: FastAPI, *requests: tuple[str, str]) -> str:
    """Make the requests, then return what /metrics answers."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for method, path in requests:
            await client.request(method, path, json={} if method == "POST" else None)
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def unique_service() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


async def test_requests_are_counted_by_route_template_never_by_raw_path():
    service = unique_service()
    text = await call(
        app_for(service),
        ("GET", "/api/v1/suggestions/13812345678"),
        ("GET", "/api/v1/suggestions/web-abc"),
        ("POST", "/api/v1/suggestions"),
        ("GET", "/no/such/13912345678"),
    )
    requests = "minsheng_http_requests_total"
    template = "/api/v1/suggestions/{suggestion_id}"
    assert samples(text, requests, service=service, method="GET", route=template, status="200") == [2.0]
    assert samples(text, requests, service=service, method="POST", route="/api/v1/suggestions", status="200") == [1.0]
    assert samples(text, requests, service=service, route="unmatched", status="404") == [1.0]
    count = "minsheng_http_request_duration_seconds_count"
    assert samples(text, count, service=service, method="GET", route=template) == [2.0]
    ours = [line for line in text.splitlines() if service in line]
    assert ours and not any("13812345678" in line or "13912345678" in line or "web-abc" in line for line in ours)


async def test_probes_and_the_metrics_endpoint_itself_are_not_counted():
    service = unique_service()
    text = await call(app_for(service), ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"))
    assert samples(text, "minsheng_http_requests_total", service=service) == []


async def test_mounted_static_files_count_under_the_mount_not_the_file(tmp_path):
    (tmp_path / "site.css").write_text("body {}")
    service = unique_service()
    text = await call(app_for(service, static=tmp_path), ("GET", "/static/site.css"))
    assert samples(text, "minsheng_http_requests_total", service=service, route="/static/{path}", status="200") == [1.0]


def test_the_service_label_comes_from_the_app_title():
    assert service_name(FastAPI(title="Minsheng intake-web")) == "intake-web"
    assert service_name(FastAPI(title="Minsheng store (staff API)")) == "store"


def test_several_apps_of_every_service_in_one_process_share_the_metrics_without_clashing(tmp_path):
    from minsheng_classifier.app import create_app as classifier_app
    from minsheng_classifier.settings import ClassifierSettings
    from minsheng_intake_web.app import create_app as web_app
    from minsheng_intake_web.settings import WebSettings
    from minsheng_store.app import create_app as store_app
    from minsheng_store.settings import StoreSettings

    for _ in range(2):  # building an app registers nothing twice
        web_app(WebSettings(outbox_path=tmp_path / "outbox.sqlite3", log_format="json"))
        store_app(StoreSettings(log_format="json"))
        classifier_app(ClassifierSettings(log_format="json"))


def test_exposed_names_cover_every_family_with_its_suffixes():
    names = metrics.exposed_names()
    assert {"minsheng_http_requests_total", "minsheng_events_consumed_total", "minsheng_outbox_pending"} <= names
    assert "minsheng_http_request_duration_seconds_bucket" in names and "minsheng_http_requests" not in names


def test_replica_ids_are_unique_within_the_process():
    first, second = metrics.new_identity("replica-test"), metrics.new_identity("replica-test")
    assert first.service == second.service == "replica-test" and first.replica != second.replica
