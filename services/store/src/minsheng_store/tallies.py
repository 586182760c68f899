"""Counts kept up to date as suggestions change, so that reports never scan the suggestions.

Each suggestion remembers where it is counted (``tallied``: unit, category, channel, day in the campaign's time zone).
When a change moves it, the store writes the move into the suggestion document in the same write as the change
(``tally_moves``, with ``tallied`` already at the new place) and then records it as a document of its own in
``tally_deltas`` (an insert on the move's id: recording twice is recording once). A folder, one at a time over every
store replica, adds the recorded moves into one document per day (``daily_tallies``, counts by
"unit|category|channel") and removes them, from the suggestions too (under each suggestion's lock). So the write path
of a suggestion costs one insert, never a wait for a day document every other writer also wants, and a report reads
the day documents of its window plus the few moves not yet folded (both collections stay small).

Crash safety: a move stays in its suggestion until it is folded, and the next change of the suggestion records again
every move there it did not record itself (a redelivery at the latest, since the event is acknowledged only
afterwards): once if it never was, a no-op while the first record waits to be folded. A fold is written down first
(``tally_folds``) and each day document carries the fold's mark until the fold is finished, so a fold cut short is
finished by the next one and never applied twice; readers see the same totals before, during and after a fold.
``rebuild`` recounts from scratch (to check, or after losing the day documents); ``load`` writes known totals.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from pymongo import DeleteOne, InsertOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from minsheng_core.batching import BulkWrites
from minsheng_store.locks import StripedLocks

log = structlog.get_logger(__name__)
UNCLASSIFIED = "unclassified"
UNASSIGNED = "unassigned"
FOLD_BATCH = 2000  # moves per fold: one journal document lists their ids
_READ_ATTEMPTS = 50  # a report that keeps meeting folds in flight settles for the last consistent read it could make


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


def _add_move(days: dict[str, dict[str, int]], move: dict[str, Any], skip: set[str] = frozenset()) -> None:
    """Add a move's −1 (where it was) and +1 (where it is now) to counts by day, except on the days in `skip`."""
    for side, delta in (("from", -1), ("to", 1)):
        if move.get(side) and move[side]["day"] not in skip:
            key = TallyKey(**move[side])
            cells = days.setdefault(key.day, {})
            cells[key.cell] = cells.get(key.cell, 0) + delta


