"""Webhook subscriptions: where events go, which ones, and the secret they are signed with."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError
from pymongo.asynchronous.database import AsyncDatabase

from minsheng_core.personal import PersonalDataVault
from minsheng_core.schemas import pattern_problem, topic_matches

SECRET_KIND = "webhook_secret"
URL_MAX = 2000


def url_problem(url: str) -> str | None:
    """Why a subscriber URL is refused whatever the deployment (scheme, credentials, host), or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "only http:// and https:// URLs are accepted"
    if not parts.hostname:
        return "the URL names no host"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are refused: authenticate requests by their signature instead"
    if parts.fragment:
        return "a URL fragment (#…) is never sent: leave it out"
    if any(ch.isspace() for ch in url):
        return "the URL contains white space"
    return None


def private_target(url: str) -> bool:
    """Whether the URL's host is localhost or a literal private, loopback, link-local or otherwise internal address."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: resolved when sending (resolution is not checked here)
    return not address.is_global


class SubscriptionCreate(BaseModel):
    """A new webhook subscription."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: str = Field(min_length=1, max_length=URL_MAX, description="http(s) endpoint that receives POSTs")
    events: list[str] = Field(
        min_length=1, max_length=20, description="routing-key patterns, AMQP topic syntax, e.g. suggestion.classified.*"
    )
    description: str | None = Field(default=None, max_length=200)

    @field_validator("url")
    @classmethod
    def _usable_url(cls, url: str) -> str:
        problem = url_problem(url)
        if problem:
            raise PydanticCustomError("webhook_url", problem)
        return url

    @field_validator("events")
    @classmethod
    def _known_patterns(cls, patterns: list[str]) -> list[str]:
        cleaned = list(dict.fromkeys(p.strip() for p in patterns))
        for pattern in cleaned:
            problem = pattern_problem(pattern)
            if problem:
                raise PydanticCustomError("event_pattern", problem)
        return cleaned


@dataclass(frozen=True)
class Subscription:
    id: str
    url: str
    events: tuple[str, ...]
    description: str | None
    active: bool
    created_at: datetime
    created_by: str
    sealed_secret: str

    def wants(self, routing_key: str) -> bool:
        return self.active and any(topic_matches(pattern, routing_key) for pattern in self.events)

    @property
    def host(self) -> str:
        """What logs and the audit say about the target (never the path or query, which may carry tokens)."""
        return urlsplit(self.url).hostname or ""

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Subscription:
        return cls(
            doc["_id"],
            doc["url"],
            tuple(doc["events"]),
            doc.get("description"),
            doc["active"],
            doc["created_at"],
            doc["created_by"],
            doc["secret"],
        )


class Subscriptions:
    """``webhook_subscriptions``: the secret is sealed with the personal-data vault's keys (it must stay usable to sign)."""

    def __init__(self, db: AsyncDatabase, vault: PersonalDataVault) -> None:
        self._docs = db.webhook_subscriptions
        self._vault = vault

    async def ensure_indexes(self) -> None:
        await self._docs.create_index("active")

    async def create(self, create: SubscriptionCreate, created_by: str, now: datetime) -> tuple[Subscription, str]:
        """Store a new subscription; returns it with its secret, which is shown this once."""
        secret = "whsec_" + secrets.token_urlsafe(32)
        doc = {
            "_id": "whs_" + secrets.token_hex(8),
            "url": create.url,
            "events": create.events,
            "description": create.description,
            "active": True,
            "secret": self._vault.seal(SECRET_KIND, secret),
            "created_at": now,
            "created_by": created_by,
            "updated_at": now,
        }
        await self._docs.insert_one(doc)
        return Subscription.from_document(doc), secret

    async def get(self, subscription_id: str) -> Subscription | None:
        doc = await self._docs.find_one({"_id": subscription_id})
        return Subscription.from_document(doc) if doc else None

    async def all(self) -> list[Subscription]:
        return [Subscription.from_document(d) for d in await self._docs.find({}).sort("created_at", 1).to_list(None)]

    async def active(self) -> list[Subscription]:
        return [Subscription.from_document(d) for d in await self._docs.find({"active": True}).to_list(None)]

    async def matching(self, routing_key: str) -> list[Subscription]:
        """The active subscriptions that want events with this routing key."""
        return [s for s in await self.active() if s.wants(routing_key)]

    async def set_active(self, subscription_id: str, active: bool, now: datetime) -> Subscription | None:
        await self._docs.update_one({"_id": subscription_id}, {"$set": {"active": active, "updated_at": now}})
        return await self.get(subscription_id)

    def secret(self, subscription: Subscription) -> str:
        """The clear secret, to sign with."""
        return self._vault.open(SECRET_KIND, subscription.sealed_secret)
