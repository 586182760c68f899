"""Fault injection on the whole system as real processes: submissions stream through every channel while the broker
stops, the store is killed, the database stops, or poison messages arrive; afterwards every accepted submission is
stored exactly once and nothing is lost. Each test runs on its own vhost and database of the suite's private servers."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import pytest

from minsheng_core.bus import PARKED_FROM_HEADER, PARKED_REASON_HEADER
from minsheng_core.events import Channel, SuggestionContent, SuggestionReceived
from minsheng_core.parking import list_parked
from minsheng_core.topology import EVENTS_EXCHANGE, parking_queue
from minsheng_store import locks
from tests.fault.pipeline import CONSUMER_QUEUES, Count, FaultSystem, Stream, all_classified, count
from tests.helpers import eventually

pytestmark = [pytest.mark.fault, pytest.mark.integration, pytest.mark.timeout(300)]

CYCLES = 10  # about 110 submissions per scenario: web, WeChat, hotline calls, transcript batches, symposiums
OUTAGE = 4.0  # seconds a server stays down while submissions keep coming
LEASE_SECONDS = getattr(locks, "LEASE_SECONDS", 0.0)  # how long a killed store's write leases block its successor


async def stream_for(system: FaultSystem) -> Stream:
    stream = Stream(system)
    await stream.sign_in()
    return stream


async def stream_through(
    stream: Stream, down: Callable[[], Awaitable[None]], up: Callable[[], Awaitable[None]]
) -> tuple[float, float, float, float]:
    """Some of the stream before the fault, a steady trickle while it lasts (going down, down, coming back), the rest
    after. Returns when the fault began, when the server was down, when it was being brought back, and when it was back."""
    tasks = stream.plan(CYCLES)
    before, during, after = tasks[:20], tasks[20:-12], tasks[-12:]
    await stream.run(before)
    times = {"began": time.monotonic()}
    recovered = asyncio.Event()

    async def outage() -> None:
        try:
            await down()
            times["down"] = time.monotonic()
            await asyncio.sleep(OUTAGE)
            times["up"] = time.monotonic()
            await up()
        finally:
            recovered.set()

    fault = asyncio.create_task(outage())
    left = await stream.run(during, concurrency=2, pace=0.5, until=recovered)
    await fault
    times["back"] = time.monotonic()
    await stream.run(left + after)
    return times["began"], times["down"], times["up"], times["back"]


async def finish(
    system: FaultSystem,
    stream: Stream,
    scenario: str,
    window: tuple[float, float],
    notes: str,
    report: Callable[[Count], None],
    parked: int = 0,
    wait: float = 0.0,
) -> Count:
    """Wait until everything accepted is stored and classified and the queues are empty, count, report, check."""
    await all_classified(system, stream, timeout=120 + wait)

    async def queues_settled():
        depths = await system.queue_depths()
        busy = any(n for name, n in depths.items() if not name.endswith(".parking"))
        in_parking = sum(n for name, n in depths.items() if name.endswith(".parking"))
        return depths if not busy and in_parking >= parked else None

    depths = await eventually(queues_settled, timeout=60, interval=1.0)
    result = await count(system, stream, scenario, sum(n for q, n in depths.items() if q.endswith(".parking")), window)
    done = f"all stored and classified {time.monotonic() - window[1]:.0f} s after the fault ended"
    slowest = f"slowest WeChat reply {stream.wechat_slowest:.1f} s"
    result.notes = "; ".join(part for part in (notes, done, slowest) if part)
    report(result)

    assert result.unanswered == 0, f"submissions without an answer: {dict(stream.unanswered)}"
    assert result.accepted == result.sent
    assert (result.stored, result.lost, result.duplicates) == (result.accepted, 0, 0), result
    assert result.tallies_by_channel == result.by_channel  # the counts staff see: each suggestion counted once
    assert set(result.by_channel) == {"web", "wechat", "hotline", "hotline_transcript", "symposium"}
    assert system.leaked_personal_data(stream.openids) == []
    return result


async def test_broker_stopped_and_restarted_mid_stream(fault_system: FaultSystem, fault_report):
    """RabbitMQ goes away: every channel still answers "received" from its outbox, and it all arrives afterwards."""
    system, stream = fault_system, await stream_for(fault_system)
    began, down, up, back = await stream_through(
        stream, lambda: asyncio.to_thread(system.rabbit.stop), lambda: asyncio.to_thread(system.rabbit.start)
    )
    while_down = [r for r in stream.receipts if down <= r.at <= up]
    notes = f"{len(while_down)} answered while the broker was down"
    result = await finish(system, stream, "(a) RabbitMQ stopped and restarted", (began, back), notes, fault_report)
    assert {r.channel for r in while_down} >= {"web", "wechat", "hotline"}
    assert result.parked == 0
    assert system.logged("store", "lease_expired") == 0  # no handler was cut short holding a write lease


@pytest.mark.timeout(300 + LEASE_SECONDS)
async def test_store_killed_mid_batch_and_restarted(fault_system: FaultSystem, fault_report):
    """The store dies with deliveries in hand (SIGKILL): the broker gives them to the restarted store, once in effect."""
    system, stream = fault_system, await stream_for(fault_system)
    store = system.services["store"]
    in_hand: dict[str, int] = {}

    async def kill_mid_batch() -> None:
        async def busy():
            queue = await asyncio.to_thread(system.rabbit.queue, system.vhost, "minsheng.store")
            return queue.get("messages_unacknowledged", 0)

        # The store takes a delivery in a few milliseconds: the database is frozen for a moment so that the kill
        # lands with deliveries in hand and writes cut in the middle (some done, some sent, some not yet).
        system.ferret.pause()
        try:
            in_hand["unacked"] = await eventually(busy, timeout=60, interval=0.1)
            store.kill()
        finally:
            system.ferret.resume()

    began, _, _, back = await stream_through(stream, kill_mid_batch, lambda: system.restart("store"))
    # The killed process cannot release its write leases: its successor waits until they expire.
    result = await finish(system, stream, "(b) store SIGKILLed mid-batch", (began, back), "", fault_report, wait=LEASE_SECONDS)
    expired = system.logged("store", "lease_expired")
    result.notes = (
        f"killed holding {in_hand['unacked']} unacknowledged deliveries; the restarted store first waited out"
        f" {expired} write leases of the killed one ({LEASE_SECONDS:.0f} s); {result.notes}"
    )
    assert in_hand["unacked"] > 0 and result.parked == 0


async def test_database_stopped_and_restarted_mid_stream(fault_system: FaultSystem, fault_report):
    """FerretDB goes away: intakes keep answering, store and classifier retry through their .retry queues."""
    system, stream = fault_system, await stream_for(fault_system)
    began, down, up, back = await stream_through(
        stream, lambda: asyncio.to_thread(system.ferret.stop), lambda: asyncio.to_thread(system.ferret.start)
    )
    while_down = [r for r in stream.receipts if down <= r.at <= up]
    notes = f"{len(while_down)} answered while the database was down"
    result = await finish(system, stream, "(c) FerretDB stopped and restarted", (began, back), notes, fault_report)
    assert {r.channel for r in while_down} >= {"web", "wechat", "hotline"}
    assert result.parked == 0
    assert system.logged("store", "lease_expired") == 0  # leases whose release failed were released once it was back


# A partner system's empty date: .NET's DateTime.MinValue written with the local offset. It parses (the contract asks
# only for an offset) but lies before year 1 in UTC, so neither BSON nor Python's datetime can hold it as an instant.
MIN_VALUE = "0001-01-01T00:00:00+08:00"


def poison_bodies() -> dict[str, bytes]:
    """Two suggestion.received bodies: MinValue as the submission time (classifying and storing it raise), and as
    the event time (a validator of the contract raises, not with a ValidationError)."""
    event = SuggestionReceived(
        suggestion_id=f"poison-{uuid.uuid4().hex[:8]}",
        body=SuggestionContent(
            channel=Channel.WEB,
            channel_ref=f"partner-{uuid.uuid4().hex[:8]}",
            campaign="2020",
            text="希望修一修幸福路",
            tracking_code="P0SN0-00001",
            submitted_at=datetime.now(UTC),
        ),
    )
    submitted, occurred = json.loads(event.model_dump_json()), json.loads(event.model_dump_json())
    submitted["body"]["submitted_at"] = MIN_VALUE
    occurred["suggestion_id"] += "b"
    occurred["occurred_at"] = MIN_VALUE
    return {"submitted_at": json.dumps(submitted).encode(), "occurred_at": json.dumps(occurred).encode()}


async def publish_raw(amqp_url: str, bodies: list[bytes]) -> None:
    """Publish bodies as another publisher would, straight to the events exchange (confirmed, persistent)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        async with connection.channel(publisher_confirms=True, on_return_raises=True) as channel:
            exchange = await channel.get_exchange(EVENTS_EXCHANGE)
            for body in bodies:
                message = aio_pika.Message(body, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                await exchange.publish(message, routing_key="suggestion.received.web", mandatory=True)
    finally:
        await connection.close()


async def replay_command(queue: str, amqp_url: str) -> str:
    """`minsheng-parking replay QUEUE`, the operator's command, as a process; its output."""
    cli = Path(sys.executable).with_name("minsheng-parking")
    process = await asyncio.create_subprocess_exec(
        str(cli), "replay", queue, "--amqp-url", amqp_url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, output
    return output.decode()


async def test_poison_messages_are_parked_with_their_reasons_and_replayed(fault_system: FaultSystem, fault_report):
    """Two poison messages mid-stream: one makes classifying (and storing) raise, one breaks a validator. Each is
    parked with its reason by classifier and store while everything else flows; `minsheng-parking replay` moves them
    back to their consumer's queue, cleaned of the parking headers."""
    system, stream = fault_system, await stream_for(fault_system)
    tasks = stream.plan(CYCLES)
    await stream.run(tasks[:20])
    began = time.monotonic()
    poison = poison_bodies()
    await publish_raw(system.amqp_url, list(poison.values()))
    await stream.run(tasks[20:])
    result = await finish(system, stream, "(d) poison messages", (began, time.monotonic()), "", fault_report, parked=4)

    connection = await aio_pika.connect(system.amqp_url)
    try:
        for queue in CONSUMER_QUEUES:
            parked = sorted(await list_parked(connection, queue), key=lambda p: p.reason)
            reasons = [p.reason for p in parked]
            assert reasons[0] == "gave up after 3 retries: OverflowError", reasons  # the handler raised: a few retries
            assert reasons[1] == "invalid event: OverflowError", reasons  # parsing raised: parked at once
            assert [p.routing_key for p in parked] == ["suggestion.received.web"] * 2  # as first published
        result.notes = f"parked by classifier and store: {'; '.join(reasons)}; {result.notes}"
        assert result.parked == 4
        assert await system.db.suggestions.count_documents({"_id": {"$regex": "^poison-"}}) == 0

        # The replay, as an operator runs it once a fix is out; here into a stopped classifier, to see the messages
        # land back on its queue as they were first published.
        await asyncio.to_thread(system.services["classifier"].stop)
        assert "replayed 2 message(s)" in await replay_command("minsheng.classifier", system.amqp_url)
        depths = await system.queue_depths()
        assert (depths["minsheng.classifier"], depths[parking_queue("minsheng.classifier")]) == (2, 0)
        async with connection.channel() as channel:
            queue = await channel.get_queue("minsheng.classifier")
            back = [await queue.get(fail=False) for _ in range(2)]
            assert sorted(m.body for m in back) == sorted(poison.values())
            for message in back:
                assert not {PARKED_REASON_HEADER, PARKED_FROM_HEADER} & set(message.headers or {})
                await message.nack(requeue=True)

        # Without a fix for them, the classifier handles them again and parks them again: nothing lost, no loop.
        await system.restart("classifier")

        async def parked_again():
            depths = await system.queue_depths()
            return depths[parking_queue("minsheng.classifier")] == 2 and depths["minsheng.classifier"] == 0

        await eventually(parked_again, timeout=60, interval=1.0)
    finally:
        await connection.close()
