"""What every HTTP service shares: health probes, request ids, body limits and clear validation errors."""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)


_MESSAGES_ZH = {
    "missing": "必填",
    "string_too_long": "不能超过 {max_length} 个字",
    "string_too_short": "不能为空",
    "string_type": "应为文字",
    "string_pattern_mismatch": "格式不正确",
    "enum": "取值无效，可选：{expected}",
    "literal_error": "取值无效，可选：{expected}",
    "extra_forbidden": "不是可接受的字段",
    "dict_type": "应为对象",
    "model_type": "应为对象",
    "model_attributes_type": "应为对象",
    "json_invalid": "不是有效的 JSON",
    "date_from_datetime_parsing": "日期格式不正确",
    "datetime_from_date_parsing": "时间格式不正确",
    "int_parsing": "应为整数",
    "bool_parsing": "应为是或否",
}


def field_errors(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Turn pydantic errors into [{field, message}] with messages in Chinese for residents."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        template = _MESSAGES_ZH.get(err.get("type", ""))
        try:
            message = template.format(**err.get("ctx", {})) if template else err.get("msg", "无效")
        except (KeyError, IndexError):
            message = err.get("msg", "无效")
        out.append({"field": ".".join(loc) or "body", "message": message})
    return out


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(list(exc.errors()))
    log.info("request_rejected", reason="validation", fields=[e["field"] for e in errors])
    return JSONResponse(status_code=422, content={"error": "请求内容有误", "fields": errors})


async def _unparsable_body(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        log.info("request_rejected", reason="unparsable_body")
        message = "请求内容无法解析，请使用 UTF-8 编码的 JSON"
        return JSONResponse(status_code=400, content={"error": message, "fields": [{"field": "body", "message": message}]})
    return await http_exception_handler(request, exc)


async def connections_ready(app: FastAPI) -> bool:
    """Ready when the lifespan put an open broker connection (and, if the service has one, a reachable database) in app.state."""
    connection = getattr(app.state, "connection", None)
    if connection is None or connection.is_closed:
        return False
    mongo = getattr(app.state, "mongo", None)
    if mongo is not None:
        await mongo.admin.command("ping")
    return True


def install_common(app: FastAPI, max_body_bytes: int = 64 * 1024) -> None:
    """Add /healthz, /readyz, request logging with ids, the body-size limit and Chinese validation errors."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = False
        try:
            ready = await connections_ready(app)
        except Exception as exc:
            log.warning("readiness_check_failed", error=type(exc).__name__)
        return JSONResponse({"status": "ready" if ready else "not ready"}, status_code=200 if ready else 503)

    app.include_router(router)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _unparsable_body)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_middleware(RequestContext)


# Every page: scripts and styles from the service itself only (no inline script; inline style attributes draw the
# bars), pictures also from WeChat's https image hosts, never framed, forms posted only back to the service.
CONTENT_SECURITY_POLICY = (
    b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; "
    b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
_API_DOCS = ("/docs", "/redoc")


class RequestContext:
    """Bind a request id for the logs and log each request by path only (query strings may hold codes)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = [(b"x-request-id", request_id.encode("latin-1")), *SECURITY_HEADERS]
                if not scope["path"].startswith(_API_DOCS):  # Swagger UI loads its scripts from a CDN
                    extra.append((b"content-security-policy", CONTENT_SECURITY_POLICY))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                if scope["path"] not in ("/healthz", "/readyz"):
                    log.info(
                        "http_request",
                        method=scope["method"],
                        path=scope["path"],
                        status=status,
                        ms=round((time.perf_counter() - started) * 1000, 1),
                    )


class BodySizeLimit:
    """Answer 413 to bodies over the limit, whether or not they announce their length.

    The body is read here first (it is small by definition) and handed on whole: an error raised while the
    application itself reads it would be turned into a 400 by the framework."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await _too_large(send, self.max_bytes)
                return
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


async def _too_large(send: Send, max_bytes: int) -> None:
    body = JSONResponse({"error": f"提交内容过大，请控制在 {max_bytes // 1024} KB 以内"}, status_code=413)
    await send({"type": "http.response.start", "status": 413, "headers": body.raw_headers})
    await send({"type": "http.response.body", "body": body.body})
