"""Delivery records: one per decision in ``notifications``, and the claims that make every send happen at most once.

A send is preceded by a claim: a document ``<decision_id>:<n>`` inserted into ``notification_claims``, whose unique
``_id`` lets only one dispatcher (of any replica, after any restart) act on a record at a time. Every later write to the
record is made by the claim's holder. A record left in ``sending`` (the process died mid-send) is never resent by
itself: it becomes ``unknown`` and waits for a member of staff.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from minsheng_core.events import SuggestionDecided

log = structlog.get_logger(__name__)


class State(StrEnum):
    """Where a notification stands."""

    PENDING = "pending"  # to send when due (waiting for the contact, or for the morning)
    SENDING = "sending"  # claimed, the request is out
    SENT = "sent"
    FAILED = "failed"  # the last attempt failed; the next one is scheduled
    GIVEN_UP = "given_up"  # with the reason
    UNKNOWN = "unknown"  # interrupted while sending: it may or may not have arrived


DUE_STATES = (State.PENDING.value, State.FAILED.value)
RESENDABLE = (State.UNKNOWN, State.GIVEN_UP)


class Outcome(StrEnum):
    """What became of a claim."""

    CLAIMED = "claimed"  # still open: the holder is at work, or died
    SENT = "sent"
    FAILED = "failed"
    GIVEN_UP = "given_up"
    DEFERRED = "deferred"  # nothing sent: waiting for the contact or for the end of quiet hours
    UNKNOWN = "unknown"
    BLOCKED = "blocked"
    ABORTED = "aborted"  # given up before anything was sent (an error, a shutdown)


@dataclass(frozen=True)
class Claim:
    """The right to act on one record once."""

    decision_id: str
    n: int
    token: str
    at: datetime


class NotResendable(Exception):
    """Only records whose outcome is unknown or that were given up can be sent again."""


class Notifications:
    """The ``notifications`` and ``notification_claims`` collections."""

    def __init__(self, db: AsyncDatabase) -> None:
        self._records = db.notifications
        self._claims = db.notification_claims

    async def ensure_indexes(self) -> None:
        await self._records.create_index([("state", ASCENDING), ("due_at", ASCENDING)])
        await self._records.create_index("suggestion_id")
        await self._records.create_index([("created_at", DESCENDING)])
        await self._claims.create_index([("decision_id", ASCENDING), ("n", ASCENDING)])

    async def add(self, event: SuggestionDecided, now: datetime) -> bool:
        """Record a released decision to notify; False when it is known already (a redelivery)."""
        d = event.body
        doc = {
            "_id": d.decision_id,
            "suggestion_id": event.suggestion_id,
            "decision": {
                "outcome": d.outcome.value,
                "reason": d.reason.value if d.reason else None,
                "explanation": d.explanation,
                "project_id": d.project_id,
                "referred_to": d.referred_to,
                "released_at": d.released_at.astimezone(UTC),
            },
            "state": State.PENDING.value,
            "channel": None,
            "due_at": now,
            "waiting_for": None,
            "claim_seq": 0,
            "claim": None,
            "attempts": [],
            "attempts_base": 0,
            "reason": None,
            "sent_at": None,
            "event_published": False,
            "resends": [],
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._records.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def due(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Records to act on now, the longest waiting first."""
        cursor = self._records.find({"state": {"$in": list(DUE_STATES)}, "due_at": {"$lte": now}})
        return await cursor.sort("due_at", ASCENDING).limit(limit).to_list(None)

    async def waiting_for_contact(self, limit: int) -> list[dict[str, Any]]:
        """Pending records whose suggestion's contact had not arrived when they were last looked at."""
        cursor = self._records.find({"state": State.PENDING.value, "waiting_for": "contact"})
        return await cursor.sort("due_at", ASCENDING).limit(limit).to_list(None)

    async def stale_sending(self, claimed_before: datetime, limit: int) -> list[dict[str, Any]]:
        """Records whose send started before the given instant and never finished."""
        cursor = self._records.find({"state": State.SENDING.value, "claim.at": {"$lt": claimed_before}})
        return await cursor.limit(limit).to_list(None)

    async def unpublished(self, sent_before: datetime, limit: int) -> list[dict[str, Any]]:
        """Sent records whose NotificationSent is not confirmed by the broker yet (and no longer being published)."""
        query = {"state": State.SENT.value, "event_published": False, "sent_at": {"$lt": sent_before}}
        return await self._records.find(query).limit(limit).to_list(None)

    async def claim(self, doc: dict[str, Any], now: datetime, stale_before: datetime) -> Claim | None:
        """Take the next claim on the record, or None when someone else holds it (or held it and never finished)."""
        n = int(doc.get("claim_seq", 0)) + 1
        for _ in range(10):
            claim = Claim(doc["_id"], n, secrets.token_hex(8), now)
            try:
                await self._claims.insert_one(
                    {"_id": self._claim_id(claim.decision_id, n), "decision_id": claim.decision_id, "n": n,
                     "token": claim.token, "at": now, "outcome": Outcome.CLAIMED.value}
                )  # fmt: skip
                break
            except DuplicateKeyError:
                existing = await self._claims.find_one({"_id": self._claim_id(claim.decision_id, n)})
            if existing is None:
                continue
            if existing["outcome"] == Outcome.ABORTED.value:  # its holder let go without sending or writing the record
                n += 1
                continue
            if existing["at"] >= stale_before:
                return None  # another dispatcher holds it, or has just settled it and is writing the record
            if existing["outcome"] == Outcome.SENT.value:
                await self._repair_sent(doc, now)
                return None
            if existing["outcome"] == Outcome.CLAIMED.value:
                if doc["state"] == State.SENDING.value:
                    return None  # settle_stale decides what became of it
                # Its holder died before it wrote "sending": nothing went out.
                await self._settle(claim.decision_id, n, Outcome.ABORTED)
            n += 1  # the record missed a settled claim long ago (its update was lost): take the next one
        else:
            return None
        # An earlier claim still open or sent must stop this one from sending a second time.
        earlier = await self._claims.find_one(
            {"decision_id": claim.decision_id, "n": {"$lt": n}, "outcome": {"$in": [Outcome.CLAIMED.value, Outcome.SENT.value]}}
        )
        if earlier is not None:
            log.error("notification_claim_blocked", decision_id=claim.decision_id, earlier=earlier["n"], by=earlier["outcome"])
            await self.release(claim, Outcome.BLOCKED)
            return None
        return claim

    @staticmethod
    def _claim_id(decision_id: str, n: int) -> str:
        return f"{decision_id}:{n}"

    async def _settle(self, decision_id: str, n: int, outcome: Outcome) -> None:
        await self._claims.update_one({"_id": self._claim_id(decision_id, n)}, {"$set": {"outcome": outcome.value}})

    async def _repair_sent(self, doc: dict[str, Any], now: datetime) -> None:
        # The ledger says sent but the record missed it (its update failed): the record follows the ledger.
        log.error("notification_record_repaired", decision_id=doc["_id"], state=doc["state"])
        await self._records.update_one(
            {"_id": doc["_id"], "state": {"$ne": State.SENT.value}},
            {"$set": {"state": State.SENT.value, "sent_at": doc.get("sent_at") or now, "reason": None, "updated_at": now}},
        )

    async def release(self, claim: Claim, outcome: Outcome) -> None:
        """Say what became of the claim; written before the record, so that the ledger is never behind it."""
        await self._settle(claim.decision_id, claim.n, outcome)

    async def update(
        self, claim: Claim, now: datetime, fields: dict[str, Any], attempt: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Write the claim holder's change (and the attempt it made) to the record."""
        update: dict[str, Any] = {"$set": {**fields, "claim_seq": claim.n, "updated_at": now}}
        if attempt is not None:
            update["$push"] = {"attempts": attempt}
        return await self._records.find_one_and_update({"_id": claim.decision_id}, update, return_document=ReturnDocument.AFTER)

    async def settle_stale(self, doc: dict[str, Any], now: datetime) -> State:
        """A record left in ``sending``: its claim says what happened; when it says nothing, the outcome is unknown."""
        n = (doc.get("claim") or {}).get("n")
        claim = await self._claims.find_one({"_id": self._claim_id(doc["_id"], n)}) if n else None
        outcome = claim["outcome"] if claim else Outcome.CLAIMED.value
        if outcome == Outcome.SENT.value:
            await self._repair_sent(doc, now)
            return State.SENT
        if outcome == Outcome.FAILED.value:  # nothing went out: try again
            fields = {"state": State.FAILED.value, "due_at": now}
        elif outcome == Outcome.GIVEN_UP.value:
            fields = {"state": State.GIVEN_UP.value, "reason": doc.get("reason") or "gave up (recovered record)"}
        else:
            fields = {"state": State.UNKNOWN.value, "reason": "interrupted while sending: it may or may not have arrived"}
            if n:
                await self._settle(doc["_id"], n, Outcome.UNKNOWN)
        await self._records.update_one({"_id": doc["_id"], "state": State.SENDING.value}, {"$set": {**fields, "updated_at": now}})
        return State(fields["state"])

    async def mark_published(self, decision_id: str) -> None:
        await self._records.update_one({"_id": decision_id}, {"$set": {"event_published": True}})

    async def get(self, decision_id: str) -> dict[str, Any] | None:
        return await self._records.find_one({"_id": decision_id})

    async def page(self, state: State | None, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
        """Records, newest first, with the number matching."""
        query = {"state": state.value} if state else {}
        total = await self._records.count_documents(query)
        docs = await self._records.find(query).sort("created_at", DESCENDING).skip(offset).limit(limit).to_list(None)
        return total, docs

    async def counts(self) -> dict[str, int]:
        """Number of records in each state."""
        rows = await (await self._records.aggregate([{"$group": {"_id": "$state", "n": {"$sum": 1}}}])).to_list(None)
        return {row["_id"]: row["n"] for row in rows}

    async def resend(self, decision_id: str, staff: str, now: datetime) -> dict[str, Any] | None:
        """Put an unknown or given-up record back to pending with a fresh budget of attempts; None when it does not exist."""
        doc = await self.get(decision_id)
        if doc is None:
            return None
        if doc["state"] not in RESENDABLE:
            raise NotResendable(doc["state"])
        claim = doc.get("claim") or {}
        if claim.get("n"):  # the interrupted claim is settled by this decision of staff
            await self._claims.update_one(
                {"_id": self._claim_id(decision_id, claim["n"]), "outcome": Outcome.CLAIMED.value},
                {"$set": {"outcome": Outcome.UNKNOWN.value}},
            )
        updated = await self._records.find_one_and_update(
            {"_id": decision_id, "state": doc["state"]},
            {
                "$set": {
                    "state": State.PENDING.value,
                    "due_at": now,
                    "waiting_for": None,
                    "reason": None,
                    "claim": None,
                    "attempts_base": len(doc.get("attempts", [])),
                    "updated_at": now,
                },
                "$push": {"resends": {"at": now, "by": staff, "from_state": doc["state"]}},
            },
            return_document=ReturnDocument.AFTER,
        )
        if updated is None:
            raise NotResendable("changed meanwhile")
        return updated
