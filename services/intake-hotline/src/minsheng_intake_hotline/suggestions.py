"""What the hotline accepts: a call's words (or its recording), an operator's entry, a call-centre transcript.
No FastAPI here; every one of them goes through the intake runtime (outbox first, then the broker)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from minsheng_core.campaign import Campaign
from minsheng_core.events import Attachment, Channel, Location, PersonalData, SuggestionReceived
from minsheng_core.ids import person_key
from minsheng_core.intake import IntakeRuntime
from minsheng_core.outbox import Accepted, Entry
from minsheng_core.staff import StaffMember
from minsheng_core.text import has_content


class CollectionClosed(Exception):
    """The campaign is not collecting now."""


@dataclass(frozen=True)
class CallWords:
    """What a caller said, as the speech recogniser (or the call centre's ASR) heard it."""

    text: str
    confidence: float | None

    def clear(self, threshold: float) -> bool:
        """Words an operator need not check against the recording."""
        return has_content(self.text) and (self.confidence is None or self.confidence >= threshold)


@dataclass(frozen=True)
class OperatorEntry:
    """A caller's suggestion as an operator typed it."""

    phone: str
    name: str | None
    town: str | None
    village: str | None
    detail: str | None
    text: str


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, ensure_ascii=False).encode()).hexdigest()


class HotlineIntake:
    """The hotline channel and its two siblings, the operators' console and the call-centre transcripts."""

    def __init__(self, campaign: Campaign, runtime: IntakeRuntime, min_confidence: float, edit_window: timedelta) -> None:
        self.campaign = campaign
        self.runtime = runtime
        self._min_confidence = min_confidence
        self._edit_window = edit_window

    def _open(self, now: datetime) -> None:
        if not self.campaign.is_open(now):
            raise CollectionClosed(self.campaign.closed_notice())

    async def take_call(
        self, call_sid: str, caller: str | None, words: CallWords, recording_url: str | None, now: datetime
    ) -> Accepted:
        """A Twilio call, keyed by its CallSid; unclear words are kept and flagged for an operator and the recording."""
        self._open(now)
        return await self.runtime.receive(
            self.campaign,
            Channel.HOTLINE,
            call_sid,
            self._call_content(call_sid, words, recording_url),
            PersonalData(phone=caller),
            now,
            fingerprint=_fingerprint(call_sid, caller, words, recording_url),
            sender=self._sender(caller),
        )

    async def take_transcript(
        self, call_id: str, started_at: datetime, caller: str | None, words: CallWords, recording_url: str | None = None
    ) -> Accepted:
        """One call from the call centre's transcripts, keyed by its call id (a second import changes nothing)."""
        return await self.runtime.receive(
            self.campaign,
            Channel.HOTLINE_TRANSCRIPT,
            call_id,
            self._call_content(call_id, words, recording_url),
            PersonalData(phone=caller),
            started_at,
            fingerprint=_fingerprint(call_id, started_at, caller, words, recording_url),
            sender=self._sender(caller),
        )

    def _call_content(self, ref: str, words: CallWords, recording_url: str | None) -> dict[str, Any]:
        return {
            "text": words.text if has_content(words.text) else "",
            "awaiting": None if words.clear(self._min_confidence) else "transcription",
            "attachments": [Attachment(kind="recording", channel_ref=ref, url=recording_url)] if recording_url else [],
        }

    async def take_entry(self, operator: StaffMember, entry_key: str, entry: OperatorEntry, now: datetime) -> Accepted:
        """An operator's entry: accepted now (the caller hears the code), published after the edit window."""
        self._open(now)
        return await self.runtime.receive(
            self.campaign,
            Channel.HOTLINE,
            f"operator:{entry_key}",
            _entry_content(entry),
            PersonalData(name=entry.name, phone=entry.phone),
            now,
            fingerprint=_fingerprint(entry),
            sender=self._sender(entry.phone),
            hold_until=now + self._edit_window,
            author=operator.username,
        )

    async def revise_entry(self, operator: StaffMember, held: Entry, entry: OperatorEntry) -> bool:
        """Correct one's own entry while it is held; False once it is published."""
        event = held.event
        revised = SuggestionReceived(
            suggestion_id=event.suggestion_id,
            occurred_at=event.occurred_at,
            body=event.body.model_copy(update=_entry_content(entry)),
            personal=PersonalData(name=entry.name, phone=entry.phone),
        )
        return await self.runtime.outbox.revise(held.submission_key, revised, operator.username)

    async def entries(self, operator: StaffMember, limit: int = 20) -> list[Entry]:
        return await self.runtime.outbox.entries_by(operator.username, limit)

    async def codes_from_phone(self, phone: str, limit: int = 20) -> list[str]:
        """Tracking codes of this campaign's suggestions from the number: stored ones, and ones still in the outbox."""
        db = self.runtime.db
        by_hash = {"phone_hash": self.runtime.vault.lookup("phone", phone)}  # contact data is sealed: found by its hash
        ids = [doc["_id"] async for doc in db.personal_data.find(by_hash, {"_id": 1}).limit(200)]
        query = {"_id": {"$in": ids}, "campaign": self.campaign.code, "tracking_code": {"$exists": True}}
        stored = [doc["tracking_code"] async for doc in db.suggestions.find(query, {"tracking_code": 1}).limit(limit)]
        waiting = await self.runtime.outbox.tracking_codes_from(self._sender(phone), limit)
        return list(dict.fromkeys(waiting + stored))[:limit]

    def _sender(self, phone: str | None) -> str | None:
        return person_key(self.runtime.secret, f"phone:{phone}") if phone else None


def _entry_content(entry: OperatorEntry) -> dict[str, Any]:
    return {"text": entry.text, "location": Location(town=entry.town, village=entry.village, detail=entry.detail)}
