"""Outgoing SMS through Twilio's Messages API, the one sender of intake-hotline's receipts and the notifier.

Imported only by services that depend on ``twilio`` (it is not a dependency of every service using minsheng-core).
Errors carry HTTP status and Twilio's error code, never Twilio's message: that may quote the number.
"""

from __future__ import annotations

import asyncio

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from minsheng_core.phones import canonical_phone

TWILIO_API = "https://api.twilio.com"
TIMEOUT_SECONDS = 10.0  # Twilio's client waits forever by default; a stuck send would hold a worker thread


def e164(phone: str) -> str:
    """The E.164 form Twilio needs: +86 and the number (landlines without their trunk 0); "+..." is kept as is."""
    phone = phone.strip()
    if phone.startswith("+"):
        return phone
    digits = canonical_phone(phone)
    return "+86" + (digits[1:] if digits.startswith("0") else digits)


class SmsRefused(Exception):
    """Twilio answered an error: its HTTP status and error code."""

    def __init__(self, status: int, code: int | None) -> None:
        super().__init__(f"Twilio answered HTTP {status} (error {code})")
        self.status = status
        self.code = code

    @property
    def transient(self) -> bool:
        """Whether trying again later may succeed (Twilio's side failed or throttled us)."""
        return self.status >= 500 or self.status == 429


class SmsUnreachable(Exception):
    """Twilio could not be reached or did not answer in time."""

    def __init__(self, error: str) -> None:
        super().__init__(f"Twilio unreachable: {error}")
        self.error = error


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


class TwilioSms:
    """Sends SMS from one Twilio number (or alphanumeric sender ID)."""

    def __init__(
        self, account_sid: str, auth_token: str, from_number: str, api_base: str | None = None, timeout: float = TIMEOUT_SECONDS
    ) -> None:
        http_client = TwilioHttpClient(timeout=timeout) if api_base is None else _RebasedHttpClient(api_base, timeout)
        self.client = Client(account_sid, auth_token, http_client=http_client)
        self.from_number = from_number

    async def send(self, to: str, body: str) -> str:
        """Send `body` to `to` (canonical or E.164) and return the message SID; raise SmsRefused or SmsUnreachable."""

        def create() -> str:
            message = self.client.messages.create(to=e164(to), from_=self.from_number, body=body)
            return str(message.sid)

        try:
            return await asyncio.to_thread(create)
        except TwilioRestException as exc:
            raise SmsRefused(int(exc.status), exc.code) from None  # not chained: exc.msg may quote the number
        except (requests.RequestException, OSError, TwilioException) as exc:
            raise SmsUnreachable(type(exc).__name__) from None
