"""Residents' contact data for staff: in clear for those who call residents back (every read audited), masked for
supervisors, never for operators; and its erasure on request (administrators). Lists and suggestion answers never
carry it: it is only here."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from minsheng_core.http import error_responses
from minsheng_core.personal import PersonalDataError, masked_fields, opened_fields, redact_phone_numbers
from minsheng_core.staff import Role, StaffMember
from minsheng_store.access import Administrator, Reader
from minsheng_store.corrections import visible_suggestion

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/v1/suggestions", tags=["staff"], responses=error_responses(404))
SuggestionId = Annotated[str, Path(max_length=64)]


class ContactRead(BaseModel):
    suggestion_id: str
    masked: bool = Field(description="true for supervisors: enough to recognise, not to call")
    name: str | None = None
    phone: str | None = None
    wechat_openid: str | None = None
    personal_data_erased_at: datetime | None = Field(default=None, description="erased on request: nothing is left")


class ErasureCreate(BaseModel):
    """Why the personal data is erased (the resident's request, its date and reference)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reason: str = Field(min_length=3, max_length=500)


class ErasureRead(BaseModel):
    suggestion_id: str
    erased_at: datetime
    removed_contact: bool = Field(description="contact data was there and is gone")
    redacted_numbers: int = Field(description="phone numbers taken out of the title and text by this request")


def _sees_in_clear(member: StaffMember) -> bool:
    # Administrators and the suggestion's own unit call residents back; supervisors only check the work.
    return member.has(Role.ADMIN, Role.UNIT_STAFF)


async def contact_of(state: Any, member: StaffMember, suggestion_id: str) -> ContactRead | None:
    """The suggestion's contact as the member may see it (None: no such suggestion in their scope); reads audited."""
    suggestion = await visible_suggestion(state, member, suggestion_id)
    if suggestion is None:
        return None
    document = await state.db.personal_data.find_one({"_id": suggestion_id}) or {}
    values = opened_fields(state.settings.vault, document)
    clear = _sees_in_clear(member)
    if clear:
        await state.audit.record(member, "read_personal_data", suggestion_id, fields=sorted(k for k, v in values.items() if v))
    shown = values if clear else masked_fields(values)
    erased_at = suggestion.get("personal_data_erased_at")
    return ContactRead(suggestion_id=suggestion_id, masked=not clear, personal_data_erased_at=erased_at, **shown)


@router.get("/{suggestion_id}/contact", response_model=ContactRead)
async def get_contact(suggestion_id: SuggestionId, request: Request, member: Reader) -> ContactRead:
    """The resident's contact: in clear for administrators and the unit's staff (audited), masked for supervisors."""
    try:
        contact = await contact_of(request.app.state, member, suggestion_id)
    except PersonalDataError as exc:  # sealed with a key no longer in the ring: a configuration error, said plainly
        log.error("personal_data_unreadable", error=str(exc)[:200])
        raise HTTPException(status_code=500, detail="the contact data cannot be opened with the configured keys") from None
    if contact is None:
        raise HTTPException(status_code=404, detail="suggestion not found")
    return contact


@router.delete("/{suggestion_id}/personal-data", response_model=ErasureRead)
async def erase_personal_data(
    suggestion_id: SuggestionId, erasure: ErasureCreate, request: Request, member: Administrator
) -> ErasureRead:
    """Erase the resident's contact data and phone numbers typed into the suggestion, which itself stays; for good
    (a redelivered event does not bring it back) and everywhere the tombstone reaches (the intakes' outboxes)."""
    state = request.app.state
    if await state.repo.get(suggestion_id) is None:
        raise HTTPException(status_code=404, detail="suggestion not found")
    done = await state.repo.erase_personal_data(suggestion_id, member.username)
    await state.audit.record(
        member,
        "erase_personal_data",
        suggestion_id,
        reason=redact_phone_numbers(erasure.reason)[0],  # the audit is read by supervisors: no number in it
        removed_contact=done.removed_contact,
        redacted_numbers=done.redacted_numbers,
    )
    log.info("personal_data_erased", suggestion_id=suggestion_id, removed_contact=done.removed_contact)
    return ErasureRead(
        suggestion_id=suggestion_id,
        erased_at=done.erased_at,
        removed_contact=done.removed_contact,
        redacted_numbers=done.redacted_numbers,
    )
