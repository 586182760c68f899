"""Candidate projects (拟定项目) made from clusters or hand-picked suggestions, and their approval steps.

A project lives in ``projects``; it links suggestions by id and moves through the campaign's ``project_steps``:
forward one step at a time, or to rejected, each move recorded with who and when. Unit staff see and change their
own unit's projects only (another unit's do not exist for them); supervisors read, they never change anything.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import structlog
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from minsheng_core.campaign import ProjectSteps
from minsheng_core.staff import Role, StaffMember
from minsheng_store.access import OutOfScope, may_see, scoped_unit, unit_scope
from minsheng_store.locks import StripedLocks
from minsheng_store.repository import PENDING
from minsheng_store.schemas import CandidateProjectCreate, ProjectRead, ProjectStepRead, ProjectUpdate
from minsheng_store.weekly import unit_name

log = structlog.get_logger(__name__)

MAX_LINKED = 500
# What a project needs to know of its suggestions; never their text or anything personal.
_LINK_FIELDS = {"unit": 1, "category": 1, "cluster_id": 1, "tracking_code": 1, "status": 1}


class Refused(Exception):
    """A request that changes nothing; ``status`` is the HTTP status that says why, ``ids`` the suggestions at fault."""

    def __init__(self, status: int, message: str, ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.ids = ids

    @property
    def detail(self) -> str | dict[str, Any]:
        return str(self) if self.ids is None else {"message": str(self), "suggestion_ids": self.ids}


def locks(state: Any, name: str) -> StripedLocks:
    """One writer at a time per project or decision draft, across replicas (read-check-write sequences; FerretDB
    rewrites documents without transactions); made on first use, per app."""
    held = getattr(state, f"{name}_locks", None)
    if held is None:
        held = StripedLocks(leases=state.db.store_locks, scope=name)
        setattr(state, f"{name}_locks", held)
    return held


async def ensure_indexes(db: Any) -> None:
    """Indexes of the project queries; idempotent."""
    await db.projects.create_index([("unit", ASCENDING), ("created_at", DESCENDING)])
    await db.projects.create_index([("status", ASCENDING)])


# ------------------------------------------------------------------------------------------------ suggestions


async def suggestions_in_scope(state: Any, member: StaffMember, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The suggestions by id, all of them or none: any unknown, or another unit's for unit staff, refuses (404)."""
    wanted = list(dict.fromkeys(ids))
    cursor = state.db.suggestions.find({"_id": {"$in": wanted}, "status": {"$ne": PENDING}}, _LINK_FIELDS)
    found = {doc["_id"]: doc for doc in await cursor.to_list(None) if may_see(member, doc)}
    missing = [i for i in wanted if i not in found]
    if missing:
        raise Refused(404, "suggestions not found in your scope", missing)
    return {i: found[i] for i in wanted}


async def cluster_in_scope(state: Any, member: StaffMember, cluster_id: str) -> dict[str, dict[str, Any]]:
    """Every suggestion of a cluster the member may see, oldest first; none refuses (404)."""
    query: dict[str, Any] = {"cluster_id": cluster_id, "status": {"$ne": PENDING}}
    scope = unit_scope(member)
    if scope is not None:
        query["unit"] = scope
    cursor = state.db.suggestions.find(query, _LINK_FIELDS | {"submitted_at": 1}).sort([("submitted_at", ASCENDING)])
    docs = await cursor.limit(MAX_LINKED + 1).to_list(None)
    if not docs:
        raise Refused(404, "no suggestions of this cluster in your scope")
    if len(docs) > MAX_LINKED:
        raise Refused(422, f"the cluster has more than {MAX_LINKED} suggestions: pick them by id")
    return {doc["_id"]: doc for doc in docs}


def most_frequent(docs: list[dict[str, Any]], field: str) -> str | None:
    """The most frequent value of a field among suggestions (the first seen on a tie), None if none has one."""
    counts = Counter(doc.get(field) for doc in docs if doc.get(field))
    return counts.most_common(1)[0][0] if counts else None


# ------------------------------------------------------------------------------------------------ rules


