"""Duplicates and clusters over the whole campaign: each suggestion is compared with earlier ones that share a
person, a named object, a village or the exact text, and joins the cluster of the first it matches."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from minsheng_classifier.similarity import Comparer, Fingerprint, bigrams
from minsheng_classifier.text import compact, normalise
from minsheng_core.batching import BulkWrites


@dataclass(frozen=True)
class Placement:
    cluster_id: str
    duplicate_of: str | None


# What a posting keeps of each suggestion sharing its key, and of how many (the earliest). Two suggestions with the
# same text are duplicates whatever else: the first is enough. A shared named object decides without the text; the
# same person or the same village and category are compared on the text, so those keep its beginning.
_POSTING_CAPACITY = {"text": 1, "person": 20, "object": 50, "village": 50}
_WITH_TEXT = {"person", "village"}
_TEXT_KEPT = 300  # characters of normalised text: what the comparison of two suggestions needs


def posting_keys(fingerprint: Fingerprint, text_hash: str) -> list[tuple[str, str]]:
    """(kind, key) of what two suggestions must share to be compared at all: the exact text, the person, a named
    object, or the village together with the category (a match by place alone needs the same topic)."""
    keys = [("text", f"text:{text_hash}")]
    if fingerprint.person:
        keys.append(("person", f"person:{fingerprint.person}"))
    keys += [("object", f"object:{name}") for name in sorted(fingerprint.objects)]
    if fingerprint.village:
        keys.append(("village", f"village:{fingerprint.unit or ''}|{fingerprint.village}|{fingerprint.category or ''}"))
    return keys


class ClusterIndex:
    """The classifier's fingerprints (compacted text, unit, village, person key, named objects), by suggestion id, and
    its postings: for each thing suggestions can share, the earliest ones that share it, with their fingerprints.

    Every read and write is by ``_id``: finding the candidates costs one read of a small document per shared thing,
    however many suggestions the campaign has (a query on the fingerprints' fields would scan them all in FerretDB,
    which filters only ``_id`` in SQLite, and a posting of hundreds of full texts costs tens of milliseconds to read).
    A posting keeps the earliest suggestions up to its capacity; later ones are still compared with those, which is
    where the cluster's first members are. New postings and fingerprints of concurrent placements are inserted
    together, one command for many placements.
    """

    def __init__(self, db: AsyncDatabase, comparer: Comparer) -> None:
        self._fingerprints = db.classifier_fingerprints
        self._postings = db.classifier_postings
        self.comparer = comparer
        # FerretDB rewrites a document without a transaction: appends to one posting run one after another here.
        self._locks = [asyncio.Lock() for _ in range(64)]
        # The writes of concurrent placements go as one command per collection.
        self._write_postings = BulkWrites(self._postings)
        self._write_fingerprints = BulkWrites(self._fingerprints)

    async def place(self, suggestion_id: str, fingerprint: Fingerprint, submitted_at: datetime) -> Placement:
        """Cluster and duplicate of a suggestion; the same suggestion always gets the same answer."""
        # No look for a stored answer first: a redelivery computes again and posts nothing twice (its id is already in
        # the postings it was first placed in); its fingerprint collides with the stored one, whose answer it returns.
        # Classified by a newer model meanwhile, it may also enter a posting of its new category; the answer stands.
        text_hash = hashlib.sha256(compact(fingerprint.text).encode()).hexdigest()
        keys = posting_keys(fingerprint, text_hash)
        # Its postings stay locked from reading to posting: two suggestions about one thing placed at once in this
        # process see each other, and each posting is read once.
        async with self._locked([key for _, key in keys]):
            found = await asyncio.gather(*(self._postings.find_one({"_id": key}) for _, key in keys))
            postings = {key: posting for (_, key), posting in zip(keys, found, strict=True)}
            candidates: dict[str, dict[str, Any]] = {}
            for kind, key in keys:
                for entry in (postings[key] or {}).get("entries", []):
                    if entry["id"] != suggestion_id:  # itself: a redelivery, or posted before a crash cut it short
                        merged = candidates.setdefault(entry["id"], entry)  # found by several keys: what each knows
                        merged.update({k: v for k, v in entry.items() if v is not None})
                        merged["exact"] = merged.get("exact", False) or kind == "text"
            placement = self._compare(suggestion_id, fingerprint, candidates.values())
            entry = {
                "id": suggestion_id,
                "unit": fingerprint.unit,
                "village": fingerprint.village,
                "person": fingerprint.person,
                "category": fingerprint.category,
                "objects": sorted(fingerprint.objects),
                "submitted_at": submitted_at,
                "cluster_id": placement.cluster_id,
                "duplicate_of": placement.duplicate_of,
            }
            text = normalise(fingerprint.text)
            # posted before the fingerprint is stored: a stored fingerprint means it is complete
            posts = [
                (key, _POSTING_CAPACITY[kind], entry | ({"text": text[:_TEXT_KEPT]} if kind in _WITH_TEXT else {}))
                for kind, key in keys
            ]
            await self._post(posts, postings)
        try:
            await self._write_fingerprints(InsertOne({"_id": suggestion_id, "text": text, "text_hash": text_hash, **entry}))
        except DuplicateKeyError:  # placed before (a redelivery, or one racing us): the first answer stands
            known = await self._fingerprints.find_one({"_id": suggestion_id})
            return Placement(known["cluster_id"], known.get("duplicate_of"))
        return placement

    @contextlib.asynccontextmanager
    async def _locked(self, keys: list[str]) -> AsyncIterator[None]:
        """The locks of these postings, taken in one order so that two placements never wait for each other."""
        async with contextlib.AsyncExitStack() as stack:
            for stripe in sorted({zlib.crc32(key.encode()) % len(self._locks) for key in keys}):
                await stack.enter_async_context(self._locks[stripe])
            yield

    def _compare(self, suggestion_id: str, fingerprint: Fingerprint, candidates: Any) -> Placement:
        """The first earlier suggestion it duplicates, else the first about the same thing, else a cluster of its own."""
        same = None
        for entry in sorted(candidates, key=lambda e: (e["submitted_at"], e["id"])):
            if entry.get("exact"):  # the same text
                verdict = "duplicate"
            else:
                text = entry.get("text", "")  # its named objects as found in its full text: not searched again
                earlier = Fingerprint(
                    text, entry.get("unit"), entry.get("village"), entry.get("person"), entry.get("category"),
                    bigrams(text), frozenset(entry.get("objects", ())),
                )  # fmt: skip
                verdict = self.comparer.relation(fingerprint, earlier)
            if verdict == "duplicate":
                return Placement(entry["cluster_id"], entry.get("duplicate_of") or entry["id"])
            if verdict == "same_thing" and same is None:
                same = entry
        return Placement(same["cluster_id"], None) if same is not None else Placement(suggestion_id, None)

    async def _post(self, posts: list[tuple[str, int, dict[str, Any]]], postings: dict[str, dict[str, Any] | None]) -> None:
        """Post an entry under each key: (key, capacity, entry), with the postings as read under their locks."""
        # With the postings' locks held (FerretDB rewrites a document without a transaction). Written by _id alone:
        # FerretDB looks up only a bare {_id} filter by index and scans the collection for any other. A posting that is
        # full or already holds this suggestion (a redelivery) stays as is.
        await asyncio.gather(*(self._post_one(key, capacity, entry, postings[key]) for key, capacity, entry in posts))

    async def _post_one(self, key: str, capacity: int, entry: dict[str, Any], posting: dict[str, Any] | None) -> None:
        if posting is None:
            try:
                await self._write_postings(InsertOne({"_id": key, "entries": [entry], "ids": [entry["id"]], "size": 1}))
                return
            except DuplicateKeyError:  # another replica posted first
                posting = await self._postings.find_one({"_id": key}, {"ids": 1, "size": 1})
        if posting["size"] < capacity and entry["id"] not in posting["ids"]:
            await self._write_postings(
                UpdateOne({"_id": key}, {"$push": {"entries": entry, "ids": entry["id"]}, "$inc": {"size": 1}})
            )
