"""The cluster index under concurrent placements: grouped inserts give the same answers as one placement at a time."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient, MongoClient

from minsheng_classifier.clusters import ClusterIndex, Placement
from minsheng_classifier.similarity import Comparer
from tests.helpers import CommandLog

pytestmark = pytest.mark.integration
T0 = datetime(2019, 10, 20, tzinfo=UTC)
COMPARER = Comparer(("双塔山镇", "滦河镇"), ("石佛村", "西山村", "东营村"))

# Earlier suggestions, each about its own thing, placed one after another before the concurrent ones.
ORIGINALS = {
    "幸福路": "幸福路坑洼不平，晚上骑车摔了好几次，希望重新铺设",
    "锦绣小区": "锦绣小区电梯经常出故障，老人出门很困难",
    "西山桥": "西山桥桥面开裂，大车经过时晃得厉害",
    "光明街": "光明街两边没有照明，晚上出门看不清",
    "东湖公园": "东湖公园健身器材都坏了，希望更换新的",
    "新华书屋": "新华书屋开放时间太短，下班后去不了",
}
# Each said once, after one of the things above, by someone else.
REMARKS = [
    "旁边总有人乱扔垃圾，味道难闻",
    "夏天积水严重，孩子上学要绕远",
    "能不能多安排几名保洁员",
    "附近缺少公共厕所，很不方便",
    "周末人太多，希望有人维持秩序",
    "希望增加几个垃圾桶",
    "绿化带长期没人修剪",
    "冬天积雪没人清理，老人容易摔倒",
    "噪音太大影响休息",
    "希望装上监控，保障安全",
    "门口的台阶太高，轮椅上不去",
    "路面的井盖松动了",
    "电线乱拉乱接，存在隐患",
    "希望能增设无障碍设施",
    "晚上有人大声喧哗",
    "墙面脱落，掉下来砸人怎么办",
    "希望多种些树，夏天太晒",
    "排水不畅，一下雨就淹",
    "缺少座椅，老人走累了没地方歇",
    "宣传栏的内容好几年没换了",
    "周边小摊贩占道经营",
    "希望定期消毒",
    "指示牌看不清楚，外地人找不到",
    "空调坏了一直没修",
    "地面太滑，雨天容易摔跤",
    "车辆乱停乱放，消防通道被堵",
    "流浪狗很多，孩子害怕",
    "希望延长开放时间到晚上九点",
    "Wi-Fi信号太差",
    "饮水机里的水有异味",
    "希望安排专人管理",
    "栏杆生锈，扶着不安全",
    "灯光太暗，看书伤眼睛",
    "希望配备急救箱和除颤仪",
    "厕所太脏，没人打扫",
    "希望开通线上预约",
]
# Not about any of these things.
UNRELATED = [
    "希望村里组织一次义诊",
    "建议开设老年人智能手机培训班",
    "希望多举办文艺演出",
    "建议增加农业技术讲座",
    "希望给低保户发放取暖补贴",
    "建议开通到县城的早班车",
    "希望免费测量血压血糖",
    "建议组织青少年暑期托管",
    "希望提高独生子女奖励标准",
    "建议引进快递代收点",
    "希望设立法律咨询服务",
    "建议推广秸秆综合利用",
    "希望安排电工上门检修线路",
    "建议开办家政技能培训",
]


def suggestions() -> tuple[list[tuple], list[tuple], dict[str, Placement]]:
    """(originals, concurrent ones) as (id, text, minutes, person, village), and the placements expected of them."""
    originals, later, expected = [], [], {}
    remarks = iter(REMARKS)
    for k, (thing, text) in enumerate(ORIGINALS.items()):
        first = f"o{k}"
        originals.append((first, text, k, f"po{k}", None))
        expected[first] = Placement(first, None)
        # the same text again: from the same person on another channel, and from someone else
        later.append((f"d{k}a", text + "！", 100 + 10 * k, f"po{k}", None))
        later.append((f"d{k}b", " " + text, 101 + 10 * k, f"pd{k}", None))
        expected |= {f"d{k}a": Placement(first, first), f"d{k}b": Placement(first, first)}
        for j in range(6):  # the same thing from six others, in three villages (the places of the first are not known)
            sid = f"s{k}{j}"
            later.append((sid, thing + next(remarks), 102 + 10 * k + j, f"ps{k}{j}", ("石佛村", "西山村", "东营村")[j % 3]))
            expected[sid] = Placement(first, None)
    for i, text in enumerate(UNRELATED):
        later.append((f"u{i}", text, 200 + i, f"pu{i}", None))
        expected[f"u{i}"] = Placement(f"u{i}", None)
    return originals, later, expected


async def place(index: ClusterIndex, sid: str, text: str, minutes: int, person: str, village: str | None) -> Placement:
    fingerprint = index.comparer.fingerprint(text, "luanhe", village, person)
    return await index.place(sid, fingerprint, T0 + timedelta(minutes=minutes))


async def contents(db) -> tuple[dict, dict]:
    """Postings (entries in no particular order: appends from concurrent placements) and fingerprints, by _id."""
    postings = {
        p["_id"]: (p["size"], sorted(p["ids"]), sorted(p["entries"], key=lambda e: e["id"]))
        for p in await db.classifier_postings.find().to_list(None)
    }
    return postings, {f["_id"]: f for f in await db.classifier_fingerprints.find().to_list(None)}


async def test_concurrent_placements_equal_one_at_a_time_and_redelivery_keeps_the_first_answer(mongo_db):
    url, name = mongo_db
    originals, later, expected = suggestions()
    assert len(later) >= 50
    client = AsyncMongoClient(url, tz_aware=True)
    one_by_one, concurrent = client[f"{name}_seq"], client[name]
    try:
        sequential_index = ClusterIndex(one_by_one, COMPARER)
        for s in originals + later:
            assert await place(sequential_index, *s) == expected[s[0]], s[0]  # the data are what the test means

        index = ClusterIndex(concurrent, COMPARER)
        first = {s[0]: await place(index, *s) for s in originals}
        answers = await asyncio.gather(*(place(index, *s) for s in later))
        first |= {s[0]: answer for s, answer in zip(later, answers, strict=True)}
        assert first == expected
        stored = await contents(concurrent)
        assert stored == await contents(one_by_one)  # the same postings (each holds the same entries) and fingerprints
        assert len(stored[1]) == len(originals) + len(later)

        # Every one delivered again, all at once: the first answers, nothing written. Placed again, an original would
        # now be found a duplicate of its later copy from the same person: the stored answer must win.
        again = await asyncio.gather(*(place(index, *s) for s in originals + later))
        assert dict(zip([s[0] for s in originals + later], again, strict=True)) == expected
        assert await contents(concurrent) == stored
    finally:
        await client.drop_database(f"{name}_seq")
        await client.close()


async def test_concurrent_placements_share_insert_commands_and_read_no_fingerprint(mongo_db):
    url, name = mongo_db
    # about nothing in common (a shared thing would make its placements wait for each other's posting)
    texts = REMARKS + UNRELATED
    listener = CommandLog()
    client = AsyncMongoClient(url, tz_aware=True, event_listeners=[listener])
    try:
        index = ClusterIndex(client[name], COMPARER)
        answers = await asyncio.gather(*(place(index, f"g{i}", text, i, f"pg{i}", None) for i, text in enumerate(texts)))
        assert answers == [Placement(f"g{i}", None) for i in range(len(texts))]

        fingerprints = listener.sizes("insert", "classifier_fingerprints")
        postings = listener.sizes("insert", "classifier_postings")
        assert sum(fingerprints) == len(texts) and len(fingerprints) < len(texts)  # one document each, fewer commands
        assert sum(postings) == await client[name].classifier_postings.count_documents({}) >= 2 * len(texts)
        assert len(postings) < len(texts)
        assert listener.count("find", "classifier_fingerprints") == 0  # no look for a stored answer first
    finally:
        await client.close()


async def test_each_placement_learns_which_of_its_grouped_inserts_collided(mongo_db):
    """Another replica opens one of the postings, and stores one of the fingerprints, just before the grouped insert."""
    url, name = mongo_db
    listener = CommandLog()
    client = AsyncMongoClient(url, tz_aware=True, event_listeners=[listener])
    replica = MongoClient(url, tz_aware=True)
    other = {"id": "other", "unit": "luanhe", "village": None, "person": None, "category": None, "objects": ["幸福路"],
             "submitted_at": T0, "cluster_id": "other", "duplicate_of": None}  # fmt: skip

    def another_replica_first(command: str, collection: str) -> None:
        # runs as the command starts, before it is sent
        if command != "insert":
            return
        if collection == "classifier_postings" and replica[name].classifier_postings.count_documents({}) == 0:
            replica[name].classifier_postings.insert_one(
                {"_id": "object:幸福路", "entries": [other], "ids": ["other"], "size": 1}
            )
        if collection == "classifier_fingerprints" and replica[name].classifier_fingerprints.count_documents({}) == 0:
            replica[name].classifier_fingerprints.insert_one({"_id": "b", "cluster_id": "first", "duplicate_of": "x"})

    listener.on_start = another_replica_first
    try:
        index = ClusterIndex(client[name], COMPARER)
        a, b = await asyncio.gather(
            place(index, "a", "幸福路坑洼不平，希望重新铺设", 0, "p1", None), place(index, "b", "锦绣小区电梯坏了", 1, "p2", None)
        )
        assert a == Placement("a", None)  # it read no posting of 幸福路: placed on what it saw
        assert b == Placement("first", "x")  # its fingerprint was stored first: that answer stands
        db = client[name]
        posting = await db.classifier_postings.find_one({"_id": "object:幸福路"})
        assert posting["ids"] == ["other", "a"] and posting["size"] == 2  # collided, read again and appended
        assert [e["id"] for e in posting["entries"]] == ["other", "a"]
        for key in ("person:p1", "person:p2", "object:锦绣小区"):  # sent in the same command as the collided one, or
            assert (await db.classifier_postings.find_one({"_id": key}))["ids"] in (["a"], ["b"])  # with it: inserted
        assert (await db.classifier_fingerprints.find_one({"_id": "a"}))["cluster_id"] == "a"
        assert (await db.classifier_fingerprints.find_one({"_id": "b"}))["cluster_id"] == "first"
        assert max(listener.sizes("insert", "classifier_postings")) > 1  # the collision was one item of a grouped command
    finally:
        replica.close()
        await client.close()
