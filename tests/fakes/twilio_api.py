"""A local fake of Twilio's REST API for outgoing SMS: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``.

It answers as https://www.twilio.com/docs/messaging/api/message-resource documents: HTTP Basic auth with the
account SID and auth token, a form-encoded body, a JSON message resource (201) or Twilio's JSON error shape.

Test controls are plain attributes on ``app.state``:

- ``messages``: accepted messages, each the JSON resource answered (``sid``, ``to``, ``from``, ``body``, ...);
- ``requests``: ``(method, path)`` of every request received, failed ones included;
- ``fail_next``: the next N requests answer HTTP 500 (Twilio's error 20500);
- ``delay_next`` / ``delay_seconds``: the next N requests are answered only after that many seconds (timeouts);
- ``unsubscribed``: E.164 numbers that opted out: messages to them answer 400 (Twilio's error 21610).

Run it over real HTTP with ``serve`` from ``tests.fakes.wechat_api``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import secrets
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

API_VERSION = "2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"code": code, "message": message, "more_info": "https://www.twilio.com/docs/errors/" + str(code), "status": status}
    return JSONResponse(body, status_code=status, headers=headers)


def _unauthenticated() -> JSONResponse:
    return _error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, colon, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (username, password) if colon else None


def _segments(body: str) -> int:
    # GSM-7 fits 160 characters (153 per part when split); anything else goes as UCS-2: 70 (67 per part).
    single, part = (160, 153) if body.isascii() else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // part)


def _rfc2822(moment: datetime) -> str:
    # Twilio's date fields read like "Thu, 24 Aug 2023 05:01:45 +0000".
    return format_datetime(moment).replace("-0000", "+0000")


def create_fake_twilio_api(account_sid: str, auth_token: str) -> FastAPI:
    """A FastAPI app answering like api.twilio.com's Messages endpoint for one account."""
    app = FastAPI()
    state = app.state
    state.account_sid = account_sid
    state.auth_token = auth_token
    state.messages = []
    state.requests = []
    state.fail_next = 0
    state.delay_next = 0
    state.delay_seconds = 0.0
    state.unsubscribed = set()

    @app.middleware("http")
    async def record_and_fail(request: Request, call_next: Any) -> Response:
        state.requests.append((request.method, request.url.path))
        if state.delay_next > 0:
            state.delay_next -= 1
            await asyncio.sleep(state.delay_seconds)
        if state.fail_next > 0:
            state.fail_next -= 1
            return _error(500, 20500, "An internal server error has occurred")
        return await call_next(request)

    @app.post("/" + API_VERSION + "/Accounts/{sid}/Messages.json")
    async def create_message(sid: str, request: Request) -> JSONResponse:
        credentials = _basic_credentials(request)
        if credentials is None:
            return _unauthenticated()
        username, password = credentials
        if not (secrets.compare_digest(username, state.account_sid) and secrets.compare_digest(password, state.auth_token)):
            return _unauthenticated()
        if sid != state.account_sid:
            return _error(404, 20404, "The requested resource " + request.url.path + " was not found")
        form = await request.form()
        to, from_, body = (str(form.get(key) or "") for key in ("To", "From", "Body"))
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not E164.fullmatch(to):
            return _error(400, 21211, "Invalid 'To' Phone Number: " + to)
        if to in state.unsubscribed:
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        if not from_:
            return _error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        message_sid = "SM" + secrets.token_hex(16)
        now = _rfc2822(datetime.now(UTC))
        uri = "/" + API_VERSION + "/Accounts/" + sid + "/Messages/" + message_sid
        resource = {
            "account_sid": sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": message_sid,
            "status": "queued",
            "subresource_uris": {"media": uri + "/Media.json"},
            "to": to,
            "uri": uri + ".json",
        }
        state.messages.append(resource)
        return JSONResponse(resource, status_code=201)

    return app
