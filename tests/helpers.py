"""Small helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import quote

import aio_pika
import httpx
from pymongo import monitoring

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None] | T | None], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll until the probe (a coroutine function, or a plain one such as a lambda over local state) returns something
    truthy; fail with the last value after the timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    value = None
    while asyncio.get_running_loop().time() < deadline:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
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


class AbsentBroker:
    """A vhost that does not exist yet, so the broker refuses connections to it, until ``arrive()``: a broker that is
    away when a service starts and comes back later. Deleted on exit."""

    def __init__(self) -> None:
        from tests.conftest import AMQP_HOST, MANAGEMENT_URL, RABBIT_PASSWORD, RABBIT_USER, unique

        self.vhost = quote(unique("later"), safe="")
        self.url = f"amqp://{RABBIT_USER}:{RABBIT_PASSWORD}@{AMQP_HOST}/{self.vhost}"
        self._user = RABBIT_USER
        self._management = httpx.AsyncClient(base_url=MANAGEMENT_URL, auth=(RABBIT_USER, RABBIT_PASSWORD))

    async def __aenter__(self) -> AbsentBroker:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._management.delete(f"/api/vhosts/{self.vhost}")
        await self._management.aclose()

    async def arrive(self) -> None:
        (await self._management.put(f"/api/vhosts/{self.vhost}")).raise_for_status()
        permissions = {"configure": ".*", "write": ".*", "read": ".*"}
        (await self._management.put(f"/api/permissions/{self.vhost}/{self._user}", json=permissions)).raise_for_status()

    async def first_message(self, queue_name: str) -> bytes:
        """The body of the first message that reaches the queue (acknowledged)."""
        connection = await aio_pika.connect(self.url)
        try:
            queue = await (await connection.channel()).get_queue(queue_name)

            async def published():
                return await queue.get(fail=False)

            message = await eventually(published, timeout=30)
            await message.ack()
            return message.body
        finally:
            await connection.close()


async def ready(client: httpx.AsyncClient) -> None:
    """Wait until a service's readiness probe says it is connected."""

    async def probe():
        return (await client.get("/readyz")).status_code == 200

    await eventually(probe, timeout=30)


class CommandLog(monitoring.CommandListener):
    """The commands a PyMongo client starts (pass it in ``event_listeners``): name, collection, statements carried."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str, int]] = []
        self.on_start: Callable[[str, str], None] | None = None  # (name, collection), called before it is sent

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        collection = command.get(event.command_name)
        statements = len(command.get("documents", ())) + len(command.get("updates", ())) + len(command.get("deletes", ()))
        self.commands.append((event.command_name, collection, statements))
        if self.on_start is not None:
            self.on_start(event.command_name, collection)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def count(self, name: str, collection: str | None = None) -> int:
        return len(self.sizes(name, collection))

    def sizes(self, name: str, collection: str | None = None) -> list[int]:
        """Statements carried by each command of that name (on that collection)."""
        return [n for command, coll, n in self.commands if command == name and collection in (None, coll)]
