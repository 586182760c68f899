"""Duplicates and clusters over the whole campaign: each suggestion is compared with earlier ones that share a
person, a named object, a village or the exact text, and joins the cluster of the first it matches."""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from minsheng_classifier.similarity import Comparer, Fingerprint
from minsheng_classifier.text import compact, normalise


@dataclass(frozen=True)
class Placement:
    cluster_id: str
    duplicate_of: str | None


def posting_keys(fingerprint: Fingerprint, text_hash: str) -> list[str]:
    """What two suggestions must share to be compared at all: the exact text, the person, a named object, the village."""
    keys = [f"text:{text_hash}"]
    if fingerprint.person:
        keys.append(f"person:{fingerprint.person}")
    keys += [f"object:{name}" for name in sorted(fingerprint.objects)]
    if fingerprint.village:
        keys.append(f"village:{fingerprint.unit or ''}|{fingerprint.village}")
    return keys


class ClusterIndex:
    """The classifier's fingerprints (compacted text, unit, village, person key, named objects), by suggestion id, and
    its postings: for each thing suggestions can share, the earliest ones that share it, with their fingerprints.

    Every read and write is by ``_id``: finding the candidates costs one read per shared thing, however many
    suggestions the campaign has (a query on the fingerprints' fields would scan them all in FerretDB, which filters
    only ``_id`` in SQLite). A posting keeps the first ``candidate_limit`` suggestions; later ones are still compared
    with those, which is where the cluster's first members are.
    """

    def __init__(self, db: AsyncDatabase, comparer: Comparer, candidate_limit: int = 300) -> None:
        self._fingerprints = db.classifier_fingerprints
        self._postings = db.classifier_postings
        self.comparer = comparer
        self._limit = candidate_limit
        # FerretDB rewrites a document without a transaction: appends to one posting run one after another here.
        self._locks = [asyncio.Lock() for _ in range(64)]

    async def ensure_indexes(self) -> None:
        """Nothing to index: fingerprints and postings are read by ``_id`` only."""
        return None

    async def place(self, suggestion_id: str, fingerprint: Fingerprint, submitted_at: datetime) -> Placement:
        """Cluster and duplicate of a suggestion; the same suggestion always gets the same answer."""
        known = await self._fingerprints.find_one({"_id": suggestion_id})
        if known is not None:
            return Placement(known["cluster_id"], known.get("duplicate_of"))
        text_hash = hashlib.sha256(compact(fingerprint.text).encode()).hexdigest()
        keys = posting_keys(fingerprint, text_hash)
        candidates: dict[str, dict[str, Any]] = {}
        for key in keys:
            posting = await self._postings.find_one({"_id": key})
            for entry in (posting or {}).get("entries", []):
                if entry["id"] != suggestion_id:  # itself, posted before a crash cut the placement short
                    candidates[entry["id"]] = entry
        placement = self._compare(suggestion_id, fingerprint, candidates.values())
        entry = {
            "id": suggestion_id,
            "text": normalise(fingerprint.text),
            "unit": fingerprint.unit,
            "village": fingerprint.village,
            "person": fingerprint.person,
            "category": fingerprint.category,
            "submitted_at": submitted_at,
            "cluster_id": placement.cluster_id,
            "duplicate_of": placement.duplicate_of,
        }
        for key in keys:  # posted before the fingerprint is stored: a stored fingerprint means the placement is complete
            await self._post(key, entry)
        try:
            await self._fingerprints.insert_one({"_id": suggestion_id, "text_hash": text_hash, **entry})
        except DuplicateKeyError:  # a redelivery raced us: the first answer stands
            known = await self._fingerprints.find_one({"_id": suggestion_id})
            return Placement(known["cluster_id"], known.get("duplicate_of"))
        return placement

    def _compare(self, suggestion_id: str, fingerprint: Fingerprint, candidates: Any) -> Placement:
        """The first earlier suggestion it duplicates, else the first about the same thing, else a cluster of its own."""
        same = None
        for entry in sorted(candidates, key=lambda e: (e["submitted_at"], e["id"]))[: self._limit]:
            earlier = self.comparer.fingerprint(
                entry["text"], entry.get("unit"), entry.get("village"), entry.get("person"), entry.get("category")
            )
            verdict = self.comparer.relation(fingerprint, earlier)
            if verdict == "duplicate":
                return Placement(entry["cluster_id"], entry.get("duplicate_of") or entry["id"])
            if verdict == "same_thing" and same is None:
                same = entry
        return Placement(same["cluster_id"], None) if same is not None else Placement(suggestion_id, None)

    async def _post(self, key: str, entry: dict[str, Any]) -> None:
        # Once full, or once it holds this suggestion (a redelivery), the filter no longer matches and the upsert
        # collides with the posting: nothing changes.
        async with self._locks[zlib.crc32(key.encode()) % len(self._locks)]:
            try:
                await self._postings.update_one(
                    {"_id": key, "size": {"$lt": self._limit}, "ids": {"$ne": entry["id"]}},
                    {"$push": {"entries": entry, "ids": entry["id"]}, "$inc": {"size": 1}},
                    upsert=True,
                )
            except DuplicateKeyError:
                pass
