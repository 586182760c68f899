"""Decisions on suggestions: drafts staff write and edit, released by the district office as ``SuggestionDecided``.

A draft (``decision_drafts``, one per suggestion) holds outcome, project / merged suggestion / department, reason and
the explanation the submitter will read, drafted from the campaign's template and editable. Releasing publishes the
decision with confirms, applies it at once (the consumer applies the same event again, idempotently) and audits it.
A release's ``decision_id`` is derived from the suggestion, the content and the previous release: releasing the same
unchanged draft again publishes nothing; releasing a changed draft is a new decision (a correction of the last one).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import structlog
from pydantic import ValidationError
from pymongo import ASCENDING, DESCENDING

from minsheng_core.bus import PublishFailed
from minsheng_core.campaign import EXPLANATION_MAX, OUTCOME_NAMES, REASON_NAMES, render_explanation
from minsheng_core.events import Decision, Outcome, Reason, SuggestionDecided, utc_now
from minsheng_core.staff import Role, StaffMember
from minsheng_store.access import OutOfScope, may_see, scoped_unit
from minsheng_store.projects import Refused, cluster_in_scope, link_adopted, locks, may_see_project, suggestions_in_scope
from minsheng_store.schemas import BulkDecisionCreate, DecisionCreate, DecisionRead
from minsheng_store.weekly import unit_name

log = structlog.get_logger(__name__)

DRAFT, RELEASED, CHANGED = "draft", "released", "changed"
ONLY_ADMINS = "only the district office's administrators release decisions"


@dataclass(frozen=True)
class DecisionContent:
    """What a release fixes; its fingerprint tells an unchanged draft from a changed one."""

    outcome: Outcome
    project_id: str | None
    merged_into: str | None
    referred_to: str | None
    reason: Reason | None
    explanation: str

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    @classmethod
    def of(cls, draft: dict[str, Any]) -> DecisionContent:
        reason = draft.get("reason")
        return cls(
            outcome=Outcome(draft["outcome"]),
            project_id=draft.get("project_id"),
            merged_into=draft.get("merged_into"),
            referred_to=draft.get("referred_to"),
            reason=Reason(reason) if reason else None,
            explanation=draft.get("explanation") or "",
        )


def misplaced(create: DecisionCreate) -> list[str]:
    """Fields given that do not belong to the outcome (refused at once: they would be silently dropped otherwise)."""
    belongs = {
        "project_id": (Outcome.ADOPTED, Outcome.MERGED),
        "merged_into": (Outcome.MERGED,),
        "referred_to": (Outcome.REFERRED,),
        "reason": (Outcome.NOT_ADOPTED,),
    }
    return [
        f"{name} does not go with outcome {create.outcome.value}"
        for name, outcomes in belongs.items()
        if getattr(create, name) is not None and create.outcome not in outcomes
    ]


def release_problems(content: DecisionContent) -> list[str]:
    """What keeps a draft from being released (empty: it may be released)."""
    problems = []
    if content.outcome is Outcome.NOT_ADOPTED and content.reason is None:
        problems.append("a suggestion not adopted needs a reason")
    if content.outcome is Outcome.ADOPTED and content.project_id is None:
        problems.append("an adopted suggestion names its project")
    if content.outcome is Outcome.MERGED and content.project_id is None and content.merged_into is None:
        problems.append("a merged suggestion names the suggestion or project it was merged into")
    if content.outcome is Outcome.REFERRED and not content.referred_to:
        problems.append("a referred suggestion names the department")
    if not content.explanation.strip():
        problems.append("the explanation is empty")
    elif len(content.explanation) > EXPLANATION_MAX:
        problems.append(f"the explanation is longer than {EXPLANATION_MAX} characters")
    return problems


def decision_id_for(suggestion_id: str, fingerprint: str, previous: str | None) -> str:
    """The same draft released on top of the same previous decision is the same decision (a retry publishes it again
    under its id, and every consumer keys on it); a change, or a change back, is a new one."""
    return "d" + hashlib.sha256(f"{suggestion_id}\n{fingerprint}\n{previous or ''}".encode()).hexdigest()[:31]


def decision_read(draft: dict[str, Any]) -> DecisionRead:
    """The answer for a draft document."""
    released = draft.get("released") or {}
    outcome = Outcome(draft["outcome"])
    reason = Reason(draft["reason"]) if draft.get("reason") else None
    return DecisionRead(
        suggestion_id=draft["_id"],
        tracking_code=draft.get("tracking_code"),
        unit=draft.get("unit"),
        state=draft.get("state", DRAFT),
        outcome=outcome,
        outcome_name=OUTCOME_NAMES[outcome],
        project_id=draft.get("project_id"),
        merged_into=draft.get("merged_into"),
        referred_to=draft.get("referred_to"),
        reason=reason,
        reason_name=REASON_NAMES[reason] if reason else None,
        explanation=draft.get("explanation") or "",
        drafted_by=draft["drafted_by"],
        drafted_at=draft["drafted_at"],
        decision_id=released.get("decision_id"),
        released_by=released.get("released_by"),
        released_at=released.get("released_at"),
    )


async def ensure_indexes(db: Any) -> None:
    """Indexes of the draft queries; idempotent."""
    await db.decision_drafts.create_index([("unit", ASCENDING), ("drafted_at", DESCENDING)])
    await db.decision_drafts.create_index([("state", ASCENDING)])


# ------------------------------------------------------------------------------------------------ drafting


async def _suggestion(state: Any, member: StaffMember, suggestion_id: str) -> dict[str, Any]:
    doc = await state.repo.get(suggestion_id)
    if doc is None or not may_see(member, doc):
        raise Refused(404, "suggestion not found")
    return doc


async def _references(state: Any, member: StaffMember, create: DecisionCreate, targets: set[str]) -> dict[str, Any] | None:
    """Check the project and the suggestion a decision refers to (visible to the member); returns the project."""
    problems = misplaced(create)
    if problems:
        raise Refused(422, "; ".join(problems))
    project = None
    if create.project_id is not None:
        project = await state.db.projects.find_one({"_id": create.project_id})
        if project is None or not may_see_project(member, project):
            raise Refused(422, "project_id: no such project in your scope")
        if state.campaign.project_steps.rejected.code == project["status"]:
            raise Refused(422, "project_id: the project was rejected")
    if create.merged_into is not None:
        if create.merged_into in targets:
            raise Refused(422, "merged_into: a suggestion is not merged into itself")
        target = await state.repo.get(create.merged_into)
        if target is None or not may_see(member, target):
            raise Refused(422, "merged_into: no such suggestion in your scope")
    return project


def _content(state: Any, doc: dict[str, Any], create: DecisionCreate, project: dict[str, Any] | None) -> DecisionContent:
    """The draft's content; without an explanation, the campaign's template for the outcome and reason."""
    text = create.explanation
    if text is None:
        templates = state.campaign.decision_templates
        text = (templates.template_for(create.outcome, create.reason) if templates else None) or ""
    values = {
        "tracking_code": doc.get("tracking_code") or "",
        "unit_name": unit_name(state.units, doc["unit"]) if doc.get("unit") else "",
        "category_name": state.campaign.category_name(doc["category"]) if doc.get("category") else "",
        "campaign_name": state.campaign.name,
        "project_title": project["title"] if project else "",
        "referred_to": create.referred_to or "",
    }
    return DecisionContent(
        outcome=create.outcome,
        project_id=create.project_id,
        merged_into=create.merged_into,
        referred_to=create.referred_to,
        reason=create.reason,
        explanation=render_explanation(text, values).strip(),
    )


async def _store_draft(state: Any, member: StaffMember, doc: dict[str, Any], content: DecisionContent) -> dict[str, Any]:
    """Write the draft unless it says the same already (a retry); returns it."""
    suggestion_id = doc["_id"]
    drafts = state.db.decision_drafts
    fingerprint = content.fingerprint()
    async with locks(state, "decision")(suggestion_id):
        existing = await drafts.find_one({"_id": suggestion_id}) or {}
        if existing.get("fingerprint") == fingerprint:
            return existing
        released = existing.get("released")
        fields = asdict(content) | {
            "outcome": content.outcome.value,
            "reason": content.reason.value if content.reason else None,
            "tracking_code": doc.get("tracking_code"),
            "unit": doc.get("unit"),
            "fingerprint": fingerprint,
            "state": DRAFT if not released else (RELEASED if released["fingerprint"] == fingerprint else CHANGED),
            "drafted_by": member.username,
            "drafted_at": utc_now(),
        }
        await drafts.update_one({"_id": suggestion_id}, {"$set": fields}, upsert=True)
    await state.audit.record(member, "draft_decision", suggestion_id, outcome=content.outcome.value, reason=fields["reason"])
    return await drafts.find_one({"_id": suggestion_id})


async def save_draft(state: Any, member: StaffMember, suggestion_id: str, create: DecisionCreate) -> dict[str, Any]:
    """Create or replace the decision draft of one suggestion of the member's scope."""
    doc = await _suggestion(state, member, suggestion_id)
    project = await _references(state, member, create, {suggestion_id})
    return await _store_draft(state, member, doc, _content(state, doc, create, project))


