"""Store writes on the real MongoDB-compatible store: idempotent, order-independent, literal filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient, DeleteOne

from minsheng_core.batching import BulkWrites
from minsheng_core.events import (
    Attachment,
    Channel,
    Classification,
    PersonalData,
    SuggestionAttachmentAdded,
    SuggestionClassified,
    SuggestionContent,
    SuggestionReceived,
)
from minsheng_core.settings import ServiceSettings
from minsheng_store.repository import SuggestionFilter, SuggestionRepository

pytestmark = pytest.mark.integration
NOW = datetime(2019, 10, 20, 2, 0, tzinfo=UTC)
VAULT = ServiceSettings().vault


@pytest.fixture
async def repo(mongo_db):
    client = AsyncMongoClient(mongo_db[0], tz_aware=True)
    repository = SuggestionRepository(client[mongo_db[1]], vault=VAULT)
    await repository.ensure_indexes()
    yield repository, client[mongo_db[1]]
    await client.close()


def received(sid: str = "s-1", text: str = "希望硬化村里的道路", channel: Channel = Channel.WEB) -> SuggestionReceived:
    return SuggestionReceived(
        suggestion_id=sid,
        occurred_at=NOW,
        body=SuggestionContent(
            channel=channel, channel_ref=f"ref-{sid}", campaign="2020", text=text, tracking_code=f"T{sid}"[:11], submitted_at=NOW
        ),
        personal=PersonalData(phone="13900001111"),
    )


def classified(sid: str = "s-1", category: str = "road_traffic", at: datetime = NOW) -> SuggestionClassified:
    return SuggestionClassified(
        suggestion_id=sid,
        body=Classification(category=category, confidence=0.9, needs_review=False, model_version="m1", classified_at=at),
    )


async def test_the_same_event_twice_gives_one_document(repo):
    repository, db = repo
    event = received()
    await repository.apply_received(event)
    first = await db.suggestions.find_one({"_id": "s-1"})
    await repository.apply_received(event)
    second = await db.suggestions.find_one({"_id": "s-1"})
    assert await db.suggestions.count_documents({}) == 1
    bookkeeping = {"updated_at", "tally_moves"}  # when it was written; its tally move, until recorded
    assert {k: v for k, v in first.items() if k not in bookkeeping} == {k: v for k, v in second.items() if k not in bookkeeping}
    assert first["status"] == "received"
    assert "phone" not in first
    assert VAULT.open("phone", (await db.personal_data.find_one({"_id": "s-1"}))["phone"]) == "13900001111"


async def test_classification_before_suggestion_is_merged(repo):
    repository, db = repo
    await repository.apply_classified(classified())
    assert (await db.suggestions.find_one({"_id": "s-1"}))["status"] == "pending"
    assert await repository.get("s-1") is None  # not shown to staff until the suggestion itself is there
    await repository.apply_received(received())
    doc = await db.suggestions.find_one({"_id": "s-1"})
    assert doc["status"] == "classified"
    assert doc["classification"]["category"] == "road_traffic"
    assert doc["text"] == "希望硬化村里的道路"
    assert await db.suggestions.count_documents({}) == 1


async def test_an_older_classification_does_not_overwrite_a_newer_one(repo):
    repository, db = repo
    await repository.apply_received(received())
    await repository.apply_classified(classified(category="rural", at=NOW + timedelta(hours=1)))
    await repository.apply_classified(classified(category="road_traffic", at=NOW))
    doc = await db.suggestions.find_one({"_id": "s-1"})
    assert doc["classification"]["category"] == "rural"
    await repository.apply_classified(classified(category="road_traffic", at=NOW + timedelta(hours=2)))
    assert (await db.suggestions.find_one({"_id": "s-1"}))["classification"]["category"] == "road_traffic"


async def test_filters_match_literally_and_paginate(repo):
    repository, _ = repo
    for i, text in enumerate(["路灯坏了 a.*b", "路灯坏了 axxb", "修一座桥", '{"$gt": ""}']):
        await repository.apply_received(received(f"s-{i}", text, Channel.WEB if i % 2 else Channel.WECHAT))
        await repository.apply_classified(classified(f"s-{i}", "urban_management" if i < 2 else "road_traffic"))
    total, items = await repository.list(SuggestionFilter(text_contains="a.*b"), 10, 0)
    assert (total, [d["_id"] for d in items]) == (1, ["s-0"])
    total, _ = await repository.list(SuggestionFilter(text_contains='{"$gt"'), 10, 0)
    assert total == 1
    total, _ = await repository.list(SuggestionFilter(category="$gt"), 10, 0)
    assert total == 0
    total, items = await repository.list(SuggestionFilter(category="urban_management", channel="web"), 10, 0)
    assert (total, [d["_id"] for d in items]) == (1, ["s-1"])
    total, page = await repository.list(SuggestionFilter(), 2, 2)
    assert total == 4 and len(page) == 2
    total, _ = await repository.list(SuggestionFilter(received_from=NOW + timedelta(seconds=1)), 10, 0)
    assert total == 0
    counts = await repository.tallies.rows()
    assert {(r["category"], r["channel"]): r["count"] for r in counts} == {
        ("road_traffic", "web"): 1,
        ("road_traffic", "wechat"): 1,
        ("urban_management", "web"): 1,
        ("urban_management", "wechat"): 1,
    }


def voice(sid: str = "s-v") -> SuggestionReceived:
    return SuggestionReceived(
        suggestion_id=sid,
        occurred_at=NOW,
        body=SuggestionContent(
            channel=Channel.WECHAT,
            channel_ref=f"wx-app:{sid}",
            account="wx-app",
            campaign="2020",
            awaiting="transcription",
            attachments=[Attachment(kind="voice", channel_ref=f"wx-app:{sid}", media_id="media-1", format="amr")],
            tracking_code=f"T{sid}"[:11],
            submitted_at=NOW,
        ),
    )


async def test_a_voice_without_words_is_kept_awaiting_transcription_with_its_media(repo):
    repository, db = repo
    await repository.apply_received(voice())
    await repository.apply_received(voice())
    doc = await db.suggestions.find_one({"_id": "s-v"})
    assert doc["awaiting"] == "transcription" and doc["text"] == "" and doc["account"] == "wx-app"
    assert [a["media_id"] for a in doc["attachments"]] == ["media-1"]


async def test_an_attachment_before_or_after_its_suggestion_is_attached_once(repo):
    repository, db = repo
    picture = SuggestionAttachmentAdded(
        suggestion_id="s-1", body=Attachment(kind="image", channel_ref="wx-app:777", media_id="m-img", url="http://p/1.jpg")
    )
    await repository.apply_attachment_added(picture)
    assert await repository.get("s-1") is None  # nothing to show staff until the suggestion itself is there
    await repository.apply_received(received())
    await repository.apply_attachment_added(picture)
    await repository.apply_received(received())
    doc = await db.suggestions.find_one({"_id": "s-1"})
    assert doc["status"] == "received" and doc["text"] == "希望硬化村里的道路"
    assert [a["channel_ref"] for a in doc["attachments"]] == ["wx-app:777"]


async def direct_counts(db) -> dict[tuple[str, str, str], int]:
    """What the tallies must say: a count over the suggestions themselves."""
    counts: dict[tuple[str, str, str], int] = {}
    async for doc in db.suggestions.find({"status": {"$ne": "pending"}}):
        key = (doc.get("unit") or "unassigned", doc.get("category") or "unclassified", doc["channel"])
        counts[key] = counts.get(key, 0) + 1
    return counts


async def tallied(repository) -> dict[tuple[str, str, str], int]:
    return {(r["unit"], r["category"], r["channel"]): r["count"] for r in await repository.tallies.rows()}


async def test_tallies_equal_a_direct_count_through_redeliveries_reorders_and_corrections(repo):
    from minsheng_core.events import Correction, SuggestionCorrected

    repository, db = repo
    verdict = classified("s-2", "road_traffic").model_copy(
        update={"body": classified("s-2").body.model_copy(update={"unit": "xidi"})}
    )
    await repository.apply_classified(verdict)  # the verdict before its suggestion: nothing to count yet
    assert await tallied(repository) == {}
    for event in (received("s-1"), received("s-1"), received("s-2"), received("s-3", channel=Channel.WECHAT)):
        await repository.apply_received(event)  # a redelivery counts once
    assert await tallied(repository) == await direct_counts(db)
    assert await tallied(repository) == {
        ("unassigned", "unclassified", "web"): 1,
        ("xidi", "road_traffic", "web"): 1,
        ("unassigned", "unclassified", "wechat"): 1,
    }
    await repository.apply_classified(classified("s-1", "housing"))
    await repository.apply_classified(classified("s-1", "housing"))
    correction = SuggestionCorrected(
        suggestion_id="s-2", body=Correction(category="rural", unit="luanhe", corrected_by="t", corrected_at=NOW)
    )
    await repository.apply_corrected(correction)
    await repository.apply_classified(verdict)  # a late model verdict does not undo the correction
    assert await tallied(repository) == await direct_counts(db)
    assert (await tallied(repository))[("luanhe", "rural", "web")] == 1
    assert ("xidi", "road_traffic", "web") not in await tallied(repository)
    before = await tallied(repository)
    assert await repository.tallies.rebuild() == 3
    assert await tallied(repository) == before
    days = await repository.tallies.by_day()
    assert days == [{"day": "2019-10-20", "count": 3}]  # NOW is 10:00 in Asia/Shanghai


async def test_coverage_counts_each_household_once_whatever_arrives_twice(repo):
    from datetime import date

    from minsheng_core.events import HouseholdVisited, Visit
    from minsheng_store.visits import Visits

    _, db = repo
    visits = Visits(db)
    await visits.ensure_indexes()

    def visit(visit_id: str, household: str, place: str = "西山村") -> HouseholdVisited:
        body = Visit(unit="shuangtashan", place=place, household=household, visited_on=date(2019, 10, 20), visitor="张三")
        return HouseholdVisited(visit_id=visit_id, body=body)

    for event in (
        visit("v1", "王大山"),
        visit("v1", "王大山"),
        visit("v2", "王大山 "),
        visit("v3", "李四"),
        visit("v4", "赵五", "大贵口村"),
    ):
        await visits.apply(event)  # a redelivery, and a second visit of the same household (spaced differently)
    coverage = {d["_id"]: d["visited"] async for d in db.coverage.find()}
    assert coverage == {"shuangtashan|西山村": 2, "shuangtashan|大贵口村": 1}
    assert await db.visits.count_documents({}) == 4
    await visits.rebuild_coverage()
    assert {d["_id"]: d["visited"] async for d in db.coverage.find()} == coverage


class DeletesFail:
    """The moves collection of a folder killed after it marked the day documents, before it removed the moves."""

    def __init__(self, collection) -> None:
        self._collection = collection

    def __getattr__(self, name):
        return getattr(self._collection, name)

    async def bulk_write(self, ops, **kwargs):
        if any(isinstance(op, DeleteOne) for op in ops):
            raise RuntimeError("killed mid-fold")
        return await self._collection.bulk_write(ops, **kwargs)


async def test_folding_keeps_the_totals_and_a_fold_cut_short_is_finished_once(repo):
    repository, db = repo
    for sid in ("s-1", "s-2", "s-3"):
        await repository.apply_received(received(sid))
    await repository.apply_classified(classified("s-1", "housing"))
    expected = await direct_counts(db)
    assert await db.tally_deltas.count_documents({}) == 4  # recorded by the writes, not yet in a day document
    assert await tallied(repository) == expected

    tallies = repository.tallies
    writes = tallies._delta_writes
    tallies._delta_writes = BulkWrites(DeletesFail(db.tally_deltas))
    with pytest.raises(RuntimeError):
        await tallies.fold()
    tallies._delta_writes = writes
    assert await db.tally_folds.count_documents({}) == 1  # the fold's journal survives
    day = await db.daily_tallies.find_one({"_id": "2019-10-20"})
    assert sum(day["counts"].values()) == 3 and day["folds"]  # applied and marked, the moves still there
    assert await tallied(repository) == expected  # counted once while the fold is unfinished

    await repository.apply_received(received("s-4"))
    assert await tallies.fold() == 1  # finishes the cut one first (never twice), then folds what came since
    expected = await direct_counts(db)
    assert await tallied(repository) == expected
    assert await db.tally_deltas.count_documents({}) == 0 and await db.tally_folds.count_documents({}) == 0
    day = await db.daily_tallies.find_one({"_id": "2019-10-20"})
    assert {tuple(cell.split("|")): n for cell, n in day["counts"].items() if n} == expected
    assert not day.get("folds")


async def test_a_move_folded_is_never_recorded_again_by_another_replica(repo, mongo_db):
    repository, db = repo
    other = SuggestionRepository(db, vault=VAULT)  # a second store replica: it did not record the first one's moves
    await repository.apply_received(received("s-1"))
    assert await repository.tallies.fold() == 1
    doc = await db.suggestions.find_one({"_id": "s-1"})
    assert not doc.get("tally_moves")  # folded: taken out of the suggestion
    await other.apply_classified(classified("s-1", "housing"))
    await other.apply_received(received("s-1"))  # a redelivery on the other replica
    await other.tallies.fold()
    assert await tallied(repository) == await direct_counts(db) == {("unassigned", "housing", "web"): 1}