def transition_problem(steps: ProjectSteps, current: str, to: str, role: Role) -> tuple[int, str] | None:
    """Why a project at ``current`` may not move to ``to`` for this role (HTTP status, message), or None if it may."""
    target = steps.step(to)
    if target is None:
        return 422, f"unknown step {to!r}; the steps are {steps.codes()}"
    if steps.is_final(current):
        return 409, f"the project is {current} already: it moves no further"
    following = steps.next_after(current)
    if to != steps.rejected.code and (following is None or to != following.code):
        allowed = [s for s in ((following.code if following else None), steps.rejected.code) if s]
        return 409, f"a project moves one step at a time: from {current} to {' or '.join(allowed)}"
    if role.value not in target.entered_by:
        return 403, f"{role.value} may not move a project to {to}"
    return None


def may_see_project(member: StaffMember, project: dict[str, Any]) -> bool:
    scope = unit_scope(member)
    return scope is None or project.get("unit") == scope


# ------------------------------------------------------------------------------------------------ reads


def project_read(state: Any, doc: dict[str, Any]) -> ProjectRead:
    """The answer for a project document."""
    steps: ProjectSteps = state.campaign.project_steps
    step = steps.step(doc["status"])
    following = steps.next_after(doc["status"])
    return ProjectRead(
        project_id=doc["_id"],
        campaign=doc["campaign"],
        title=doc["title"],
        category=doc["category"],
        category_name=state.campaign.category_name(doc["category"]),
        unit=doc["unit"],
        unit_name=unit_name(state.units, doc["unit"]),
        place=doc.get("place"),
        estimate_yuan=doc.get("estimate_yuan"),
        description=doc.get("description"),
        cluster_id=doc.get("cluster_id"),
        suggestion_ids=doc.get("suggestion_ids", []),
        status=doc["status"],
        status_name=step.name if step else doc["status"],
        next_status=following.code if following and not steps.is_final(doc["status"]) else None,
        history=[ProjectStepRead(**entry) for entry in doc.get("history", [])],
        created_by=doc["created_by"],
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


async def visible_project(state: Any, member: StaffMember, project_id: str) -> dict[str, Any]:
    """The project if the member may see it; another unit's does not exist for unit staff (404)."""
    doc = await state.db.projects.find_one({"_id": project_id})
    if doc is None or not may_see_project(member, doc):
        raise Refused(404, "project not found")
    return doc


async def list_projects(
    state: Any, member: StaffMember, unit: str | None, status: str | None, category: str | None, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """Projects matching every given filter, newest first; unit staff see their own unit's only."""
    try:
        unit = scoped_unit(member, unit)
    except OutOfScope as exc:
        raise Refused(404, str(exc)) from None
    query = {k: v for k, v in (("unit", unit), ("status", status), ("category", category)) if v is not None}
    total = await state.db.projects.count_documents(query)
    cursor = state.db.projects.find(query).sort([("created_at", DESCENDING), ("_id", ASCENDING)]).skip(offset).limit(limit)
    return total, await cursor.to_list(None)


# ------------------------------------------------------------------------------------------------ writes


def project_id_for(member: StaffMember, idempotency_key: str | None) -> str:
    """A retry with the same Idempotency-Key by the same member names the same project; otherwise a new id."""
    if idempotency_key is None:
        return "p" + uuid.uuid4().hex[:23]
    return "p" + hashlib.sha256(f"{member.username}\n{idempotency_key}".encode()).hexdigest()[:23]


def _checked_category(state: Any, category: str) -> str:
    if category not in state.campaign.category_codes():
        raise Refused(422, f"category must be one of {state.campaign.category_codes()}")
    return category


async def create_project(
    state: Any, member: StaffMember, create: CandidateProjectCreate, idempotency_key: str | None = None
) -> tuple[dict[str, Any], bool]:
    """Create a project at the first approval step; returns (document, created). A retry with the same key returns
    the project made the first time."""
    project_id = project_id_for(member, idempotency_key)
    existing = await state.db.projects.find_one({"_id": project_id})
    if existing is not None:
        return existing, False
    if create.cluster_id is not None:
        linked = await cluster_in_scope(state, member, create.cluster_id)
    else:
        linked = await suggestions_in_scope(state, member, create.suggestion_ids or [])
    docs = list(linked.values())
    scope = unit_scope(member)
    unit = create.unit or scope or most_frequent(docs, "unit") or state.units.district.code
    if unit not in state.units.codes():
        raise Refused(422, "unknown unit code")
    if scope is not None and unit != scope:
        raise Refused(403, "unit staff create projects of their own unit")
    category = create.category or most_frequent(docs, "category")
    if category is None:
        raise Refused(422, "give a category: none of the suggestions is classified yet")
    now = datetime.now(UTC)
    first = state.campaign.project_steps.first.code
    doc = {
        "_id": project_id,
        "campaign": state.campaign.code,
        "title": create.title,
        "category": _checked_category(state, category),
        "unit": unit,
        "place": create.place or None,
        "estimate_yuan": create.estimate_yuan,
        "description": create.description or None,
        "cluster_id": create.cluster_id,
        "suggestion_ids": list(linked),
        "status": first,
        "history": [{"from_status": None, "to_status": first, "by": member.username, "at": now, "note": None}],
        "created_by": member.username,
        "created_at": now,
        "updated_at": now,
    }
    try:
        await state.db.projects.insert_one(doc)
    except DuplicateKeyError:  # the same key sent twice at once: the first one made it
        return await state.db.projects.find_one({"_id": project_id}), False
    details = {"unit": unit, "category": doc["category"], "suggestions": len(linked), "cluster_id": create.cluster_id}
    await state.audit.record(member, "create_project", project_id, **details)
    log.info("project_created", project_id=project_id, unit=unit, suggestions=len(linked))
    return doc, True


async def update_project(state: Any, member: StaffMember, project_id: str, update: ProjectUpdate) -> dict[str, Any]:
    """Change title, category, place, cost estimate, description or the linked suggestions of a project that is not
    final yet; suggestions added must all be in the member's scope."""
    given = update.model_fields_set
    async with locks(state, "project")(project_id):
        doc = await visible_project(state, member, project_id)
        if state.campaign.project_steps.is_final(doc["status"]):
            raise Refused(409, f"the project is {doc['status']}: it does not change any more")
        changes: dict[str, Any] = {}
        if update.title is not None:
            changes["title"] = update.title
        if update.category is not None:
            changes["category"] = _checked_category(state, update.category)
        for name in ("place", "description"):
            if name in given:
                changes[name] = getattr(update, name) or None
        if "estimate_yuan" in given:
            changes["estimate_yuan"] = update.estimate_yuan
        if update.add_suggestion_ids or update.remove_suggestion_ids:
            added = await suggestions_in_scope(state, member, update.add_suggestion_ids) if update.add_suggestion_ids else {}
            removed = set(update.remove_suggestion_ids)
            linked = [i for i in doc.get("suggestion_ids", []) if i not in removed]
            linked += [i for i in added if i not in linked]
            if len(linked) > MAX_LINKED:
                raise Refused(422, f"a project links at most {MAX_LINKED} suggestions")
            changes["suggestion_ids"] = linked
        changes = {k: v for k, v in changes.items() if doc.get(k) != v}
        if not changes:
            return doc
        await state.db.projects.update_one({"_id": project_id}, {"$set": {**changes, "updated_at": datetime.now(UTC)}})
        await state.audit.record(member, "update_project", project_id, changed=sorted(changes))
        return await state.db.projects.find_one({"_id": project_id})


async def move_project(state: Any, member: StaffMember, project_id: str, to: str, note: str | None) -> dict[str, Any]:
    """Move a project to its next step or to rejected; moving it where it already is changes nothing (a retry)."""
    steps: ProjectSteps = state.campaign.project_steps
    async with locks(state, "project")(project_id):
        doc = await visible_project(state, member, project_id)
        current = doc["status"]
        if current == to:
            return doc
        problem = transition_problem(steps, current, to, member.role)
        if problem is not None:
            raise Refused(*problem)
        now = datetime.now(UTC)
        entry = {"from_status": current, "to_status": to, "by": member.username, "at": now, "note": note}
        await state.db.projects.update_one(
            {"_id": project_id, "status": current}, {"$set": {"status": to, "updated_at": now}, "$push": {"history": entry}}
        )
        await state.audit.record(member, "move_project", project_id, before={"status": current}, after={"status": to})
        log.info("project_moved", project_id=project_id, from_status=current, to_status=to)
        return await state.db.projects.find_one({"_id": project_id})


async def link_adopted(state: Any, project_id: str, suggestion_id: str) -> None:
    """A suggestion adopted into a project is one of its suggestions from then on."""
    async with locks(state, "project")(project_id):
        await state.db.projects.update_one(
            {"_id": project_id, "suggestion_ids": {"$ne": suggestion_id}},
            {"$push": {"suggestion_ids": suggestion_id}, "$set": {"updated_at": datetime.now(UTC)}},
        )
