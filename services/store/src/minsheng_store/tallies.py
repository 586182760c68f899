"""Counts kept up to date as suggestions change, so that reports never scan the suggestions.

One tally document per (unit, category, channel, day) holds how many suggestions are counted there. Each suggestion
remembers where it is counted (``tallied``); after every change the store moves it: −1 where it was, +1 where it now
belongs. Report time then depends on the number of units × categories × channels × days, not on the number of
suggestions. ``rebuild`` recounts from scratch (after a crash between the two steps, or to check).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from minsheng_store.locks import StripedLocks

UNCLASSIFIED = "unclassified"
UNASSIGNED = "unassigned"


@dataclass(frozen=True)
class TallyKey:
    unit: str
    category: str
    channel: str
    day: str  # ISO date in the campaign's time zone

    @property
    def id(self) -> str:
        return f"{self.unit}|{self.category}|{self.channel}|{self.day}"

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
        self._tallies = db.tallies
        self._suggestions = db.suggestions
        self._zone = zone
        self._lock = StripedLocks()

    async def ensure_indexes(self) -> None:
        await self._tallies.create_index([("unit", ASCENDING), ("day", ASCENDING)])
        await self._tallies.create_index([("day", ASCENDING)])

    async def settle(self, suggestion_id: str) -> None:
        """Count the suggestion where it belongs now; call with the suggestion's lock held, after each change."""
        doc = await self._suggestions.find_one({"_id": suggestion_id})
        if doc is None:
            return
        now = key_of(doc, self._zone)
        was = doc.get("tallied")
        if (now.as_dict() if now else None) == was:
            return
        if was:
            await self._add(TallyKey(**was), -1)
        if now:
            await self._add(now, 1)
        await self._suggestions.update_one({"_id": suggestion_id}, {"$set": {"tallied": now.as_dict() if now else None}})

    async def _add(self, key: TallyKey, delta: int) -> None:
        # Many suggestions share a tally: FerretDB rewrites a document without a transaction, so concurrent $inc on
        # one tally lose updates there (MongoDB does not); one tally at a time within the process.
        async with self._lock(key.id):
            await self._tallies.update_one(
                {"_id": key.id}, {"$inc": {"count": delta}, "$setOnInsert": key.as_dict()}, upsert=True
            )

    async def rows(self, unit: str | None = None, since: date | None = None, until: date | None = None) -> list[dict[str, Any]]:
        """Counts by unit × category × channel, over the days in [since, until) (all days when not given)."""
        match: dict[str, Any] = {"count": {"$gt": 0}}
        if unit is not None:
            match["unit"] = unit
        days: dict[str, str] = {}
        if since is not None:
            days["$gte"] = since.isoformat()
        if until is not None:
            days["$lt"] = until.isoformat()
        if days:
            match["day"] = days
        pipeline = [
            {"$match": match},
            {"$group": {"_id": {"unit": "$unit", "category": "$category", "channel": "$channel"}, "count": {"$sum": "$count"}}},
            {"$sort": {"_id.unit": 1, "_id.category": 1, "_id.channel": 1}},
        ]
        found = await (await self._tallies.aggregate(pipeline)).to_list(None)
        return [{**row["_id"], "count": row["count"]} for row in found]

    async def by_day(self, unit: str | None = None) -> list[dict[str, Any]]:
        """Suggestions per day (the trend over the window)."""
        match: dict[str, Any] = {"count": {"$gt": 0}} | ({"unit": unit} if unit is not None else {})
        pipeline = [{"$match": match}, {"$group": {"_id": "$day", "count": {"$sum": "$count"}}}, {"$sort": {"_id": 1}}]
        return [{"day": r["_id"], "count": r["count"]} for r in await (await self._tallies.aggregate(pipeline)).to_list(None)]

    async def rebuild(self) -> int:
        """Recount every suggestion from scratch; returns how many are counted."""
        await self._tallies.delete_many({})
        await self._suggestions.update_many({}, {"$unset": {"tallied": ""}})
        counted = 0
        async for doc in self._suggestions.find({"status": {"$ne": "pending"}}, {"_id": 1}):
            await self.settle(doc["_id"])
            counted += 1
        return counted
