"""Shared HTTP behaviour: readiness, body limits, request ids (no I/O beyond the in-process app)."""

import httpx
from fastapi import FastAPI

from minsheng_core.http import install_common


def app_with(state: dict | None = None) -> FastAPI:
    app = FastAPI()
    install_common(app, max_body_bytes=1024)
    for key, value in (state or {}).items():
        setattr(app.state, key, value)

    @app.post("/echo")
    async def echo(body: dict) -> dict:
        return body

    return app


class _Connection:
    def __init__(self, closed: bool) -> None:
        self.is_closed = closed


async def get(app: FastAPI, path: str, **kwargs) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.request(kwargs.pop("method", "GET"), path, **kwargs)


async def test_not_ready_without_an_open_broker_connection():
    assert (await get(app_with(), "/readyz")).status_code == 503
    assert (await get(app_with({"connection": _Connection(closed=True)}), "/readyz")).status_code == 503
    assert (await get(app_with({"connection": _Connection(closed=False)}), "/readyz")).status_code == 200
    assert (await get(app_with(), "/healthz")).status_code == 200


async def test_bodies_over_the_limit_get_413_with_or_without_a_length():
    app = app_with()
    json_type = {"content-type": "application/json"}
    declared = await get(app, "/echo", method="POST", content=b"{" + b" " * 2000 + b"}", headers=json_type)
    assert declared.status_code == 413

    async def chunks():
        for _ in range(4):
            yield b" " * 600

    streamed = await get(app, "/echo", method="POST", content=chunks(), headers=json_type)
    assert streamed.status_code == 413
    assert (await get(app, "/echo", method="POST", json={"a": 1})).json() == {"a": 1}


async def test_every_response_carries_a_request_id():
    response = await get(app_with(), "/healthz", headers={"x-request-id": "abc123"})
    assert response.headers["x-request-id"] == "abc123"
    assert len((await get(app_with(), "/healthz")).headers["x-request-id"]) == 32


async def test_every_page_carries_the_security_headers_and_a_strict_content_security_policy():
    import httpx
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    from minsheng_core.http import install_common

    app = FastAPI()
    install_common(app)

    @app.get("/page", response_class=HTMLResponse)
    def page() -> str:
        return "<p>页</p>"

    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    headers = (await client.get("/page")).headers
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-eval" not in policy
    assert (headers["x-content-type-options"], headers["x-frame-options"]) == ("nosniff", "DENY")
    assert "content-security-policy" not in (await client.get("/docs")).headers  # Swagger UI's scripts come from a CDN
