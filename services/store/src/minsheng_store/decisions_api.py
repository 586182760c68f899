"""Staff API of decisions: drafts per suggestion or in bulk, releases by the district office, the outcomes report."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request

from minsheng_core.http import error_responses
from minsheng_store.access import Administrator, Editor, Reader, unit_scope
from minsheng_store.decisions import decide_many, decision_read, get_draft, list_drafts, release, release_many, save_draft
from minsheng_store.outcomes import OutcomesReport, outcomes_report
from minsheng_store.projects import Refused
from minsheng_store.schemas import BulkDecisionCreate, BulkDecisionRead, DecisionCreate, DecisionPage, DecisionRead, ReleaseCreate

router = APIRouter(tags=["staff"], responses=error_responses(404, 503))
SuggestionId = Annotated[str, Path(min_length=1, max_length=64)]


def _refused(exc: Refused) -> HTTPException:
    return HTTPException(status_code=exc.status, detail=exc.detail)


@router.put("/api/v1/suggestions/{suggestion_id}/decision", response_model=DecisionRead)
async def draft_decision(suggestion_id: SuggestionId, decision: DecisionCreate, request: Request, member: Editor) -> DecisionRead:
    """Create or replace the decision draft of a suggestion (unit staff: their own unit's). Without an explanation the
    campaign's template for the outcome and reason is filled in; edit it by sending the draft again with yours."""
    try:
        return decision_read(await save_draft(request.app.state, member, suggestion_id, decision))
    except Refused as exc:
        raise _refused(exc) from None


@router.get("/api/v1/suggestions/{suggestion_id}/decision", response_model=DecisionRead)
async def suggestion_decision(suggestion_id: SuggestionId, request: Request, member: Reader) -> DecisionRead:
    """The decision of a suggestion: its draft, and what was released of it."""
    try:
        return decision_read(await get_draft(request.app.state, member, suggestion_id))
    except Refused as exc:
        raise _refused(exc) from None


@router.post("/api/v1/suggestions/{suggestion_id}/decision/release", response_model=DecisionRead)
async def release_decision(suggestion_id: SuggestionId, request: Request, member: Administrator) -> DecisionRead:
    """Release the drafted decision (administrators of the district office): published as SuggestionDecided. The same
    unchanged draft is not published twice; a changed one is a new decision that corrects the last."""
    try:
        draft, _ = await release(request.app.state, member, suggestion_id)
    except Refused as exc:
        raise _refused(exc) from None
    return decision_read(draft)


@router.get("/api/v1/decisions", response_model=DecisionPage)
async def decisions(
    request: Request,
    member: Reader,
    state: Literal["draft", "released", "changed"] | None = None,
    unit: Annotated[str | None, Query(max_length=50, pattern=r"^[a-z][a-z0-9_]*$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> DecisionPage:
    """Decision drafts, latest first: to release (draft, changed) or released; unit staff see their own unit's."""
    try:
        total, docs = await list_drafts(request.app.state, member, state, unit, limit, offset)
    except Refused as exc:
        raise _refused(exc) from None
    return DecisionPage(total=total, limit=limit, offset=offset, items=[decision_read(d) for d in docs])


@router.post("/api/v1/decisions/bulk", response_model=BulkDecisionRead)
async def bulk_decision(bulk: BulkDecisionCreate, request: Request, member: Editor) -> BulkDecisionRead:
    """One decision for many suggestions (ids, or every suggestion of a cluster in your scope), released at once with
    ``release`` (administrators). All or nothing: an unknown suggestion or another unit's refuses the whole request."""
    try:
        drafts, published, unchanged = await decide_many(request.app.state, member, bulk)
    except Refused as exc:
        raise _refused(exc) from None
    return BulkDecisionRead(decisions=[decision_read(d) for d in drafts], released=published, unchanged=unchanged)


@router.post("/api/v1/decisions/release", response_model=BulkDecisionRead)
async def release_decisions(release: ReleaseCreate, request: Request, member: Administrator) -> BulkDecisionRead:
    """Release the drafts of many suggestions (administrators); all must be drafted and complete, or none is released."""
    try:
        drafts, published, unchanged = await release_many(request.app.state, member, release.suggestion_ids)
    except Refused as exc:
        raise _refused(exc) from None
    return BulkDecisionRead(decisions=[decision_read(d) for d in drafts], released=published, unchanged=unchanged)


@router.get("/api/v1/reports/outcomes", response_model=OutcomesReport)
async def outcomes(
    request: Request, member: Reader, unit: Annotated[str | None, Query(max_length=50, pattern=r"^[a-z][a-z0-9_]*$")] = None
) -> OutcomesReport:
    """Released decisions by outcome and by reason not adopted, per unit and per category, and the notifications
    delivered per channel (the district office and supervisors: all or one unit; unit staff: their own unit)."""
    state = request.app.state
    scope = unit_scope(member)
    if scope is not None and unit not in (None, scope):
        raise HTTPException(status_code=404, detail="no such unit in your scope")
    if scope is None and unit is not None and unit not in state.units.codes():
        raise HTTPException(status_code=404, detail="no such unit")
    return await outcomes_report(state.db, state.campaign, state.units, scope or unit)
