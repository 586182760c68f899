"""Request and response bodies of the webhook admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from minsheng_webhooks.deliveries import State
from minsheng_webhooks.subscriptions import Subscription


class _Read(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubscriptionRead(_Read):
    id: str
    url: str
    events: list[str]
    description: str | None
    active: bool
    created_at: datetime
    created_by: str
    deliveries: dict[str, int] | None = None  # by state, in lists

    @classmethod
    def of(cls, subscription: Subscription, counts: dict[str, int] | None = None) -> SubscriptionRead:
        return cls(
            id=subscription.id,
            url=subscription.url,
            events=list(subscription.events),
            description=subscription.description,
            active=subscription.active,
            created_at=subscription.created_at,
            created_by=subscription.created_by,
            deliveries=counts,
        )


class SubscriptionCreated(SubscriptionRead):
    secret: str  # shown once: only a sealed copy is kept, to sign with


class AttemptRead(_Read):
    at: datetime
    status: int | None
    error: str | None
    duration_ms: float


class DeliveryRead(_Read):
    id: str
    subscription_id: str
    event_id: str
    event_type: str
    routing_key: str
    occurred_at: datetime
    state: State
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    given_up_at: datetime | None
    last_status: int | None
    last_error: str | None
    replays: int
    log: list[AttemptRead]

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> DeliveryRead:
        pending = doc["state"] == State.PENDING.value
        return cls(
            id=doc["_id"],
            subscription_id=doc["subscription_id"],
            event_id=doc["event_id"],
            event_type=doc["event_type"],
            routing_key=doc["routing_key"],
            occurred_at=doc["occurred_at"],
            state=State(doc["state"]),
            attempts=doc["attempts"],
            created_at=doc["created_at"],
            next_attempt_at=doc.get("next_attempt_at") if pending else None,
            delivered_at=doc.get("delivered_at"),
            given_up_at=doc.get("given_up_at") if not pending else None,
            last_status=doc.get("last_status"),
            last_error=doc.get("last_error") if not doc["state"] == State.DELIVERED.value else None,
            replays=doc.get("replays", 0),
            log=[AttemptRead(**entry) for entry in doc.get("log", [])],
        )


class DeliveryPage(_Read):
    total: int
    limit: int
    offset: int
    items: list[DeliveryRead]


class ReplayRead(_Read):
    replayed: int
