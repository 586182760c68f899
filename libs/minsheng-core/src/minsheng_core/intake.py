"""What every intake service runs: a durable outbox, a publisher that attaches once the broker is there, a drainer."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from aio_pika.abc import AbstractRobustConnection
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from minsheng_core.bus import Publisher
from minsheng_core.lifecycle import background, broker_when_possible, open_database
from minsheng_core.outbox import Accepted, Outbox
from minsheng_core.settings import IntakeSettings

STATUS_TEXT = {
    "received": "已收到，正在分类",
    "pending": "已收到，正在处理",
    "classified": "已分类，等待责任单位梳理",
}


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
    wechat_openid: str | None

    @property
    def status_text(self) -> str:
        return STATUS_TEXT.get(self.status, self.status)


@dataclass(frozen=True)
class IntakeRuntime:
    outbox: Outbox
    publisher: Publisher
    db: AsyncDatabase

    async def publish_now(self, accepted: Accepted) -> bool:
        """Publish an accepted submission if it is not out yet; False leaves it to the drainer."""
        return accepted.published or await self.outbox.publish(self.publisher, accepted.submission_key)

    async def track(self, tracking_code: str) -> Tracked | None:
        """The suggestion with this code: from the store, or from this outbox while the store has not got it yet."""
        doc = await self.db.suggestions.find_one({"tracking_code": tracking_code})
        if doc is not None:
            personal = await self.db.personal_data.find_one({"_id": doc["_id"]}, {"wechat_openid": 1}) or {}
            classified = doc["status"] != "received"
            return Tracked(
                suggestion_id=doc["_id"],
                tracking_code=tracking_code,
                status=doc["status"],
                category=(doc.get("classification") or {}).get("category") if classified else None,
                title=doc.get("title"),
                text=doc.get("text", ""),
                submitted_at=doc["submitted_at"],
                wechat_openid=personal.get("wechat_openid"),
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
            wechat_openid=event.personal.wechat_openid,
        )


async def open_intake(stack: contextlib.AsyncExitStack, app: FastAPI, settings: IntakeSettings, name: str) -> IntakeRuntime:
    """Open the outbox and the database now, the broker in the background; submissions are accepted from the start.

    Sets ``app.state.connection`` (once connected) and ``app.state.mongo`` for the readiness probe.
    """
    outbox = Outbox(settings.outbox_path)
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
    return IntakeRuntime(outbox, publisher, mongo[settings.mongo_database])
