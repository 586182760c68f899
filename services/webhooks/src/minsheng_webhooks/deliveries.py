"""The delivery log: one document per (subscription, event), with every attempt made to deliver it."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from minsheng_core.events import AnyEvent


class State(StrEnum):
    PENDING = "pending"  # to be sent (now, or after its backoff)
    DELIVERED = "delivered"  # the subscriber answered 2xx
    FAILED = "failed"  # given up after the retry window; waits for a replay


def delivery_id(subscription_id: str, event_id: str) -> str:
    """The same event for the same subscription is always the same delivery: a redelivered event adds nothing."""
    return "whd_" + hashlib.sha256(f"{subscription_id}\x00{event_id}".encode()).hexdigest()[:24]


class Deliveries:
    """``webhook_deliveries``. Each delivery is changed by one dispatcher at a time (the one holding its subscription's
    lease) or by a replay of a failed one; every state change names the state it expects, so none is applied twice."""

    def __init__(self, db: AsyncDatabase) -> None:
        self._docs = db.webhook_deliveries

    async def ensure_indexes(self) -> None:
        await self._docs.create_index([("subscription_id", ASCENDING), ("event_id", ASCENDING)], unique=True)
        await self._docs.create_index(
            [("subscription_id", ASCENDING), ("state", ASCENDING), ("occurred_at", ASCENDING), ("event_id", ASCENDING)]
        )
        await self._docs.create_index([("subscription_id", ASCENDING), ("created_at", DESCENDING)])

    async def record(self, subscription_id: str, event: AnyEvent, routing_key: str, body: str, now: datetime) -> bool:
        """Record a delivery to make (idempotent); False when this event was already recorded for the subscription."""
        event_id = str(event.event_id)
        try:
            await self._docs.insert_one(
                {
                    "_id": delivery_id(subscription_id, event_id),
                    "subscription_id": subscription_id,
                    "event_id": event_id,
                    "event_type": event.event_type,
                    "routing_key": routing_key,
                    "occurred_at": event.occurred_at,
                    "body": body,
                    "state": State.PENDING.value,
                    "attempts": 0,
                    "log": [],
                    "created_at": now,
                    "window_started_at": now,
                    "next_attempt_at": now,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def head(self, subscription_id: str) -> dict[str, Any] | None:
        """The subscription's oldest pending delivery by the time its event occurred: it goes first.
        Sidelined deliveries (refused by a subscriber that was up) do not hold the others back."""
        return await self._docs.find_one(
            {"subscription_id": subscription_id, "state": State.PENDING.value, "sidelined": {"$ne": True}},
            sort=[("occurred_at", ASCENDING), ("event_id", ASCENDING)],
        )

    async def due_sidelined(self, subscription_id: str, now: datetime, limit: int = 50) -> list[dict[str, Any]]:
        """Sidelined deliveries due for their next attempt, oldest event first."""
        query = {
            "subscription_id": subscription_id,
            "state": State.PENDING.value,
            "sidelined": True,
            "next_attempt_at": {"$lte": now},
        }
        return await self._docs.find(query).sort([("occurred_at", ASCENDING), ("event_id", ASCENDING)]).limit(limit).to_list(None)

    async def delivered(self, doc: dict[str, Any], attempt: dict[str, Any]) -> bool:
        """Mark a pending delivery delivered; False if it was no longer pending (nothing changed)."""
        result = await self._docs.update_one(
            {"_id": doc["_id"], "state": State.PENDING.value},
            {
                "$set": {"state": State.DELIVERED.value, "delivered_at": attempt["at"], "last_status": attempt["status"]},
                "$inc": {"attempts": 1},
                "$push": {"log": attempt},
            },
        )
        return result.modified_count == 1

    async def attempt_failed(
        self, doc: dict[str, Any], attempt: dict[str, Any], next_attempt_at: datetime | None, *, sideline: bool = False
    ) -> bool:
        """Log a failed attempt: retry at ``next_attempt_at``, or give up (state failed) when it is None;
        ``sideline`` lets the later deliveries go ahead of this one."""
        changes: dict[str, Any] = {"last_status": attempt["status"], "last_error": attempt["error"]}
        if sideline:
            changes["sidelined"] = True
        if next_attempt_at is None:
            changes.update(state=State.FAILED.value, given_up_at=attempt["at"])
        else:
            changes["next_attempt_at"] = next_attempt_at
        result = await self._docs.update_one(
            {"_id": doc["_id"], "state": State.PENDING.value},
            {"$set": changes, "$inc": {"attempts": 1}, "$push": {"log": attempt}},
        )
        return result.modified_count == 1

    async def get(self, delivery: str) -> dict[str, Any] | None:
        return await self._docs.find_one({"_id": delivery})

    async def page(self, subscription_id: str, state: State | None, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
        """A subscription's deliveries, newest first, optionally of one state."""
        query: dict[str, Any] = {"subscription_id": subscription_id}
        if state is not None:
            query["state"] = state.value
        total = await self._docs.count_documents(query)
        cursor = self._docs.find(query, {"body": 0}).sort([("created_at", DESCENDING), ("occurred_at", DESCENDING)])
        return total, await cursor.skip(offset).limit(limit).to_list(None)

    async def counts(self, subscription_id: str) -> dict[str, int]:
        return {s.value: await self._docs.count_documents({"subscription_id": subscription_id, "state": s.value}) for s in State}

    async def replay(self, subscription_id: str, delivery: str | None, by: str, now: datetime) -> int:
        """Put failed deliveries (one, or all of the subscription's) back to pending, with a fresh retry window."""
        query: dict[str, Any] = {"subscription_id": subscription_id, "state": State.FAILED.value}
        if delivery is not None:
            query["_id"] = delivery
        ids = [d["_id"] for d in await self._docs.find(query, {"_id": 1}).to_list(None)]
        replayed = 0
        for one in ids:  # one update per document: FerretDB struggles with updates matching many documents
            result = await self._docs.update_one(
                {"_id": one, "state": State.FAILED.value},
                {
                    "$set": {
                        "state": State.PENDING.value,
                        "next_attempt_at": now,
                        "window_started_at": now,
                        "replayed_at": now,
                        "replayed_by": by,
                        "sidelined": False,
                    },
                    "$inc": {"replays": 1},
                },
            )
            replayed += result.modified_count
        return replayed


class Leases:
    """``webhook_leases``: which dispatcher serves a subscription. A claim is an insert under the subscription's id,
    so two replicas never hold one at once; an expired claim is removed before claiming."""

    def __init__(self, db: AsyncDatabase, owner: str, duration: timedelta) -> None:
        self._docs = db.webhook_leases
        self._owner = owner
        self._duration = duration

    async def acquire(self, subscription_id: str, now: datetime) -> bool:
        await self._docs.delete_one({"_id": subscription_id, "until": {"$lt": now}})
        try:
            await self._docs.insert_one({"_id": subscription_id, "owner": self._owner, "until": now + self._duration})
            return True
        except DuplicateKeyError:
            held = await self._docs.find_one({"_id": subscription_id})
            if held is not None and held.get("owner") == self._owner:  # ours, left over from a drain that was cut short
                await self.renew(subscription_id, now)
                return True
            return False

    async def renew(self, subscription_id: str, now: datetime) -> None:
        await self._docs.update_one({"_id": subscription_id, "owner": self._owner}, {"$set": {"until": now + self._duration}})

    async def release(self, subscription_id: str) -> None:
        await self._docs.delete_one({"_id": subscription_id, "owner": self._owner})
