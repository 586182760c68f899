"""What every service opens in its lifespan, closed in reverse order however the lifespan ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import structlog
from aio_pika.abc import AbstractRobustConnection
from pymongo import AsyncMongoClient

from minsheng_core.bus import connect
from minsheng_core.mongo import mongo_client
from minsheng_core.settings import ServiceSettings
from minsheng_core.topology import Topology

log = structlog.get_logger(__name__)


def open_database(stack: contextlib.AsyncExitStack, settings: ServiceSettings) -> AsyncMongoClient:
    """The database client, closed with the stack (it connects lazily)."""
    mongo = mongo_client(settings.mongo_url.get_secret_value())
    stack.push_async_callback(mongo.close)
    return mongo


async def open_broker(stack: contextlib.AsyncExitStack, settings: ServiceSettings, name: str) -> AbstractRobustConnection:
    """The broker connection with the topology declared, closed with the stack; fails if the broker is away."""
    connection = await connect(settings.amqp_url.get_secret_value(), name)
    stack.push_async_callback(connection.close)
    await Topology.load(settings.topology_file).declare(connection)
    return connection


async def open_infrastructure(
    stack: contextlib.AsyncExitStack, settings: ServiceSettings, name: str
) -> tuple[AsyncMongoClient, AbstractRobustConnection]:
    """The database client and the broker connection (with the topology declared), closed with the stack."""
    return open_database(stack, settings), await open_broker(stack, settings, name)


async def broker_when_possible(
    stack: contextlib.AsyncExitStack,
    settings: ServiceSettings,
    name: str,
    on_connected: Callable[[AbstractRobustConnection], Awaitable[None]],
    max_delay: float = 10.0,
) -> None:
    """Keep trying to open the broker, with backoff, then hand the connection over. For an intake service that
    must take submissions into its outbox even when it starts while the broker is away."""
    delay = 0.5
    while True:
        try:
            connection = await open_broker(stack, settings, name)
            await on_connected(connection)
            log.info("broker_connected")
            return
        except Exception as exc:  # refused, unknown vhost, declare failed: all mean "not yet"
            log.warning("broker_unavailable", retry_in_s=delay, error=type(exc).__name__)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)


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
