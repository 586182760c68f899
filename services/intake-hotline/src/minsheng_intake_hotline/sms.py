"""SMS receipts for hotline callers through Twilio's Messages API; a receipt is a courtesy and never fails a call."""

from __future__ import annotations

import asyncio

import requests
import structlog
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from minsheng_core.phones import canonical_phone

log = structlog.get_logger(__name__)

TWILIO_API = "https://api.twilio.com"
TIMEOUT_SECONDS = 10.0  # Twilio's client waits forever by default; a stuck send would hold a worker thread


def e164(phone: str) -> str:
    """The E.164 form Twilio needs: +86 and the number (landlines without their trunk 0); "+..." is kept as is."""
    phone = phone.strip()
    if phone.startswith("+"):
        return phone
    digits = canonical_phone(phone)
    return "+86" + (digits[1:] if digits.startswith("0") else digits)


class _RebasedHttpClient(TwilioHttpClient):
    """Twilio's HTTP client sending what is meant for api.twilio.com to another base URL (a local fake, a proxy)."""

    def __init__(self, api_base: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.api_base = api_base.rstrip("/")

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Send the request with its URL moved from api.twilio.com to the configured base, path and query kept."""
        if url == TWILIO_API or url.startswith(TWILIO_API + "/"):
            url = self.api_base + url[len(TWILIO_API) :]
        return super().request(method, url, params, data, headers, auth, timeout, allow_redirects)


class SmsReceipts:
    """Sends SMS receipts from one Twilio number."""

    def __init__(self, account_sid: str, auth_token: str, from_number: str, api_base: str | None = None) -> None:
        http_client = (
            TwilioHttpClient(timeout=TIMEOUT_SECONDS) if api_base is None else _RebasedHttpClient(api_base, TIMEOUT_SECONDS)
        )
        self.client = Client(account_sid, auth_token, http_client=http_client)
        self.from_number = from_number  # as configured: an E.164 number or an alphanumeric sender ID

    async def send(self, to: str, body: str) -> str | None:
        """Send `body` to `to` (canonical or E.164); the message SID, or None when Twilio refused or was unreachable."""

        def create() -> str | None:
            message = self.client.messages.create(to=e164(to), from_=self.from_number, body=body)
            return message.sid

        try:
            sid = await asyncio.to_thread(create)
        except TwilioRestException as exc:
            # exc.msg may quote the number ("The 'To' number ... is not valid"): log the codes only.
            log.warning("sms_receipt_refused", status=exc.status, code=exc.code)
            return None
        except (requests.RequestException, OSError, TwilioException) as exc:
            log.warning("sms_receipt_unreachable", error=type(exc).__name__)
            return None
        log.info("sms_receipt_sent", message_sid=sid)
        return sid
