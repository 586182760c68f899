"""Staff API of the classified summary tables (分类汇总表) and of each unit's head, who signs them off.

Unit staff reach their own unit's table only (another unit's answers 404 before anything else is looked at); the
district office designates heads and takes the district's steps; supervisors read everything and change nothing.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from minsheng_core.http import error_responses
from minsheng_core.staff import USERNAME_PATTERN, StaffMember
from minsheng_store.access import Administrator, DistrictReader, Editor, Reader, unit_scope
from minsheng_store.summary_tables import (
    Head,
    InvalidContent,
    NotAllowed,
    OutOfOrder,
    Overview,
    ProjectCreate,
    Step,
    SummaryTable,
    SummaryTableError,
    SummaryTables,
    TableNotFound,
    consolidated_xlsx,
    table_title,
    table_xlsx,
)

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/v1", tags=["staff"], responses=error_responses(404, 409))
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
UnitCode = Annotated[str, Path(max_length=50, pattern=r"^[a-z][a-z0-9_]*$")]
_STATUS: dict[type[SummaryTableError], int] = {TableNotFound: 404, NotAllowed: 403, OutOfOrder: 409, InvalidContent: 422}


class HeadUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    username: str = Field(pattern=USERNAME_PATTERN, description="an active unit staff account of the unit")


class ProjectsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    projects: list[ProjectCreate] = Field(max_length=500, description="every project of the table (replaces them all)")


class StepNote(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note: str | None = Field(default=None, max_length=500, description="e.g. the meeting's number or a remark")


def _in_scope(request: Request, member: StaffMember, unit: str) -> str:
    # Parameters put this first, so that another unit's clerk gets 404 on every route of a unit, whatever the role
    # the route needs and whatever the body.
    scope = unit_scope(member)
    if request.app.state.units.unit(unit) is None or (scope is not None and scope != unit):
        raise HTTPException(status_code=404, detail="no such unit in your scope")
    return unit


async def readable_unit(unit: UnitCode, request: Request, member: Reader) -> str:
    """The unit of the path, when the member may read it (checked before any request body is looked at)."""
    return _in_scope(request, member, unit)


async def editable_unit(unit: UnitCode, request: Request, member: Editor) -> str:
    """The unit of the path, when the member may change it (checked before any request body is looked at)."""
    return _in_scope(request, member, unit)


ReadableUnit = Annotated[str, Depends(readable_unit)]
EditableUnit = Annotated[str, Depends(editable_unit)]


def tables_of(state: Any) -> SummaryTables:
    """The summary tables of the app's database, campaign and units."""
    return SummaryTables(state.db, state.campaign, state.units)


def _tables(request: Request) -> SummaryTables:
    return tables_of(request.app.state)


Tables = Annotated[SummaryTables, Depends(_tables)]


def _refused(exc: SummaryTableError) -> HTTPException:
    return HTTPException(status_code=_STATUS.get(type(exc), 409), detail=str(exc))


def _xlsx(content: bytes, ascii_name: str, local_name: str) -> Response:
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(local_name)}"
    return Response(content, media_type=XLSX, headers={"Content-Disposition": disposition})


# ---------------------------------------------------------------------------------------------------------- heads


@router.put("/units/{unit}/head", response_model=Head)
async def designate_head(unit: ReadableUnit, member: Administrator, update: HeadUpdate, request: Request, tables: Tables) -> Head:
    """Designate the unit's head (单位负责人): the only account that signs the unit's summary table off."""
    try:
        head = await tables.designate_head(unit, update.username, member)
    except SummaryTableError as exc:
        raise _refused(exc) from exc
    await request.app.state.audit.record(member, "designate_unit_head", unit, username=head.username)
    return head


@router.get("/units/{unit}/head", response_model=Head)
async def unit_head(unit: ReadableUnit, member: Reader, tables: Tables) -> Head:
    head = await tables.head(unit)
    if head is None:
        raise HTTPException(status_code=404, detail="the district office has not designated this unit's head yet")
    return head


# ---------------------------------------------------------------------------------------------------------- reads


@router.get("/summary-tables", response_model=Overview)
async def summary_tables_overview(member: DistrictReader, tables: Tables) -> Overview:
    """Every unit's table: state, sign-off, submission (late or not), and the units that have not submitted."""
    return await tables.overview()


@router.get("/summary-tables/consolidated/xlsx", response_class=Response, responses={200: {"content": {XLSX: {}}}})
async def consolidated_workbook(member: DistrictReader, tables: Tables) -> Response:
    """The district's consolidated table: every submitted unit's rows, totals by category, who handed in what."""
    content = consolidated_xlsx(await tables.all(), tables.campaign, tables.units)
    name = f"全区{table_title(tables.campaign)}.xlsx"
    return _xlsx(content, f"summary-tables-{tables.campaign.code}-district.xlsx", name)


@router.get("/summary-tables/{unit}", response_model=SummaryTable)
async def summary_table(unit: ReadableUnit, member: Reader, tables: Tables) -> SummaryTable:
    """The unit's table: groups and projects category by category, state, sign-off, submission and history."""
    try:
        return await tables.require(unit)
    except SummaryTableError as exc:
        raise _refused(exc) from exc