class Tallies:
    """The day documents, the moves not folded into them yet, and the folder that moves the ones into the others.

    Every read is by ``_id`` or of a small collection (the pending moves), so these collections need no index."""

    def __init__(
        self,
        db: AsyncDatabase,
        zone: ZoneInfo,
        suggestion_lock: StripedLocks | None = None,
        suggestion_writes: BulkWrites | None = None,
    ) -> None:
        self._days = db.daily_tallies
        self._deltas = db.tally_deltas
        self._folds = db.tally_folds
        self._meta = db.tally_meta
        self._suggestions = db.suggestions
        self._zone = zone
        self._folder = StripedLocks(leases=db.store_locks, scope="tally-fold")
        # The lock the store's writers hold on a suggestion: the folder takes it to remove a folded move from the
        # suggestion, so that no writer with an older view of the suggestion records that move a second time.
        self._suggestion_lock = suggestion_lock or StripedLocks(leases=db.store_locks, scope="suggestion")
        self._suggestion_writes = suggestion_writes or BulkWrites(db.suggestions)  # the writers' own, when given
        self._recorded: OrderedDict[str, None] = OrderedDict()  # moves this process knows are recorded
        self._delta_writes = BulkWrites(self._deltas)

    # -- the write path: called by the repository with the suggestion's lock held --------------------------------------

    def plan(self, before: dict[str, Any] | None, after: dict[str, Any]) -> list[dict[str, Any]]:
        """Put the move this change makes (if any) into `after`, with the moves still unrecorded; return those to record
        once `after` is written."""
        # A move stays in its suggestion until the folder has added it into the day documents (and removes it there).
        # One this process recorded can go at once; any other is recorded again: once if it never was, while a copy
        # waits to be folded the insert collides with it, and once folded it is no longer in the suggestion.
        waiting = {i: m for i, m in (before or {}).get("tally_moves", {}).items() if i not in self._recorded}
        now = key_of(after, self._zone)
        where, to = after.get("tallied"), now.as_dict() if now else None
        if to != where:
            waiting[uuid.uuid4().hex] = {"from": where, "to": to}
            after["tallied"] = to
        if waiting:
            after["tally_moves"] = waiting
        else:
            after.pop("tally_moves", None)
        return [{"id": i, "suggestion": after["_id"], **m} for i, m in waiting.items()]

    async def record(self, moves: list[dict[str, Any]]) -> None:
        """Record moves written into their suggestions; a move recorded before (a crash, a redelivery) stays once."""
        await asyncio.gather(*(self._insert_move(m) for m in moves))  # with concurrent handlers' moves: one command
        for move in moves:
            self._recorded[move["id"]] = None
        while len(self._recorded) > 100_000:
            self._recorded.popitem(last=False)

    async def _insert_move(self, move: dict[str, Any]) -> None:
        with contextlib.suppress(DuplicateKeyError):  # recorded before: a redelivery, or a move re-recorded after a crash
            await self._delta_writes(InsertOne({"_id": move["id"], **{k: move[k] for k in ("suggestion", "from", "to")}}))

    # -- folding -------------------------------------------------------------------------------------------------------

    async def fold(self, limit: int = FOLD_BATCH) -> int:
        """Add recorded moves into the day documents and remove them; returns how many. One folder at a time."""
        async with self._folder("all"):
            for journal in await self._folds.find({}).to_list(None):  # a fold cut short: finish it first
                await self._finish(journal)
            deltas = await self._deltas.find({}).limit(limit).to_list(None)
            if not deltas:
                return 0
            days: dict[str, dict[str, int]] = {}
            for move in deltas:
                _add_move(days, move)
            journal = {
                "_id": uuid.uuid4().hex,
                "days": days,
                "deltas": [d["_id"] for d in deltas],
                "suggestions": [d.get("suggestion") for d in deltas],
            }
            await self._meta.update_one({"_id": "fold"}, {"$inc": {"generation": 1}}, upsert=True)
            await self._folds.insert_one(journal)
            await self._finish(journal)
            return len(deltas)

    async def _finish(self, journal: dict[str, Any]) -> None:
        fold = journal["_id"]
        for day, cells in journal["days"].items():
            increments = {f"counts.{cell}": n for cell, n in cells.items() if n}
            try:  # once marked, the filter no longer matches and the upsert collides with the document: applied once
                await self._days.update_one(
                    {"_id": day, f"folds.{fold}": {"$exists": False}},
                    {"$inc": increments, "$set": {f"folds.{fold}": True}} if increments else {"$set": {f"folds.{fold}": True}},
                    upsert=True,
                )
            except DuplicateKeyError:
                pass
        ids = journal["deltas"]
        limit = asyncio.Semaphore(100)  # in flight together: their lock claims, writes and releases go as one command each

        async def forget(move: str, suggestion: str | None) -> None:
            if suggestion is not None:
                async with limit, self._suggestion_lock(suggestion):
                    await self._suggestion_writes(UpdateOne({"_id": suggestion}, {"$unset": {f"tally_moves.{move}": ""}}))

        await asyncio.gather(*(forget(m, sid) for m, sid in zip(ids, journal.get("suggestions", []), strict=False)))
        # By bare _id, which FerretDB finds by index ({_id: {$in: …}} reads every pending move), one command per hundred.
        await asyncio.gather(*(self._delta_writes(DeleteOne({"_id": move})) for move in ids))
        await self._folds.delete_one({"_id": fold})
        await self._meta.update_one({"_id": "fold"}, {"$inc": {"generation": 1}}, upsert=True)
        for day in journal["days"]:  # the marks are needed only while the fold is unfinished
            await self._days.update_one({"_id": day}, {"$unset": {f"folds.{fold}": ""}})

    async def fold_forever(self, interval: float = 1.0) -> None:
        """The store's background folder: every `interval` seconds, everything recorded since."""
        while True:
            try:
                while await self.fold() == FOLD_BATCH:
                    pass
            except PyMongoError as exc:
                log.warning("tally_fold_failed", error=type(exc).__name__)
            await asyncio.sleep(interval)

    # -- reading -------------------------------------------------------------------------------------------------------

    async def _generation(self) -> int:
        doc = await self._meta.find_one({"_id": "fold"})
        return (doc or {}).get("generation", 0)

    async def _counts(self, since: date | None, until: date | None) -> list[tuple[str, dict[str, int]]]:
        window: dict[str, str] = {}
        if since is not None:
            window["$gte"] = since.isoformat()
        if until is not None:
            window["$lt"] = until.isoformat()
        for _ in range(_READ_ATTEMPTS):
            generation = await self._generation()
            days = await self._days.find({"_id": window} if window else {}).to_list(None)
            deltas = await self._deltas.find({}).to_list(None)
            journals = await self._folds.find({}).to_list(None)
            if await self._generation() == generation:  # no fold began or ended while reading: one consistent view
                break
            await asyncio.sleep(0.01)
        counts = [(doc["_id"][:10], doc.get("counts") or {}) for doc in days]  # the day (older documents: "|shard")
        # A move of a fold in flight is already in the day documents that carry the fold's mark, not yet in the others.
        marked = {
            fold: {doc["_id"][:10] for doc in days if fold in (doc.get("folds") or {})} for fold in (j["_id"] for j in journals)
        }
        folding = {delta: marked[j["_id"]] for j in journals for delta in j["deltas"]}
        pending: dict[str, dict[str, int]] = {}
        for move in deltas:
            _add_move(pending, move, skip=folding.get(move["_id"], set()))
        in_window = [
            (day, cells)
            for day, cells in pending.items()
            if (not since or day >= since.isoformat()) and (not until or day < until.isoformat())
        ]
        return counts + in_window

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

    # -- bulk ----------------------------------------------------------------------------------------------------------

    async def load(self, counts: dict[TallyKey, int]) -> int:
        """Replace every tally by the given totals (a bulk rebuild); returns the number of day documents."""
        days: dict[str, dict[str, int]] = {}
        for key, n in counts.items():
            days.setdefault(key.day, {})[key.cell] = n
        await self._days.delete_many({})
        await self._deltas.delete_many({})
        await self._folds.delete_many({})
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
                {"_id": doc["_id"]}, {"$set": {"tallied": key.as_dict() if key else None}, "$unset": {"tally_moves": ""}}
            )
            if key is not None:
                counts[key] = counts.get(key, 0) + 1
                counted += 1
        await self.load(counts)
        return counted
