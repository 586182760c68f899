"""A local fake of the WeChat OA server API (token, customer-service and template messages) and a uvicorn runner.

Test controls are plain attributes on ``app.state``:

- ``token_fetches``: how many times /cgi-bin/token issued a token;
- ``issued_tokens``: every token ever issued (to check that none leaks into logs);
- ``messages``: accepted messages, each ``{"endpoint", "appid", "body", "raw", "content_type"}``;
- ``requests``: the path of every request received, failed ones included;
- ``outside_window``: openids whose last message is older than 48 hours (customer-service send answers 45015);
- ``errcodes``: openid -> errcode that every message to that openid answers (e.g. 43004, 45047);
- ``fail_next``: the next N requests answer HTTP 503;
- ``delay_next`` / ``delay_seconds``: the next N requests are answered only after that many seconds (timeouts);
- ``reject_all_tokens``: every message call answers 40001, even with a fresh token;
- ``echo_openid_in_errmsg``: errmsg of message errors carries the openid (WeChat's errmsg is free text);
- ``expire_tokens()``: invalidate every token issued so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

ERRMSG = {
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    41001: "access_token missing",
    43004: "require subscribe",
    44002: "empty post data",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    47001: "data format error",
}


def _error(errcode: int, extra: str = "") -> JSONResponse:
    # WeChat answers errors with HTTP 200 and a request id appended to errmsg.
    return JSONResponse({"errcode": errcode, "errmsg": ERRMSG[errcode] + extra + " rid: " + secrets.token_hex(12)})


def create_fake_wechat_api(apps: dict[str, str]) -> FastAPI:
    """A FastAPI app answering like api.weixin.qq.com for the given appid -> secret pairs."""
    app = FastAPI()
    state = app.state
    state.apps = dict(apps)
    state.tokens = {}  # token -> appid
    state.issued_tokens = []
    state.token_fetches = 0
    state.messages = []
    state.requests = []
    state.outside_window = set()
    state.errcodes = {}
    state.fail_next = 0
    state.delay_next = 0
    state.delay_seconds = 0.0
    state.reject_all_tokens = False
    state.echo_openid_in_errmsg = False

    def expire_tokens() -> None:
        state.tokens.clear()

    state.expire_tokens = expire_tokens

    @app.middleware("http")
    async def record_and_fail(request: Request, call_next: Any) -> Response:
        state.requests.append(request.url.path)
        if state.delay_next > 0:
            state.delay_next -= 1
            await asyncio.sleep(state.delay_seconds)
        if state.fail_next > 0:
            state.fail_next -= 1
            return Response("Service Unavailable", status_code=503)
        return await call_next(request)

    @app.get("/cgi-bin/token")
    async def token(grant_type: str = "", appid: str = "", secret: str = "") -> JSONResponse:
        if grant_type != "client_credential":
            return _error(40002)
        if appid not in state.apps:
            return _error(40013)
        if not secrets.compare_digest(secret, state.apps[appid]):
            return _error(40125)
        value = secrets.token_urlsafe(48)
        state.tokens[value] = appid
        state.issued_tokens.append(value)
        state.token_fetches += 1
        return JSONResponse({"access_token": value, "expires_in": 7200})

    async def accept(request: Request, endpoint: str) -> tuple[str, dict[str, Any], bytes] | JSONResponse:
        token = request.query_params.get("access_token")
        if not token:
            return _error(41001)
        if state.reject_all_tokens or token not in state.tokens:
            return _error(40001)
        raw = await request.body()
        if not raw:
            return _error(44002)
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError:
            return _error(47001)
        if not isinstance(body, dict) or not isinstance(body.get("touser"), str) or not body["touser"]:
            return _error(47001)
        errcode = state.errcodes.get(body["touser"])
        if errcode is None and endpoint == "custom" and body["touser"] in state.outside_window:
            errcode = 45015
        if errcode is not None:
            return _error(errcode, " hint: [" + body["touser"] + "]" if state.echo_openid_in_errmsg else "")
        return state.tokens[token], body, raw

    def record(request: Request, endpoint: str, appid: str, body: dict[str, Any], raw: bytes) -> None:
        content_type = request.headers.get("content-type", "")
        state.messages.append({"endpoint": endpoint, "appid": appid, "body": body, "raw": raw, "content_type": content_type})

    @app.post("/cgi-bin/message/custom/send")
    async def custom_send(request: Request) -> JSONResponse:
        accepted = await accept(request, "custom")
        if isinstance(accepted, JSONResponse):
            return accepted
        appid, body, raw = accepted
        text = body.get("text")
        if body.get("msgtype") != "text" or not isinstance(text, dict) or not isinstance(text.get("content"), str):
            return _error(47001)
        record(request, "custom", appid, body, raw)
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    @app.post("/cgi-bin/message/template/send")
    async def template_send(request: Request) -> JSONResponse:
        accepted = await accept(request, "template")
        if isinstance(accepted, JSONResponse):
            return accepted
        appid, body, raw = accepted
        if not isinstance(body.get("template_id"), str) or not body["template_id"]:
            return _error(40037)
        data = body.get("data")
        if not isinstance(data, dict) or not all(isinstance(v, dict) and isinstance(v.get("value"), str) for v in data.values()):
            return _error(47001)
        record(request, "template", appid, body, raw)
        return JSONResponse({"errcode": 0, "errmsg": "ok", "msgid": secrets.randbelow(10**12)})

    return app


@contextlib.asynccontextmanager
async def serve(app: Any, startup_timeout: float = 10.0) -> AsyncIterator[str]:
    """Run an ASGI app with uvicorn on a free local port in a background thread; yield its base URL."""
    # Binding the socket ourselves avoids the race between picking a free port and uvicorn binding it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # log_config=None keeps uvicorn from reconfiguring logging; no access log, as query strings carry tokens.
    config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, loop="asyncio", lifespan="auto")
    server = uvicorn.Server(config)
    # A thread with its own loop, so a test blocking its loop cannot stall the server it talks to.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="serve-" + str(port), daemon=True)
    thread.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server thread exited during startup")
            if loop.time() > deadline:
                raise TimeoutError("the server did not start within " + str(startup_timeout) + " s")
            await asyncio.sleep(0.01)
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        await writer.wait_closed()
        yield "http://127.0.0.1:" + str(port)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, startup_timeout)
        sock.close()
