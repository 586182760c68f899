"""The dispatcher: picks due delivery records, chooses the channel, sends once, records what happened."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from minsheng_core.backoff import backoff
from minsheng_core.bus import Publisher, PublishFailed
from minsheng_core.events import Channel, Notification, NotificationChannel, NotificationSent, Outcome
from minsheng_notifier.contacts import Contact, ContactBook
from minsheng_notifier.messages import DecisionText, sms_text, status_link, template_data, wechat_text
from minsheng_notifier.records import Claim, Notifications, State
from minsheng_notifier.records import Outcome as ClaimOutcome
from minsheng_notifier.schedule import QuietHours
from minsheng_notifier.senders import DeliveryFailed, OutsideServiceWindow, SmsSender, WechatSender
from minsheng_notifier.settings import NotifierSettings
from minsheng_wechat.accounts import WechatAccount
from minsheng_wechat.client import SERVICE_WINDOW, ApiCredentials

log = structlog.get_logger(__name__)

# NotificationSent of one decision always has this id: a second publication (after a lost confirm) is the same event.
_EVENT_NAMESPACE = uuid.UUID("4f0d7c52-6a43-4c1e-9d0b-2b7e3f1a8c65")
_REPUBLISH_AFTER = timedelta(seconds=30)


@dataclass(frozen=True)
class Wait:
    """The suggestion's contact has not arrived: look again when it does, or until the deadline."""

    until: datetime


@dataclass(frozen=True)
class Web:
    """Nothing to send to: the status page is the notification."""

    why: str


@dataclass(frozen=True)
class GiveUp:
    """A channel exists but cannot be used (no template, no AppSecret, SMS not configured)."""

    channel: NotificationChannel
    reason: str


@dataclass(frozen=True)
class Sms:
    mobile: str


@dataclass(frozen=True)
class Wechat:
    creds: ApiCredentials
    openid: str
    last_message_at: datetime
    inside_window: bool
    template_id: str | None


Route = Wait | Web | GiveUp | Sms | Wechat


def _first_channel(route: Sms | Wechat) -> NotificationChannel:
    if isinstance(route, Sms):
        return NotificationChannel.SMS
    return NotificationChannel.WECHAT_MESSAGE if route.inside_window else NotificationChannel.WECHAT_TEMPLATE


@dataclass
class _Step:
    """The channel a send got to, and notes on the way (a refused customer-service message)."""

    channel: NotificationChannel
    notes: dict[str, str] = field(default_factory=dict)


