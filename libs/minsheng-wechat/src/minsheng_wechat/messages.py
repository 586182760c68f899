"""WeChat message XML: parsed safely (no DTDs, no entities, bounded fields), passive replies built with CDATA."""

from __future__ import annotations

import re
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class XmlRejected(ValueError):
    """Not a WeChat message: malformed, with a DTD or entities, or missing what every message has."""


class Inbound(BaseModel):
    """A message or event WeChat pushes to the account's server (the fields Minsheng uses)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    to_user: str = Field(alias="ToUserName", min_length=1, max_length=64)
    from_user: str = Field(alias="FromUserName", min_length=1, max_length=64)
    create_time: int = Field(alias="CreateTime", ge=0)
    msg_type: str = Field(alias="MsgType", min_length=1, max_length=32)
    msg_id: str | None = Field(default=None, alias="MsgId", max_length=64)
    content: str | None = Field(default=None, alias="Content", max_length=5000)
    media_id: str | None = Field(default=None, alias="MediaId", max_length=200)
    pic_url: str | None = Field(default=None, alias="PicUrl", max_length=1000)
    format: str | None = Field(default=None, alias="Format", max_length=20)
    recognition: str | None = Field(default=None, alias="Recognition", max_length=5000)
    event: str | None = Field(default=None, alias="Event", max_length=64)
    event_key: str | None = Field(default=None, alias="EventKey", max_length=200)

    @field_validator("pic_url")
    @classmethod
    def _web_address_only(cls, value: str | None) -> str | None:
        # Staff pages show it as <img src>: a javascript: or data: address is dropped; the MediaId still names the picture.
        return value if value is None or re.match(r"https?://", value, re.IGNORECASE) else None


class Envelope(BaseModel):
    """The outer XML of a safe-mode message: only the sealed payload counts."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    Encrypt: str = Field(min_length=1, max_length=100_000)


def xml_fields(body: bytes) -> dict[str, str]:
    """The flat child elements of a WeChat ``<xml>`` document; raises XmlRejected."""
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, ParseError) as exc:
        raise XmlRejected(type(exc).__name__) from exc
    if root.tag != "xml":
        raise XmlRejected("root element is not <xml>")
    return {child.tag: (child.text or "").strip() for child in root if len(child) == 0}


def parse_inbound(body: bytes) -> Inbound:
    """Parse a (plain or decrypted) message; raises XmlRejected."""
    try:
        return Inbound.model_validate(xml_fields(body))
    except ValidationError as exc:
        raise XmlRejected("missing or invalid fields: " + ", ".join(str(e["loc"][0]) for e in exc.errors())) from exc


def parse_envelope(body: bytes) -> Envelope:
    """Parse a safe-mode message's outer XML; raises XmlRejected."""
    try:
        return Envelope.model_validate(xml_fields(body))
    except ValidationError as exc:
        raise XmlRejected("no Encrypt element") from exc


def cdata(text: str) -> str:
    """A CDATA section holding any text, even one containing ']]>'."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply(to: Inbound, content: str) -> str:
    """A passive text reply to a message; CreateTime echoes the message's, so a retried message gets the same reply."""
    return (
        "<xml>"
        f"<ToUserName>{cdata(to.from_user)}</ToUserName>"
        f"<FromUserName>{cdata(to.to_user)}</FromUserName>"
        f"<CreateTime>{to.create_time}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{cdata(content)}</Content>"
        "</xml>"
    )


def sealed_reply(encrypted: str, msg_signature: str, timestamp: str, nonce: str) -> str:
    """The safe-mode reply envelope around an encrypted passive reply."""
    return (
        "<xml>"
        f"<Encrypt>{cdata(encrypted)}</Encrypt>"
        f"<MsgSignature>{cdata(msg_signature)}</MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp>"
        f"<Nonce>{cdata(nonce)}</Nonce>"
        "</xml>"
    )
