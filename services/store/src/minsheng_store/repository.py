"""Suggestions in MongoDB: idempotent, order-independent writes from events, and staff queries."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pymongo import ASCENDING, DESCENDING, InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from minsheng_core import erasures
from minsheng_core.batching import BulkWrites, GroupCommit
from minsheng_core.events import (
    Attachment,
    Decision,
    Notification,
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
        # The writes, look-ups of tombstones and sealed contacts of concurrent handlers go as one command each.
        self._writes = BulkWrites(self._suggestions)
        self._personal_writes = BulkWrites(self._personal)
        self._erased: GroupCommit[str, bool] = GroupCommit(self._erased_among)
        self.tallies = Tallies(db, zone or ZoneInfo("Asia/Shanghai"), self._lock, self._writes)

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

    async def apply_received(self, event: SuggestionReceived) -> None:
        """Write the suggestion's content; a redelivery sets the same values again."""
        async with self._lock(event.suggestion_id):
            # Erased on request (tombstone): a redelivery brings back neither the contact nor a number typed in the text.
            erased = await self._erased.submit(event.suggestion_id)
            personal = event.personal.model_dump(exclude_none=True)
            if personal and not erased:
                if self._vault is None:
                    raise RuntimeError("contact data arrived but the repository has no vault to seal it")
                sealed = sealed_fields(self._vault, personal)  # nothing in clear: sealed values and look-up hashes
                await self._personal_writes(
                    UpdateOne({"_id": event.suggestion_id}, {"$set": {**sealed, "updated_at": datetime.now(UTC)}}, upsert=True)
                )
            try:  # the content usually comes first: inserted without reading, the rare collision is read and merged
                await self._change(event.suggestion_id, lambda doc: received(doc, event, erased), known_new=True)
            except DuplicateKeyError:
                await self._change(event.suggestion_id, lambda doc: received(doc, event, erased))

    async def _erased_among(self, suggestion_ids: list[str]) -> list[bool]:
        erased = await erasures.erased_among(self._db, suggestion_ids)
        return [sid in erased for sid in suggestion_ids]

    async def apply_classified(self, event: SuggestionClassified) -> None:
        """Record a classification unless a newer one is already there; works before the suggestion exists."""
        async with self._lock(event.suggestion_id):
            await self._change(event.suggestion_id, lambda doc: classified(doc, event))

    async def apply_corrected(self, event: SuggestionCorrected) -> None:
        """Record a staff correction; the corrected values count from now on, whatever the model says later."""
        async with self._lock(event.suggestion_id):
            await self._change(event.suggestion_id, lambda doc: corrected(doc, event), create=False)

    async def apply_attachment_added(self, event: SuggestionAttachmentAdded) -> None:
        """Attach a picture or recording; works before the suggestion itself arrives, and twice is once."""
        async with self._lock(event.suggestion_id):
            await self._change(event.suggestion_id, lambda doc: add_attachment(touched(doc), event.body))

    async def apply_decided(self, event: SuggestionDecided) -> None:
        """Record a released decision: kept in the suggestion's history once per decision_id, and the current one
        unless a later release is already there (redelivered or out of order, the result is the same)."""
        async with self._lock(event.suggestion_id):
            await self._change(event.suggestion_id, lambda doc: decided(touched(doc), event.body))

    async def apply_notified(self, event: NotificationSent) -> None:
        """Record that the submitter was told of a decision on a channel; once per (decision, channel)."""
        async with self._lock(event.suggestion_id):
            await self._change(event.suggestion_id, lambda doc: notified(touched(doc), event.body))

    async def _change(
        self, suggestion_id: str, change: Callable[[dict[str, Any]], None], create: bool = True, known_new: bool = False
    ) -> None:
        """Read the suggestion, change it in memory, write back what changed and record the tally move it makes:
        one read and one write per event, which the suggestion's lock (held by the caller) keeps from interleaving.
        ``known_new``: assume there is none yet and insert it without reading (DuplicateKeyError if there was)."""
        before = None if known_new else await self._suggestions.find_one({"_id": suggestion_id})
        if before is None and not create:
            return
        after = copy.deepcopy(before) if before is not None else {"_id": suggestion_id}
        change(after)
        moves = self.tallies.plan(before, after)
        if before is None:
            await self._writes(InsertOne(after))
        else:
            update: dict[str, Any] = {}
            if changed := {k: v for k, v in after.items() if k != "_id" and (k not in before or before[k] != v)}:
                update["$set"] = changed
            if removed := {k: "" for k in before if k not in after}:
                update["$unset"] = removed
            if update:
                await self._writes(UpdateOne({"_id": suggestion_id}, update))
        await self.tallies.record(moves)

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


