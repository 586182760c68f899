"""Weekly progress reports for staff: on demand (JSON and XLSX) and produced automatically every report day."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel

from minsheng_core.http import IsoDate, error_responses
from minsheng_core.staff import Role, StaffMember
from minsheng_store.access import Reader
from minsheng_store.outcomes import assemble_outcomes
from minsheng_store.weekly import (
    DISTRICT,
    WeeklyReport,
    assemble_report,
    build_report,
    default_report_date,
    due_report_dates,
    outcome_inputs,
    report_inputs,
    report_xlsx,
)

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/v1/reports/weekly", tags=["staff"], responses=error_responses(404))
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# A report day's report is produced once the working day is over, so that it holds the day's suggestions too.
REPORTS_READY_AT = time(17, 0)
UnitQuery = Annotated[
    str | None, Query(max_length=50, pattern=r"^[a-z][a-z0-9_]*$", description=f"unit code; none or '{DISTRICT}': the district")
]
DateQuery = Annotated[IsoDate | None, Query(alias="date", description="report date (default: the latest report day)")]


class ArchivedReport(BaseModel):
    id: str
    unit: str
    report_date: date
    generated_at: datetime
    report: WeeklyReport


def _report_unit(request: Request, member: StaffMember, unit: str | None) -> str | None:
    """The unit to report on (None: the district) as the member may see it; 404 outside their scope."""
    if member.has(Role.UNIT_STAFF):
        if member.unit is None or unit not in (None, member.unit):
            raise HTTPException(status_code=404, detail="no such unit in your scope")
        return member.unit
    if unit is None or unit == DISTRICT:
        return None
    if unit not in request.app.state.units.codes():
        raise HTTPException(status_code=404, detail="no such unit in your scope")
    return unit


async def report_for(request: Request, member: StaffMember, unit: str | None, report_date: date | None) -> WeeklyReport:
    """The report the member asked for, within their scope (the default date: the latest report day)."""
    return await _report(request, member, unit, report_date)


async def _report(request: Request, member: StaffMember, unit: str | None, report_date: date | None) -> WeeklyReport:
    state = request.app.state
    scope = _report_unit(request, member, unit)
    if report_date is None:
        report_date = default_report_date(state.campaign, datetime.now(state.campaign.zone).date())
    return await build_report(state.repo.tallies, state.db, state.units, state.campaign, scope, report_date)


@router.get("", response_model=WeeklyReport)
async def weekly_report(request: Request, member: Reader, unit: UnitQuery = None, report_date: DateQuery = None) -> WeeklyReport:
    """The weekly progress report of a unit or the district (unit staff: their own unit) for the week ending on the
    report date: new and total suggestions by category × channel, door-to-door coverage, units behind."""
    return await _report(request, member, unit, report_date)


@router.get("/xlsx", response_class=Response, responses={200: {"content": {XLSX: {}}}})
async def weekly_report_xlsx(request: Request, member: Reader, unit: UnitQuery = None, report_date: DateQuery = None) -> Response:
    """The same report as a workbook to hand in (汇总, 入户覆盖率; for the district also 各单位进度, 落后单位)."""
    report = await _report(request, member, unit, report_date)
    ascii_name = f"weekly-report-{report.unit or DISTRICT}-{report.report_date.isoformat()}.xlsx"
    local_name = f"{report.unit_name}民心工程周报-{report.report_date.isoformat()}.xlsx"
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(local_name)}"
    return Response(report_xlsx(report), media_type=XLSX, headers={"Content-Disposition": disposition})


@router.get("/archive", response_model=list[ArchivedReport])
async def archived_reports(
    request: Request, member: Reader, unit: UnitQuery = None, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[ArchivedReport]:
    """The reports produced automatically on report days, newest first (unit staff: their own unit's)."""
    query: dict[str, Any] = {}
    if member.has(Role.UNIT_STAFF) or unit is not None:
        scope = _report_unit(request, member, unit)
        query["unit"] = scope or DISTRICT
    cursor = request.app.state.db.weekly_reports.find(query).sort([("report_date", -1), ("unit", 1)]).limit(limit)
    return [
        ArchivedReport(
            id=doc["_id"],
            unit=doc["unit"],
            report_date=doc["report_date"],
            generated_at=doc["generated_at"],
            report=doc["report"],
        )
        async for doc in cursor
    ]


async def produce_due_reports(app_state: Any, today: date) -> int:
    """Store the district's and every unit's report for each due report day not stored yet; returns how many were
    stored (0 when everything due is there already). Counts are as of each report day; door-to-door coverage is
    what is known now, as the coverage collection keeps no history."""
    campaign, units, db = app_state.campaign, app_state.units, app_state.db
    codes = [DISTRICT, *(u.code for u in units.units)]
    stored = 0
    for day in due_report_dates(campaign, today):
        ids = {code: f"{code}|{day.isoformat()}" for code in codes}
        present = {doc["_id"] async for doc in db.weekly_reports.find({"_id": {"$in": list(ids.values())}}, {"_id": 1})}
        missing = [code for code in codes if ids[code] not in present]
        if not missing:
            continue
        week, total, visited = await report_inputs(app_state.repo.tallies, db, None, day)  # once for every unit
        decided, told = await outcome_inputs(db, None, day, campaign.zone)
        generated_at = datetime.now(UTC)
        for code in missing:
            unit = None if code == DISTRICT else code
            outcomes = assemble_outcomes(campaign, units, unit, decided, told, generated_at)
            report = assemble_report(campaign, units, unit, day, week, total, visited, generated_at, outcomes)
            document = {
                "unit": code,
                "report_date": day.isoformat(),
                "generated_at": generated_at,
                "report": report.model_dump(mode="json"),
            }
            # $setOnInsert: a second store instance producing the same report at the same time changes nothing
            result = await db.weekly_reports.update_one({"_id": ids[code]}, {"$setOnInsert": document}, upsert=True)
            stored += result.upserted_id is not None
        log.info("weekly_reports_produced", report_date=day.isoformat(), reports=len(missing))
    return stored


async def run_weekly_schedule(app_state: Any, interval_seconds: float = 600, ready_at: time = REPORTS_READY_AT) -> None:
    """Produce the due weekly reports now and every interval, for ever; a report day counts from ready_at on."""
    while True:
        try:
            now = datetime.now(app_state.campaign.zone)
            today = now.date() if now.time() >= ready_at else now.date() - timedelta(days=1)
            await produce_due_reports(app_state, today)
        except Exception as exc:  # the database away for a while: try again at the next round
            log.warning("weekly_reports_not_produced", error=type(exc).__name__, detail=str(exc)[:200])
        await asyncio.sleep(interval_seconds)
