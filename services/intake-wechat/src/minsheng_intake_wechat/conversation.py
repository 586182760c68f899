"""What each WeChat message means for the campaign: a suggestion, a picture for one, a status query, or nothing.
No FastAPI here; the route authenticates and parses, this decides and answers."""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from pymongo.errors import PyMongoError

from minsheng_core.campaign import Campaign
from minsheng_core.events import (
    Attachment,
    Channel,
    PersonalData,
    SuggestionAttachmentAdded,
    SuggestionReceived,
)
from minsheng_core.ids import normalise_tracking_code, person_key, tracking_code_for
from minsheng_core.intake import IntakeRuntime
from minsheng_core.outbox import SubmissionKeyConflict
from minsheng_core.text import has_content
from minsheng_intake_wechat import replies
from minsheng_wechat.accounts import WechatAccount
from minsheng_wechat.messages import Inbound

log = structlog.get_logger(__name__)

_QUERY = re.compile(r"^\s*查询[\s:：]*(?P<code>.*?)\s*$", re.DOTALL)
_HELP = {"帮助", "help", "?", "？", "怎么提", "如何提交"}


@dataclass(frozen=True)
class Reply:
    """The passive reply (None: answer "success", say nothing) and what happened, for the log."""

    text: str | None
    outcome: str
    suggestion_id: str | None = None