async def get_draft(state: Any, member: StaffMember, suggestion_id: str) -> dict[str, Any]:
    await _suggestion(state, member, suggestion_id)
    draft = await state.db.decision_drafts.find_one({"_id": suggestion_id})
    if draft is None:
        raise Refused(404, "no decision drafted for this suggestion")
    return draft


async def list_drafts(
    state: Any, member: StaffMember, draft_state: str | None, unit: str | None, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """Decision drafts (released or not) matching the filters, latest first; unit staff see their own unit's only."""
    try:
        unit = scoped_unit(member, unit)
    except OutOfScope as exc:
        raise Refused(404, str(exc)) from None
    query = {k: v for k, v in (("unit", unit), ("state", draft_state)) if v is not None}
    total = await state.db.decision_drafts.count_documents(query)
    cursor = state.db.decision_drafts.find(query).sort([("drafted_at", DESCENDING), ("_id", ASCENDING)]).skip(offset).limit(limit)
    return total, await cursor.to_list(None)


# ------------------------------------------------------------------------------------------------ releasing


async def _reference_problems(state: Any, content: DecisionContent) -> list[str]:
    """What the decision refers to must still be there when it is released."""
    problems = []
    if content.project_id is not None:
        project = await state.db.projects.find_one({"_id": content.project_id}, {"status": 1})
        if project is None:
            problems.append("its project no longer exists")
        elif project["status"] == state.campaign.project_steps.rejected.code:
            problems.append("its project was rejected")
    if content.merged_into is not None and await state.repo.get(content.merged_into) is None:
        problems.append("the suggestion it is merged into no longer exists")
    return problems


async def _release_one(state: Any, member: StaffMember, suggestion_id: str) -> tuple[dict[str, Any], bool]:
    """Release one draft; returns (draft, whether a decision was published now)."""
    async with locks(state, "decision")(suggestion_id):
        doc = await state.repo.get(suggestion_id)
        draft = await state.db.decision_drafts.find_one({"_id": suggestion_id})
        if doc is None or draft is None:
            raise Refused(404, "no decision drafted for this suggestion", [suggestion_id])
        content = DecisionContent.of(draft)
        problems = release_problems(content) + await _reference_problems(state, content)
        if problems:
            raise Refused(422, "cannot release: " + "; ".join(problems), [suggestion_id])
        fingerprint = content.fingerprint()
        released = draft.get("released")
        if released and released["fingerprint"] == fingerprint:
            return draft, False
        now = utc_now()
        try:
            decision = Decision(
                decision_id=decision_id_for(suggestion_id, fingerprint, released["decision_id"] if released else None),
                outcome=content.outcome,
                project_id=content.project_id,
                merged_into=content.merged_into,
                referred_to=content.referred_to,
                reason=content.reason,
                explanation=content.explanation,
                unit=doc.get("unit"),
                category=doc.get("category"),
                decided_by=draft["drafted_by"],
                released_by=member.username,
                released_at=now,
            )
        except ValidationError as exc:
            problems = [e["msg"] for e in exc.errors()]
            raise Refused(422, "cannot release: " + "; ".join(problems), [suggestion_id]) from None
        event = SuggestionDecided(suggestion_id=suggestion_id, body=decision)
        try:
            await state.publisher.publish(event)
        except PublishFailed as exc:
            log.error("decision_not_published", error=str(exc)[:200])
            raise Refused(503, "the decision could not be published; nothing changed", [suggestion_id]) from exc
        await state.repo.apply_decided(event)  # at once; the consumer applies the same event again, idempotently
        if content.outcome is Outcome.ADOPTED and content.project_id is not None:
            await link_adopted(state, content.project_id, suggestion_id)
        record = {
            "decision_id": decision.decision_id,
            "fingerprint": fingerprint,
            "released_by": member.username,
            "released_at": now,
        }
        await state.db.decision_drafts.update_one(
            {"_id": suggestion_id}, {"$set": {"released": record, "state": RELEASED, "unit": doc.get("unit")}}
        )
    await state.audit.record(
        member,
        "release_decision",
        suggestion_id,
        decision_id=decision.decision_id,
        corrects=released["decision_id"] if released else None,
        outcome=content.outcome.value,
        reason=content.reason.value if content.reason else None,
        project_id=content.project_id,
    )
    log.info("decision_released", decision_id=decision.decision_id, outcome=content.outcome.value)
    return await state.db.decision_drafts.find_one({"_id": suggestion_id}), True


async def release(state: Any, member: StaffMember, suggestion_id: str) -> tuple[dict[str, Any], bool]:
    """Release the draft of one suggestion (administrators only)."""
    if not member.has(Role.ADMIN):
        raise Refused(403, ONLY_ADMINS)
    await get_draft(state, member, suggestion_id)
    return await _release_one(state, member, suggestion_id)


async def _release_all(state: Any, member: StaffMember, ids: list[str]) -> tuple[list[dict[str, Any]], int, int]:
    drafts, published, unchanged = [], 0, 0
    for position, suggestion_id in enumerate(ids):
        try:
            draft, now = await _release_one(state, member, suggestion_id)
        except Refused as exc:
            if exc.status != 503:
                raise
            # Those released so far stay released; a retry of the same request publishes only the rest.
            message = f"{published} decisions published, the rest could not be: send the request again"
            raise Refused(503, message, ids[position:]) from exc
        drafts.append(draft)
        published += now
        unchanged += not now
    return drafts, published, unchanged


async def release_many(state: Any, member: StaffMember, ids: list[str]) -> tuple[list[dict[str, Any]], int, int]:
    """Release the drafts of many suggestions, all or none: every one must be drafted and complete before any is
    published. Returns (drafts, published now, unchanged)."""
    if not member.has(Role.ADMIN):
        raise Refused(403, ONLY_ADMINS)
    wanted = list(dict.fromkeys(ids))
    await suggestions_in_scope(state, member, wanted)
    drafts = {d["_id"]: d async for d in state.db.decision_drafts.find({"_id": {"$in": wanted}})}
    missing = [i for i in wanted if i not in drafts]
    if missing:
        raise Refused(404, "no decision drafted for these suggestions", missing)
    incomplete = [i for i in wanted if release_problems(DecisionContent.of(drafts[i]))]
    if incomplete:
        raise Refused(422, "these drafts cannot be released as they are (reason, explanation or reference missing)", incomplete)
    return await _release_all(state, member, wanted)


async def decide_many(state: Any, member: StaffMember, bulk: BulkDecisionCreate) -> tuple[list[dict[str, Any]], int, int]:
    """One decision drafted for many suggestions (a list, or a cluster's) and released at once if asked. All or
    nothing: any suggestion unknown or outside the member's unit, or any draft that could not be released, refuses
    the whole request before anything changes. Returns (drafts, published now, unchanged)."""
    if bulk.release and not member.has(Role.ADMIN):
        raise Refused(403, ONLY_ADMINS)
    if bulk.cluster_id is not None:
        targets = await cluster_in_scope(state, member, bulk.cluster_id)
    else:
        targets = await suggestions_in_scope(state, member, bulk.suggestion_ids or [])
    create = DecisionCreate.model_validate(bulk.model_dump(include=set(DecisionCreate.model_fields)))
    project = await _references(state, member, create, set(targets))
    contents = {i: _content(state, doc, create, project) for i, doc in targets.items()}
    if bulk.release:
        incomplete = {i: release_problems(c) for i, c in contents.items()}
        if any(incomplete.values()):
            first = next(p for p in incomplete.values() if p)
            raise Refused(422, "cannot release: " + "; ".join(first), [i for i, p in incomplete.items() if p])
    drafts = [await _store_draft(state, member, targets[i], content) for i, content in contents.items()]
    if not bulk.release:
        return drafts, 0, 0
    return await _release_all(state, member, list(contents))
