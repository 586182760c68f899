"""WeChat's side of the Official Account server protocol, written from the documentation independently of
minsheng_wechat: it signs, seals and sends requests as WeChat's servers do, and opens the replies. Safe mode is
done here directly with the AES primitive and hand-made padding, so a symmetric bug in our cipher cannot pass."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import httpx
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def sha1_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def aes_seal(encoding_aes_key: str, appid: str, message: str, prefix: bytes | None = None) -> str:
    key = base64.b64decode(encoding_aes_key + "=")
    data = (prefix or os.urandom(16)) + struct.pack(">I", len(message.encode())) + message.encode() + appid.encode()
    pad = 32 - len(data) % 32
    data += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode()


def aes_open(encoding_aes_key: str, sealed: str) -> tuple[str, str]:
    """(message, appid) of a sealed payload."""
    key = base64.b64decode(encoding_aes_key + "=")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    data = decryptor.update(base64.b64decode(sealed)) + decryptor.finalize()
    data = data[: -data[-1]]
    (length,) = struct.unpack(">I", data[16:20])
    return data[20 : 20 + length].decode(), data[20 + length :].decode()


@dataclass
class WechatPlatform:
    """One account as WeChat's servers see it."""

    appid: str
    token: str
    encoding_aes_key: str
    original_id: str = "gh_0123456789ab"

    def query(self, timestamp: int | None = None, nonce: str = "1320562132") -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        return {"signature": sha1_signature(self.token, stamp, nonce), "timestamp": stamp, "nonce": nonce}

    def text(self, openid: str, content: str, msg_id: int, create_time: int | None = None) -> str:
        return self.message(openid, "text", msg_id, create_time, f"<Content><![CDATA[{content}]]></Content>")

    def voice(self, openid: str, media_id: str, msg_id: int, recognition: str | None = None) -> str:
        extra = f"<MediaId><![CDATA[{media_id}]]></MediaId><Format><![CDATA[amr]]></Format>"
        if recognition is not None:
            extra += f"<Recognition><![CDATA[{recognition}]]></Recognition>"
        return self.message(openid, "voice", msg_id, None, extra)

    def image(self, openid: str, media_id: str, msg_id: int) -> str:
        extra = f"<PicUrl><![CDATA[http://mmbiz.qpic.cn/{media_id}]]></PicUrl><MediaId><![CDATA[{media_id}]]></MediaId>"
        return self.message(openid, "image", msg_id, None, extra)

    def event(self, openid: str, event: str, key: str | None = None) -> str:
        extra = f"<Event><![CDATA[{event}]]></Event>" + (f"<EventKey><![CDATA[{key}]]></EventKey>" if key else "")
        return (
            f"<xml><ToUserName><![CDATA[{self.original_id}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>{extra}</xml>"
        )

    def message(self, openid: str, msg_type: str, msg_id: int, create_time: int | None, extra: str) -> str:
        return (
            f"<xml><ToUserName><![CDATA[{self.original_id}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{create_time or int(time.time())}</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>"
            f"{extra}<MsgId>{msg_id}</MsgId></xml>"
        )

    async def send(self, client: httpx.AsyncClient, xml: str | bytes, **query: str) -> httpx.Response:
        """POST a plain-mode message, signed."""
        params = {**self.query(), "openid": "o-in-query", **query}
        return await client.post(f"/wechat/{self.appid}", params=params, content=xml)

    async def send_sealed(self, client: httpx.AsyncClient, xml: str, sealed_for: str | None = None) -> httpx.Response:
        """POST a safe-mode message: sealed (for our appid unless told otherwise), signed twice."""
        params = self.query()
        encrypted = aes_seal(self.encoding_aes_key, sealed_for or self.appid, xml)
        params |= {
            "encrypt_type": "aes",
            "msg_signature": sha1_signature(self.token, params["timestamp"], params["nonce"], encrypted),
        }
        envelope = f"<xml><ToUserName><![CDATA[{self.original_id}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        return await client.post(f"/wechat/{self.appid}", params=params, content=envelope)

    def open_reply(self, body: str) -> dict[str, str]:
        """The fields of a passive reply; a sealed one is checked (signature, appid) and opened first."""
        root = ET.fromstring(body)
        fields = {child.tag: child.text or "" for child in root}
        if "Encrypt" in fields:
            expected = sha1_signature(self.token, fields["TimeStamp"], fields["Nonce"], fields["Encrypt"])
            assert fields["MsgSignature"] == expected, "reply signature does not verify"
            message, appid = aes_open(self.encoding_aes_key, fields["Encrypt"])
            assert appid == self.appid, "reply sealed for another appid"
            fields = {child.tag: child.text or "" for child in ET.fromstring(message)}
        return fields


BILLION_LAUGHS_XML = """<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType>
<Content>&lol3;</Content><MsgId>1</MsgId></xml>"""
