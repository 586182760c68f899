"""Publishing events with confirms and consuming them with explicit ack, retry and parking rules."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from aio_pika.exceptions import AMQPError
from pydantic import TypeAdapter, ValidationError
from pymongo.errors import PyMongoError

from minsheng_core import metrics
from minsheng_core.events import AnyEvent, Event
from minsheng_core.topology import EVENTS_EXCHANGE, PARKING_EXCHANGE, parking_queue, retry_queue

log = structlog.get_logger(__name__)

EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(Event)
RETRIES_HEADER = "x-minsheng-retries"
PARKED_REASON_HEADER = "x-minsheng-parked-reason"
PARKED_FROM_HEADER = "x-minsheng-parked-from"
ROUTING_KEY_HEADER = "x-minsheng-routing-key"


class InvalidMessage(Exception):
    """The message can never be processed as it is: park it at once."""


class PublishFailed(Exception):
    """The broker did not confirm a message (down, slow, or the message was unroutable)."""


# Errors that say a server (broker, database) is away or slow rather than that the message is bad: retried for long.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (PublishFailed, OSError, TimeoutError, PyMongoError, AMQPError)


# The service that opened each connection, and the replica id its publishers and consumers report metrics under.
_SERVICE_OF: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_IDENTITY_OF: weakref.WeakKeyDictionary[Any, metrics.Identity] = weakref.WeakKeyDictionary()


async def connect(url: str, name: str) -> AbstractRobustConnection:
    """Open a robust connection that reconnects by itself; publishes during an outage still fail."""
    connection = await aio_pika.connect_robust(url, client_properties={"connection_name": name})
    _SERVICE_OF[connection] = name
    return connection


def identity_of(connection: Any) -> metrics.Identity:
    """The service and replica whose publishers and consumers use this connection (minted on first use)."""
    if connection not in _IDENTITY_OF:
        _IDENTITY_OF[connection] = metrics.new_identity(_SERVICE_OF.get(connection, "unknown"))
    return _IDENTITY_OF[connection]


def _subject(event: AnyEvent) -> dict[str, str]:
    """What a consumer's log lines are about: the suggestion, or the visit."""
    return {"suggestion_id": event.suggestion_id} if hasattr(event, "suggestion_id") else {"subject_id": event.subject_id}


def parse_event(body: bytes) -> AnyEvent:
    """Validate a message body against the event contract."""
    return EVENT_ADAPTER.validate_json(body)


def event_message(event: AnyEvent) -> aio_pika.Message:
    """Build the persistent AMQP message for an event."""
    return aio_pika.Message(
        body=event.model_dump_json().encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(event.event_id),
        type=event.event_type,
        timestamp=event.occurred_at,
        headers={"schema_version": event.schema_version},
    )


def copy_message(message: AbstractIncomingMessage, headers: dict[str, Any]) -> aio_pika.Message:
    """A persistent copy of a delivered message with the given headers, for retry, parking and replay."""
    return aio_pika.Message(
        body=message.body,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        type=message.type,
        timestamp=message.timestamp,
        headers=headers,
    )


class Publisher:
    """Publishes events to the topic exchange; returns only once the broker has confirmed them."""

    def __init__(self, connection: AbstractRobustConnection | None, timeout: float = 5.0) -> None:
        self._connection = connection
        self._timeout = timeout
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def start(self) -> None:
        if self._connection is None:
            raise PublishFailed("no broker connection yet")
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=False)

    async def attach(self, connection: AbstractRobustConnection) -> None:
        """Start publishing on a connection that came up after the publisher was created."""
        self._connection = connection
        await self.start()

    async def publish(self, event: AnyEvent) -> None:
        """Publish mandatory and persistent; raise PublishFailed unless the broker confirmed it."""
        if self._exchange is None:
            raise PublishFailed("publisher not started")
        who = identity_of(self._connection)
        try:
            await asyncio.wait_for(
                self._exchange.publish(event_message(event), routing_key=event.routing_key(), mandatory=True),
                timeout=self._timeout,
            )
        except Exception as exc:  # every failure means "not confirmed"
            metrics.PUBLISH_FAILURES.labels(who.service, who.replica, event.event_type).inc()
            raise PublishFailed(f"{type(exc).__name__}: {exc}") from exc
        metrics.EVENTS_PUBLISHED.labels(who.service, who.replica, event.event_type).inc()


Handler = Callable[[AnyEvent], Awaitable[None]]


