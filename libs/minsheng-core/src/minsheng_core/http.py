"""What every HTTP service shares: health probes, metrics, request ids, body limits and clear validation errors."""

from __future__ import annotations

import re
import time
import uuid
from datetime import date, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minsheng_core import metrics

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


def service_name(app: FastAPI) -> str:
    """The service an app is, from its title ("Minsheng intake-web" → intake-web)."""
    words = app.title.split()
    return words[1] if len(words) > 1 and words[0] == "Minsheng" else app.title


def install_common(app: FastAPI, max_body_bytes: int = 64 * 1024, service: str | None = None) -> None:
    """Add /healthz, /readyz, /metrics, request logging and metrics with ids, the body-size limit and Chinese
    validation errors."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"description": "not ready: the broker or the database is not connected"}})
    async def readyz() -> JSONResponse:
        ready = False
        try:
            ready = await connections_ready(app)
        except Exception as exc:
            log.warning("readiness_check_failed", error=type(exc).__name__)
        return JSONResponse({"status": "ready" if ready else "not ready"}, status_code=200 if ready else 503)

    @router.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)

    app.include_router(router)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _unparsable_body)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_middleware(RequestContext, service=service or service_name(app))
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document_common_errors(default_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


class FieldErrorRead(BaseModel):
    field: str
    message: str


class ApiErrorRead(BaseModel):
    """An error answer: ``error`` (with ``fields`` for invalid input) from our handlers, ``detail`` from HTTPException."""

    model_config = ConfigDict(extra="forbid")

    error: str | None = None
    fields: list[FieldErrorRead] | None = None
    detail: str | dict[str, Any] | None = None  # a dict when it names what is at fault


_ERROR_DESCRIPTIONS = {
    400: "the body cannot be parsed",
    401: "no valid credentials",
    403: "not allowed",
    404: "not found, or not in the caller's scope",
    409: "conflicts with the current state",
    413: "the body is over the size limit",
    415: "unsupported media type",
    422: "invalid input: ``fields`` says which and why",
    429: "too many requests: try again later",
    503: "a dependency is unavailable: try again later",
}


def _iso_8601(value: Any) -> Any:
    # pydantic reads a number ("0", "20191108") as a Unix time: in a query string that is a typing mistake, not a date.
    if isinstance(value, str) and not re.match(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("use ISO 8601: YYYY-MM-DD, or YYYY-MM-DDTHH:MM:SS+08:00 for a time")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_8601)]
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_8601)]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: the error statuses it answers, each with an ApiErrorRead body."""
    return {code: {"model": ApiErrorRead, "description": _ERROR_DESCRIPTIONS.get(code, "error")} for code in codes}


def _document_common_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Publish the errors every service answers the way it answers them: 422 as ApiErrorRead (not FastAPI's default
    shape), 401 and 403 wherever a staff token is needed, 400 and 413 wherever a body is read."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ApiErrorRead.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in error_schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault("ApiErrorRead", error_schema)
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiErrorRead"}}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            default_422 = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if default_422.get("$ref") == "#/components/schemas/HTTPValidationError":
                responses["422"] = {"description": _ERROR_DESCRIPTIONS[422], **ref}
            # A staff token (the security scheme) is checked before anything else: 401 without one, 403 for a role
            # the operation is not open to.
            for code in (401, 403) if operation.get("security") else ():
                responses.setdefault(str(code), {"description": _ERROR_DESCRIPTIONS[code], **ref})
            if "requestBody" in operation:
                for code in (400, 413):
                    responses.setdefault(str(code), {"description": _ERROR_DESCRIPTIONS[code], **ref})
    if "HTTPValidationError" not in str(schema.get("paths")):
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
    return schema


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
_UNCOUNTED = ("/healthz", "/readyz", "/metrics")


class RequestContext:
    """Bind a request id for the logs, log each request by path only (query strings may hold codes), and count it
    by route template."""

    def __init__(self, app: ASGIApp, service: str = "unknown") -> None:
        self.app = app
        self.service = service

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
                if scope["path"] not in _UNCOUNTED:
                    elapsed = time.perf_counter() - started
                    log.info(
                        "http_request",
                        method=scope["method"],
                        path=scope["path"],
                        status=status,
                        ms=round(elapsed * 1000, 1),
                    )
                    route = metrics.route_label(scope)
                    metrics.HTTP_REQUESTS.labels(self.service, scope["method"], route, str(status)).inc()
                    metrics.HTTP_DURATION.labels(self.service, scope["method"], route).observe(elapsed)


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
