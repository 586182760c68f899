"""The intake-wechat application: the server URL of each Official Account, https://<host>/wechat/<appid>."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from minsheng_core.http import error_responses, install_common
from minsheng_core.intake import open_intake
from minsheng_core.logging import configure_logging
from minsheng_core.units import load_units
from minsheng_intake_wechat.conversation import WechatIntake
from minsheng_intake_wechat.settings import WechatSettings
from minsheng_wechat import crypto
from minsheng_wechat.accounts import WechatAccount, load_accounts
from minsheng_wechat.crypto import SafeModeError, WrongAppId, signature_matches
from minsheng_wechat.messages import Envelope, Inbound, XmlRejected, parse_envelope, parse_inbound, sealed_reply, text_reply

log = structlog.get_logger(__name__)

_PLAIN_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_REJECTED = {
    400: {"description": "malformed XML, XML with a DTD or entities, an unknown encrypt_type", "content": _PLAIN_TEXT},
    403: {"description": "wrong or missing signature, timestamp out of window, sealed for another appid", "content": _PLAIN_TEXT},
    404: {"description": "unknown account", "content": _PLAIN_TEXT},
}


class Rejected(Exception):
    """A request WeChat did not send, or sent broken: answered with a status, logged without personal data."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def create_app(settings: WechatSettings | None = None) -> FastAPI:
    """Build the app; the accounts file is checked now, connections open in the lifespan."""
    settings = settings or WechatSettings()
    configure_logging("intake-wechat", settings.log_format, settings.log_level)
    units = load_units(settings.units_file)
    accounts = load_accounts(settings.accounts_file, units.codes(), production=settings.environment == "production")
    campaign = settings.campaign

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            runtime = await open_intake(stack, app, settings, "intake-wechat")
            app.state.intake = WechatIntake(
                campaign,
                settings.secret_key.get_secret_value().encode(),
                runtime,
                attach_window=timedelta(minutes=settings.attach_window_minutes),
                lookup_timeout=settings.lookup_timeout_seconds,
            )
            log.info("intake_wechat_started", campaign=campaign.code, accounts=sorted(accounts))
            yield

    app = FastAPI(title="Minsheng intake-wechat", version="1", lifespan=lifespan)
    install_common(app, settings.max_body_bytes)

    @app.exception_handler(Rejected)
    async def _rejected(request: Request, exc: Rejected) -> PlainTextResponse:
        log.warning("wechat_request_rejected", status=exc.status, reason=exc.reason, path=request.url.path[:80])
        return PlainTextResponse(exc.reason, status_code=exc.status)

    def account_for(appid: str) -> WechatAccount:
        account = accounts.get(appid)
        if account is None:
            raise Rejected(404, "unknown account")
        return account

    def check_fresh(timestamp: str) -> None:
        # WeChat retries within seconds; an old (or far future) timestamp is a replay of a captured request.
        try:
            age = abs(time.time() - int(timestamp))
        except ValueError:
            raise Rejected(403, "missing or invalid timestamp") from None
        if age > settings.timestamp_tolerance_seconds:
            raise Rejected(403, "timestamp outside the accepted window")

    @app.get(
        "/wechat/{appid}", response_class=PlainTextResponse, tags=["wechat"], responses={k: _REJECTED[k] for k in (403, 404)}
    )
    async def verify_server(
        appid: str, signature: str = "", timestamp: str = "", nonce: str = "", echostr: str = ""
    ) -> PlainTextResponse:
        """WeChat's check of the server URL: echo ``echostr`` when the signature is the account's."""
        account = account_for(appid)
        check_fresh(timestamp)
        if not signature_matches(signature, account.token.get_secret_value(), timestamp, nonce):
            raise Rejected(403, "bad signature")
        log.info("wechat_server_verified", appid=appid)
        return PlainTextResponse(echostr[:200])

    @app.post(
        "/wechat/{appid}",
        tags=["wechat"],
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "``success``, or a passive reply",
                "content": {"application/xml": {"schema": {"type": "string"}}},
            },
            **_REJECTED,
            **error_responses(413),
        },
    )
    async def receive_message(
        appid: str,
        request: Request,
        signature: str | None = None,
        timestamp: str = "",
        nonce: str = "",
        encrypt_type: str | None = None,
        msg_signature: str | None = None,
    ) -> Response:
        """A message or event from WeChat: a passive reply in Chinese within WeChat's 5 seconds, or ``success``."""
        account = account_for(appid)
        check_fresh(timestamp)
        token = account.token.get_secret_value()
        body = await request.body()
        sealed = encrypt_type == "aes"
        if encrypt_type not in (None, "raw", "aes"):
            raise Rejected(400, "unknown encrypt_type")
        # In safe mode WeChat signs twice: the query (signature) and the sealed payload (msg_signature).
        if not sealed or signature is not None:
            if not signature_matches(signature, token, timestamp, nonce):
                raise Rejected(403, "bad signature")
        msg = _open(account, body, timestamp, nonce, msg_signature) if sealed else _parse(body)
        reply = await request.app.state.intake.handle(account, msg, datetime.now(UTC))
        log.info(
            "wechat_message_handled",
            appid=appid,
            msg_type=msg.msg_type[:32],
            outcome=reply.outcome,
            suggestion_id=reply.suggestion_id,
            safe_mode=sealed,
        )
        if reply.text is None:
            return PlainTextResponse("success")
        xml = text_reply(msg, reply.text)
        return Response(_seal(account, xml) if sealed else xml, media_type="application/xml")

    return app


def _seal(account: WechatAccount, xml: str) -> str:
    """A reply to a safe-mode message goes back encrypted and signed."""
    stamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
    encrypted = account.cipher().encrypt(xml)
    return sealed_reply(encrypted, crypto.signature(account.token.get_secret_value(), stamp, nonce, encrypted), stamp, nonce)


def _parse(body: bytes) -> Inbound:
    try:
        return parse_inbound(body)
    except XmlRejected as exc:
        raise Rejected(400, f"malformed message: {exc}"[:200]) from None


def _open(account: WechatAccount, body: bytes, timestamp: str, nonce: str, msg_signature: str | None) -> Inbound:
    envelope = _parse_envelope(body)
    if not signature_matches(msg_signature, account.token.get_secret_value(), timestamp, nonce, envelope.Encrypt):
        raise Rejected(403, "bad msg_signature")
    try:
        return _parse(account.cipher().decrypt(envelope.Encrypt).encode())
    except WrongAppId:
        raise Rejected(403, "sealed for another appid") from None
    except SafeModeError as exc:
        raise Rejected(400, f"undecryptable payload: {exc}") from None


def _parse_envelope(body: bytes) -> Envelope:
    try:
        return parse_envelope(body)
    except XmlRejected as exc:
        raise Rejected(400, f"malformed envelope: {exc}"[:200]) from None
