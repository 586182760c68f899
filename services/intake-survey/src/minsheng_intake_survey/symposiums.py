"""Symposiums (座谈会): a unit records the meeting and the suggestions it gave, each on the symposium channel."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, time
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from minsheng_core.campaign import Campaign
from minsheng_core.events import BODY_MAX, PLACE_MAX, Channel, Location, PersonalData, SubmitterGroup, Symposium, SymposiumHeld
from minsheng_core.intake import IntakeRuntime
from minsheng_core.outbox import SubmissionKeyConflict
from minsheng_core.phones import Phone
from minsheng_core.staff import StaffMember
from minsheng_core.text import require_words
from minsheng_core.units import UnitRegistry


class SymposiumSuggestionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: Annotated[str, AfterValidator(require_words)] = Field(min_length=1, max_length=BODY_MAX)
    name: str | None = Field(default=None, max_length=50)
    phone: Phone | None = None
    submitter_group: SubmitterGroup = SubmitterGroup.RESIDENT


class SymposiumCreate(BaseModel):
    """A symposium as the unit records it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    held_on: date
    place: str = Field(min_length=1, max_length=PLACE_MAX, description="village, community or meeting room")
    host: str = Field(min_length=1, max_length=50)
    participants: int = Field(ge=1, le=10_000)
    groups: list[SubmitterGroup] = Field(default_factory=list, max_length=6)
    suggestions: list[SymposiumSuggestionCreate] = Field(min_length=1, max_length=200)


class SymposiumRefused(ValueError):
    """The symposium cannot be recorded as given (the message says why, in Chinese)."""


class SymposiumConflict(SymposiumRefused):
    """The same symposium was recorded before with other details; what was recorded then stays as it was."""


_CONFLICT = (
    "这次座谈会（同一日期、地点和主持人）已经录入过，{what}与当时录入的不同。已录入的内容没有改动；如需更正，请联系区民心办。"
)


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, default=str).encode()).hexdigest()[:32]


async def record_symposium(
    runtime: IntakeRuntime, campaign: Campaign, units: UnitRegistry, member: StaffMember, unit: str, create: SymposiumCreate
) -> tuple[str, list[str], bool]:
    """Accept the suggestions and the symposium; the same record twice changes nothing.
    Returns the symposium id, the suggestions' tracking codes and whether the symposium is new."""
    today = datetime.now(campaign.zone).date()
    if not campaign.opens_on <= create.held_on <= min(campaign.closes_on, today):
        raise SymposiumRefused(f"座谈会日期应在征集期内（{campaign.window_text()}），且不晚于今天")
    registry_unit = units.unit(unit)
    symposium_id = _digest(unit, create.held_on, create.place, create.host)
    held_at = datetime.combine(create.held_on, time(12), campaign.zone)
    codes, ids = [], []
    seen: dict[tuple[str, str | None], int] = {}
    for number, suggestion in enumerate(create.suggestions, start=1):
        # Two participants may well say the same thing: each occurrence is a suggestion of its own (the first keeps
        # the key a suggestion always had, so a record made before is still recognised).
        said = (suggestion.text, suggestion.name)
        seen[said] = seen.get(said, -1) + 1
        key_parts = (*said, seen[said]) if seen[said] else said
        content = {
            "text": suggestion.text,
            "location": Location(town=registry_unit.name if registry_unit else None, detail=create.place),
            "submitter_group": suggestion.submitter_group,
            "unit": unit,
        }
        try:
            accepted = await runtime.receive(
                campaign,
                Channel.SYMPOSIUM,
                f"symposium:{symposium_id}:{_digest(*key_parts)}",
                content,
                PersonalData(name=suggestion.name, phone=suggestion.phone),
                held_at,
                fingerprint=_digest(suggestion.model_dump(mode="json")),
                author=member.username,
            )
        except SubmissionKeyConflict:
            raise SymposiumConflict(_CONFLICT.format(what=f"第 {number} 条建议的提交人类别或电话")) from None
        codes.append(accepted.tracking_code or "")
        ids.append(accepted.suggestion_id)
    body = Symposium(
        unit=unit,
        held_on=create.held_on,
        place=create.place,
        host=create.host,
        participants=create.participants,
        groups=create.groups,
        suggestion_ids=sorted(ids),
    )
    event = SymposiumHeld(symposium_id=symposium_id, body=body)
    submission = f"symposium:{symposium_id}:{_digest(body.suggestion_ids)}"
    try:
        accepted = await runtime.outbox.accept(submission, _digest(body.model_dump(mode="json")), event, author=member.username)
    except SubmissionKeyConflict:
        raise SymposiumConflict(_CONFLICT.format(what="参会人数或参会人员类别")) from None
    await runtime.publish_now(accepted)
    return symposium_id, codes, accepted.new
