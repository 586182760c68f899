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
import re
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


# What a personal-data document holds, sealed with the field name as its kind, and the look-up hash of each
# field that is searched by value (the hotline's repeat callers by phone, WeChat's "my suggestion" by openid).
SEALED_FIELDS = ("name", "phone", "wechat_openid")
LOOKUP_FIELDS = {"phone": "phone_hash", "wechat_openid": "openid_hash"}


def sealed_fields(vault: PersonalDataVault, values: Mapping[str, str | None]) -> dict[str, str]:
    """The given contact values sealed, with the look-up hashes of those searched by value; empty values left out."""
    document: dict[str, str] = {}
    for field in SEALED_FIELDS:
        value = values.get(field)
        if value:
            document[field] = vault.seal(field, value)
            if field in LOOKUP_FIELDS:
                document[LOOKUP_FIELDS[field]] = vault.lookup(field, value)
    return document


def opened_fields(vault: PersonalDataVault, document: Mapping[str, object]) -> dict[str, str | None]:
    """The clear values of a personal-data document (a legacy plain value, not yet migrated, reads as it is)."""
    values: dict[str, str | None] = {}
    for field in SEALED_FIELDS:
        value = document.get(field)
        values[field] = vault.open(field, value) if is_sealed(value) else (value if isinstance(value, str) else None)
    return values


def mask_phone(phone: str) -> str:
    """138****5678: enough to recognise a number, not to call it."""
    return f"{phone[:3]}****{phone[-4:]}" if len(phone) >= 8 else "****"


def mask_openid(openid: str) -> str:
    """o****xyz."""
    return f"{openid[0]}****{openid[-3:]}" if len(openid) > 4 else "****"


def mask_name(name: str) -> str:
    """张*: the family name only (and not how long the given name is)."""
    return f"{name[0]}*" if len(name) > 1 else "*"


def masked_fields(values: Mapping[str, str | None]) -> dict[str, str | None]:
    """Contact values as staff who do not call residents back see them."""
    masks = {"name": mask_name, "phone": mask_phone, "wechat_openid": mask_openid}
    return {field: (masks[field](value) if value else None) for field, value in values.items() if field in masks}


# Phone numbers as residents type them into a text: mobiles (with +86, spaces or dashes) and landlines with their
# area code, in ASCII or full-width digits; never part of a longer run of digits (an id, an amount).
_D = "[0-9\uff10-\uff19]"
_SEP = "[ \\-\uff0d]?"
_PHONE_IN_TEXT = re.compile(
    rf"(?<![0-9\uff10-\uff19])(?:"
    rf"(?:[+\uff0b]?86{_SEP})?[1\uff11][3-9\uff13-\uff19](?:{_SEP}{_D}){{9}}"
    rf"|[(\uff08]?[0\uff10]{_D}{{2,3}}[)\uff09]?{_SEP}{_D}{{7,8}}"
    rf")(?![0-9\uff10-\uff19])"
)
REDACTED_PHONE = "[号码已删除]"


def redact_phone_numbers(text: str) -> tuple[str, int]:
    """The text with every phone-number-looking run of digits replaced, and how many were."""
    return _PHONE_IN_TEXT.subn(REDACTED_PHONE, text)
