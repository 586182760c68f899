"""Key rotation on the real store: every personal-data document resealed under the new key, readable before,
during and after; idempotent, resumable, legacy plain values sealed; the command line as an operator runs it."""

from __future__ import annotations

import pytest
from pymongo import AsyncMongoClient

from minsheng_core.personal import PersonalDataVault, new_key, opened_fields, parse_key_ring, sealed_fields
from minsheng_core.personal_rotation import main, rotate

pytestmark = pytest.mark.integration

OLD, NEW = new_key(), new_key()
LOOKUP = "lookup key of the rotation tests"
BEFORE = PersonalDataVault.from_secrets(f"k1:{OLD}", LOOKUP)
DURING = PersonalDataVault.from_secrets(f"k2:{NEW},k1:{OLD}", LOOKUP)
AFTER = PersonalDataVault.from_secrets(f"k2:{NEW}", LOOKUP)


def contact(i: int) -> dict[str, str]:
    return {"name": f"居民{i}", "phone": f"1390000{i:04d}", "wechat_openid": f"o-rotation-{i}"}


@pytest.fixture
async def db(mongo_db):
    client = AsyncMongoClient(mongo_db[0], tz_aware=True)
    yield client[mongo_db[1]]
    await client.close()


async def test_rotation_reseals_everything_and_old_data_opens_before_and_after(db):
    await db.personal_data.insert_many([{"_id": f"s-{i:03d}", **sealed_fields(BEFORE, contact(i))} for i in range(7)])
    await db.personal_data.insert_one({"_id": "s-legacy", "phone": "13700001111"})  # kept in clear by an old version
    docs = await db.personal_data.find().to_list(None)
    assert all(opened_fields(DURING, d)["phone"] for d in docs)  # the new ring opens the old data

    first = await rotate(db, DURING, batch=3)  # three rounds of at most three documents
    assert first.scanned == 8 and first.resealed == 8 and first.unreadable == []
    again = await rotate(db, DURING, batch=3)
    assert (again.scanned, again.resealed) == (8, 0)  # idempotent: nothing left under the old key

    for doc in await db.personal_data.find().to_list(None):
        for name in ("name", "phone", "wechat_openid"):
            if name in doc:
                assert doc[name].startswith("gcm1.k2."), (doc["_id"], name)
        if doc["_id"] != "s-legacy":
            i = int(doc["_id"][2:])
            assert opened_fields(AFTER, doc) == contact(i)  # the old key may now leave the ring
            assert doc["phone_hash"] == BEFORE.lookup("phone", contact(i)["phone"])  # hashes do not change
    legacy = await db.personal_data.find_one({"_id": "s-legacy"})
    assert AFTER.open("phone", legacy["phone"]) == "13700001111" and legacy["phone_hash"] == AFTER.lookup("phone", "13700001111")


async def test_a_rotation_resumes_after_the_last_id_it_printed(db):
    await db.personal_data.insert_many([{"_id": f"s-{i}", **sealed_fields(BEFORE, contact(i))} for i in range(4)])
    tail = await rotate(db, DURING, batch=2, after="s-1")
    assert (tail.scanned, tail.resealed, tail.last_id) == (2, 2, "s-3")
    untouched = await db.personal_data.find_one({"_id": "s-0"})
    assert untouched["phone"].startswith("gcm1.k1.")


async def test_values_no_key_opens_are_reported_not_lost(db):
    stranger = PersonalDataVault.from_secrets(f"k9:{new_key()}", LOOKUP)
    await db.personal_data.insert_one({"_id": "s-x", **sealed_fields(stranger, contact(1))})
    report = await rotate(db, DURING)
    assert report.unreadable == ["s-x"] and report.resealed == 0
    assert (await db.personal_data.find_one({"_id": "s-x"}))["phone"].startswith("gcm1.k9.")


def test_the_command_rotates_with_the_stores_settings(mongo_db, monkeypatch, capsys):
    import asyncio

    async def seed() -> None:
        client = AsyncMongoClient(mongo_db[0])
        await client[mongo_db[1]].personal_data.insert_one({"_id": "s-1", **sealed_fields(BEFORE, contact(1))})
        await client.close()

    async def phone() -> str:
        client = AsyncMongoClient(mongo_db[0])
        doc = await client[mongo_db[1]].personal_data.find_one({"_id": "s-1"})
        await client.close()
        return doc["phone"]

    asyncio.run(seed())
    for name, value in {
        "MONGO_URL": mongo_db[0],
        "MONGO_DATABASE": mongo_db[1],
        "PERSONAL_DATA_KEYS": f"k2:{NEW},k1:{OLD}",
        "PERSONAL_LOOKUP_KEY": LOOKUP,
        "LOG_FORMAT": "json",
    }.items():
        monkeypatch.setenv(f"MINSHENG_STORE_{name}", value)
    assert main(["rotate"]) == 0
    assert "current key k2: scanned 1, resealed 1" in capsys.readouterr().out
    assert asyncio.run(phone()).startswith("gcm1.k2.")
    assert main(["new-key"]) == 0
    printed = capsys.readouterr().out.strip()
    assert list(parse_key_ring(f"k3:{printed}")) == ["k3"]


async def test_another_collection_whose_field_names_differ_from_their_kinds(db):
    """The notifier's contacts keep the openid in ``openid``, sealed with the kind ``wechat_openid``."""
    await db.notifier_contacts.insert_one(
        {"_id": "s-1", "phone": BEFORE.seal("phone", "13900000001"), "openid": BEFORE.seal("wechat_openid", "o-n-1")}
    )
    report = await rotate(db, DURING, collection="notifier_contacts", fields=["phone", "openid=wechat_openid"])
    assert report.resealed == 1
    doc = await db.notifier_contacts.find_one({"_id": "s-1"})
    assert doc["openid"].startswith("gcm1.k2.") and AFTER.open("wechat_openid", doc["openid"]) == "o-n-1"
    assert AFTER.open("phone", doc["phone"]) == "13900000001"
