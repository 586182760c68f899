"""Twilio's side of the voice webhooks: signed callbacks as Twilio sends them, signed here independently of the
twilio package (HMAC-SHA1 over the URL and the sorted parameters, base64), and a reader for the TwiML answers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import httpx


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    payload = url + "".join(f"{key}{params[key]}" for key in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


@dataclass
class TwilioCall:
    """One call to the hotline number, from Twilio's point of view."""

    auth_token: str
    public_url: str  # what the app is configured with; Twilio signs the URL it calls
    caller: str = "+8613912345678"
    call_sid: str = field(default_factory=lambda: "CA" + secrets.token_hex(16))

    def params(self, **extra: str) -> dict[str, str]:
        return {"CallSid": self.call_sid, "AccountSid": "AC" + "0" * 32, "From": self.caller, "To": "+8631400000000", **extra}

    async def post(self, client: httpx.AsyncClient, path: str, signature: str | None = None, **extra: str) -> httpx.Response:
        params = self.params(**extra)
        url = self.public_url.rstrip("/") + path
        signed = twilio_signature(self.auth_token, url, params) if signature is None else signature
        return await client.post(path, data=params, headers={"X-Twilio-Signature": signed})


def twiml(response: httpx.Response) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return ET.fromstring(response.text)


def spoken(root: ET.Element) -> str:
    return " ".join(say.text or "" for say in root.iter("Say"))