class WechatIntake:
    """The WeChat channel: messages into the outbox first, then the broker; the reply never waits on the broker."""

    def __init__(
        self, campaign: Campaign, secret: bytes, runtime: IntakeRuntime, attach_window: timedelta, lookup_timeout: float
    ) -> None:
        self.campaign = campaign
        self._secret = secret
        self._runtime = runtime
        self._attach_window = attach_window
        self._lookup_timeout = lookup_timeout

    async def handle(self, account: WechatAccount, msg: Inbound, now: datetime) -> Reply:
        """Answer one message or event; the same message (same MsgId) always gets the same reply."""
        kind = msg.msg_type.lower()
        if kind == "text":
            return await self._text(account, msg, now)
        if kind == "voice":
            return await self._voice(account, msg, now)
        if kind == "image":
            return await self._image(account, msg, now)
        if kind == "event":
            return self._event(account, msg)
        return Reply(None, "unknown_type")

    async def _text(self, account: WechatAccount, msg: Inbound, now: datetime) -> Reply:
        content = (msg.content or "").strip()
        query = _QUERY.match(content)
        if query:
            return await self._status(msg, query["code"])
        if content.lower() in _HELP:
            return Reply(replies.help_text(self.campaign), "help")
        if not has_content(content):
            return Reply(replies.no_words(), "no_words")
        if not self.campaign.is_open(now):
            return Reply(self.campaign.closed_notice(), "closed")
        return await self._accept(account, msg, text=content)

    async def _voice(self, account: WechatAccount, msg: Inbound, now: datetime) -> Reply:
        if not msg.media_id:
            return Reply(None, "voice_without_media")
        if not self.campaign.is_open(now):
            return Reply(self.campaign.closed_notice(), "closed")
        words = (msg.recognition or "").strip()
        recording = Attachment(kind="voice", channel_ref=_ref(account, msg), media_id=msg.media_id, format=msg.format)
        if has_content(words):
            return await self._accept(account, msg, text=words, attachments=[recording])
        # WeChat is retiring Recognition: keep the recording for staff to transcribe.
        return await self._accept(account, msg, awaiting="transcription", attachments=[recording])

    async def _image(self, account: WechatAccount, msg: Inbound, now: datetime) -> Reply:
        if not msg.media_id and not msg.pic_url:
            return Reply(None, "image_without_media")
        if not self.campaign.is_open(now):
            return Reply(self.campaign.closed_notice(), "closed")
        picture = Attachment(kind="image", channel_ref=_ref(account, msg), media_id=msg.media_id, url=msg.pic_url)
        sender = self._sender(msg)
        recent = await self._runtime.outbox.latest_suggestion_from(sender, now - self._attach_window)
        if recent is None:
            return await self._accept(account, msg, awaiting="text", attachments=[picture])
        event = SuggestionAttachmentAdded(suggestion_id=recent.suggestion_id, occurred_at=now, body=picture)
        try:
            accepted = await self._runtime.outbox.accept(_ref(account, msg), _fingerprint(msg), event, sender)
        except SubmissionKeyConflict:
            return Reply(None, "msgid_conflict")
        await self._runtime.publish_now(accepted)
        # A retry finds the first acceptance, whatever the sender sent since: same suggestion, same reply.
        target = accepted.suggestion_id
        if isinstance(accepted.event, SuggestionReceived):  # the first try kept the picture as its own item
            return Reply(replies.image_awaiting_text(accepted.event.body.tracking_code), "image_alone", target)
        return Reply(replies.image_attached(tracking_code_for(self._secret, target)), "image_attached", target)

    def _event(self, account: WechatAccount, msg: Inbound) -> Reply:
        event = (msg.event or "").lower()
        if event == "subscribe":
            return Reply(replies.welcome(account.name, self.campaign), "subscribe")
        if event == "click":
            return Reply(replies.help_text(self.campaign), "menu_click")
        return Reply(None, f"event_{event or 'unnamed'}"[:40])

    async def _status(self, msg: Inbound, typed: str) -> Reply:
        code = normalise_tracking_code(typed)
        if code is None:
            return Reply(replies.bad_code(), "query_bad_code")
        try:
            tracked = await asyncio.wait_for(self._runtime.track(code), self._lookup_timeout)
        except (TimeoutError, PyMongoError) as exc:
            log.warning("wechat_lookup_unavailable", error=type(exc).__name__)
            return Reply(replies.lookup_unavailable(), "query_unavailable")
        # The WeChat user is the second factor: only their own suggestions, and "not found" either way.
        if tracked is None or not self._runtime.is_submitter(tracked, msg.from_user):
            return Reply(replies.not_found(code), "query_not_found")
        return Reply(replies.status(tracked, self.campaign), "query", tracked.suggestion_id)

    async def _accept(
        self,
        account: WechatAccount,
        msg: Inbound,
        text: str = "",
        awaiting: str | None = None,
        attachments: list[Attachment] | None = None,
    ) -> Reply:
        content = {
            "account": account.appid,
            "text": text,
            "awaiting": awaiting,
            "attachments": attachments or [],
            "unit": account.unit,
        }
        try:
            accepted = await self._runtime.receive(
                self.campaign,
                Channel.WECHAT,
                _ref(account, msg),
                content,
                PersonalData(wechat_openid=msg.from_user),
                datetime.fromtimestamp(msg.create_time, UTC),
                fingerprint=_fingerprint(msg),
                sender=self._sender(msg),
            )
        except SubmissionKeyConflict:
            return Reply(None, "msgid_conflict")
        stored = accepted.event
        if not isinstance(stored, SuggestionReceived):  # the first try attached the picture to an earlier suggestion
            return Reply(replies.image_attached(tracking_code_for(self._secret, stored.suggestion_id)), "image_attached")
        code = stored.body.tracking_code
        if stored.body.awaiting == "transcription":
            return Reply(replies.voice_awaiting_transcription(code), "voice_awaiting_transcription", stored.suggestion_id)
        if stored.body.awaiting == "text":
            return Reply(replies.image_awaiting_text(code), "image_alone", stored.suggestion_id)
        return Reply(replies.received(code), "accepted", stored.suggestion_id)

    def _sender(self, msg: Inbound) -> str:
        return person_key(self._secret, f"wechat:{msg.to_user}:{msg.from_user}")


def _ref(account: WechatAccount, msg: Inbound) -> str:
    """The channel reference: MsgId per account; for a message without one, sender and time (as WeChat dedupes)."""
    return f"{account.appid}:{msg.msg_id or f'{msg.from_user}@{msg.create_time}'}"


def _fingerprint(msg: Inbound) -> str:
    return hashlib.sha256(msg.model_dump_json().encode()).hexdigest()
