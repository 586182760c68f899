"""The audit log: every change made by a member of staff, and every read of personal data, with who and when."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from minsheng_core.staff import StaffMember


class AuditLog:
    """Append-only records in ``audit_log``; nothing in the code updates or deletes them."""

    def __init__(self, db: AsyncDatabase) -> None:
        self._records = db.audit_log

    async def ensure_indexes(self) -> None:
        await self._records.create_index([("at", DESCENDING)])
        await self._records.create_index([("actor", 1), ("at", DESCENDING)])

    async def record(self, actor: StaffMember, action: str, target: str, **details: Any) -> None:
        """Record that ``actor`` did ``action`` to ``target`` (a suggestion id, an account, a table…)."""
        await self._records.insert_one(
            {
                "at": datetime.now(UTC),
                "actor": actor.username,
                "role": actor.role.value,
                "unit": actor.unit,
                "action": action,
                "target": target,
                "details": details,
            }
        )

    async def recent(self, limit: int = 100, actor: str | None = None) -> list[dict[str, Any]]:
        query = {"actor": actor} if actor else {}
        cursor = self._records.find(query, {"_id": 0}).sort("at", DESCENDING).limit(limit)
        return await cursor.to_list(None)
