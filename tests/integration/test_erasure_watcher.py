"""The erasure watcher on the real store: every tombstone reaches the holder's ``erase``, and one failing round
neither stops the watcher nor loses the tombstones it was handling."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from pymongo import AsyncMongoClient

from minsheng_core.erasures import honour_erasures, record_erasure
from tests.helpers import eventually

pytestmark = pytest.mark.integration


async def test_a_failed_erase_is_retried_and_the_watcher_goes_on(mongo_db):
    client: AsyncMongoClient = AsyncMongoClient(mongo_db[0])
    db = client[mongo_db[1]]
    calls: list[list[str]] = []

    async def erase(ids) -> int:
        calls.append(list(ids))
        if len(calls) == 1:
            raise RuntimeError("database table is locked")
        return len(calls[-1])

    await record_erasure(db, "s1", "admin")
    watcher = asyncio.create_task(honour_erasures(db, erase, interval=0.05))
    try:
        await eventually(lambda: len(calls) >= 2)
        assert calls[:2] == [["s1"], ["s1"]]  # the failed round's tombstone is handed over again
        await record_erasure(db, "s2", "admin")
        await eventually(lambda: any("s2" in c for c in calls))
        assert not watcher.done()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await client.close()
