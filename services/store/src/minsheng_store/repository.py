"""Suggestions in MongoDB: idempotent, order-independent writes from events, and staff queries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from minsheng_core import erasures
from minsheng_core.events import (
    Attachment,
    NotificationSent,
    SuggestionAttachmentAdded,
    SuggestionClassified,
    SuggestionCorrected,
    SuggestionDecided,
    SuggestionReceived,
    full_text,
)
from minsheng_core.personal import LOOKUP_FIELDS, PersonalDataVault, redact_phone_numbers, sealed_fields
from minsheng_store.locks import StripedLocks
from minsheng_store.tallies import Tallies

# Status of a suggestion document. "pending": only its classification has arrived so far.
PENDING, RECEIVED, CLASSIFIED = "pending", "received", "classified"
# What the store keeps of a released decision (in ``decision``, the current one, and in ``decisions``, every one).
_DECISION_FIELDS = {
    "decision_id", "outcome", "reason", "explanation", "project_id", "merged_into", "referred_to",
    "decided_by", "released_by", "released_at",
}  # fmt: skip


@dataclass(frozen=True)
class SuggestionFilter:
    """Staff list filters; every value is matched literally, never as a query operator."""

    category: str | None = None
    channel: str | None = None
    unit: str | None = None
    status: str | None = None
    needs_review: bool | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None
    text_contains: str | None = None
    awaiting: str | None = None

    def to_query(self) -> dict[str, Any]:
        clauses: list[dict[str, Any]] = [{"status": {"$ne": PENDING}}]
        if self.category:
            clauses.append({"category": self.category})
        if self.channel:
            clauses.append({"channel": self.channel})
        if self.unit:
            clauses.append({"unit": self.unit})
        if self.status:
            clauses.append({"status": self.status})
        if self.needs_review is not None:
            clauses.append({"needs_review": self.needs_review})
        if self.received_from:
            clauses.append({"submitted_at": {"$gte": self.received_from}})
        if self.received_to:
            clauses.append({"submitted_at": {"$lt": self.received_to}})
        if self.text_contains:
            pattern = re.escape(self.text_contains)
            clauses.append({"$or": [{"text": {"$regex": pattern}}, {"title": {"$regex": pattern}}]})
        if self.awaiting:
            clauses.append({"awaiting": self.awaiting})
        return {"$and": clauses}


@dataclass(frozen=True)
class PersonalDataErased:
    """What an erasure did: when, whether contact data was there to remove, how many numbers left the text."""

    suggestion_id: str
    erased_at: datetime
    removed_contact: bool
    redacted_numbers: int


class SuggestionRepository:
    """The suggestions and personal_data collections; personal data never shares a document with the text."""

    def __init__(self, db: AsyncDatabase, zone: ZoneInfo | None = None, vault: PersonalDataVault | None = None) -> None:
        self._db = db
        self._suggestions = db.suggestions
        self._personal = db.personal_data
        self._vault = vault  # seals contact data; without one, a suggestion that carries contact data is refused
        self._lock = StripedLocks(leases=db.store_locks, scope="suggestion")  # one writer per suggestion, all replicas
        self.tallies = Tallies(db, zone or ZoneInfo("Asia/Shanghai"))

    async def ensure_indexes(self) -> None:
        """Create the indexes the writes and staff queries rely on; idempotent."""
        await self._suggestions.create_index("tracking_code", unique=True, sparse=True)
        await self._suggestions.create_index([("channel", ASCENDING), ("channel_ref", ASCENDING)], unique=True, sparse=True)
        await self._suggestions.create_index([("submitted_at", DESCENDING)])
        await self._suggestions.create_index([("category", ASCENDING), ("channel", ASCENDING)])
        await self._suggestions.create_index([("unit", ASCENDING), ("submitted_at", DESCENDING)])
        await self._suggestions.create_index([("cluster_id", ASCENDING)])
        await self._suggestions.create_index([("decision.project_id", ASCENDING)], sparse=True)
        await self._suggestions.create_index([("status", ASCENDING)])
        for hashed in LOOKUP_FIELDS.values():
            await self._personal.create_index([(hashed, ASCENDING)])
        await erasures.ensure_indexes(self._db)
        await self.tallies.ensure_indexes()

    async def apply_received(self, event: SuggestionReceived) -> None:
        """Upsert the suggestion's content; a redelivery sets the same values again."""
        async with self._lock(event.suggestion_id):
            await self._apply_received(event)
            await self.tallies.settle(event.suggestion_id)

    async def apply_classified(self, event: SuggestionClassified) -> None:
        """Record a classification unless a newer one is already there; works before the suggestion exists."""
        async with self._lock(event.suggestion_id):
            await self._apply_classified(event)
            await self.tallies.settle(event.suggestion_id)

    async def apply_corrected(self, event: SuggestionCorrected) -> None:
        """Record a staff correction; the corrected values count from now on, whatever the model says later."""
        async with self._lock(event.suggestion_id):
            await self._apply_corrected(event)
            await self.tallies.settle(event.suggestion_id)

    async def _apply_received(self, event: SuggestionReceived) -> None:
        body = event.body
        now = datetime.now(UTC)
        # Erased on request (tombstone): a redelivery brings back neither the contact nor a number typed in the text.
        erased = await erasures.is_erased(self._db, event.suggestion_id)
        title, text = body.title, body.text
        if erased:
            title = redact_phone_numbers(title)[0] if title else title
            text = redact_phone_numbers(text)[0]
        await self._suggestions.update_one(
            {"_id": event.suggestion_id},
            {
                "$set": {
                    "tracking_code": body.tracking_code,
                    "channel": body.channel.value,
                    "channel_ref": body.channel_ref,
                    "campaign": body.campaign,
                    "title": title,
                    "text": text,
                    "location": body.location.model_dump(),
                    "submitter_group": body.submitter_group.value,
                    "channel_unit": body.unit,
                    "account": body.account,
                    "submitted_at": body.submitted_at,
                    "received_event_id": str(event.event_id),
                    "updated_at": now,
                },
                "$setOnInsert": {"status": RECEIVED, "created_at": now},
            },
            upsert=True,
        )
        # Apart from the content: a later completion (transcribed, described) must not be undone by a redelivery.
        await self._suggestions.update_one(
            {"_id": event.suggestion_id, "awaiting": {"$exists": False}}, {"$set": {"awaiting": body.awaiting}}
        )
        for attachment in body.attachments:
            await self._add_attachment(event.suggestion_id, attachment)
        personal = event.personal.model_dump(exclude_none=True)
        if personal and not erased:
            if self._vault is None:
                raise RuntimeError("contact data arrived but the repository has no vault to seal it")
            sealed = sealed_fields(self._vault, personal)  # nothing in clear: sealed values and look-up hashes
            await self._personal.update_one({"_id": event.suggestion_id}, {"$set": {**sealed, "updated_at": now}}, upsert=True)
        await self._suggestions.update_one({"_id": event.suggestion_id, "status": PENDING}, {"$set": {"status": RECEIVED}})
        await self._promote(event.suggestion_id)

    async def erase_personal_data(self, suggestion_id: str, erased_by: str) -> PersonalDataErased:
        """Erase a suggestion's contact data and the phone numbers typed into it; the suggestion itself stays.
        The tombstone is written first, under the suggestion's lock, so that no redelivery brings anything back."""
        async with self._lock(suggestion_id):
            erased_at = await erasures.record_erasure(self._db, suggestion_id, erased_by)
            removed = (await self._personal.delete_one({"_id": suggestion_id})).deleted_count == 1
            doc = await self._suggestions.find_one({"_id": suggestion_id}, {"title": 1, "text": 1}) or {}
            title, in_title = redact_phone_numbers(doc["title"]) if doc.get("title") else (doc.get("title"), 0)
            text, in_text = redact_phone_numbers(doc.get("text") or "")
            update: dict[str, Any] = {"$set": {"personal_data_erased_at": erased_at}}
            if in_title + in_text:
                update["$set"] |= {"title": title, "text": text}
                update["$inc"] = {"redacted_phone_numbers": in_title + in_text}  # the note that the text was redacted
            await self._suggestions.update_one({"_id": suggestion_id}, update)
        return PersonalDataErased(suggestion_id, erased_at, removed, in_title + in_text)

    async def apply_attachment_added(self, event: SuggestionAttachmentAdded) -> None:
        """Attach a picture or recording; works before the suggestion itself arrives, and twice is once."""
        async with self._lock(event.suggestion_id):
            now = datetime.now(UTC)
            await self._suggestions.update_one(
                {"_id": event.suggestion_id},
                {"$set": {"updated_at": now}, "$setOnInsert": {"status": PENDING, "created_at": now}},
                upsert=True,
            )
            await self._add_attachment(event.suggestion_id, event.body)

    async def _add_attachment(self, suggestion_id: str, attachment: Attachment) -> None:
        # Keyed by the message that carried it, so a redelivery (same ref) never adds a second copy.
        await self._suggestions.update_one(
            {"_id": suggestion_id, "attachments.channel_ref": {"$ne": attachment.channel_ref}},
            {"$push": {"attachments": attachment.model_dump(exclude_none=True)}},
        )

    async def apply_decided(self, event: SuggestionDecided) -> None:
        """Record a released decision: kept in the suggestion's history once per decision_id, and the current one
        unless a later release is already there (redelivered or out of order, the result is the same)."""
        decision = event.body
        record = decision.model_dump(mode="python", include=_DECISION_FIELDS)
        record["outcome"] = decision.outcome.value
        record["reason"] = decision.reason.value if decision.reason else None
        sid, released_at = event.suggestion_id, decision.released_at
        async with self._lock(sid):
            now = datetime.now(UTC)
            await self._suggestions.update_one(
                {"_id": sid}, {"$set": {"updated_at": now}, "$setOnInsert": {"status": PENDING, "created_at": now}}, upsert=True
            )
            # Keyed by a list of plain ids: FerretDB 1.x gets {"decisions.decision_id": {"$ne": …}} wrong past two items.
            await self._suggestions.update_one(
                {"_id": sid, "decision_ids": {"$ne": decision.decision_id}},
                {"$push": {"decisions": record, "decision_ids": decision.decision_id}},
            )
            # The later release wins; on the same instant the larger decision_id, so that every replica agrees.
            await self._suggestions.update_one(
                {
                    "_id": sid,
                    "$or": [
                        {"decision": {"$exists": False}},
                        {"decision.released_at": {"$lt": released_at}},
                        {"decision.released_at": released_at, "decision.decision_id": {"$lte": decision.decision_id}},
                    ],
                },
                {"$set": {"decision": record}},
            )

    async def apply_notified(self, event: NotificationSent) -> None:
        """Record that the submitter was told of a decision on a channel; once per (decision, channel)."""
        notification = event.body
        key = f"{notification.decision_id}|{notification.channel.value}"
        record = {
            "decision_id": notification.decision_id,
            "channel": notification.channel.value,
            "attempts": notification.attempts,
            "sent_at": notification.sent_at,
        }
        async with self._lock(event.suggestion_id):
            now = datetime.now(UTC)
            await self._suggestions.update_one(
                {"_id": event.suggestion_id},
                {"$set": {"updated_at": now}, "$setOnInsert": {"status": PENDING, "created_at": now}},
                upsert=True,
            )
            await self._suggestions.update_one(
                {"_id": event.suggestion_id, "notification_keys": {"$ne": key}},
                {"$push": {"notifications": record, "notification_keys": key}},
            )

    async def _apply_classified(self, event: SuggestionClassified) -> None:
        verdict = event.body
        classification = verdict.model_dump(mode="python")
        try:
            await self._suggestions.update_one(
                {
                    "_id": event.suggestion_id,
                    "$or": [
                        {"classification": {"$exists": False}},
                        {"classification.classified_at": {"$lte": event.body.classified_at}},
                    ],
                },
                {
                    "$set": {"classification": classification, "updated_at": datetime.now(UTC)},
                    "$setOnInsert": {"status": PENDING, "created_at": datetime.now(UTC)},
                },
                upsert=True,
            )
        except DuplicateKeyError:
            return  # the document holds a newer classification: this one is stale
        sid = event.suggestion_id
        links = {"cluster_id": verdict.cluster_id, "duplicate_of": verdict.duplicate_of}
        await self._suggestions.update_one({"_id": sid}, {"$set": links})
        # Each is one atomic conditional write: a correction made before or after never loses to the model.
        await self._suggestions.update_one(
            {"_id": sid, "correction": {"$exists": False}}, {"$set": {"needs_review": verdict.needs_review}}
        )
        await self._suggestions.update_one(
            {"_id": sid, "correction.category": {"$exists": False}}, {"$set": {"category": verdict.category}}
        )
        await self._suggestions.update_one({"_id": sid, "correction.unit": {"$exists": False}}, {"$set": {"unit": verdict.unit}})
        await self._promote(sid)

    async def _apply_corrected(self, event: SuggestionCorrected) -> None:
        correction = event.body
        fields: dict[str, Any] = {"needs_review": False, "updated_at": datetime.now(UTC)}
        for name in ("category", "unit"):
            value = getattr(correction, name)
            if value is not None:
                fields[name] = value
                fields[f"correction.{name}"] = value
        fields.update(
            {
                "correction.corrected_by": correction.corrected_by,
                "correction.note": correction.note,
                "correction.corrected_at": correction.corrected_at,
            }
        )
        await self._suggestions.update_one(
            {
                "_id": event.suggestion_id,
                "$or": [{"correction": {"$exists": False}}, {"correction.corrected_at": {"$lte": correction.corrected_at}}],
            },
            {"$set": fields},
        )

    async def _promote(self, suggestion_id: str) -> None:
        # Whichever event lands second sees both halves and moves the status on.
        await self._suggestions.update_one(
            {"_id": suggestion_id, "status": RECEIVED, "classification": {"$exists": True}},
            {"$set": {"status": CLASSIFIED}},
        )

    async def get(self, suggestion_id: str) -> dict[str, Any] | None:
        return await self._suggestions.find_one({"_id": suggestion_id, "status": {"$ne": PENDING}})

    async def list(self, filters: SuggestionFilter, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
        query = filters.to_query()
        total = await self._suggestions.count_documents(query)
        cursor = self._suggestions.find(query).sort([("submitted_at", DESCENDING), ("_id", ASCENDING)]).skip(offset).limit(limit)
        return total, await cursor.to_list(None)

    async def corrected_examples(self) -> list[dict[str, str]]:
        """Texts with a staff-corrected category, as training examples for the next model."""
        cursor = self._suggestions.find(
            {"correction.category": {"$exists": True}, "text": {"$exists": True}},
            {"title": 1, "text": 1, "correction.category": 1},
        ).sort("_id", ASCENDING)
        return [{"text": full_text(d.get("title"), d["text"]), "label": d["correction"]["category"]} async for d in cursor]
