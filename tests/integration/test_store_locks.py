"""Write leases on the real store: replicas serialise on a key, release leaves nothing behind, never frees another's."""

from __future__ import annotations

import asyncio
import time

import pytest
from pymongo import AsyncMongoClient

from minsheng_store import locks
from minsheng_store.locks import StripedLocks

pytestmark = pytest.mark.integration


@pytest.fixture
async def leases(mongo_db):
    client = AsyncMongoClient(mongo_db[0])
    yield client[mongo_db[1]].store_locks
    await client.close()


async def test_two_replicas_never_hold_one_key_together_and_leave_no_lease(leases):
    replicas = [StripedLocks(leases=leases, scope="s"), StripedLocks(leases=leases, scope="s")]
    inside: dict[str, int] = {}
    overlaps = 0

    async def write(replica: StripedLocks, key: str) -> None:
        nonlocal overlaps
        async with replica(key):
            inside[key] = inside.get(key, 0) + 1
            overlaps += inside[key] > 1
            await asyncio.sleep(0.005)
            inside[key] -= 1

    await asyncio.gather(*(write(replicas[i % 2], f"k{i % 5}") for i in range(60)))
    assert overlaps == 0
    assert await leases.count_documents({}) == 0


async def test_a_lease_lost_to_another_replica_is_not_renewed_nor_released_by_its_old_holder(leases, monkeypatch, log_events):
    monkeypatch.setattr(locks, "LEASE_SECONDS", 0.4)
    replica = StripedLocks(leases=leases, scope="s")
    async with replica("k"):
        # It expired unrenewed (the holder stalled) and another replica took it over.
        await leases.delete_one({"_id": "s:k"})
        await leases.insert_one({"_id": "s:k", "token": "another", "until": time.time() + 60})
        await asyncio.sleep(0.45)
    assert (await leases.find_one({"_id": "s:k"}))["token"] == "another"  # not freed by the late releaser
    assert [e["event"] for e in log_events() if e.get("event") == "lease_lost"] == ["lease_lost"]


async def test_an_expired_lease_of_a_dead_holder_is_taken_over(leases, monkeypatch):
    await leases.insert_one({"_id": "s:k", "token": "dead", "until": time.time() - 1})
    replica = StripedLocks(leases=leases, scope="s")
    async with asyncio.timeout(5):
        async with replica("k"):
            held = await leases.find_one({"_id": "s:k"})
            assert held["token"] != "dead"
    assert await leases.count_documents({}) == 0


async def test_a_hold_longer_than_the_lease_is_renewed_so_no_other_replica_takes_it_over(leases, monkeypatch, log_events):
    monkeypatch.setattr(locks, "LEASE_SECONDS", 0.6)
    first, second = StripedLocks(leases=leases, scope="s"), StripedLocks(leases=leases, scope="s")
    order: list[str] = []

    async def long_write() -> None:
        async with first("k"):
            order.append("first in")
            await asyncio.sleep(2.0)  # more than three lives of the lease
            order.append("first out")

    async def other_replica() -> None:
        await asyncio.sleep(0.3)
        async with second("k"):
            order.append("second in")

    await asyncio.gather(long_write(), other_replica())
    assert order == ["first in", "first out", "second in"]
    assert not [e for e in log_events() if e.get("event") in ("lease_expired", "lease_lost")]
    assert await leases.count_documents({}) == 0
