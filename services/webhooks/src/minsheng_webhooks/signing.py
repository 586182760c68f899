"""Webhook signatures: HMAC-SHA256 over ``<timestamp>.<body>`` with the subscription's secret.

A subscriber checks every request with ``verify_signature`` (or the same few lines in its own language):

    expected = "sha256=" + hex(HMAC-SHA256(key=secret as UTF-8, message=X-Minsheng-Timestamp + "." + raw body))

compared in constant time with ``X-Minsheng-Signature``, and the timestamp (Unix seconds) no further than five
minutes from its own clock. This module uses the standard library only, so it can be copied as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime

SIGNATURE_PREFIX = "sha256="
DEFAULT_TOLERANCE_SECONDS = 300


def _key(secret: str | bytes) -> bytes:
    return secret if isinstance(secret, bytes) else secret.encode()


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The X-Minsheng-Signature value of a body sent at ``timestamp`` (Unix seconds, as a string)."""
    digest = hmac.new(_key(secret), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(
    secret: str | bytes,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: datetime | float | None = None,
) -> bool:
    """Whether a request really comes from the relay: signature over the raw body, timestamp within the tolerance."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    current = now.timestamp() if isinstance(now, datetime) else (time.time() if now is None else now)
    if abs(current - int(timestamp)) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
