"""Bus and outbox metrics on the real broker: what was published, how each delivery ended, queue and outbox depth."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta

import aio_pika
import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from minsheng_core.bus import Consumer, InvalidMessage, Publisher, connect, identity_of
from minsheng_core.events import Channel, SuggestionContent, SuggestionReceived
from minsheng_core.settings import DEFAULT_TOPOLOGY_FILE
from minsheng_core.topology import EVENTS_EXCHANGE, Topology
from tests.helpers import AbsentBroker, eventually, ready

pytestmark = pytest.mark.integration
QUEUE = "minsheng.store"


def received(text: str = "修路") -> SuggestionReceived:
    ref = uuid.uuid4().hex
    body = SuggestionContent(
        channel=Channel.WEB,
        channel_ref=ref,
        campaign="2020",
        text=text,
        tracking_code="ABCDE-FGHJK",
        submitted_at=datetime.now(UTC),
    )
    return SuggestionReceived(suggestion_id=f"s-{ref}", body=body)


@pytest.fixture
async def broker(amqp_url):
    """A connection of a service with a name of its own, so that its metrics are the test's alone."""
    connection = await connect(amqp_url, f"svc-{uuid.uuid4().hex[:8]}")
    await Topology.load(DEFAULT_TOPOLOGY_FILE).declare(connection)
    yield connection
    await connection.close()


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def consumed(connection, event_type: str, outcome: str) -> float:
    who = identity_of(connection)
    return value(
        "minsheng_events_consumed_total",
        service=who.service,
        replica=who.replica,
        queue=QUEUE,
        event_type=event_type,
        outcome=outcome,
    )


async def test_every_delivery_is_counted_by_how_it_ended(broker):
    attempts: dict[str, int] = {}

    async def handler(event):
        attempts[event.body.text] = attempts.get(event.body.text, 0) + 1
        if event.body.text == "无效":
            raise InvalidMessage("refused")
        if event.body.text == "稍后" and attempts["稍后"] == 1:
            raise ConnectionError("database away")

    publisher = Publisher(broker)
    await publisher.start()
    consumer = Consumer(broker, QUEUE, handler)
    await consumer.start()
    try:
        for text in ("好", "好", "无效", "稍后"):
            await publisher.publish(received(text))
        async with broker.channel(publisher_confirms=True) as channel:
            exchange = await channel.get_exchange(EVENTS_EXCHANGE)
            await exchange.publish(aio_pika.Message(b"{}"), routing_key="suggestion.received.web")

        async def settled():
            return consumed(broker, "suggestion.received", "ok") == 3 and consumed(broker, "invalid", "parked") == 1

        await eventually(settled, timeout=30)  # the retried one comes back through the .retry queue after 5 s
        assert consumed(broker, "suggestion.received", "parked") == 1
        assert consumed(broker, "suggestion.received", "retry") == 1
        who = identity_of(broker)
        published = value(
            "minsheng_events_published_total", service=who.service, replica=who.replica, event_type="suggestion.received"
        )
        assert published == 4
        handled = value("minsheng_event_handling_seconds_count", service=who.service, queue=QUEUE)
        assert handled == 5  # four events, one of them twice; the unparsable body never reached the handler
        assert value("minsheng_event_lag_seconds_count", service=who.service, queue=QUEUE) == 3
    finally:
        await consumer.stop()


async def test_queue_depth_consumers_and_parked_messages_are_reported(broker):
    release = asyncio.Event()

    async def handler(event):
        if event.body.text == "无效":
            raise InvalidMessage("refused")
        await release.wait()

    publisher = Publisher(broker)
    await publisher.start()
    consumer = Consumer(broker, QUEUE, handler, prefetch=1, depth_interval=0.2)
    await consumer.start()
    service = identity_of(broker).service
    try:
        await publisher.publish(received("无效"))
        for _ in range(4):
            await publisher.publish(received())

        async def depth():
            ready_now = value("minsheng_queue_messages_ready", service=service, queue=QUEUE)
            parked = value("minsheng_queue_messages_parked", service=service, queue=QUEUE)
            return (ready_now, parked) == (3, 1)  # one in the handler (prefetch 1), three waiting, one parked

        await eventually(depth, timeout=30)
        assert value("minsheng_queue_consumers", service=service, queue=QUEUE) == 1
        release.set()

        async def drained():
            return value("minsheng_queue_messages_ready", service=service, queue=QUEUE) == 0

        await eventually(drained, timeout=30)
    finally:
        release.set()
        await consumer.stop()


async def test_the_outbox_gauge_counts_what_waits_for_the_broker(mongo_db, tmp_path):
    from minsheng_intake_web.app import create_app
    from minsheng_intake_web.settings import WebSettings

    def pending(text: str) -> float | None:
        samples = [
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "minsheng_outbox_pending" and s.labels == {"service": "intake-web"}
        ]
        return samples[0] if samples else None

    today = date.today()
    async with AbsentBroker() as broker:
        settings = WebSettings(
            environment="test",
            amqp_url=broker.url,
            mongo_url=mongo_db[0],
            mongo_database=mongo_db[1],
            campaign_opens_on=today - timedelta(days=1),
            campaign_closes_on=today + timedelta(days=1),
            outbox_path=tmp_path / "outbox.sqlite3",
            drain_interval_seconds=0.2,
        )
        async with LifespanManager(create_app(settings)) as manager:
            web = httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://web")
            for text in ("希望修一修幸福路", "希望修一修锦绣桥"):
                assert (await web.post("/api/v1/suggestions", json={"text": text})).status_code == 202

            async def waiting(expected: float):
                return pending((await web.get("/metrics")).text) == expected

            await eventually(lambda: waiting(2), timeout=30)
            await broker.arrive()
            await ready(web)
            await eventually(lambda: waiting(0), timeout=30)
            await web.aclose()
