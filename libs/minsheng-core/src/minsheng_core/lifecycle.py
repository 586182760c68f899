"""What every service opens in its lifespan, closed in reverse order however the lifespan ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aio_pika.abc import AbstractRobustConnection
from pymongo import AsyncMongoClient

from minsheng_core.bus import connect
from minsheng_core.mongo import mongo_client
from minsheng_core.settings import ServiceSettings
from minsheng_core.topology import Topology


async def open_infrastructure(
    stack: contextlib.AsyncExitStack, settings: ServiceSettings, name: str
) -> tuple[AsyncMongoClient, AbstractRobustConnection]:
    """The database client and the broker connection (with the topology declared), closed with the stack."""
    mongo = mongo_client(settings.mongo_url.get_secret_value())
    stack.push_async_callback(mongo.close)
    connection = await connect(settings.amqp_url.get_secret_value(), name)
    stack.push_async_callback(connection.close)
    await Topology.load(settings.topology_file).declare(connection)
    return mongo, connection


@contextlib.asynccontextmanager
async def background(work: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    """Run a never-ending task (outbox drainer, model watcher) while the context is open; cancel it on exit."""
    task = asyncio.create_task(work)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
