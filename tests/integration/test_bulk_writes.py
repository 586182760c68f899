"""Grouped writes on the real store: concurrent handlers share commands, each learns the fate of its own write."""

from __future__ import annotations

import asyncio

import pytest
from pymongo import AsyncMongoClient, InsertOne, UpdateOne
from pymongo.errors import DuplicateKeyError

from minsheng_core.batching import MAX_BULK, BulkWrites
from tests.helpers import CommandLog

pytestmark = pytest.mark.integration


@pytest.fixture
async def counted(mongo_db):
    counter = CommandLog()
    client = AsyncMongoClient(mongo_db[0], event_listeners=[counter])
    yield client[mongo_db[1]], counter
    await client.close()


async def test_concurrent_writes_go_as_few_commands_and_all_land(counted):
    db, counter = counted
    writes = BulkWrites(db.things, max_batch=50)
    await asyncio.gather(*(writes(InsertOne({"_id": f"t{i}", "n": 0})) for i in range(120)))
    await asyncio.gather(*(writes(UpdateOne({"_id": f"t{i}"}, {"$set": {"n": i}})) for i in range(120)))
    docs = await db.things.find({}).sort("n", 1).to_list(None)
    assert [d["n"] for d in docs] == list(range(120))
    assert counter.count("insert") <= 4 and counter.count("update") <= 4  # 50 + 50 + 20, not 120


async def test_a_taken_id_fails_only_its_own_writer(counted):
    db, _ = counted
    writes = BulkWrites(db.things)
    await db.things.insert_one({"_id": "taken", "n": 1})
    outcomes = await asyncio.gather(
        writes(InsertOne({"_id": "new-1", "n": 2})),
        writes(InsertOne({"_id": "taken", "n": 3})),
        writes(UpdateOne({"_id": "new-0"}, {"$set": {"n": 4}}, upsert=True)),
        return_exceptions=True,
    )
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], DuplicateKeyError)
    assert {d["_id"]: d["n"] for d in await db.things.find({}).to_list(None)} == {"taken": 1, "new-1": 2, "new-0": 4}


async def test_many_concurrent_updates_never_make_an_update_command_ferretdb_cannot_finish(counted):
    # FerretDB holds a connection per statement of an update command until it ends, out of 100 for the database: a
    # command of ~100 statements would never finish (this test would time out, and the database stay stuck).
    db, counter = counted
    writes = BulkWrites(db.things)
    await db.things.insert_many([{"_id": f"t{i}", "n": 0} for i in range(300)])
    async with asyncio.timeout(60):
        await asyncio.gather(*(writes(UpdateOne({"_id": f"t{i}"}, {"$set": {"n": 1}})) for i in range(300)))
    assert await db.things.count_documents({"n": 1}) == 300
    assert max(counter.sizes("update")) <= MAX_BULK < 50
