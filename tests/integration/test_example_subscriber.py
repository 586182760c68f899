"""examples/subscriber.py, run against the real broker: it binds its own queue, receives, acknowledges, dedupes."""

from __future__ import annotations

import asyncio
import importlib.util
from datetime import UTC, datetime

import httpx
import pytest

from minsheng_core.bus import Publisher, connect
from minsheng_core.events import (
    Channel,
    Classification,
    PersonalData,
    SuggestionClassified,
    SuggestionContent,
    SuggestionReceived,
)
from minsheng_core.paths import REPO_ROOT
from minsheng_core.settings import DEFAULT_TOPOLOGY_FILE
from minsheng_core.topology import Topology
from tests.conftest import MANAGEMENT_URL, RABBIT_PASSWORD, RABBIT_USER

pytestmark = pytest.mark.integration


def example():
    spec = importlib.util.spec_from_file_location("example_subscriber", REPO_ROOT / "examples" / "subscriber.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def received(n: int, channel: Channel = Channel.WEB) -> SuggestionReceived:
    now = datetime.now(UTC)
    return SuggestionReceived(
        suggestion_id=f"s-{n}",
        body=SuggestionContent(
            channel=channel, channel_ref=f"r{n}", campaign="2020", text="村里的路灯坏了", tracking_code="ABCDE", submitted_at=now
        ),
        personal=PersonalData(name="王大山"),
    )


async def test_the_example_subscriber_receives_acks_and_dedupes(amqp_url):
    module = example()
    connection = await connect(amqp_url, "test")
    try:
        await Topology.load(DEFAULT_TOPOLOGY_FILE).declare(connection)
        publisher = Publisher(connection)
        await publisher.start()
        ready, lines = asyncio.Event(), []
        keys = ["suggestion.received.web", "suggestion.classified.*"]
        task = asyncio.create_task(module.run(amqp_url, "downstream.example-test", keys, count=3, out=lines.append, ready=ready))
        await asyncio.wait_for(ready.wait(), timeout=30)
        first, wechat, third = received(1), received(2, Channel.WECHAT), received(3)
        classified = SuggestionClassified(
            suggestion_id="s-1",
            body=Classification(
                category="road_traffic", confidence=0.9, needs_review=False, model_version="m", classified_at=datetime.now(UTC)
            ),
        )
        for event in (first, first, wechat, third, classified):  # `first` twice: a redelivery; wechat is not bound
            await publisher.publish(event)
        handled = await asyncio.wait_for(task, timeout=30)
        assert [e["event_id"] for e in handled] == [str(first.event_id), str(third.event_id), str(classified.event_id)]
        assert len(lines) == 3 and str(classified.event_id) in lines[2] and "suggestion.classified.road_traffic" in lines[2]
        assert not any("王大山" in line or "路灯" in line for line in lines)  # ids only, never text or contact data
        # Everything was acknowledged: the subscriber's durable queue is empty, and it still exists for the next run.
        channel = await connection.channel()
        queue = await channel.declare_queue("downstream.example-test", passive=True)
        assert queue.declaration_result.message_count == 0
        vhost = amqp_url.rsplit("/", 1)[1]
        async with httpx.AsyncClient(base_url=MANAGEMENT_URL, auth=(RABBIT_USER, RABBIT_PASSWORD)) as api:
            described = (await api.get(f"/api/queues/{vhost}/downstream.example-test")).json()
        assert described["durable"] is True and described["arguments"]["x-queue-type"] == "quorum"
    finally:
        await connection.close()
