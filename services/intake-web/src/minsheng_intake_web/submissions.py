"""Accepting web submissions and answering status look-ups; no FastAPI here."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime

from minsheng_core.campaign import Campaign
from minsheng_core.events import Channel, PersonalData
from minsheng_core.ids import access_code_for, access_code_matches
from minsheng_core.intake import IntakeRuntime
from minsheng_intake_web.schemas import DecisionStatusRead, SuggestionCreate, SuggestionStatusRead


class CollectionClosed(Exception):
    """The campaign is not collecting at this moment."""

    def __init__(self, campaign: Campaign) -> None:
        super().__init__(campaign.closed_notice())


@dataclass(frozen=True)
class Receipt:
    suggestion_id: str
    tracking_code: str
    access_code: str
    published: bool


def fingerprint(create: SuggestionCreate) -> str:
    """Hash of the request, to tell a retry from a different request reusing a key."""
    return hashlib.sha256(create.model_dump_json().encode()).hexdigest()


class WebIntake:
    """The web channel: outbox first, then the broker; the receipt never depends on the broker being up."""

    def __init__(self, campaign: Campaign, secret: bytes, runtime: IntakeRuntime) -> None:
        self.campaign = campaign
        self._secret = secret
        self._runtime = runtime

    async def submit(self, create: SuggestionCreate, idempotency_key: str | None, now: datetime) -> Receipt:
        """Accept a suggestion exactly once per key and publish it; raises CollectionClosed outside the window."""
        if not self.campaign.is_open(now):
            raise CollectionClosed(self.campaign)
        key = idempotency_key or uuid.uuid4().hex
        content = {
            "title": create.title or None,
            "text": create.text,
            "location": create.location,
            "submitter_group": create.submitter_group,
        }
        personal = PersonalData(name=create.contact.name or None, phone=create.contact.phone or None)
        accepted = await self._runtime.receive(
            self.campaign, Channel.WEB, key, content, personal, now, fingerprint=fingerprint(create)
        )
        published = accepted.published
        return Receipt(
            accepted.suggestion_id, accepted.tracking_code, access_code_for(self._secret, accepted.suggestion_id), published
        )

    async def status(self, tracking_code: str, access_code: str) -> SuggestionStatusRead | None:
        """Status for a tracking code, or None when the code is unknown or the access code wrong (indistinguishable)."""
        tracked = await self._runtime.track(tracking_code)
        if tracked is None or not access_code_matches(self._secret, tracked.suggestion_id, access_code):
            return None
        return SuggestionStatusRead(
            tracking_code=tracking_code,
            status=tracked.status,
            status_text=tracked.status_text,
            category=tracked.category,
            category_name=self.campaign.category_name(tracked.category) if tracked.category else None,
            title=tracked.title,
            text=tracked.text,
            submitted_at=tracked.submitted_at,
            decision=DecisionStatusRead(**asdict(tracked.decision)) if tracked.decision else None,
        )
