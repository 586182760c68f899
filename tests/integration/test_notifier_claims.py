"""Delivery records and their claims on the real store: one claim wins, interrupted sends are settled from the ledger."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from minsheng_core.events import Decision, Outcome, SuggestionDecided
from minsheng_notifier.records import Notifications, NotResendable, State
from minsheng_notifier.records import Outcome as ClaimOutcome

NOW = datetime(2019, 11, 20, 2, 0, tzinfo=UTC)
STALE = timedelta(minutes=5)


@pytest.fixture
async def stores(mongo_db: tuple[str, str]) -> AsyncIterator[tuple[Notifications, Notifications, Any]]:
    """Two views of one database through two clients, as two replicas of the notifier have."""
    first: AsyncMongoClient = AsyncMongoClient(mongo_db[0], tz_aware=True)
    second: AsyncMongoClient = AsyncMongoClient(mongo_db[0], tz_aware=True)
    one, two = Notifications(first[mongo_db[1]]), Notifications(second[mongo_db[1]])
    await one.ensure_indexes()
    yield one, two, first[mongo_db[1]]
    await first.close()
    await second.close()


def decided(decision_id: str = "dec-1") -> SuggestionDecided:
    return SuggestionDecided(
        suggestion_id="sug-1",
        body=Decision(
            decision_id=decision_id,
            outcome=Outcome.NOT_ADOPTED,
            reason="beyond_means",
            explanation="今年资金有限，已记录在案，明年优先考虑。",
            decided_by="admin",
            released_by="admin",
            released_at=NOW,
        ),
    )


async def test_a_decision_is_recorded_once_however_often_it_arrives(stores):
    one, two, db = stores
    assert await one.add(decided(), NOW) is True
    assert await two.add(decided(), NOW + timedelta(hours=1)) is False
    [doc] = await db.notifications.find().to_list(None)
    assert doc["state"] == "pending" and doc["due_at"] == NOW and doc["decision"]["reason"] == "beyond_means"


async def test_of_two_replicas_claiming_the_same_record_exactly_one_wins(stores):
    one, two, db = stores
    for i in range(10):
        await one.add(decided(f"dec-{i}"), NOW)
    docs = await one.due(NOW, 50)
    assert len(docs) == 10

    results = await asyncio.gather(*(store.claim(doc, NOW, NOW - STALE) for doc in docs for store in (one, two)))

    winners = [claim for claim in results if claim is not None]
    assert sorted(c.decision_id for c in winners) == sorted(f"dec-{i}" for i in range(10))
    assert all(c.n == 1 for c in winners)
    assert await db.notification_claims.count_documents({}) == 10


async def test_a_record_that_missed_its_sent_claim_is_repaired_not_sent_again(stores):
    one, _, db = stores
    await one.add(decided(), NOW)
    [doc] = await one.due(NOW, 10)
    claim = await one.claim(doc, NOW, NOW - STALE)
    assert claim is not None
    await one.release(claim, ClaimOutcome.SENT)  # the record's own update never happened

    # Soon after, the holder may still be writing the record: hands off.
    assert await one.claim(doc, NOW + timedelta(seconds=5), NOW + timedelta(seconds=5) - STALE) is None
    assert (await one.get("dec-1"))["state"] == "pending"
    # Long after, the ledger wins: the record is sent, and nobody claims it again.
    later = NOW + timedelta(hours=1)
    assert await one.claim(doc, later, later - STALE) is None
    assert (await one.get("dec-1"))["state"] == "sent"
    assert await db.notification_claims.count_documents({}) == 1


async def test_a_holder_that_died_before_sending_is_passed_over(stores):
    one, _, db = stores
    await one.add(decided(), NOW)
    [doc] = await one.due(NOW, 10)
    assert await one.claim(doc, NOW, NOW - STALE) is not None  # claimed, then the process died: record still pending

    assert await one.claim(doc, NOW + timedelta(seconds=30), NOW + timedelta(seconds=30) - STALE) is None
    later = NOW + timedelta(hours=1)
    claim = await one.claim(doc, later, later - STALE)
    assert claim is not None and claim.n == 2
    first = await db.notification_claims.find_one({"_id": "dec-1:1"})
    assert first["outcome"] == "aborted"
    # A holder that lets go without sending (an error, a shutdown) does not hold anyone up.
    await one.release(claim, ClaimOutcome.ABORTED)
    again = await one.claim(doc, later, later - STALE)
    assert again is not None and again.n == 3


async def test_an_interrupted_send_is_settled_from_its_claim(stores):
    one, _, db = stores
    for decision_id in ("dec-unknown", "dec-failed", "dec-sent"):
        await one.add(decided(decision_id), NOW)
    outcomes = {"dec-unknown": None, "dec-failed": ClaimOutcome.FAILED, "dec-sent": ClaimOutcome.SENT}
    for doc in await one.due(NOW, 10):
        claim = await one.claim(doc, NOW, NOW - STALE)
        assert claim is not None
        await one.update(claim, NOW, {"state": "sending", "claim": {"n": claim.n, "token": claim.token, "at": NOW}})
        if outcomes[doc["_id"]] is not None:
            await one.release(claim, outcomes[doc["_id"]])

    later = NOW + timedelta(hours=1)
    assert await one.stale_sending(NOW - STALE, 10) == []
    stale = await one.stale_sending(later - STALE, 10)
    settled = {doc["_id"]: await one.settle_stale(doc, later) for doc in stale}

    assert settled == {"dec-unknown": State.UNKNOWN, "dec-failed": State.FAILED, "dec-sent": State.SENT}
    assert (await one.get("dec-failed"))["due_at"] == later
    assert (await db.notification_claims.find_one({"_id": "dec-unknown:1"}))["outcome"] == "unknown"
    # Unknown is never picked up again by the dispatcher; only staff send it again.
    assert [d["_id"] for d in await one.due(later, 10)] == ["dec-failed"]
    with pytest.raises(NotResendable):
        await one.resend("dec-sent", "admin", later)
    resent = await one.resend("dec-unknown", "admin", later)
    assert resent["state"] == "pending" and resent["resends"][0]["from_state"] == "unknown"
    assert sorted(d["_id"] for d in await one.due(later, 10)) == ["dec-failed", "dec-unknown"]
    claim = await one.claim(resent, later, later - STALE)
    assert claim is not None and claim.n == 2
