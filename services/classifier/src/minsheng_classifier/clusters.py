"""Duplicates and clusters over the whole campaign: each suggestion is compared with earlier ones that share a
person, a named object, a village or the exact text, and joins the cluster of the first it matches."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from minsheng_classifier.similarity import Comparer, Fingerprint
from minsheng_classifier.text import compact, normalise


@dataclass(frozen=True)
class Placement:
    cluster_id: str
    duplicate_of: str | None


class ClusterIndex:
    """The classifier's own collection of fingerprints (compacted text, unit, village, person key, named objects)."""

    def __init__(self, collection: AsyncCollection, comparer: Comparer, candidate_limit: int = 300) -> None:
        self._fingerprints = collection
        self.comparer = comparer
        self._limit = candidate_limit

    async def ensure_indexes(self) -> None:
        for keys in ("text_hash", "person", "objects", "submitted_at"):
            await self._fingerprints.create_index([(keys, ASCENDING)])
        await self._fingerprints.create_index([("unit", ASCENDING), ("village", ASCENDING)])

    async def place(self, suggestion_id: str, fingerprint: Fingerprint, submitted_at: datetime) -> Placement:
        """Cluster and duplicate of a suggestion; the same suggestion always gets the same answer."""
        known = await self._fingerprints.find_one({"_id": suggestion_id})
        if known is not None:
            return Placement(known["cluster_id"], known.get("duplicate_of"))
        text_hash = hashlib.sha256(compact(fingerprint.text).encode()).hexdigest()
        clauses: list[dict] = [{"text_hash": text_hash}]
        if fingerprint.person:
            clauses.append({"person": fingerprint.person})
        if fingerprint.objects:
            clauses.append({"objects": {"$in": sorted(fingerprint.objects)}})
        if fingerprint.village:
            clauses.append({"unit": fingerprint.unit, "village": fingerprint.village})
        cursor = self._fingerprints.find({"$or": clauses}).sort([("submitted_at", ASCENDING), ("_id", ASCENDING)])
        duplicate = same = None
        async for doc in cursor.limit(self._limit):
            earlier = self.comparer.fingerprint(
                doc["text"], doc.get("unit"), doc.get("village"), doc.get("person"), doc.get("category")
            )
            verdict = self.comparer.relation(fingerprint, earlier)
            if verdict == "duplicate":
                duplicate = doc
                break
            if verdict == "same_thing" and same is None:
                same = doc
        if duplicate is not None:
            placement = Placement(duplicate["cluster_id"], duplicate.get("duplicate_of") or duplicate["_id"])
        elif same is not None:
            placement = Placement(same["cluster_id"], None)
        else:
            placement = Placement(suggestion_id, None)
        try:
            await self._fingerprints.insert_one(
                {
                    "_id": suggestion_id,
                    "text": normalise(fingerprint.text),
                    "text_hash": text_hash,
                    "unit": fingerprint.unit,
                    "village": fingerprint.village,
                    "person": fingerprint.person,
                    "category": fingerprint.category,
                    "objects": sorted(fingerprint.objects),
                    "submitted_at": submitted_at,
                    "cluster_id": placement.cluster_id,
                    "duplicate_of": placement.duplicate_of,
                }
            )
        except DuplicateKeyError:  # a redelivery raced us: the first answer stands
            known = await self._fingerprints.find_one({"_id": suggestion_id})
            return Placement(known["cluster_id"], known.get("duplicate_of"))
        return placement
