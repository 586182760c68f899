"""The two outside APIs, their failures reduced to one shape: what went wrong, and whether trying later may help."""

from __future__ import annotations

from datetime import datetime

from minsheng_core.sms import SmsRefused, SmsUnreachable, TwilioSms
from minsheng_wechat.client import ApiCredentials, OutsideServiceWindow, WechatApi, WechatApiError

__all__ = ["DeliveryFailed", "OutsideServiceWindow", "SmsSender", "WechatSender"]

# -1: unreachable, 5xx or timeouts (after the client's own quick retries), or WeChat's "system busy";
# token errors that survived the client's refresh; API frequency limits. Everything else will not change by waiting.
_WECHAT_TRANSIENT = frozenset({-1, 40001, 40014, 42001, 45009, 45011})


class DeliveryFailed(Exception):
    """A send that did not go through: a short label, the API's code, a safe detail (never the message or contact)."""

    def __init__(self, error: str, code: int | None, detail: str | None, transient: bool) -> None:
        super().__init__(f"{error} {code}: {detail}")
        self.error = error
        self.code = code
        self.detail = detail
        self.transient = transient

    def describe(self) -> str:
        """One line for the record's reason."""
        return " ".join(str(part) for part in (self.error, self.code, self.detail) if part is not None)


class WechatSender:
    """Customer-service and template messages through the WeChat API client (token cache, quick retries)."""

    def __init__(self, api: WechatApi) -> None:
        self.api = api

    async def text(self, creds: ApiCredentials, openid: str, text: str, last_message_at: datetime) -> None:
        """A customer-service text; OutsideServiceWindow passes through, for the caller to fall back to a template."""
        try:
            await self.api.send_text(creds, openid, text, last_message_at)
        except OutsideServiceWindow:
            raise
        except WechatApiError as exc:
            raise _wechat_failure(exc) from None

    async def template(self, creds: ApiCredentials, openid: str, template_id: str, data: dict[str, str], url: str) -> None:
        try:
            await self.api.send_template(creds, openid, template_id, data, url)
        except WechatApiError as exc:
            raise _wechat_failure(exc) from None


def _wechat_failure(exc: WechatApiError) -> DeliveryFailed:
    if exc.errcode == -1:  # our client's own message: "unreachable after 3 attempts: HTTP 503", no personal data
        return DeliveryFailed("wechat_unreachable", None, exc.errmsg[:200], True)
    # WeChat's errmsg is free text (the client has scrubbed the openid from it); the code says enough.
    return DeliveryFailed("wechat_error", exc.errcode, None, exc.errcode in _WECHAT_TRANSIENT)


class SmsSender:
    """SMS through Twilio."""

    def __init__(self, sms: TwilioSms) -> None:
        self.sms = sms

    async def send(self, mobile: str, text: str) -> str:
        """Send and return Twilio's message SID."""
        try:
            return await self.sms.send(mobile, text)
        except SmsRefused as exc:
            raise DeliveryFailed("twilio_error", exc.status, f"code {exc.code}", exc.transient) from None
        except SmsUnreachable as exc:
            raise DeliveryFailed("twilio_unreachable", None, exc.error, True) from None
