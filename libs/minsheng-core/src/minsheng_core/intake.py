"""What every intake service runs: a durable outbox, a publisher that attaches once the broker is there, a drainer."""

from __future__ import annotations

import contextlib
import hmac
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from aio_pika.abc import AbstractRobustConnection
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from minsheng_core.bus import Publisher
from minsheng_core.campaign import OUTCOME_NAMES, REASON_NAMES, Campaign
from minsheng_core.erasures import honour_erasures
from minsheng_core.events import Channel, Outcome, PersonalData, Reason, SuggestionContent, SuggestionReceived
from minsheng_core.ids import suggestion_id_for, tracking_code_for
from minsheng_core.lifecycle import background, broker_when_possible, open_database
from minsheng_core.metrics import watch_outbox
from minsheng_core.outbox import Accepted, Outbox
from minsheng_core.personal import LOOKUP_FIELDS, PersonalDataVault
from minsheng_core.settings import IntakeSettings

STATUS_TEXT = {
    "received": "已收到，正在分类",
    "pending": "已收到，正在处理",
    "classified": "已分类，等待责任单位梳理",
}


@dataclass(frozen=True)
class TrackedDecision:
    """The released decision on a suggestion, as its submitter reads it."""

    outcome: str
    outcome_name: str  # in Chinese: 采纳, 未采纳 …
    reason: str | None
    reason_name: str | None
    explanation: str
    project_title: str | None
    released_at: datetime


@dataclass(frozen=True)
class Tracked:
    """Where a suggestion stands, found by its tracking code, as a submitter may see it."""

    suggestion_id: str
    tracking_code: str
    status: str
    category: str | None
    title: str | None
    text: str
    submitted_at: datetime
    openid_hash: str | None  # the look-up hash of the submitter's WeChat openid, never the openid itself

    decision: TrackedDecision | None = None

    @property
    def status_text(self) -> str:
        if self.decision is not None:
            return f"已答复（{self.decision.outcome_name}）"
        return STATUS_TEXT.get(self.status, self.status)


@dataclass(frozen=True)
class IntakeRuntime:
    outbox: Outbox
    publisher: Publisher
    db: AsyncDatabase
    secret: bytes
    vault: PersonalDataVault

    async def receive(
        self,
        campaign: Campaign,
        channel: Channel,
        ref: str,
        content: dict[str, Any],
        personal: PersonalData,
        submitted_at: datetime,
        *,
        fingerprint: str,
        sender: str | None = None,
        hold_until: datetime | None = None,
        author: str | None = None,
    ) -> Accepted:
        """Accept a suggestion into the outbox under the channel's own id and publish it unless held.

        ``content`` holds the SuggestionContent fields the channel knows (text, location, awaiting, attachments…);
        the ids, tracking code and campaign are filled in here, the same way for every channel.
        """
        suggestion_id = suggestion_id_for(channel, ref)
        event = SuggestionReceived(
            suggestion_id=suggestion_id,
            body=SuggestionContent(
                channel=channel,
                channel_ref=ref,
                campaign=campaign.code,
                tracking_code=tracking_code_for(self.secret, suggestion_id),
                submitted_at=submitted_at,
                **content,
            ),
            personal=personal,
        )
        accepted = await self.outbox.accept(ref, fingerprint, event, sender, hold_until, author)
        if hold_until is None:
            return replace(accepted, published=await self.publish_now(accepted))
        return accepted

    async def publish_now(self, accepted: Accepted) -> bool:
        """Publish an accepted submission if it is not out yet; False leaves it to the drainer."""
        return accepted.published or await self.outbox.publish(self.publisher, accepted.submission_key)

    async def _decision(self, doc: dict[str, Any]) -> TrackedDecision | None:
        """The decision the store recorded on the suggestion, with the title of its project if it names one."""
        decision = doc.get("decision")
        if not decision:
            return None
        outcome, reason = Outcome(decision["outcome"]), Reason(decision["reason"]) if decision.get("reason") else None
        project = None
        if decision.get("project_id"):
            project = await self.db.projects.find_one({"_id": decision["project_id"]}, {"title": 1})
        return TrackedDecision(
            outcome=outcome.value,
            outcome_name=OUTCOME_NAMES[outcome],
            reason=reason.value if reason else None,
            reason_name=REASON_NAMES[reason] if reason else None,
            explanation=decision["explanation"],
            project_title=project["title"] if project else None,
            released_at=decision["released_at"],
        )

    async def track(self, tracking_code: str) -> Tracked | None:
        """The suggestion with this code: from the store, or from this outbox while the store has not got it yet."""
        doc = await self.db.suggestions.find_one({"tracking_code": tracking_code})
        if doc is not None:
            openid_field = LOOKUP_FIELDS["wechat_openid"]
            personal = await self.db.personal_data.find_one({"_id": doc["_id"]}, {openid_field: 1}) or {}
            classified = doc["status"] != "received"
            return Tracked(
                suggestion_id=doc["_id"],
                tracking_code=tracking_code,
                status=doc["status"],
                category=(doc.get("classification") or {}).get("category") if classified else None,
                title=doc.get("title"),
                text=doc.get("text", ""),
                submitted_at=doc["submitted_at"],
                openid_hash=personal.get(openid_field),
                decision=await self._decision(doc),
            )
        event = await self.outbox.find_by_tracking_code(tracking_code)
        if event is None:
            return None
        return Tracked(
            suggestion_id=event.suggestion_id,
            tracking_code=tracking_code,
            status="received",
            category=None,
            title=event.body.title,
            text=event.body.text,
            submitted_at=event.body.submitted_at,
            openid_hash=self.vault.lookup("wechat_openid", openid) if (openid := event.personal.wechat_openid) else None,
        )

    def is_submitter(self, tracked: Tracked, openid: str) -> bool:
        """Whether the WeChat user with this openid sent the tracked suggestion (compared by look-up hash)."""
        return tracked.openid_hash is not None and hmac.compare_digest(
            tracked.openid_hash, self.vault.lookup("wechat_openid", openid)
        )


async def open_intake(stack: contextlib.AsyncExitStack, app: FastAPI, settings: IntakeSettings, name: str) -> IntakeRuntime:
    """Open the outbox and the database now, the broker in the background; submissions are accepted from the start.

    Sets ``app.state.connection`` (once connected) and ``app.state.mongo`` for the readiness probe.
    """
    vault = settings.vault
    outbox = Outbox(settings.outbox_path, vault)
    await outbox.open()
    stack.push_async_callback(outbox.close)
    mongo = open_database(stack, settings)
    publisher = Publisher(None, timeout=settings.publish_timeout_seconds)
    app.state.connection, app.state.mongo = None, mongo

    async def connected(connection: AbstractRobustConnection) -> None:
        await publisher.attach(connection)
        app.state.connection = connection

    await stack.enter_async_context(background(broker_when_possible(stack, settings, name, connected)))
    await stack.enter_async_context(background(outbox.run_drainer(publisher, settings.drain_interval_seconds)))
    await stack.enter_async_context(background(watch_outbox(outbox.pending, name, settings.drain_interval_seconds)))
    db = mongo[settings.mongo_database]
    # Erasure on request reaches this outbox too: the store's tombstones are polled and their rows scrubbed.
    await stack.enter_async_context(background(honour_erasures(db, outbox.scrub, settings.drain_interval_seconds * 5)))
    return IntakeRuntime(outbox, publisher, db, settings.secret_key.get_secret_value().encode(), vault)
