"""Signatures and safe-mode (encrypt_type=aes) message encryption of the WeChat Official Account server protocol.

Safe mode: key = base64(EncodingAESKey + "="), 32 bytes; AES-256-CBC with the key's first 16 bytes as IV;
plaintext = 16 random bytes + 4-byte big-endian length + message + appid, PKCS#7-padded to 32-byte blocks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_BLOCK_BITS = 256  # WeChat pads to 32-byte blocks, not AES's 16


class SafeModeError(ValueError):
    """An encrypted payload that does not decrypt to a well-formed message."""


class WrongAppId(SafeModeError):
    """The payload decrypted, but it was sealed for another account."""


def signature(token: str, *parts: str) -> str:
    """SHA-1 over the token and the parts, sorted and concatenated (URL check, plain messages, safe-mode messages)."""
    return hashlib.sha1("".join(sorted((token, *parts))).encode()).hexdigest()


def signature_matches(given: str | None, token: str, *parts: str) -> bool:
    """Compare a request's signature in constant time; a missing one never matches."""
    return bool(given) and hmac.compare_digest(given.lower().encode(), signature(token, *parts).encode())


class MessageCipher:
    """One account's safe-mode cipher."""

    def __init__(self, encoding_aes_key: str, appid: str) -> None:
        if len(encoding_aes_key) != 43:
            raise ValueError("an EncodingAESKey has 43 characters")
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error as exc:
            raise ValueError("an EncodingAESKey is base64 text") from exc
        self._key = key
        self._appid = appid.encode()

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def encrypt(self, message: str, random_prefix: bytes | None = None) -> str:
        """Seal a message (a reply's XML) for WeChat; the random prefix is fixed only in tests."""
        prefix = random_prefix if random_prefix is not None else os.urandom(16)
        if len(prefix) != 16:
            raise ValueError("the random prefix has 16 bytes")
        data = message.encode()
        padder = padding.PKCS7(_BLOCK_BITS).padder()
        padded = padder.update(prefix + struct.pack(">I", len(data)) + data + self._appid) + padder.finalize()
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()

    def decrypt(self, sealed: str) -> str:
        """Open a message from WeChat; raises SafeModeError (WrongAppId when sealed for another account)."""
        try:
            raw = base64.b64decode(sealed, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SafeModeError("not base64") from exc
        if not raw or len(raw) % (_BLOCK_BITS // 8):
            raise SafeModeError("not a whole number of blocks")
        decryptor = self._cipher().decryptor()
        padded = decryptor.update(raw) + decryptor.finalize()
        unpadder = padding.PKCS7(_BLOCK_BITS).unpadder()
        try:
            plain = unpadder.update(padded) + unpadder.finalize()
        except ValueError as exc:
            raise SafeModeError("bad padding") from exc
        if len(plain) < 20:
            raise SafeModeError("too short")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise SafeModeError("length beyond the payload")
        if not hmac.compare_digest(plain[20 + length :], self._appid):
            raise WrongAppId("sealed for another appid")
        try:
            return plain[20 : 20 + length].decode()
        except UnicodeDecodeError as exc:
            raise SafeModeError("not UTF-8") from exc
