"""SMS receipts for hotline callers through Twilio's Messages API; a receipt is a courtesy and never fails a call."""

from __future__ import annotations

import structlog

from minsheng_core.sms import SmsRefused, SmsUnreachable, TwilioSms, e164

__all__ = ["SmsReceipts", "e164"]

log = structlog.get_logger(__name__)


class SmsReceipts:
    """Sends SMS receipts from one Twilio number."""

    def __init__(self, account_sid: str, auth_token: str, from_number: str, api_base: str | None = None) -> None:
        self.sms = TwilioSms(account_sid, auth_token, from_number, api_base)

    async def send(self, to: str, body: str) -> str | None:
        """Send `body` to `to` (canonical or E.164); the message SID, or None when Twilio refused or was unreachable."""
        try:
            sid = await self.sms.send(to, body)
        except SmsRefused as exc:
            log.warning("sms_receipt_refused", status=exc.status, code=exc.code)
            return None
        except SmsUnreachable as exc:
            log.warning("sms_receipt_unreachable", error=exc.error)
            return None
        log.info("sms_receipt_sent", message_sid=sid)
        return sid
