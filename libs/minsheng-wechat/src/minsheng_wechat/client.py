"""Async client for the WeChat Official Account server API: access tokens, customer-service and template messages."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import httpx
import structlog

log = structlog.get_logger(__name__)

SERVICE_WINDOW = timedelta(hours=48)

_TOKEN_ERRORS = frozenset({40001, 40014, 42001})  # invalid, malformed or expired access token
_WINDOW_ERRORS = frozenset({45015, 45047})  # out of the 48-hour window / out of the reply quota it grants
# WeChat's expires_in is measured from its side; refreshing early leaves room for clock skew and slow requests.
_TOKEN_SAFETY_MARGIN = timedelta(seconds=300)
_RETRY_DELAYS = (0.2, 0.4)  # three attempts in all
_JSON_UTF8 = "application/json; charset=utf-8"
# httpx logs every request URL at INFO, and WeChat puts the secret and the access token in the query string.
_SENSITIVE_QUERY = re.compile(r"((?:access_token|secret)=)[^&\s\"'>]+")


class WechatApiError(Exception):
    """An error answered by the WeChat API (or -1 when it could not be reached)."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeChat API error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class OutsideServiceWindow(WechatApiError):
    """The user's last message is older than the 48 hours in which customer-service messages are allowed."""


@dataclass(frozen=True)
class ApiCredentials:
    """An official account's appid and app secret."""

    appid: str
    secret: str = field(repr=False)  # kept out of reprs, which end up in logs and tracebacks


@dataclass(frozen=True)
class _CachedToken:
    value: str
    refresh_at: datetime


class _RedactQuerySecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact(str(arg)) if isinstance(arg, httpx.URL | str) else arg for arg in record.args)
        if isinstance(record.msg, str):
            record.msg = _redact(record.msg)
        return True


def _redact(text: str) -> str:
    return _SENSITIVE_QUERY.sub(r"\1[redacted]", text)