class Consumer:
    """Consumes one quorum queue: ack on success, park invalid messages, retry infrastructure errors later."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        queue: str,
        handler: Handler,
        *,
        prefetch: int = 32,
        max_retries: int = 60,
        max_error_retries: int = 3,
        depth_interval: float = 15.0,
    ) -> None:
        self._connection = connection
        self._queue_name = queue
        self._handler = handler
        self._prefetch = prefetch
        self._max_retries = max_retries
        self._max_error_retries = max_error_retries
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._tag: str | None = None
        self._depth_interval = depth_interval
        self._depth_channel: aio_pika.abc.AbstractChannel | None = None
        self._depth_task: asyncio.Task[None] | None = None
        self.identity = identity_of(connection)

    async def start(self) -> None:
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel.set_qos(prefetch_count=self._prefetch)
        self._default_exchange = channel.default_exchange
        self._parking_exchange = await channel.get_exchange(PARKING_EXCHANGE, ensure=False)
        # ensure=True declares it (passively) on the robust channel, which then restores the consumer after the broker
        # comes back; a queue object made without declaring is unknown to the channel and stops consuming for good.
        self._queue = await channel.get_queue(self._queue_name)
        self._tag = await self._queue.consume(self._on_message)
        self._depth_task = asyncio.create_task(
            metrics.watch_queue(
                self._depth, self.identity.service, self._queue_name, parking_queue(self._queue_name), self._depth_interval
            )
        )

    async def stop(self) -> None:
        if self._depth_task is not None:
            self._depth_task.cancel()
            await asyncio.gather(self._depth_task, return_exceptions=True)
        if self._depth_channel is not None and not self._depth_channel.is_closed:
            await _settle_quietly(self._depth_channel.close())
        if self._queue is not None and self._tag is not None:
            await self._queue.cancel(self._tag)

    async def _depth(self, queue: str) -> tuple[int, int]:
        """Messages ready and consumers of a queue, by passive declare on a channel of its own (a miss closes it)."""
        if self._depth_channel is None or self._depth_channel.is_closed:
            self._depth_channel = await self._connection.channel()
        declared = await (await self._depth_channel.get_underlay_channel()).queue_declare(queue, passive=True)
        return declared.message_count or 0, declared.consumer_count or 0

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            event = parse_event(message.body)
        except ValidationError as exc:
            self._count("invalid", await self._park(message, f"invalid event: {_summary(exc)}"))
            return
        except Exception as exc:  # a validator that raised something else (OverflowError…): not an event either
            self._count("invalid", await self._park(message, f"invalid event: {type(exc).__name__}"))
            return
        with structlog.contextvars.bound_contextvars(**_subject(event), event_id=str(event.event_id)):
            started = time.perf_counter()
            try:
                await _to_the_end(self._handler(event))
            except InvalidMessage as exc:
                outcome = await self._park(message, f"invalid: {exc}")
            except Exception as exc:
                outcome = await self._retry(message, exc)
            else:
                await message.ack()
                outcome = "ok"
                metrics.EVENT_LAG.labels(self.identity.service, self._queue_name).observe(
                    max(0.0, (datetime.now(UTC) - event.occurred_at).total_seconds())
                )
            metrics.EVENT_HANDLING.labels(self.identity.service, self._queue_name).observe(time.perf_counter() - started)
            self._count(event.event_type, outcome)

    def _count(self, event_type: str, outcome: str) -> None:
        who = self.identity
        metrics.EVENTS_CONSUMED.labels(who.service, who.replica, self._queue_name, event_type, outcome).inc()

    async def _retry(self, message: AbstractIncomingMessage, exc: Exception) -> str:
        retries = int((message.headers or {}).get(RETRIES_HEADER, 0)) + 1
        # A server away is waited for; any other error is a bug meeting this message, which waiting rarely cures.
        limit = self._max_retries if isinstance(exc, TRANSIENT_ERRORS) else min(self._max_retries, self._max_error_retries)
        if retries > limit:
            return await self._park(message, f"gave up after {limit} retries: {type(exc).__name__}")
        log.warning("message_retry_scheduled", queue=self._queue_name, retries=retries, error=type(exc).__name__)
        headers = message.headers or {}
        # The key it was first published with: from the second retry on it arrives with the queue's name as its key.
        original_key = headers.get(ROUTING_KEY_HEADER, message.routing_key)
        try:
            await self._default_exchange.publish(
                copy_message(message, {**headers, RETRIES_HEADER: retries, ROUTING_KEY_HEADER: original_key}),
                routing_key=retry_queue(self._queue_name),
                mandatory=True,
            )
            await message.ack()
        except Exception as publish_exc:
            # The broker counts this delivery; the queue's delivery limit bounds the loop.
            log.error("message_retry_failed", queue=self._queue_name, error=type(publish_exc).__name__)
            await _settle_quietly(message.nack(requeue=True))
            return "requeued"
        return "retry"

    async def _park(self, message: AbstractIncomingMessage, reason: str) -> str:
        log.error("message_parked", queue=self._queue_name, reason=reason)
        try:
            await self._parking_exchange.publish(
                copy_message(
                    message,
                    {
                        **(message.headers or {}),
                        PARKED_REASON_HEADER: reason[:500],
                        PARKED_FROM_HEADER: self._queue_name,
                        ROUTING_KEY_HEADER: (message.headers or {}).get(ROUTING_KEY_HEADER, message.routing_key),
                    },
                ),
                routing_key=self._queue_name,
                mandatory=True,
            )
            await message.ack()
        except Exception as publish_exc:
            # Rejecting without requeue lets the broker dead-letter it to the same parking queue.
            log.error("message_park_failed", queue=self._queue_name, error=type(publish_exc).__name__)
            await _settle_quietly(message.reject(requeue=False))
        return "parked"


_FINISHING: set[asyncio.Task[Any]] = set()


async def _to_the_end(work: Awaitable[None]) -> None:
    """Run a handler to its end even when its consumer task is cancelled: aiormq cancels them all when the channel
    closes (the broker going away), and a write sequence cut at any await leaves half-done work behind (a write
    lease never released, a tally moved halfway). Its delivery stays unacknowledged and comes back again."""
    task = asyncio.ensure_future(work)
    _FINISHING.add(task)
    task.add_done_callback(_finished)
    await asyncio.shield(task)


def _finished(task: asyncio.Task[Any]) -> None:
    _FINISHING.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved here too: when the consumer was cancelled, the redelivery deals with it


async def _settle_quietly(settle: Awaitable[None]) -> None:
    try:
        await settle
    except Exception as exc:  # the channel is gone; the broker redelivers the message
        log.warning("message_settle_failed", error=type(exc).__name__)


def _summary(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
