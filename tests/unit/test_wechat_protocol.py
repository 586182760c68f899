"""WeChat protocol pieces without I/O: signatures, safe-mode crypto against an independent vector, safe XML."""

from __future__ import annotations

import base64

import pytest

from minsheng_wechat.crypto import MessageCipher, SafeModeError, WrongAppId, signature, signature_matches
from minsheng_wechat.messages import XmlRejected, cdata, parse_envelope, parse_inbound, text_reply
from tests.fakes.wechat_platform import aes_open, aes_seal

KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wxb11529c136998cb6"
MESSAGE = "<xml><Content><![CDATA[你好]]></Content></xml>"
PREFIX = bytes(range(16))
# Computed once with the AES primitive and hand-made 32-byte PKCS#7 (tests/fakes/wechat_platform.aes_seal).
VECTOR = (
    "IG+0eOkLdhYW9kHtuT3HY1r4tZbH6ZoKFeEJc7Csl/5MorxMYyR5HMWUPK5JlUXqpXkH1UFdXai0dr2/7SmZS+C9kejrLWXayyeUKUlXev+"
    "eciU5ZJB/MGIuK4jphJUM"
)


def test_signature_is_sha1_of_the_sorted_concatenation():
    # sorted: "1409304348" < "pamtest" < "xxxxxx"
    import hashlib

    assert signature("pamtest", "1409304348", "xxxxxx") == hashlib.sha1(b"1409304348pamtestxxxxxx").hexdigest()
    assert signature_matches(signature("t0k", "1", "2").upper(), "t0k", "1", "2")
    assert not signature_matches(None, "t0k", "1", "2") and not signature_matches("", "t0k", "1", "2")
    assert not signature_matches(signature("t0k", "1", "2"), "t0k", "1", "3")


def test_sealing_matches_the_independent_vector():
    assert aes_seal(KEY, APPID, MESSAGE, PREFIX) == VECTOR  # the vector itself is what the documented steps give
    assert MessageCipher(KEY, APPID).encrypt(MESSAGE, PREFIX) == VECTOR


def test_opening_the_independent_vector_and_our_sealing_opened_independently():
    assert MessageCipher(KEY, APPID).decrypt(VECTOR) == MESSAGE
    for text in ("", "a", "x" * 31, "y" * 32, "中文" * 500):  # every padding length, including a whole block
        sealed = MessageCipher(KEY, APPID).encrypt(text)
        assert aes_open(KEY, sealed) == (text, APPID)
        assert MessageCipher(KEY, APPID).decrypt(aes_seal(KEY, APPID, text)) == text


def test_a_payload_sealed_for_another_appid_is_refused():
    with pytest.raises(WrongAppId):
        MessageCipher(KEY, APPID).decrypt(aes_seal(KEY, "wx0000000000000000", MESSAGE))


@pytest.mark.parametrize(
    "payload",
    [
        "not base64 at all!",
        base64.b64encode(b"short").decode(),
        base64.b64encode(b"\0" * 48).decode(),  # not a whole number of 32-byte blocks
        base64.b64encode(b"\0" * 64).decode(),  # decrypts to garbage padding
        "",
    ],
)
def test_broken_payloads_raise_safe_mode_errors(payload):
    with pytest.raises(SafeModeError):
        MessageCipher(KEY, APPID).decrypt(payload)


def test_a_length_field_beyond_the_payload_is_refused():
    cipher = MessageCipher(KEY, APPID)
    sealed = aes_seal(KEY, APPID, "abc")
    # Re-seal with a lying length: hand-build the plaintext.
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = base64.b64decode(KEY + "=")
    data = PREFIX + (10_000).to_bytes(4, "big") + b"abc" + APPID.encode()
    data += bytes([32 - len(data) % 32]) * (32 - len(data) % 32)
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    lying = base64.b64encode(enc.update(data) + enc.finalize()).decode()
    assert cipher.decrypt(sealed) == "abc"
    with pytest.raises(SafeModeError):
        cipher.decrypt(lying)


def test_keys_of_the_wrong_shape_are_refused():
    for key in ("short", KEY + "A", "!" * 43):
        with pytest.raises(ValueError):
            MessageCipher(key, APPID)


BILLION_LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName>
<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol3;</Content></xml>"""
EXTERNAL = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><ToUserName>a</ToUserName>
<FromUserName>b</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&xxe;</Content></xml>"""


@pytest.mark.parametrize(
    "body",
    [
        BILLION_LAUGHS,
        EXTERNAL,
        b"<xml><ToUserName>a</ToUserName>",  # unclosed
        b"not xml",
        b"",
        b"<root><ToUserName>a</ToUserName></root>",
        b"<xml><ToUserName>a</ToUserName><MsgType>text</MsgType></xml>",  # no sender, no time
        b"<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>soon</CreateTime>"
        b"<MsgType>text</MsgType></xml>",
    ],
)
def test_hostile_or_broken_xml_is_rejected(body):
    with pytest.raises(XmlRejected):
        parse_inbound(body)


def test_a_text_message_parses_and_the_reply_swaps_the_parties():
    msg = parse_inbound(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o-user]]></FromUserName>"
        "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[修路]]></Content>"
        "<MsgId>123</MsgId><Unknown>x</Unknown></xml>".encode()
    )
    assert (msg.to_user, msg.from_user, msg.msg_type, msg.content, msg.msg_id) == ("gh_1", "o-user", "text", "修路", "123")
    reply = parse_inbound(text_reply(msg, "收到 ]]> 了").encode())
    assert (reply.to_user, reply.from_user, reply.content, reply.create_time) == ("o-user", "gh_1", "收到 ]]> 了", 1700000000)
    assert cdata("a]]>b") == "<![CDATA[a]]]]><![CDATA[>b]]>"


def test_an_envelope_needs_its_encrypt_element():
    assert parse_envelope(b"<xml><ToUserName>gh</ToUserName><Encrypt>abc</Encrypt></xml>").Encrypt == "abc"
    with pytest.raises(XmlRejected):
        parse_envelope(b"<xml><ToUserName>gh</ToUserName></xml>")
