"""Personal data at rest: AES-256-GCM under a key ring (so keys can rotate), and keyed hashes for look-ups.

A sealed value reads ``gcm1.<key id>.<base64url(nonce | ciphertext | tag)>``. The key id says which key opens it,
so old values stay readable after a new key becomes current; ``needs_resealing`` finds them for re-encryption.
The kind of value (``phone``, ``wechat_openid``, ``name``) is bound in as associated data: a ciphertext copied
into another field does not open. Look-ups never decrypt: they compare ``lookup(kind, value)``, an HMAC-SHA256
under a separate key that does not rotate with the encryption keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

PREFIX = "gcm1"
_NONCE_BYTES = 12

# Development-only keys: ServiceSettings refuses them in production (they start with the placeholder prefix).
DEV_KEYS = "dev-only-k1:" + base64.urlsafe_b64encode(b"minsheng-dev-only-personal-key!!").decode()
DEV_LOOKUP_KEY = "dev-only-lookup-key-change-me"


class PersonalDataError(ValueError):
    """A sealed value that cannot be opened, or a key ring that is not usable."""


def _decode_key(key_id: str, text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as exc:
        raise PersonalDataError(f"key {key_id!r} is not base64url") from exc
    if len(key) != 32:
        raise PersonalDataError(f"key {key_id!r} must be 32 bytes (AES-256), got {len(key)}")
    return key


def parse_key_ring(text: str) -> dict[str, bytes]:
    """Parse ``id1:base64key,id2:base64key``; the first key is the current one (it seals new values)."""
    ring: dict[str, bytes] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key_id, sep, encoded = item.partition(":")
        if not sep or not key_id or "." in key_id:
            raise PersonalDataError("each key reads <id>:<base64url of 32 bytes>, ids without dots")
        if key_id in ring:
            raise PersonalDataError(f"key id {key_id!r} appears twice")
        ring[key_id] = _decode_key(key_id, encoded)
    if not ring:
        raise PersonalDataError("the key ring is empty")
    return ring


def new_key() -> str:
    """A fresh random key, encoded the way the key ring wants it."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


@dataclass(frozen=True)
class PersonalDataVault:
    """Seal and open personal data; hash it for look-ups."""

    keys: Mapping[str, bytes]
    current: str
    lookup_key: bytes

    @classmethod
    def from_secrets(cls, key_ring: SecretStr | str, lookup_key: SecretStr | str) -> PersonalDataVault:
        """Build the vault from settings: the key ring (current key first) and the look-up key."""
        ring_text = key_ring.get_secret_value() if isinstance(key_ring, SecretStr) else key_ring
        lookup_text = lookup_key.get_secret_value() if isinstance(lookup_key, SecretStr) else lookup_key
        if len(lookup_text) < 16:
            raise PersonalDataError("the look-up key must be at least 16 characters")
        ring = parse_key_ring(ring_text)
        return cls(keys=ring, current=next(iter(ring)), lookup_key=lookup_text.encode())

    def seal(self, kind: str, value: str) -> str:
        """Encrypt ``value`` under the current key, bound to ``kind``."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, value.encode(), kind.encode())
        return f"{PREFIX}.{self.current}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, kind: str, token: str) -> str:
        """Decrypt a value sealed by ``seal`` with any key still in the ring."""
        prefix, _, rest = token.partition(".")
        key_id, _, payload = rest.partition(".")
        if prefix != PREFIX or not payload:
            raise PersonalDataError("not a sealed value")
        key = self.keys.get(key_id)
        if key is None:
            raise PersonalDataError(f"sealed with key {key_id!r}, which is no longer in the key ring")
        try:
            raw = base64.urlsafe_b64decode(payload)
            return AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], kind.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise PersonalDataError("the sealed value does not open (tampered, or another field's)") from exc

    def needs_resealing(self, token: str) -> bool:
        """Whether a sealed value was made with a key other than the current one."""
        return token.split(".", 2)[1:2] != [self.current]

    def reseal(self, kind: str, token: str) -> str:
        """The same value sealed under the current key (for key rotation)."""
        return self.seal(kind, self.open(kind, token)) if self.needs_resealing(token) else token

    def lookup(self, kind: str, value: str) -> str:
        """A keyed hash of ``value`` to find records by it without decrypting anything."""
        return hmac.new(self.lookup_key, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()


def is_sealed(value: object) -> bool:
    """Whether a stored value is a sealed one (as opposed to a legacy plain value)."""
    return isinstance(value, str) and value.startswith(PREFIX + ".")
