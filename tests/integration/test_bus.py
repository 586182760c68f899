"""Bus rules on the real broker: confirms, mandatory routing, parking, retries, bounded redelivery, replay."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aio_pika
import pytest

from minsheng_core.bus import (
    Consumer,
    InvalidMessage,
    Publisher,
    PublishFailed,
    connect,
)
from minsheng_core.events import Channel, SuggestionContent, SuggestionReceived
from minsheng_core.parking import list_parked, replay
from minsheng_core.settings import DEFAULT_TOPOLOGY_FILE
from minsheng_core.topology import EVENTS_EXCHANGE, Topology
from tests.helpers import eventually

pytestmark = pytest.mark.integration
QUEUE = "minsheng.store"


def received(n: int = 1) -> SuggestionReceived:
    now = datetime.now(UTC)
    return SuggestionReceived(
        suggestion_id=f"s-{n}",
        body=SuggestionContent(
            channel=Channel.WEB,
            channel_ref=f"ref-{n}",
            campaign="2020",
            text="修路",
            tracking_code="ABCDE-FGHJK",
            submitted_at=now,
        ),
    )


@pytest.fixture
async def broker(amqp_url):
    connection = await connect(amqp_url, "test")
    await Topology.load(DEFAULT_TOPOLOGY_FILE).declare(connection)
    yield connection
    await connection.close()


async def publish(connection, event) -> None:
    publisher = Publisher(connection)
    await publisher.start()
    await publisher.publish(event)


async def publish_raw(connection, body: bytes, routing_key: str = "suggestion.received.web") -> None:
    async with connection.channel(publisher_confirms=True) as channel:
        exchange = await channel.get_exchange(EVENTS_EXCHANGE)
        await exchange.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=routing_key)


async def parked_messages(connection, queue: str = QUEUE, expected: int = 1):
    return await eventually(lambda: _parked_if(connection, queue, expected), timeout=30)


async def _parked_if(connection, queue, expected):
    items = await list_parked(connection, queue)
    return items if len(items) >= expected else None


async def test_unroutable_publish_fails_loudly(amqp_url):
    connection = await connect(amqp_url, "test")
    try:
        async with connection.channel() as channel:  # the exchange alone, no queue bound
            await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        publisher = Publisher(connection)
        await publisher.start()
        with pytest.raises(PublishFailed):
            await publisher.publish(received())
    finally:
        await connection.close()


async def test_publish_is_confirmed_persistent_and_routed(broker):
    await publish(broker, received())
    async with broker.channel() as channel:
        queue = await channel.get_queue(QUEUE)
        message = await queue.get()
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.routing_key == "suggestion.received.web"
        assert SuggestionReceived.model_validate_json(message.body).suggestion_id == "s-1"
        await message.ack()


async def test_invalid_message_is_parked_at_once_with_its_reason(broker):
    handled = []

    async def handler(event):
        handled.append(event)

    consumer = Consumer(broker, QUEUE, handler)
    await consumer.start()
    try:
        await publish_raw(broker, b'{"event_type": "suggestion.received", "unexpected": 1}')
        parked = await parked_messages(broker)
        assert parked[0].reason.startswith("invalid event:")
        assert handled == []
    finally:
        await consumer.stop()


async def test_handler_rejection_is_parked_and_replay_brings_it_back(broker):
    seen: list[str] = []
    fixed = asyncio.Event()

    async def handler(event):
        if not fixed.is_set():
            raise InvalidMessage("unknown campaign")
        seen.append(event.suggestion_id)

    consumer = Consumer(broker, QUEUE, handler)
    await consumer.start()
    try:
        await publish(broker, received(7))
        parked = await parked_messages(broker)
        assert parked[0].reason == "invalid: unknown campaign"
        assert parked[0].routing_key == "suggestion.received.web"
        fixed.set()
        assert await replay(broker, QUEUE) == 1
        await eventually(lambda: seen == ["s-7"])
        assert await list_parked(broker, QUEUE) == []
    finally:
        await consumer.stop()


async def test_infrastructure_error_is_retried_later_then_succeeds(broker):
    attempts: list[dict] = []

    async def handler(event):
        attempts.append(event.suggestion_id)
        if len(attempts) == 1:
            raise ConnectionError("store away")

    consumer = Consumer(broker, QUEUE, handler)
    await consumer.start()
    try:
        await publish(broker, received(3))
        await eventually(lambda: len(attempts) == 2, timeout=30)
        assert attempts == ["s-3", "s-3"]
        assert await list_parked(broker, QUEUE) == []
    finally:
        await consumer.stop()


async def test_retries_are_bounded(broker):
    async def handler(event):
        raise ConnectionError("still away")

    consumer = Consumer(broker, QUEUE, handler, max_retries=0)
    await consumer.start()
    try:
        await publish(broker, received(4))
        parked = await parked_messages(broker)
        assert parked[0].reason == "gave up after 0 retries: ConnectionError"
    finally:
        await consumer.stop()


async def test_crash_loop_is_dead_lettered_by_the_broker_after_the_delivery_limit(broker):
    """A consumer that dies before settling (a poison message that crashes it) cannot loop forever."""
    await publish(broker, received(5))
    deliveries = 0
    async with broker.channel() as channel:
        queue = await channel.get_queue(QUEUE)
        while (message := await queue.get(fail=False)) is not None:
            deliveries += 1
            await message.nack(requeue=True)  # what a crash amounts to
            assert deliveries < 20
    parked = await parked_messages(broker)
    assert "delivery_limit" in parked[0].reason
    assert deliveries == 6  # first delivery plus x-delivery-limit redeliveries
