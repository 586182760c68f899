"""What every intake service runs: a durable outbox, a publisher that attaches once the broker is there, a drainer."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from aio_pika.abc import AbstractRobustConnection
from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from minsheng_core.bus import Publisher
from minsheng_core.lifecycle import background, broker_when_possible, open_database
from minsheng_core.outbox import Accepted, Outbox
from minsheng_core.settings import IntakeSettings


@dataclass(frozen=True)
class IntakeRuntime:
    outbox: Outbox
    publisher: Publisher
    db: AsyncDatabase

    async def publish_now(self, accepted: Accepted) -> bool:
        """Publish an accepted submission if it is not out yet; False leaves it to the drainer."""
        return accepted.published or await self.outbox.publish(self.publisher, accepted.submission_key)


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
