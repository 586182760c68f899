"""The broker topology, read from the RabbitMQ definitions file in deploy/ that compose also loads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection

EVENTS_EXCHANGE = "minsheng.events"
PARKING_EXCHANGE = "minsheng.parking"


def retry_queue(queue: str) -> str:
    """Name of the delay queue that feeds a consumer queue again after its TTL."""
    return f"{queue}.retry"


def parking_queue(queue: str) -> str:
    """Name of the queue where a consumer queue's failed messages wait for inspection and replay."""
    return f"{queue}.parking"


@dataclass(frozen=True)
class Topology:
    """Exchanges, queues and bindings; the vhost in the file is ignored so that any vhost can get the same set."""

    exchanges: tuple[dict[str, Any], ...]
    queues: tuple[dict[str, Any], ...]
    bindings: tuple[dict[str, Any], ...]

    @classmethod
    def load(cls, path: Path) -> Topology:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(tuple(data["exchanges"]), tuple(data["queues"]), tuple(data["bindings"]))

    def queue_names(self) -> list[str]:
        return [q["name"] for q in self.queues]

    def bindings_of(self, queue: str) -> list[str]:
        """Routing keys bound to a queue."""
        return [b["routing_key"] for b in self.bindings if b["destination"] == queue]

    async def declare(self, connection: AbstractConnection) -> None:
        """Declare everything, idempotently; a mismatch with what exists fails loudly."""
        async with connection.channel() as channel:
            for ex in self.exchanges:
                await channel.declare_exchange(
                    ex["name"],
                    type=aio_pika.ExchangeType(ex["type"]),
                    durable=ex["durable"],
                    auto_delete=ex["auto_delete"],
                    internal=ex["internal"],
                    arguments=ex["arguments"],
                )
            for q in self.queues:
                await channel.declare_queue(
                    q["name"], durable=q["durable"], auto_delete=q["auto_delete"], arguments=q["arguments"]
                )
            for b in self.bindings:
                queue = await channel.get_queue(b["destination"], ensure=False)
                await queue.bind(b["source"], routing_key=b["routing_key"], arguments=b["arguments"])
