"""Small helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aio_pika

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll until the probe returns something truthy; fail with the last value after the timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    value = None
    while asyncio.get_running_loop().time() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value: {value!r})")


class Spy:
    """A queue of the test's own, bound to the events exchange, to count what was published."""

    def __init__(self, connection: aio_pika.abc.AbstractConnection, queue: aio_pika.abc.AbstractQueue) -> None:
        self.connection = connection
        self.queue = queue

    @classmethod
    async def bind(cls, amqp_url: str, pattern: str = "#", exchange: str = "minsheng.events") -> Spy:
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key=pattern)
        return cls(connection, queue)

    async def drain(self, settle: float = 0.5) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """All messages that arrive until the queue stays empty for `settle` seconds."""
        messages = []
        while True:
            message = await self.queue.get(fail=False, no_ack=True)
            if message is None:
                await asyncio.sleep(settle)
                message = await self.queue.get(fail=False, no_ack=True)
                if message is None:
                    return messages
            messages.append(message)

    async def close(self) -> None:
        await self.connection.close()
