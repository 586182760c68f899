"""Door-to-door visits and the coverage they give: distinct households visited per village or community.

Coverage is kept up to date as visits arrive (one document per place), so reports never count the visits; a
household visited twice counts once. ``rebuild_coverage`` recounts from the households seen.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from minsheng_core.events import HouseholdVisited, Symposium, SymposiumHeld, Visit
from minsheng_store.locks import StripedLocks


def household_key(unit: str, place: str, household: str) -> str:
    """One household however the clerk spaced or wrote its name (full-width digits, double spaces)."""
    cleaned = " ".join(unicodedata.normalize("NFKC", household).split())
    return f"{unit}|{place}|{cleaned}"


class Visits:
    """``visits`` (one per visit), ``visited_households`` (one per household) and ``coverage`` (one per place)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self._visits = db.visits
        self._households = db.visited_households
        self._coverage = db.coverage
        self._lock = StripedLocks(leases=db.store_locks, scope="coverage")

    async def ensure_indexes(self) -> None:
        await self._visits.create_index([("unit", 1), ("place", 1)])
        await self._households.create_index([("unit", 1), ("place", 1)])

    async def apply(self, event: HouseholdVisited) -> None:
        """Record a visit; a redelivery or a second visit of the same household leaves coverage as it is."""
        visit = event.body
        await record_with_suggestions(self._visits, event.visit_id, visit)
        place = f"{visit.unit}|{visit.place}"
        # One place at a time: two first visits in one village would otherwise race to create its coverage document.
        async with self._lock(place):
            key = household_key(visit.unit, visit.place, visit.household)
            seen = {"unit": visit.unit, "place": visit.place, "visit_id": event.visit_id, "counted": False}
            await self._households.update_one({"_id": key}, {"$setOnInsert": seen}, upsert=True)
            household = await self._households.find_one({"_id": key})
            if household.get("counted"):
                return  # visited before, or this is a redelivery: already in the coverage
            await self._coverage.update_one(
                {"_id": place}, {"$inc": {"visited": 1}, "$setOnInsert": {"unit": visit.unit, "place": visit.place}}, upsert=True
            )
            await self._households.update_one({"_id": key}, {"$set": {"counted": True}})

    async def rebuild_coverage(self) -> None:
        """Recount every place's visited households from the households seen."""
        pipeline = [{"$group": {"_id": {"unit": "$unit", "place": "$place"}, "visited": {"$sum": 1}}}]
        counts = await (await self._households.aggregate(pipeline)).to_list(None)
        await self._coverage.delete_many({})
        await self._households.update_many({}, {"$set": {"counted": True}})
        for row in counts:
            unit, place = row["_id"]["unit"], row["_id"]["place"]
            await self._coverage.insert_one({"_id": f"{unit}|{place}", "unit": unit, "place": place, "visited": row["visited"]})


async def record_with_suggestions(collection: Any, record_id: str, body: Visit | Symposium) -> None:
    """Upsert a visit or symposium; suggestions recorded for it later are added to its list, never replacing it."""
    fields = body.model_dump(mode="json", exclude={"suggestion_ids"})
    change = {
        "$set": {**fields, "recorded_at": datetime.now(UTC)},
        "$addToSet": {"suggestion_ids": {"$each": body.suggestion_ids}},
    }
    await collection.update_one({"_id": record_id}, change, upsert=True)


async def apply_symposium(db: AsyncDatabase, event: SymposiumHeld) -> None:
    """Record a symposium a unit held."""
    await record_with_suggestions(db.symposiums, event.symposium_id, event.body)
