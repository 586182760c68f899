"""The staff API of the notifier: delivery records, and a resend when the outcome is unknown or was given up."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from minsheng_core.http import error_responses
from minsheng_core.staff import Role, StaffMember
from minsheng_core.staff_pages import token_member
from minsheng_notifier.records import NotResendable, State
from minsheng_notifier.schemas import NotificationPage, NotificationRead

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


async def _district_reader(member: Annotated[StaffMember, Depends(token_member)]) -> StaffMember:
    if not member.has(Role.ADMIN, Role.SUPERVISOR):
        raise HTTPException(status_code=403, detail="for the district office and its supervisors")
    return member


async def _administrator(member: Annotated[StaffMember, Depends(token_member)]) -> StaffMember:
    if not member.has(Role.ADMIN):
        raise HTTPException(status_code=403, detail="for the district office's administrators")
    return member


Reader = Annotated[StaffMember, Depends(_district_reader)]
Admin = Annotated[StaffMember, Depends(_administrator)]
DecisionId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("", response_model=NotificationPage)
async def list_notifications(
    request: Request,
    member: Reader,
    state: State | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> NotificationPage:
    """Delivery records, newest first, with the number in each state (``unknown`` ones need a decision of staff)."""
    records = request.app.state.records
    total, docs = await records.page(state, limit, offset)
    items = [NotificationRead.from_document(d) for d in docs]
    return NotificationPage(total=total, limit=limit, offset=offset, counts=await records.counts(), items=items)


@router.get("/{decision_id}", response_model=NotificationRead, responses=error_responses(404))
async def get_notification(decision_id: DecisionId, request: Request, member: Reader) -> NotificationRead:
    """The delivery record of one decision."""
    doc = await request.app.state.records.get(decision_id)
    if doc is None:
        raise HTTPException(status_code=404, detail="no notification for this decision")
    return NotificationRead.from_document(doc)


@router.post("/{decision_id}/resend", response_model=NotificationRead, responses=error_responses(404, 409))
async def resend_notification(decision_id: DecisionId, request: Request, member: Admin) -> NotificationRead:
    """Send again a notification whose outcome is unknown or that was given up (audited)."""
    state = request.app.state
    try:
        doc = await state.records.resend(decision_id, member.username, state.clock())
    except NotResendable as exc:
        detail = f"only unknown or given-up notifications are resent (this one: {exc})"
        raise HTTPException(status_code=409, detail=detail) from None
    if doc is None:
        raise HTTPException(status_code=404, detail="no notification for this decision")
    await state.audit.record(member, "resend_notification", decision_id, from_state=doc["resends"][-1]["from_state"])
    log.info("notification_resend_requested", decision_id=decision_id, staff=member.username)
    return NotificationRead.from_document(doc)
