"""Erasure of personal data on request: the tombstones every service that holds contact data must honour.

The store records one tombstone per erased suggestion in ``personal_data_erasures`` (keyed by suggestion id, with
the time of erasure). A service that keeps contact data of its own (an intake's outbox, the notifier's contacts)
looks for new tombstones and erases its copy; a redelivered ``SuggestionReceived`` of an erased suggestion must not
bring the contact data back, so writers check ``is_erased`` first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

import structlog
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

log = structlog.get_logger(__name__)

COLLECTION = "personal_data_erasures"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def ensure_indexes(db: AsyncDatabase) -> None:
    await db[COLLECTION].create_index([("erased_at", ASCENDING)])


async def record_erasure(db: AsyncDatabase, suggestion_id: str, erased_by: str) -> datetime:
    """Record the tombstone (once: a second erasure keeps the first time); returns the time of erasure."""
    now = datetime.now(UTC)
    await db[COLLECTION].update_one(
        {"_id": suggestion_id}, {"$setOnInsert": {"erased_at": now, "erased_by": erased_by}}, upsert=True
    )
    doc = await db[COLLECTION].find_one({"_id": suggestion_id})
    return doc["erased_at"]


async def is_erased(db: AsyncDatabase, suggestion_id: str) -> bool:
    """Whether the suggestion's personal data was erased on request."""
    return await db[COLLECTION].find_one({"_id": suggestion_id}, {"_id": 1}) is not None


async def erased_among(db: AsyncDatabase, suggestion_ids: list[str]) -> set[str]:
    """Which of these suggestions were erased: one query for many (the tombstones are few, one per request)."""
    found = await db[COLLECTION].find({"_id": {"$in": suggestion_ids}}, {"_id": 1}).to_list(None)
    return {doc["_id"] for doc in found}


async def erased_since(db: AsyncDatabase, since: datetime, limit: int = 500) -> list[tuple[str, datetime]]:
    """Suggestions erased at or after ``since``, oldest first: (suggestion id, time of erasure)."""
    cursor = db[COLLECTION].find({"erased_at": {"$gte": since}}, {"erased_at": 1}).sort("erased_at", ASCENDING).limit(limit)
    found = await cursor.to_list(None)
    return [(doc["_id"], doc["erased_at"]) for doc in found]


async def honour_erasures(db: AsyncDatabase, erase: Callable[[Iterable[str]], Awaitable[int]], interval: float) -> None:
    """Background task: hand every tombstone, old ones first and then each new one, to ``erase`` until cancelled.

    ``erase`` must be idempotent: after a restart every tombstone is handed over once more.
    """
    since = _EPOCH
    while True:
        try:
            # At or after: the newest tombstone comes again next round (erase is idempotent), none is ever skipped.
            found = await erased_since(db, since)
            if found:
                erased = await erase(sid for sid, _ in found)
                if erased:
                    log.info("personal_data_erasures_honoured", rows=erased)
                since = found[-1][1]
        except (PyMongoError, OSError) as exc:  # the database is away: the next round tries again
            log.warning("personal_data_erasures_unavailable", error=type(exc).__name__)
        except Exception as exc:  # ``erase`` failed: never let the watcher die, the same tombstones come again
            log.error("personal_data_erasures_failed", error=type(exc).__name__)
        await asyncio.sleep(interval)
