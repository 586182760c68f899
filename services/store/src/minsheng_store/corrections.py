"""A staff correction of a suggestion's category or unit, whether it comes from the API or the staff console."""

from __future__ import annotations

from typing import Any

import structlog

from minsheng_core.bus import PublishFailed
from minsheng_core.events import Correction, SuggestionCorrected, utc_now
from minsheng_core.staff import StaffMember
from minsheng_store.access import may_see, unit_scope
from minsheng_store.schemas import CorrectionCreate

log = structlog.get_logger(__name__)


class CorrectionRefused(Exception):
    """A correction that is not made; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def visible_suggestion(state: Any, member: StaffMember, suggestion_id: str) -> dict[str, Any] | None:
    """The suggestion if the member may see it; another unit's does not exist for unit staff."""
    doc = await state.repo.get(suggestion_id)
    return doc if doc is not None and may_see(member, doc) else None


async def correct(state: Any, member: StaffMember, suggestion_id: str, correction: CorrectionCreate) -> dict[str, Any]:
    """Publish the correction, apply it at once (it wins over the model), audit it; returns the updated document.
    Unit staff correct the category of their own unit's suggestions; moving one to another unit is the district
    office's decision."""
    campaign, units = state.campaign, state.units
    if correction.category is None and correction.unit is None:
        raise CorrectionRefused(422, "give a category, a unit, or both")
    if correction.category is not None and correction.category not in campaign.category_codes():
        raise CorrectionRefused(422, f"category must be one of {campaign.category_codes()}")
    if correction.unit is not None and correction.unit not in units.codes():
        raise CorrectionRefused(422, "unknown unit code")
    before = await visible_suggestion(state, member, suggestion_id)
    if before is None:
        raise CorrectionRefused(404, "suggestion not found")
    if correction.unit is not None and unit_scope(member) is not None and correction.unit != before.get("unit"):
        raise CorrectionRefused(403, "only the district office moves a suggestion to another unit")
    event = SuggestionCorrected(
        suggestion_id=suggestion_id,
        body=Correction(**correction.model_dump(), corrected_by=member.username, corrected_at=utc_now()),
    )
    try:
        await state.publisher.publish(event)
    except PublishFailed as exc:
        log.error("correction_not_published", error=str(exc)[:200])
        raise CorrectionRefused(503, "the correction could not be published; nothing changed") from exc
    await state.repo.apply_corrected(event)  # at once; the consumer applies the same event again, idempotently
    await state.audit.record(
        member,
        "correct_classification",
        suggestion_id,
        before={"category": before.get("category"), "unit": before.get("unit")},
        after=correction.model_dump(exclude_none=True),
    )
    return await state.repo.get(suggestion_id)
