"""The raw ceilings: what the broker, the store and a bare FastAPI endpoint do alone, with nothing of ours on top."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass

import aio_pika
import httpx
from pymongo import AsyncMongoClient

from bench.loadgen import Attack, attack, write_targets
from bench.stage import Stage

TEXT = "建议在双塔山镇中心小学门口增设红绿灯和减速带，孩子们上下学过马路太危险。" * 4
PAYLOAD = json.dumps({"text": TEXT}, ensure_ascii=False).encode()


@dataclass(frozen=True)
class Ceiling:
    name: str
    per_second: float
    note: str


async def broker(stage: Stage, messages: int = 20_000, window: int = 500) -> list[Ceiling]:
    """aio-pika alone: publish persistent messages with confirms to a quorum queue, then consume them with acks."""
    connection = await aio_pika.connect_robust(stage.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue("bench.ceiling", durable=True, arguments={"x-queue-type": "quorum"})
        started = time.perf_counter()
        for first in range(0, messages, window):  # a window of confirms in flight, as a pipelined publisher keeps
            batch = range(first, min(first + window, messages))
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(PAYLOAD, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue.name
                    )
                    for _ in batch
                )
            )
        publish_rate = messages / (time.perf_counter() - started)

        consumer_channel = await connection.channel()
        await consumer_channel.set_qos(prefetch_count=window)
        consumer_queue = await consumer_channel.get_queue(queue.name)
        done = asyncio.Event()
        seen = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            await message.ack()
            seen += 1
            if seen == messages:
                done.set()

        started = time.perf_counter()
        await consumer_queue.consume(on_message)
        await asyncio.wait_for(done.wait(), timeout=600)
        consume_rate = messages / (time.perf_counter() - started)
    return [
        Ceiling("RabbitMQ publish (confirms, quorum, persistent)", publish_rate, f"aio-pika, {window} confirms in flight"),
        Ceiling("RabbitMQ consume (acks, quorum)", consume_rate, f"aio-pika, prefetch {window}"),
    ]


async def store(stage: Stage, documents: int = 5_000, levels: tuple[int, ...] = (1, 4, 32)) -> Ceiling:
    """PyMongo alone: upserts by _id into the MongoDB-compatible store; the best of a few concurrency levels (SQLite
    under FerretDB has one writer: more in flight is not always faster)."""
    rates = {level: await _upserts(stage, documents, level) for level in levels}
    best = max(rates, key=rates.__getitem__)
    tried = ", ".join(f"{level} in flight: {rate:,.0f}/s" for level, rate in rates.items())
    return Ceiling("Store upsert by _id (FerretDB)", rates[best], f"PyMongo async, best of {tried}")


async def _upserts(stage: Stage, documents: int, concurrency: int) -> float:
    client: AsyncMongoClient = AsyncMongoClient(stage.mongo_url)
    try:
        collection = client[stage.database][f"ceiling_{concurrency}"]
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(documents):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                await collection.update_one(
                    {"_id": f"s{i}"}, {"$set": {"text": PAYLOAD.decode(), "n": i}, "$setOnInsert": {"created": i}}, upsert=True
                )

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return documents / (time.perf_counter() - started)
    finally:
        await client.close()


BARE_APP = """
from fastapi import FastAPI
from pydantic import BaseModel

class Body(BaseModel):
    text: str
    location: dict = {}

app = FastAPI()

@app.post("/api/v1/suggestions", status_code=202)
async def accept(body: Body) -> dict:
    return {"ok": True}
"""


def bare_endpoint(stage: Stage, texts: list[str], seconds: float = 10.0) -> tuple[Ceiling, Attack]:
    """A bare FastAPI endpoint that validates the same body, under the same load generator at full speed."""
    module = stage.directory / "bare_app.py"
    module.write_text(BARE_APP)
    port = 18099
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port), "--no-access-log", "--log-level", "warning"],
        cwd=stage.directory,
    )
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        targets = stage.directory / "bare.targets"
        write_targets(targets, f"http://127.0.0.1:{port}/api/v1/suggestions", 200_000, texts)
        result = attack(targets, rate=0, duration_s=seconds, max_workers=64)
    finally:
        process.terminate()
        process.wait(timeout=20)
    return Ceiling("Bare FastAPI endpoint (one uvicorn process)", result.throughput, "vegeta, 64 workers"), result