_REDACT_FILTER = _RedactQuerySecrets()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WechatApi:
    """Client for the WeChat OA server API with a per-appid access-token cache."""

    def __init__(
        self,
        base_url: str = "https://api.weixin.qq.com",
        *,
        timeout: float = 5.0,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self._owns_http = http is None
        self._clock = clock
        self._tokens: dict[str, _CachedToken] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        httpx_logger = logging.getLogger("httpx")
        if _REDACT_FILTER not in httpx_logger.filters:
            httpx_logger.addFilter(_REDACT_FILTER)

    async def aclose(self) -> None:
        """Close the HTTP client if this instance created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> WechatApi:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def access_token(self, creds: ApiCredentials) -> str:
        """Return a cached access token for the app, fetching a new one when it is due for refresh."""
        cached = self._fresh_token(creds.appid)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(creds.appid, asyncio.Lock())
        async with lock:
            # Whoever held the lock before us has probably fetched the token already.
            cached = self._fresh_token(creds.appid)
            if cached is not None:
                return cached
            params = {"grant_type": "client_credential", "appid": creds.appid, "secret": creds.secret}
            body = await self._request("GET", "/cgi-bin/token", params=params)
            _raise_for_errcode(body)
            token = body.get("access_token")
            if not isinstance(token, str) or not token:
                raise WechatApiError(-1, "token response without access_token")
            expires_in = timedelta(seconds=int(body.get("expires_in", 7200)))
            self._tokens[creds.appid] = _CachedToken(token, self._clock() + max(expires_in - _TOKEN_SAFETY_MARGIN, timedelta(0)))
            log.info("wechat_access_token_fetched", appid=creds.appid, expires_in=int(expires_in.total_seconds()))
            return token

    async def send_text(self, creds: ApiCredentials, openid: str, text: str, last_user_message_at: datetime) -> None:
        """Send a customer-service text message; refused locally outside the 48-hour service window."""
        if last_user_message_at.tzinfo is None:
            raise ValueError("last_user_message_at must be timezone-aware")
        if self._clock() - last_user_message_at > SERVICE_WINDOW:
            log.info("wechat_message_refused", appid=creds.appid, msgtype="text", reason="outside_service_window")
            raise OutsideServiceWindow(45015, "outside the 48-hour customer-service window")
        payload = {"touser": openid, "msgtype": "text", "text": {"content": text}}
        await self._send(creds, "/cgi-bin/message/custom/send", payload, openid, msgtype="text")

    async def send_template(
        self, creds: ApiCredentials, openid: str, template_id: str, data: dict[str, str], url: str | None = None
    ) -> None:
        """Send a template message; these are not bound to the 48-hour service window."""
        payload: dict[str, Any] = {"touser": openid, "template_id": template_id}
        if url is not None:
            payload["url"] = url
        payload["data"] = {key: {"value": value} for key, value in data.items()}
        await self._send(creds, "/cgi-bin/message/template/send", payload, openid, msgtype="template")

    def _fresh_token(self, appid: str) -> str | None:
        cached = self._tokens.get(appid)
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.value
        return None

    def _forget_token(self, appid: str, token: str) -> None:
        # Only drop the token that was rejected: a concurrent sender may already have cached a newer one.
        cached = self._tokens.get(appid)
        if cached is not None and cached.value == token:
            del self._tokens[appid]

    async def _send(self, creds: ApiCredentials, path: str, payload: dict[str, Any], openid: str, *, msgtype: str) -> None:
        # ensure_ascii=False because WeChat shows \u escapes to the user literally.
        content = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        for attempt in (1, 2):
            token = await self.access_token(creds)
            body = await self._request(
                "POST", path, params={"access_token": token}, content=content, headers={"Content-Type": _JSON_UTF8}
            )
            errcode = _errcode(body)
            if errcode in _TOKEN_ERRORS and attempt == 1:
                log.warning("wechat_access_token_rejected", appid=creds.appid, errcode=errcode)
                self._forget_token(creds.appid, token)
                continue
            _raise_for_errcode(body, openid=openid)
            log.info("wechat_message_sent", appid=creds.appid, msgtype=msgtype)
            return

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        # No idempotency key exists in this API: a retry after a lost response may deliver twice, which we prefer to losing it.
        for attempt in range(len(_RETRY_DELAYS) + 1):
            try:
                response = await self._http.request(method, self._base_url + path, **kwargs)
            except httpx.TransportError as exc:
                reason = type(exc).__name__
            else:
                if response.status_code < 500:
                    return _json_body(response)
                reason = "HTTP " + str(response.status_code)
            if attempt == len(_RETRY_DELAYS):
                log.warning("wechat_api_unreachable", path=path, attempts=attempt + 1, reason=reason)
                raise WechatApiError(-1, "WeChat API unreachable after " + str(attempt + 1) + " attempts: " + reason)
            log.info("wechat_api_retry", path=path, attempt=attempt + 1, reason=reason)
            await asyncio.sleep(_RETRY_DELAYS[attempt])
        raise AssertionError("unreachable")


def _json_body(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise WechatApiError(-1, "unexpected HTTP status " + str(response.status_code))
    try:
        body = response.json()
    except ValueError:
        raise WechatApiError(-1, "response is not JSON") from None
    if not isinstance(body, dict):
        raise WechatApiError(-1, "response is not a JSON object")
    return body


def _errcode(body: dict[str, Any]) -> int:
    try:
        return int(body.get("errcode") or 0)
    except (TypeError, ValueError):
        return -1


def _raise_for_errcode(body: dict[str, Any], *, openid: str | None = None) -> None:
    errcode = _errcode(body)
    if errcode == 0:
        return
    errmsg = str(body.get("errmsg", ""))
    if openid:
        # errmsg is free text from WeChat and ends up in logs and tracebacks.
        errmsg = errmsg.replace(openid, "[openid]")
    if errcode in _WINDOW_ERRORS:
        raise OutsideServiceWindow(errcode, errmsg)
    raise WechatApiError(errcode, errmsg)