@router.get("/summary-tables/{unit}/xlsx", response_class=Response, responses={200: {"content": {XLSX: {}}}})
async def summary_table_workbook(unit: ReadableUnit, member: Reader, tables: Tables) -> Response:
    """The unit's table as the workbook a clerk hands in (attachment 2 of the notice)."""
    try:
        table = await tables.require(unit)
    except SummaryTableError as exc:
        raise _refused(exc) from exc
    name = f"{table_title(tables.campaign, table.unit_name)}.xlsx"
    return _xlsx(table_xlsx(table, tables.campaign), f"summary-table-{tables.campaign.code}-{unit}.xlsx", name)


# ---------------------------------------------------------------------------------------------------------- edits


@router.post("/summary-tables/{unit}/draft", response_model=SummaryTable)
async def refresh_draft(unit: EditableUnit, member: Editor, request: Request, tables: Tables) -> SummaryTable:
    """Build (or refresh) the groups from the unit's classified suggestions, keeping the projects entered; a change
    after sign-off takes the table back to draft and needs a new sign-off."""
    try:
        change = await tables.refresh_draft(unit, member)
    except SummaryTableError as exc:
        raise _refused(exc) from exc
    if change.changed:
        await request.app.state.audit.record(
            member,
            "refresh_summary_table",
            unit,
            version=change.table.version,
            voided_sign_off=change.voided.by if change.voided else None,
            unlinked_groups=list(change.unlinked),
        )
    return change.table


@router.put("/summary-tables/{unit}/projects", response_model=SummaryTable)
async def set_projects(
    unit: EditableUnit, member: Editor, update: ProjectsUpdate, request: Request, tables: Tables
) -> SummaryTable:
    """Set the projects proposed from the suggestions (拟办项目), category by category; a change after sign-off takes
    the table back to draft and needs a new sign-off."""
    try:
        change = await tables.set_projects(unit, update.projects, member)
    except SummaryTableError as exc:
        raise _refused(exc) from exc
    if change.changed:
        await request.app.state.audit.record(
            member,
            "set_summary_table_projects",
            unit,
            version=change.table.version,
            projects=len(update.projects),
            voided_sign_off=change.voided.by if change.voided else None,
        )
    return change.table


# ---------------------------------------------------------------------------------------------------------- steps


async def _advance(
    request: Request, tables: SummaryTables, unit: str, step: Step, member: StaffMember, body: StepNote | None
) -> SummaryTable:
    try:
        table = await tables.advance(unit, step, member, body.note if body else None)
    except SummaryTableError as exc:
        log.info("summary_table_step_refused", unit=unit, step=step.value, reason=type(exc).__name__)
        raise _refused(exc) from exc
    details: dict[str, object] = {"version": table.version, "state": table.state.value}
    if step is Step.SUBMIT and table.submitted is not None:
        details["late"] = table.submitted.late
    await request.app.state.audit.record(member, f"{step.value}_summary_table", unit, **details)
    log.info("summary_table_step", unit=unit, step=step.value, version=table.version)
    return table


@router.post("/summary-tables/{unit}/sign-off", response_model=SummaryTable)
async def sign_off(
    unit: EditableUnit, member: Editor, request: Request, tables: Tables, body: StepNote | None = None
) -> SummaryTable:
    """The unit's head signs the current version off (审签); nobody else may."""
    return await _advance(request, tables, unit, Step.SIGN_OFF, member, body)


@router.post("/summary-tables/{unit}/submit", response_model=SummaryTable)
async def submit(
    unit: EditableUnit, member: Editor, request: Request, tables: Tables, body: StepNote | None = None
) -> SummaryTable:
    """Submit the signed-off table to the district office (unit staff of the unit, or the office); after the deadline
    day it is flagged late."""
    return await _advance(request, tables, unit, Step.SUBMIT, member, body)


@router.post("/summary-tables/{unit}/consolidate", response_model=SummaryTable)
async def consolidate(
    unit: ReadableUnit, member: Administrator, request: Request, tables: Tables, body: StepNote | None = None
) -> SummaryTable:
    """The district office takes the submitted table into the district's consolidated table."""
    return await _advance(request, tables, unit, Step.CONSOLIDATE, member, body)


@router.post("/summary-tables/{unit}/study", response_model=SummaryTable)
async def study(
    unit: ReadableUnit, member: Administrator, request: Request, tables: Tables, body: StepNote | None = None
) -> SummaryTable:
    """Record that the government executive meeting has studied the table (the note: which meeting)."""
    return await _advance(request, tables, unit, Step.STUDY, member, body)


@router.post("/summary-tables/{unit}/approve", response_model=SummaryTable)
async def approve(
    unit: ReadableUnit, member: Administrator, request: Request, tables: Tables, body: StepNote | None = None
) -> SummaryTable:
    """Record the approval of the table's projects."""
    return await _advance(request, tables, unit, Step.APPROVE, member, body)
