"""The cluster index on the real store: first wins, across channels, and redelivery changes nothing."""

from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from minsheng_classifier import clusters
from minsheng_classifier.clusters import ClusterIndex
from minsheng_classifier.similarity import Comparer

pytestmark = pytest.mark.integration
T0 = datetime(2019, 10, 20, tzinfo=UTC)


@pytest.fixture
async def index(mongo_db):
    client = AsyncMongoClient(mongo_db[0], tz_aware=True)
    index = ClusterIndex(client[mongo_db[1]], Comparer(("双塔山镇", "滦河镇"), ("石佛村",)))
    yield index
    await client.close()


async def place(index, sid, text, minutes, unit="luanhe", village=None, person=None):
    fingerprint = index.comparer.fingerprint(text, unit, village, person)
    return await index.place(sid, fingerprint, T0 + timedelta(minutes=minutes))


async def test_duplicates_point_to_the_first_and_share_its_cluster(index):
    first = await place(index, "web-1", "石佛村到镇上的幸福路坑太多了，希望重新硬化", 0, person="p1")
    assert (first.cluster_id, first.duplicate_of) == ("web-1", None)
    again = await place(index, "wechat-1", "石佛村到镇上的幸福路坑太多了，希望重新硬化！", 5, person="p2")
    assert (again.cluster_id, again.duplicate_of) == ("web-1", "web-1")
    reworded = await place(index, "hotline-1", "我之前说过的那个幸福路，坑太多 麻烦给硬化一下", 9, person="p1")
    assert reworded.duplicate_of == "web-1"


async def test_same_thing_from_other_people_joins_the_cluster_without_being_a_duplicate(index):
    await place(index, "a", "幸福路坑洼不平，晚上骑车摔了好几次，希望重新铺设", 0, person="p1")
    other = await place(index, "b", "建议把幸福路拓宽，再加上路灯", 3, person="p2")
    assert (other.cluster_id, other.duplicate_of) == ("a", None)
    elsewhere = await place(index, "c", "幸福路拓宽一下吧", 4, unit="shuangtashan", person="p3")
    assert elsewhere.cluster_id == "c"


async def test_a_redelivered_suggestion_gets_the_same_answer(index):
    await place(index, "x", "锦绣小区电梯坏了", 0, person="p1")
    first = await place(index, "y", "锦绣小区的电梯坏了 请修", 1, person="p1")
    second = await place(index, "y", "锦绣小区的电梯坏了 请修", 1, person="p1")
    assert first == second and first.duplicate_of == "x"


async def test_a_placement_cut_short_after_posting_gives_the_same_answer_and_posts_once(mongo_db, monkeypatch):
    monkeypatch.setitem(clusters._POSTING_CAPACITY, "object", 2)
    client = AsyncMongoClient(mongo_db[0], tz_aware=True)
    db = client[mongo_db[1]]
    index = ClusterIndex(db, Comparer(("滦河镇",), ("石佛村",)))
    try:
        await place(index, "a", "幸福路坑洼不平，希望重新铺设", 0, person="p1")
        first = await place(index, "b", "建议把幸福路拓宽", 1, person="p2")
        await db.classifier_fingerprints.delete_one({"_id": "b"})  # killed after posting, before storing its fingerprint
        again = await place(index, "b", "建议把幸福路拓宽", 1, person="p2")
        assert again == first == (first.__class__("a", None))
        posting = await db.classifier_postings.find_one({"_id": "object:幸福路"})
        assert posting["ids"] == ["a", "b"] and posting["size"] == 2  # posted once
        late = await place(index, "c", "幸福路晚上没有路灯", 2, person="p3")  # the posting is full: not posted, still compared
        assert late.cluster_id == "a"
        assert (await db.classifier_postings.find_one({"_id": "object:幸福路"}))["ids"] == ["a", "b"]
    finally:
        await client.close()