class Dispatcher:
    """Runs in the service's lifespan; every write to a record is made under a claim (see records.py)."""

    def __init__(
        self,
        *,
        settings: NotifierSettings,
        records: Notifications,
        contacts: ContactBook,
        accounts: dict[str, WechatAccount],
        wechat: WechatSender,
        sms: SmsSender | None,
        publisher: Publisher,
        quiet: QuietHours,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._records = records
        self._contacts = contacts
        self._accounts = accounts
        self._wechat = wechat
        self._sms = sms
        self._publisher = publisher
        self._quiet = quiet
        self._clock = clock
        self._zone = quiet.zone
        self._stopping = asyncio.Event()
        self.rounds = 0  # completed ticks, for probes and tests

    def stop(self) -> None:
        """Take no new record; what is being sent finishes."""
        self._stopping.set()

    async def run(self) -> None:
        """Tick until stopped; a full batch is followed by the next one at once."""
        while not self._stopping.is_set():
            busy = False
            try:
                busy = await self.tick() >= self._settings.dispatch_batch
            except Exception as exc:  # the store or the broker away: try again next tick
                log.warning("notifier_tick_failed", error=type(exc).__name__)
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._settings.dispatch_interval_seconds)

    async def tick(self) -> int:
        """Settle interrupted sends, act on every due record, publish what is not published yet; how many were due."""
        now = self._clock()
        batch = self._settings.dispatch_batch
        for doc in await self._records.stale_sending(now - self._stale, batch):
            state = await self._records.settle_stale(doc, now)
            log.warning("notification_interrupted", decision_id=doc["_id"], suggestion_id=doc["suggestion_id"], state=state.value)
        docs = await self._records.due(now, batch)
        waiting = await self._records.waiting_for_contact(batch)
        if waiting:
            known = await self._contacts.known([d["suggestion_id"] for d in waiting])
            seen = {d["_id"] for d in docs}
            docs += [d for d in waiting if d["suggestion_id"] in known and d["_id"] not in seen]
        limit = asyncio.Semaphore(self._settings.dispatch_concurrency)

        async def one(doc: dict[str, Any]) -> None:
            async with limit:
                await self.process(doc)

        await asyncio.gather(*(one(doc) for doc in docs), return_exceptions=True)
        # The sender publishes at once; what is still unpublished a while later missed the broker.
        for doc in await self._records.unpublished(now - _REPUBLISH_AFTER, batch):
            await self._publish(doc)
        self.rounds += 1
        return len(docs)

    @property
    def _stale(self) -> timedelta:
        return timedelta(seconds=self._settings.stale_sending_seconds)

    async def process(self, doc: dict[str, Any]) -> None:
        """Act on one record under a claim; at most one dispatcher acts on it at a time."""
        if self._stopping.is_set():
            return
        with structlog.contextvars.bound_contextvars(decision_id=doc["_id"], suggestion_id=doc["suggestion_id"]):
            now = self._clock()
            try:
                contact = await self._contacts.get(doc["suggestion_id"])
                route = await self._route(doc, contact, now)
                claim = await self._records.claim(doc, now, now - self._stale)
            except Exception as exc:
                log.warning("notification_not_processed", error=type(exc).__name__)
                return
            if claim is None:
                return
            sending = False
            try:
                if isinstance(route, Sms | Wechat) and self._quiet.is_quiet(now):
                    until = self._quiet.next_allowed(now)
                    await self._defer(claim, now, until, "quiet_hours")
                    log.info("notification_deferred", reason="quiet_hours", until=until.isoformat())
                elif isinstance(route, Wait):
                    await self._defer(claim, now, route.until, "contact")
                    log.info("notification_waiting_for_contact", until=route.until.isoformat())
                elif isinstance(route, Web):
                    await self._sent(doc, claim, now, NotificationChannel.WEB, {"outcome": "status_page", "note": route.why})
                elif isinstance(route, GiveUp):
                    await self._give_up(claim, now, route.channel, route.reason, None)
                else:
                    assert contact is not None
                    channel = _first_channel(route)
                    await self._records.update(
                        claim, now, {"state": State.SENDING.value, "channel": channel.value, "waiting_for": None,
                                     "claim": {"n": claim.n, "token": claim.token, "at": now}}
                    )  # fmt: skip
                    sending = True
                    await self._send(doc, claim, contact, route)
            except asyncio.CancelledError:
                if not sending:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(self._records.release(claim, ClaimOutcome.ABORTED))
                raise  # mid-send the record stays "sending" and its outcome becomes unknown
            except Exception as exc:
                log.error("notification_processing_failed", error=type(exc).__name__, sending=sending)
                if not sending:
                    with contextlib.suppress(Exception):
                        await self._records.release(claim, ClaimOutcome.ABORTED)

    async def _route(self, doc: dict[str, Any], contact: Contact | None, now: datetime) -> Route:
        """Where this submitter can be told, and how."""
        if contact is None:
            if await self._contacts.erased(doc["suggestion_id"]):
                return Web("contact_erased")
            deadline = doc["created_at"] + timedelta(seconds=self._settings.contact_wait_seconds)
            return Wait(deadline) if now < deadline else Web("no_contact")
        if contact.channel is Channel.WECHAT and contact.openid:
            account = self._accounts.get(contact.account or "")
            if account is None:
                return GiveUp(NotificationChannel.WECHAT_MESSAGE, "wechat account not configured")
            creds = account.credentials()
            if creds is None:
                return GiveUp(NotificationChannel.WECHAT_MESSAGE, "wechat account without app_secret")
            last = contact.submitted_at
            if contact.openid_lookup:
                last = await self._contacts.last_message_at(contact.openid_lookup, contact.account) or last
            inside = now - last < SERVICE_WINDOW
            if not inside and not account.decision_template_id:
                return GiveUp(NotificationChannel.WECHAT_TEMPLATE, "no_template")
            return Wechat(creds, contact.openid, last, inside, account.decision_template_id)
        if contact.mobile and contact.channel in self._settings.sms_channels:
            return Sms(contact.mobile) if self._sms is not None else GiveUp(NotificationChannel.SMS, "sms not configured")
        return Web("nothing_to_send_to")

    def _text(self, doc: dict[str, Any], contact: Contact) -> DecisionText:
        d = doc["decision"]
        return DecisionText(
            tracking_code=contact.tracking_code,
            outcome=Outcome(d["outcome"]),
            explanation=d["explanation"],
            referred_to=d.get("referred_to"),
            released_at=d["released_at"],
            status_url=status_link(self._settings.status_page_url, contact.tracking_code),
        )

    async def _send(self, doc: dict[str, Any], claim: Claim, contact: Contact, route: Sms | Wechat) -> None:
        text = self._text(doc, contact)
        step = _Step(_first_channel(route))
        try:
            if isinstance(route, Sms):
                assert self._sms is not None
                await self._sms.send(route.mobile, sms_text(text, self._settings.sms_signature, self._settings.sms_max_chars))
            else:
                await self._send_wechat(route, text, step)
        except DeliveryFailed as exc:
            await self._failed(doc, claim, step, exc)
            return
        await self._sent(doc, claim, self._clock(), step.channel, {"outcome": "sent", **step.notes})

    async def _send_wechat(self, route: Wechat, text: DecisionText, step: _Step) -> None:
        if route.inside_window:
            try:
                message = wechat_text(text, self._settings.wechat_text_max_chars)
                await self._wechat.text(route.creds, route.openid, message, route.last_message_at)
                return
            except OutsideServiceWindow as exc:  # WeChat knows better (the user unfollowed, the quota is used up)
                step.notes["note"] = f"customer-service message refused ({exc.errcode}): template instead"
        step.channel = NotificationChannel.WECHAT_TEMPLATE
        if not route.template_id:
            raise DeliveryFailed("no_template", None, "outside the 48-hour window and no template configured", False)
        data = template_data(text, self._zone)
        await self._wechat.template(route.creds, route.openid, route.template_id, data, text.status_url)

    def _attempt(self, doc: dict[str, Any], at: datetime, channel: NotificationChannel, **fields: Any) -> dict[str, Any]:
        return {"n": len(doc.get("attempts", [])) + 1, "at": at, "channel": channel.value, **fields}

    async def _defer(self, claim: Claim, now: datetime, until: datetime, why: str) -> None:
        await self._records.release(claim, ClaimOutcome.DEFERRED)
        await self._records.update(claim, now, {"state": State.PENDING.value, "due_at": until, "waiting_for": why})

    async def _sent(
        self, doc: dict[str, Any], claim: Claim, now: datetime, channel: NotificationChannel, attempt: dict[str, Any]
    ) -> None:
        await self._records.release(claim, ClaimOutcome.SENT)
        updated = await self._records.update(
            claim,
            now,
            {"state": State.SENT.value, "channel": channel.value, "sent_at": now, "waiting_for": None, "reason": None},
            self._attempt(doc, now, channel, **attempt),
        )
        log.info("notification_sent", channel=channel.value, attempts=len((updated or {}).get("attempts", [])))
        if updated is not None:
            await self._publish(updated)

    async def _failed(self, doc: dict[str, Any], claim: Claim, step: _Step, exc: DeliveryFailed) -> None:
        now = self._clock()
        channel = step.channel
        failure = {"outcome": "failed", "error": exc.error, "code": exc.code, "detail": exc.detail, **step.notes}
        record = self._attempt(doc, now, channel, **failure)
        failures = 1 + sum(1 for a in doc.get("attempts", [])[doc.get("attempts_base", 0) :] if a.get("outcome") == "failed")
        if not exc.transient:
            await self._give_up(claim, now, channel, exc.describe(), record)
            return
        if failures >= self._settings.max_attempts:
            await self._give_up(claim, now, channel, f"gave up after {failures} attempts: {exc.describe()}", record)
            return
        delay = backoff(failures, self._settings.retry_base_seconds, self._settings.retry_max_seconds)
        due = self._quiet.next_allowed(now + delay)
        await self._records.release(claim, ClaimOutcome.FAILED)
        await self._records.update(claim, now, {"state": State.FAILED.value, "channel": channel.value, "due_at": due}, record)
        log.warning("notification_retry_scheduled", channel=channel.value, failures=failures, error=exc.error, code=exc.code)

    async def _give_up(
        self, claim: Claim, now: datetime, channel: NotificationChannel, reason: str, attempt: dict[str, Any] | None
    ) -> None:
        await self._records.release(claim, ClaimOutcome.GIVEN_UP)
        fields = {"state": State.GIVEN_UP.value, "channel": channel.value, "reason": reason, "waiting_for": None}
        await self._records.update(claim, now, fields, attempt)
        log.warning("notification_given_up", channel=channel.value, reason=reason)

    async def _publish(self, doc: dict[str, Any]) -> None:
        """NotificationSent for a sent record; left for the next tick when the broker does not confirm it."""
        event = NotificationSent(
            event_id=uuid.uuid5(_EVENT_NAMESPACE, doc["_id"]),
            suggestion_id=doc["suggestion_id"],
            occurred_at=doc["sent_at"],
            body=Notification(
                decision_id=doc["_id"],
                channel=NotificationChannel(doc["channel"]),
                attempts=min(max(len(doc.get("attempts", [])), 1), 100),
                sent_at=doc["sent_at"],
            ),
        )
        try:
            await self._publisher.publish(event)
        except PublishFailed as exc:
            log.warning("notification_event_unpublished", decision_id=doc["_id"], error=str(exc)[:200])
            return
        await self._records.mark_published(doc["_id"])
