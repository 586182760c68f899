"""The intake-survey application: unit staff import their door-to-door survey sheets (XLSX or CSV)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, HTTPException, Query, Request, UploadFile

from minsheng_core.audit import AuditLog
from minsheng_core.http import error_responses, install_common
from minsheng_core.intake import open_intake
from minsheng_core.logging import configure_logging
from minsheng_core.staff import Role, StaffDirectory, StaffMember
from minsheng_core.staff_pages import token_member
from minsheng_core.units import load_units
from minsheng_intake_survey import visit_pages
from minsheng_intake_survey.settings import SurveySettings
from minsheng_intake_survey.survey_sheet import SheetRejected, read_sheet
from minsheng_intake_survey.symposiums import SymposiumConflict, SymposiumCreate, SymposiumRefused, record_symposium
from minsheng_intake_survey.visits import SurveyIntake

log = structlog.get_logger(__name__)


async def unit_member(member: Annotated[StaffMember, Depends(token_member)]) -> StaffMember:
    """Unit staff (their own unit) or the district office's administrators (any unit), by staff token."""
    if not member.has(Role.UNIT_STAFF, Role.ADMIN):
        raise HTTPException(status_code=403, detail="survey sheets are imported by unit staff")
    return member


UnitMember = Annotated[StaffMember, Depends(unit_member)]


def create_app(settings: SurveySettings | None = None) -> FastAPI:
    """Build the app; connections open in the lifespan."""
    settings = settings or SurveySettings()
    configure_logging("intake-survey", settings.log_format, settings.log_level)
    campaign = settings.campaign
    units = load_units(settings.units_file)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            runtime = await open_intake(stack, app, settings, "intake-survey")
            app.state.staff, app.state.audit = StaffDirectory(runtime.db), AuditLog(runtime.db)
            app.state.survey = SurveyIntake(campaign, units, runtime)
            log.info("intake_survey_started", campaign=campaign.code)
            yield

    app = FastAPI(title="Minsheng intake-survey", version="1", lifespan=lifespan)
    app.state.settings, app.state.units = settings, units
    install_common(app, settings.max_body_bytes)
    app.include_router(visit_pages.router)
    visit_pages.PAGES.install(app)

    def scoped_unit(member: StaffMember, unit: str | None) -> str:
        """Unit staff work for their own unit (another one is 404); the district office names the unit."""
        if member.has(Role.UNIT_STAFF):
            if unit not in (None, member.unit):
                raise HTTPException(status_code=404, detail="no such unit in your scope")
            unit = member.unit
        if unit is None or units.unit(unit) is None:
            raise HTTPException(status_code=422, detail="give the unit this record is for (?unit=…)")
        return unit

    @app.post("/api/v1/survey-sheets", tags=["survey"], responses=error_responses(404))
    async def import_survey_sheet(
        request: Request,
        file: UploadFile,
        member: UnitMember,
        unit: Annotated[str | None, Query(max_length=50, pattern=r"^[a-z_]+$")] = None,
    ) -> dict[str, Any]:
        """Check a unit's survey sheet row by row and import the good rows; the report says what became of each."""
        unit = scoped_unit(member, unit)
        data = await file.read()
        try:
            sheet = read_sheet(data, file.filename or "sheet", unit, units, campaign)
        except SheetRejected as exc:
            log.info("survey_sheet_rejected", reason=exc.code, unit=unit)
            raise HTTPException(status_code=422, detail=str(exc)) from None
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)[:300]) from None
        report = await request.app.state.survey.import_sheet(member, sheet)
        await request.app.state.audit.record(
            member, "import_survey_sheet", unit, accepted=report.accepted, duplicates=report.duplicates, rejected=report.rejected
        )
        log.info("survey_sheet_imported", unit=unit, accepted=report.accepted, rejected=report.rejected, visits=report.visits)
        return {
            "unit": unit,
            "accepted": report.accepted,
            "duplicates": report.duplicates,
            "rejected": report.rejected,
            "visits": report.visits,
            "rows": report.rows,
        }

    @app.post("/api/v1/symposiums", tags=["survey"], responses=error_responses(404, 409))
    async def record_a_symposium(
        request: Request,
        create: SymposiumCreate,
        member: UnitMember,
        unit: Annotated[str | None, Query(max_length=50, pattern=r"^[a-z_]+$")] = None,
    ) -> dict[str, Any]:
        """Record a symposium (座谈会) and the suggestions it gave; the same record twice changes nothing."""
        unit = scoped_unit(member, unit)
        runtime = request.app.state.survey.runtime
        try:
            symposium_id, codes, new = await record_symposium(runtime, campaign, units, member, unit, create)
        except SymposiumConflict as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
        except SymposiumRefused as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        if new:
            await request.app.state.audit.record(member, "record_symposium", unit, symposium=symposium_id, suggestions=len(codes))
        return {"symposium_id": symposium_id, "tracking_codes": codes, "new": new}

    return app
