"""What the staff API answers about notifications: states, channels, attempts; never a contact or a message text."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class _Read(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AttemptRead(_Read):
    n: int
    at: datetime
    channel: str
    outcome: str
    error: str | None = None
    code: int | None = None
    detail: str | None = None
    note: str | None = None


class ResendRead(_Read):
    at: datetime
    by: str
    from_state: str


class NotificationRead(_Read):
    decision_id: str
    suggestion_id: str
    outcome: str
    state: str
    channel: str | None
    waiting_for: str | None
    due_at: datetime | None
    sent_at: datetime | None
    reason: str | None
    attempts: list[AttemptRead]
    resends: list[ResendRead]
    event_published: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> NotificationRead:
        return cls(
            decision_id=doc["_id"],
            suggestion_id=doc["suggestion_id"],
            outcome=doc["decision"]["outcome"],
            state=doc["state"],
            channel=doc.get("channel"),
            waiting_for=doc.get("waiting_for"),
            due_at=doc.get("due_at"),
            sent_at=doc.get("sent_at"),
            reason=doc.get("reason"),
            attempts=[AttemptRead(**a) for a in doc.get("attempts", [])],
            resends=[ResendRead(**r) for r in doc.get("resends", [])],
            event_published=bool(doc.get("event_published")),
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
        )


class NotificationPage(_Read):
    total: int
    limit: int
    offset: int
    counts: dict[str, int]
    items: list[NotificationRead]
