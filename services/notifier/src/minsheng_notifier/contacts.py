"""How to reach a submitter, learnt from SuggestionReceived; phones and openids sealed, never kept in clear."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from minsheng_core import erasures
from minsheng_core.events import Channel, SuggestionReceived
from minsheng_core.personal import PersonalDataVault
from minsheng_core.phones import canonical_phone, is_mobile

PHONE = "phone"
OPENID = "wechat_openid"


@dataclass(frozen=True)
class Contact:
    """A submitter's way back, with the personal parts opened for sending (never logged)."""

    suggestion_id: str
    channel: Channel
    account: str | None
    tracking_code: str
    submitted_at: datetime
    mobile: str | None
    openid: str | None
    openid_lookup: str | None


class ContactBook:
    """The ``notifier_contacts`` collection, one document per suggestion."""

    def __init__(self, db: AsyncDatabase, vault: PersonalDataVault) -> None:
        self._db = db
        self._contacts = db.notifier_contacts
        self._vault = vault

    async def ensure_indexes(self) -> None:
        await self._contacts.create_index([("openid_lookup", ASCENDING), ("submitted_at", DESCENDING)])

    async def record(self, event: SuggestionReceived) -> bool:
        """Keep the contact of a received suggestion; a redelivered event changes nothing, nor brings back an erased one."""
        if await erasures.is_erased(self._db, event.suggestion_id):
            return False
        doc: dict[str, Any] = {
            "channel": event.body.channel.value,
            "account": event.body.account,
            "tracking_code": event.body.tracking_code,
            "submitted_at": event.body.submitted_at.astimezone(UTC),
            "recorded_at": datetime.now(UTC),
        }
        phone = canonical_phone(event.personal.phone) if event.personal.phone else None
        if phone:
            doc["phone"] = self._vault.seal(PHONE, phone)
            doc["mobile"] = is_mobile(phone)
        openid = event.personal.wechat_openid
        if openid:
            doc["openid"] = self._vault.seal(OPENID, openid)
            doc["openid_lookup"] = self._vault.lookup(OPENID, openid)
        await self._contacts.update_one({"_id": event.suggestion_id}, {"$setOnInsert": doc}, upsert=True)
        return True

    async def erased(self, suggestion_id: str) -> bool:
        """Whether the suggestion's personal data was erased on request (so no contact will ever come)."""
        return await erasures.is_erased(self._db, suggestion_id)

    async def erase(self, suggestion_ids: Iterable[str]) -> int:
        """Forget the contacts of suggestions whose personal data was erased on request (idempotent)."""
        ids = list(suggestion_ids)
        if not ids:
            return 0
        return (await self._contacts.delete_many({"_id": {"$in": ids}})).deleted_count

    async def get(self, suggestion_id: str) -> Contact | None:
        """The contact of a suggestion, opened, or None when its SuggestionReceived has not arrived."""
        doc = await self._contacts.find_one({"_id": suggestion_id})
        if doc is None:
            return None
        return Contact(
            suggestion_id=suggestion_id,
            channel=Channel(doc["channel"]),
            account=doc.get("account"),
            tracking_code=doc["tracking_code"],
            submitted_at=doc["submitted_at"],
            mobile=self._vault.open(PHONE, doc["phone"]) if doc.get("phone") and doc.get("mobile") else None,
            openid=self._vault.open(OPENID, doc["openid"]) if doc.get("openid") else None,
            openid_lookup=doc.get("openid_lookup"),
        )

    async def known(self, suggestion_ids: list[str]) -> set[str]:
        """Which of these suggestions have a contact by now."""
        if not suggestion_ids:
            return set()
        docs = await self._contacts.find({"_id": {"$in": suggestion_ids}}, {"_id": 1}).to_list(None)
        return {d["_id"] for d in docs}

    async def last_message_at(self, openid_lookup: str, account: str | None) -> datetime | None:
        """When this WeChat user last wrote to the account, as far as the notifier knows (their latest suggestion)."""
        cursor = self._contacts.find({"openid_lookup": openid_lookup, "account": account}, {"submitted_at": 1})
        docs = await cursor.sort("submitted_at", DESCENDING).limit(1).to_list(None)
        return docs[0]["submitted_at"] if docs else None
