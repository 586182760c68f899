"""Inspect and replay parked messages: `minsheng-parking list|replay QUEUE`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractConnection

from minsheng_core.bus import PARKED_FROM_HEADER, PARKED_REASON_HEADER, RETRIES_HEADER, ROUTING_KEY_HEADER, copy_message
from minsheng_core.topology import parking_queue

_DROPPED_ON_REPLAY = {
    PARKED_REASON_HEADER,
    PARKED_FROM_HEADER,
    RETRIES_HEADER,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-delivery-count",
}


@dataclass(frozen=True)
class Parked:
    message_id: str | None
    reason: str
    routing_key: str | None
    body_preview: str


def _reason(headers: dict) -> str:
    if PARKED_REASON_HEADER in headers:
        return str(headers[PARKED_REASON_HEADER])
    deaths = headers.get("x-death") or []
    return f"dead-lettered by the broker: {deaths[0].get('reason')}" if deaths else "unknown"


async def list_parked(connection: AbstractConnection, queue: str, limit: int = 100) -> list[Parked]:
    """Look at parked messages without removing them."""
    out = []
    async with connection.channel() as channel:
        parked = await channel.get_queue(parking_queue(queue), ensure=False)
        taken = []
        for _ in range(limit):
            message = await parked.get(fail=False)
            if message is None:
                break
            taken.append(message)
            headers = dict(message.headers or {})
            out.append(
                Parked(
                    message.message_id,
                    _reason(headers),
                    headers.get(ROUTING_KEY_HEADER),
                    message.body[:200].decode("utf-8", "replace"),
                )
            )
        for message in taken:
            await message.nack(requeue=True)
    return out


async def replay(connection: AbstractConnection, queue: str, limit: int | None = None) -> int:
    """Move parked messages back to their consumer queue (after a fix); returns how many moved."""
    moved = 0
    async with connection.channel(publisher_confirms=True, on_return_raises=True) as channel:
        parked = await channel.get_queue(parking_queue(queue), ensure=False)
        while limit is None or moved < limit:
            message = await parked.get(fail=False)
            if message is None:
                break
            headers = {k: v for k, v in (message.headers or {}).items() if k not in _DROPPED_ON_REPLAY}
            await channel.default_exchange.publish(copy_message(message, headers), routing_key=queue, mandatory=True)
            await message.ack()
            moved += 1
    return moved


async def _run(args: argparse.Namespace) -> int:
    connection = await aio_pika.connect(args.amqp_url)
    try:
        if args.command == "list":
            for item in await list_parked(connection, args.queue, args.limit):
                print(json.dumps(item.__dict__, ensure_ascii=False))
        else:
            print(f"replayed {await replay(connection, args.queue, args.limit)} message(s) to {args.queue}")
    finally:
        await connection.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minsheng-parking", description=__doc__)
    parser.add_argument("command", choices=["list", "replay"])
    parser.add_argument("queue", help="consumer queue, e.g. minsheng.store")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--amqp-url", default=os.environ.get("MINSHENG_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    args = parser.parse_args(argv)
    if args.command == "list" and args.limit is None:
        args.limit = 100
    try:
        return asyncio.run(_run(args))
    except Exception as exc:
        print(f"minsheng-parking: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
