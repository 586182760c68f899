"""A downstream subscriber of the Minsheng events, on its own durable quorum queue.

    uv run python examples/subscriber.py --queue downstream.my-system 'suggestion.classified.*' 'suggestion.decided.#'

It declares its queue (durable, quorum, with the broker redelivering what it did not acknowledge), binds it to the
topic exchange ``minsheng.events`` with the routing keys given, prints one line per event and acknowledges it only
after that. Deliveries are at least once, so it skips an ``event_id`` it has already handled. A real subscriber keeps
the ids it handled (or upserts by ``suggestion_id``) in its own database; this one remembers them in memory.
It needs aio-pika only and does not import anything of the Minsheng project.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import aio_pika

EXCHANGE = "minsheng.events"
DEFAULT_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


class SeenEvents:
    """The last ``size`` event ids handled, to skip a redelivered event."""

    def __init__(self, size: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def add(self, event_id: str) -> bool:
        """Remember the id; False if it was there already."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


def describe(routing_key: str, event: dict[str, Any]) -> str:
    """One line about an event, with ids only: the text and the contact data are not printed."""
    subject = event.get("suggestion_id") or event.get("visit_id") or event.get("symposium_id") or "-"
    return f"{event.get('occurred_at')}  {routing_key:40}  {event.get('event_type')}  {subject}  {event.get('event_id')}"


async def run(
    url: str,
    queue_name: str,
    keys: Sequence[str],
    *,
    count: int | None = None,
    out: Callable[[str], None] = print,
    ready: asyncio.Event | None = None,
) -> list[dict[str, Any]]:
    """Consume until ``count`` new events were handled (forever without a count); return them."""
    handled: list[dict[str, Any]] = []
    seen = SeenEvents()
    done = asyncio.Event()
    connection = await aio_pika.connect_robust(url, client_properties={"connection_name": "example-subscriber"})
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=20)
        queue = await channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 10}
        )
        for key in keys:
            await queue.bind(EXCHANGE, routing_key=key)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            if done.is_set():  # prefetched after the last one wanted: back to the queue for the next run
                await message.nack(requeue=True)
                return
            try:
                event = json.loads(message.body)
                event_id = event["event_id"]
            except (ValueError, KeyError, TypeError):
                # Not an event at all: processing it again will not help.
                await message.reject(requeue=False)
                return
            if not seen.add(event_id):
                await message.ack()  # a redelivery of what was handled already
                return
            out(describe(message.routing_key or "", event))  # your processing goes here
            handled.append(event)
            await message.ack()  # only now: a crash before this line gets the message redelivered
            if count is not None and len(handled) >= count:
                done.set()

        tag = await queue.consume(on_message)
        if ready is not None:
            ready.set()
        await done.wait()
        await queue.cancel(tag)
    finally:
        await connection.close()
    return handled


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("keys", nargs="+", help="routing-key patterns, e.g. 'suggestion.classified.*' or 'suggestion.#'")
    parser.add_argument("--url", default=DEFAULT_URL, help="AMQP URL (default: $AMQP_URL or the local broker)")
    parser.add_argument("--queue", default="downstream.example", help="your own queue's name (it stays between runs)")
    parser.add_argument("--count", type=int, help="stop after this many events (default: run until interrupted)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(run(args.url, args.queue, args.keys, count=args.count))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
