"""Identifiers: suggestion ids derived from the channel's own id, tracking and access codes."""

from __future__ import annotations

import hashlib
import hmac
import uuid

# Fixed namespace so that the same channel reference always yields the same suggestion id.
_SUGGESTION_NAMESPACE = uuid.UUID("5d1c6f0e-3b7a-4a43-9a0e-6d5f1b9f0c21")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TRACKING_LEN = 10


def suggestion_id_for(channel: str, channel_ref: str) -> str:
    """Return the suggestion id for a channel's own id (WeChat MsgId, CallSid, idempotency key, row key)."""
    return str(uuid.uuid5(_SUGGESTION_NAMESPACE, f"{channel}:{channel_ref}"))


def _mac(secret: bytes, purpose: str, suggestion_id: str) -> bytes:
    return hmac.new(secret, f"{purpose}:{suggestion_id}".encode(), hashlib.sha256).digest()


def tracking_code_for(secret: bytes, suggestion_id: str) -> str:
    """Return the public tracking code (e.g. ``7KQ2M-9XD4A``): stable for a suggestion, unguessable without the secret."""
    number = int.from_bytes(_mac(secret, "tracking", suggestion_id)[:8], "big")
    chars = []
    for _ in range(_TRACKING_LEN):
        number, index = divmod(number, 32)
        chars.append(_CROCKFORD[index])
    code = "".join(chars)
    return f"{code[:5]}-{code[5:]}"


def access_code_for(secret: bytes, suggestion_id: str) -> str:
    """Return the six-digit access code shown once to the submitter, the second factor of a status lookup."""
    number = int.from_bytes(_mac(secret, "access", suggestion_id)[:8], "big")
    return f"{number % 1_000_000:06d}"


def normalise_tracking_code(raw: str) -> str | None:
    """Return the canonical form of a typed tracking code, or None if it cannot be one."""
    cleaned = raw.strip().upper().replace("-", "").replace(" ", "")
    cleaned = cleaned.translate(str.maketrans({"O": "0", "I": "1", "L": "1"}))
    if len(cleaned) != _TRACKING_LEN or any(c not in _CROCKFORD for c in cleaned):
        return None
    return f"{cleaned[:5]}-{cleaned[5:]}"


def access_code_matches(secret: bytes, suggestion_id: str, given: str) -> bool:
    """Compare a typed access code with the expected one in constant time."""
    return hmac.compare_digest(access_code_for(secret, suggestion_id), given.strip())


def person_key(secret: bytes, contact: str) -> str:
    """Keyed hash of a phone number or openid: finds the same person again without keeping the number in clear."""
    cleaned = "".join(c for c in contact if c.isalnum())
    return hmac.new(secret, f"person:{cleaned}".encode(), hashlib.sha256).hexdigest()[:32]
