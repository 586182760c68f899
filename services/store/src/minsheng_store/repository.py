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

from minsheng_core.events import (
    Attachment,
    SuggestionAttachmentAdded,
    SuggestionClassified,
    SuggestionCorrected,
    SuggestionReceived,
    full_text,
)
from minsheng_store.locks import StripedLocks
from minsheng_store.tallies import Tallies

# Status of a suggestion document. "pending": only its classification has arrived so far.
PENDING, RECEIVED, CLASSIFIED = "pending", "received", "classified"


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


class SuggestionRepository:
    """The suggestions and personal_data collections; personal data never shares a document with the text."""

    def __init__(self, db: AsyncDatabase, zone: ZoneInfo | None = None) -> None:
        self._suggestions = db.suggestions
        self._personal = db.personal_data
        self._lock = StripedLocks()
        self.tallies = Tallies(db, zone or ZoneInfo("Asia/Shanghai"))

    async def ensure_indexes(self) -> None:
        """Create the indexes the writes and staff queries rely on; idempotent."""
        await self._suggestions.create_index("tracking_code", unique=True, sparse=True)
        await self._suggestions.create_index([("channel", ASCENDING), ("channel_ref", ASCENDING)], unique=True, sparse=True)
        await self._suggestions.create_index([("submitted_at", DESCENDING)])
        await self._suggestions.create_index([("category", ASCENDING), ("channel", ASCENDING)])
        await self._suggestions.create_index([("unit", ASCENDING), ("submitted_at", DESCENDING)])
        await self._suggestions.create_index([("cluster_id", ASCENDING)])
        await self._suggestions.create_index([("status", ASCENDING)])
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
        await self._suggestions.update_one(
            {"_id": event.suggestion_id},
            {
                "$set": {
                    "tracking_code": body.tracking_code,
                    "channel": body.channel.value,
                    "channel_ref": body.channel_ref,
                    "campaign": body.campaign,
                    "title": body.title,
                    "text": body.text,
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
        if personal:
            await self._personal.update_one({"_id": event.suggestion_id}, {"$set": {**personal, "updated_at": now}}, upsert=True)
        await self._suggestions.update_one({"_id": event.suggestion_id, "status": PENDING}, {"$set": {"status": RECEIVED}})
        await self._promote(event.suggestion_id)

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