# -- what each event does to a suggestion document (pure: the repository reads and writes around them) ----------------


def touched(doc: dict[str, Any]) -> dict[str, Any]:
    """A document any event may create first: until its content arrives it is "pending" (not listed, not counted)."""
    now = datetime.now(UTC)
    doc.setdefault("status", PENDING)
    doc.setdefault("created_at", now)
    doc["updated_at"] = now
    return doc


def promote(doc: dict[str, Any]) -> None:
    """Whichever of content and classification lands second moves the status on."""
    if doc.get("status") == RECEIVED and "classification" in doc:
        doc["status"] = CLASSIFIED


def received(doc: dict[str, Any], event: SuggestionReceived, erased: bool) -> None:
    """The suggestion's content; numbers typed into the text stay redacted once its personal data was erased."""
    body = event.body
    title, text = body.title, body.text
    if erased:
        title = redact_phone_numbers(title)[0] if title else title
        text = redact_phone_numbers(text)[0]
    touched(doc)
    doc.update(
        {
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
        }
    )
    # Apart from the content: a later completion (transcribed, described) must not be undone by a redelivery.
    doc.setdefault("awaiting", body.awaiting)
    for attachment in body.attachments:
        add_attachment(doc, attachment)
    if doc["status"] == PENDING:
        doc["status"] = RECEIVED
    promote(doc)


def add_attachment(doc: dict[str, Any], attachment: Attachment) -> None:
    """Keyed by the message that carried it, so a redelivery (same ref) never adds a second copy."""
    attachments = doc.setdefault("attachments", [])
    if all(a.get("channel_ref") != attachment.channel_ref for a in attachments):
        attachments.append(attachment.model_dump(exclude_none=True))


def classified(doc: dict[str, Any], event: SuggestionClassified) -> None:
    """The model's verdict, unless a newer one is there; a staff correction keeps its values whatever the model says."""
    verdict = event.body
    current = doc.get("classification")
    if current is not None and current["classified_at"] > verdict.classified_at:
        return  # stale: a newer model's verdict is already there
    touched(doc)
    doc["classification"] = verdict.model_dump(mode="python")
    doc.update({"cluster_id": verdict.cluster_id, "duplicate_of": verdict.duplicate_of})
    correction = doc.get("correction")
    if correction is None:
        doc["needs_review"] = verdict.needs_review
    if "category" not in (correction or {}):
        doc["category"] = verdict.category
    if "unit" not in (correction or {}):
        doc["unit"] = verdict.unit
    promote(doc)


def corrected(doc: dict[str, Any], event: SuggestionCorrected) -> None:
    """A staff correction, unless a later one is there; it merges with earlier corrections of the other field."""
    correction = event.body
    current = doc.get("correction")
    if current is not None and current.get("corrected_at") is not None and current["corrected_at"] > correction.corrected_at:
        return
    doc.update({"needs_review": False, "updated_at": datetime.now(UTC)})
    record = doc.setdefault("correction", {})
    for name in ("category", "unit"):
        value = getattr(correction, name)
        if value is not None:
            doc[name] = value
            record[name] = value
    record.update({"corrected_by": correction.corrected_by, "note": correction.note, "corrected_at": correction.corrected_at})


def decided(doc: dict[str, Any], decision: Decision) -> None:
    """Kept once per decision_id; the later release is the current one, on the same instant the larger decision_id,
    so that every replica agrees."""
    record = decision.model_dump(mode="python", include=_DECISION_FIELDS)
    record["outcome"] = decision.outcome.value
    record["reason"] = decision.reason.value if decision.reason else None
    if decision.decision_id not in doc.setdefault("decision_ids", []):
        doc["decision_ids"].append(decision.decision_id)
        doc.setdefault("decisions", []).append(record)
    current = doc.get("decision")
    if (
        current is None
        or current["released_at"] < decision.released_at
        or (current["released_at"] == decision.released_at and current["decision_id"] <= decision.decision_id)
    ):
        doc["decision"] = record


def notified(doc: dict[str, Any], notification: Notification) -> None:
    """The submitter told of a decision on a channel; once per (decision, channel)."""
    key = f"{notification.decision_id}|{notification.channel.value}"
    if key not in doc.setdefault("notification_keys", []):
        doc["notification_keys"].append(key)
        doc.setdefault("notifications", []).append(
            {
                "decision_id": notification.decision_id,
                "channel": notification.channel.value,
                "attempts": notification.attempts,
                "sent_at": notification.sent_at,
            }
        )
