"""Staff API of projects: create from a cluster or from suggestions, read, edit, move through the approval steps."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response

from minsheng_core.http import error_responses
from minsheng_store.access import Editor, Reader
from minsheng_store.projects import (
    Refused,
    create_project,
    list_projects,
    move_project,
    project_read,
    update_project,
    visible_project,
)
from minsheng_store.schemas import CandidateProjectCreate, ProjectPage, ProjectRead, ProjectTransitionCreate, ProjectUpdate

router = APIRouter(prefix="/api/v1/projects", tags=["staff"], responses=error_responses(404, 409))
ProjectId = Annotated[str, Path(min_length=1, max_length=64)]
Code = Annotated[str | None, Query(max_length=50, pattern=r"^[a-z][a-z0-9_]*$")]


def _refused(exc: Refused) -> HTTPException:
    return HTTPException(status_code=exc.status, detail=exc.detail)


@router.post("", response_model=ProjectRead, status_code=201)
async def create(
    project: CandidateProjectCreate,
    request: Request,
    response: Response,
    member: Editor,
    idempotency_key: Annotated[str | None, Header(pattern=r"^[A-Za-z0-9_.:-]{8,200}$")] = None,
) -> ProjectRead:
    """A candidate project from a cluster (every suggestion of it in your scope) or from suggestion ids, at the first
    approval step. Unit staff create their own unit's projects. The same Idempotency-Key gives the same project (200)."""
    try:
        doc, created = await create_project(request.app.state, member, project, idempotency_key)
    except Refused as exc:
        raise _refused(exc) from None
    if not created:
        response.status_code = 200
    return project_read(request.app.state, doc)


@router.get("", response_model=ProjectPage)
async def projects(
    request: Request,
    member: Reader,
    unit: Code = None,
    status: Code = None,
    category: Code = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ProjectPage:
    """Projects matching every given filter, newest first; unit staff see their own unit's only."""
    try:
        total, docs = await list_projects(request.app.state, member, unit, status, category, limit, offset)
    except Refused as exc:
        raise _refused(exc) from None
    return ProjectPage(total=total, limit=limit, offset=offset, items=[project_read(request.app.state, d) for d in docs])


@router.get("/{project_id}", response_model=ProjectRead)
async def project(project_id: ProjectId, request: Request, member: Reader) -> ProjectRead:
    """One project with its linked suggestions and the history of its steps."""
    try:
        return project_read(request.app.state, await visible_project(request.app.state, member, project_id))
    except Refused as exc:
        raise _refused(exc) from None


@router.patch("/{project_id}", response_model=ProjectRead)
async def edit(project_id: ProjectId, changes: ProjectUpdate, request: Request, member: Editor) -> ProjectRead:
    """Change a project that is neither approved nor rejected: title, category, place, cost estimate, description,
    suggestions linked (added ones must all be in your scope)."""
    try:
        return project_read(request.app.state, await update_project(request.app.state, member, project_id, changes))
    except Refused as exc:
        raise _refused(exc) from None


@router.post("/{project_id}/transitions", response_model=ProjectRead)
async def move(project_id: ProjectId, transition: ProjectTransitionCreate, request: Request, member: Editor) -> ProjectRead:
    """Move a project to its next approval step, or to rejected (who may: the campaign's project_steps; unit staff
    their own unit's only). Moving it where it is already changes nothing."""
    try:
        doc = await move_project(request.app.state, member, project_id, transition.to, transition.note)
    except Refused as exc:
        raise _refused(exc) from None
    return project_read(request.app.state, doc)
