"""Counts kept up to date as suggestions change, so that reports never scan the suggestions.

A day of the campaign (in its time zone) has ``SHARDS`` documents, ``<day>|<shard>``, holding counts by
"unit|category|channel"; a suggestion is always counted in the same shard (a hash of its id), so writers of one day
are spread over several documents instead of queueing for one. Each suggestion remembers where it is counted
(``tallied``); after every change the store moves it: −1 where it was, +1 where it now belongs. A report reads at
most ``SHARDS`` documents per day of the window, whatever the number of suggestions (and FerretDB, which filters
only by ``_id`` in SQLite, reads no more than that either).
A move is written down before it is made and made once (see ``settle``), so a crash halfway does not skew the counts.
``rebuild`` recounts from scratch (to check, or after losing the day documents); ``load`` writes known totals.
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from minsheng_store.locks import StripedLocks

SHARDS = 16
UNCLASSIFIED = "unclassified"
UNASSIGNED = "unassigned"


@dataclass(frozen=True)
class TallyKey:
    unit: str
    category: str
    channel: str
    day: str  # ISO date in the campaign's time zone

    @property
    def cell(self) -> str:
        """The key of the count within its day's document."""
        return f"{self.unit}|{self.category}|{self.channel}"

    def as_dict(self) -> dict[str, str]:
        return {"unit": self.unit, "category": self.category, "channel": self.channel, "day": self.day}


def key_of(doc: dict[str, Any], zone: ZoneInfo) -> TallyKey | None:
    """Where a suggestion document is counted, or None while it is not a suggestion yet (only its verdict arrived)."""
    if doc.get("status") in (None, "pending") or "submitted_at" not in doc:
        return None
    submitted: datetime = doc["submitted_at"]
    if submitted.tzinfo is None:
        submitted = submitted.replace(tzinfo=ZoneInfo("UTC"))
    return TallyKey(
        unit=doc.get("unit") or UNASSIGNED,
        category=doc.get("category") or UNCLASSIFIED,
        channel=doc["channel"],
        day=submitted.astimezone(zone).date().isoformat(),
    )


class Tallies:
    """The ``tallies`` collection and the moves that keep it equal to a count of the suggestions."""

    def __init__(self, db: AsyncDatabase, zone: ZoneInfo) -> None:
        self._days = db.daily_tallies
        self._suggestions = db.suggestions
        self._zone = zone
        self._lock = StripedLocks(leases=db.store_locks, scope="tally-day")

    async def ensure_indexes(self) -> None:
        """Nothing to index: documents are found by their day (the _id)."""
        return None

    async def settle(self, suggestion_id: str) -> None:
        """Count the suggestion where it belongs now; call with the suggestion's lock held, after each change.

        The move is written on the suggestion (``tally_move``) before any count changes, and a day's counts change in
        one write together with the move's mark: a move cut short (the store killed, a handler cancelled when the
        broker went away) is finished by the next settle, never applied twice.
        """
        doc = await self._suggestions.find_one({"_id": suggestion_id})
        if doc is None:
            return
        move = doc.get("tally_move")
        if move is None:
            now = key_of(doc, self._zone)
            move = {"id": uuid.uuid4().hex, "from": doc.get("tallied"), "to": now.as_dict() if now else None}
            if move["to"] == move["from"]:
                return
            await self._suggestions.update_one({"_id": suggestion_id}, {"$set": {"tally_move": move}})
        days: dict[str, dict[str, int]] = {}
        for side, delta in (("from", -1), ("to", 1)):
            if move[side]:
                key = TallyKey(**move[side])
                days.setdefault(key.day, {})[key.cell] = delta
        shard = zlib.crc32(suggestion_id.encode()) % SHARDS
        for day, cells in days.items():
            await self._add(f"{day}|{shard:02d}", cells, move["id"])
        done = {"$set": {"tallied": move["to"]}, "$unset": {"tally_move": ""}}
        await self._suggestions.update_one({"_id": suggestion_id}, done)
        for day in days:  # the marks are needed only while the move is unfinished
            document = f"{day}|{shard:02d}"
            async with self._lock(document):
                await self._days.update_one({"_id": document}, {"$unset": {f"moves.{move['id']}": ""}})
        if "tally_move" in doc:  # that move was left unfinished earlier: the suggestion may have changed since
            await self.settle(suggestion_id)

    async def _add(self, document: str, cells: dict[str, int], move_id: str) -> None:
        # Many suggestions share a day's shard: FerretDB rewrites a document without a transaction, so concurrent
        # $inc on one document lose updates there (MongoDB does not); one writer per shard document, all replicas.
        # Once marked, the filter no longer matches and the upsert collides with the document: applied once.
        async with self._lock(document):
            try:
                await self._days.update_one(
                    {"_id": document, f"moves.{move_id}": {"$exists": False}},
                    {"$inc": {f"counts.{cell}": delta for cell, delta in cells.items()}, "$set": {f"moves.{move_id}": True}},
                    upsert=True,
                )
            except DuplicateKeyError:
                pass

    async def _counts(self, since: date | None, until: date | None) -> list[tuple[str, dict[str, int]]]:
        days: dict[str, str] = {}
        if since is not None:
            days["$gte"] = since.isoformat()
        if until is not None:
            days["$lt"] = until.isoformat()
        cursor = self._days.find({"_id": days} if days else {})
        return [(doc["_id"][:10], doc.get("counts") or {}) async for doc in cursor]  # the day, without the shard

    async def rows(self, unit: str | None = None, since: date | None = None, until: date | None = None) -> list[dict[str, Any]]:
        """Counts by unit × category × channel, over the days in [since, until) (all days when not given)."""
        totals: dict[str, int] = {}
        for _, counts in await self._counts(since, until):
            for cell, n in counts.items():
                totals[cell] = totals.get(cell, 0) + n
        rows = []
        for cell, n in sorted(totals.items()):
            cell_unit, category, channel = cell.split("|")
            if n > 0 and (unit is None or cell_unit == unit):
                rows.append({"unit": cell_unit, "category": category, "channel": channel, "count": n})
        return rows

    async def by_day(self, unit: str | None = None) -> list[dict[str, Any]]:
        """Suggestions per day (the trend over the window)."""
        per_day: dict[str, int] = {}
        for day, counts in await self._counts(None, None):
            n = sum(v for cell, v in counts.items() if unit is None or cell.split("|")[0] == unit)
            per_day[day] = per_day.get(day, 0) + n
        return [{"day": day, "count": n} for day, n in sorted(per_day.items()) if n > 0]

    async def load(self, counts: dict[TallyKey, int]) -> int:
        """Replace every tally by the given totals (a bulk rebuild); returns the number of day documents."""
        days: dict[str, dict[str, int]] = {}
        for key, n in counts.items():
            days.setdefault(key.day, {})[key.cell] = n
        await self._days.delete_many({})
        if days:
            await self._days.insert_many([{"_id": day, "counts": cells} for day, cells in sorted(days.items())])
        return len(days)

    async def rebuild(self) -> int:
        """Recount every suggestion from scratch; returns how many are counted."""
        counts: dict[TallyKey, int] = {}
        counted = 0
        async for doc in self._suggestions.find({"status": {"$ne": "pending"}}):
            key = key_of(doc, self._zone)
            await self._suggestions.update_one(
                {"_id": doc["_id"]}, {"$set": {"tallied": key.as_dict() if key else None}, "$unset": {"tally_move": ""}}
            )
            if key is not None:
                counts[key] = counts.get(key, 0) + 1
                counted += 1
        await self.load(counts)
        return counted
