"""The phone-friendly page on which unit staff record household visits one by one, as they walk the village.
A recorded visit goes the same way as a row of an imported sheet (one suggestion, one visit, the same keys)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from minsheng_core.events import BODY_MAX
from minsheng_core.http import field_errors
from minsheng_core.phones import Phone
from minsheng_core.staff import Role, StaffMember
from minsheng_core.staff_pages import StaffPages
from minsheng_core.text import require_words
from minsheng_intake_survey.survey_sheet import SheetResult, VisitRow

router = APIRouter(prefix="/visits", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
PAGES = StaffPages("/visits", "minsheng_visits", (Role.UNIT_STAFF,))


async def visitor(request: Request) -> StaffMember:
    return await PAGES.member(request)


Visitor = Annotated[StaffMember, Depends(visitor)]


def _optional_words(text: str | None) -> str | None:
    return require_words(text) if text else None


class VisitForm(BaseModel):
    """One visit as typed on the phone; an empty suggestion means "visited, no suggestion"."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    village: str = Field(min_length=1, max_length=100)
    household: str = Field(min_length=1, max_length=100)
    visited_on: date
    visitor: str = Field(min_length=1, max_length=50)
    suggestion: Annotated[str | None, AfterValidator(_optional_words)] = Field(default=None, max_length=BODY_MAX)
    phone: Phone | None = None
    name: str | None = Field(default=None, max_length=50)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_none(cls, data: Any) -> Any:
        return {k: (v or None) for k, v in data.items()} if isinstance(data, dict) else data


def _page(request: Request, member: StaffMember | None, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    state = request.app.state
    unit = state.units.unit(member.unit) if member and member.unit else None
    base = {"campaign": state.survey.campaign, "member": member, "unit": unit, "csrf": PAGES.csrf(request)}
    return templates.TemplateResponse(request, context.pop("template"), {**base, **context}, status_code=status_code)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    return _page(request, None, {"template": "visit_login.html", "error": None})


@router.post("/login")
async def login(
    request: Request, username: Annotated[str, Form(max_length=40)], password: Annotated[str, Form(max_length=200)]
) -> Response:
    signed_in = await PAGES.sign_in(request, username, password)
    if signed_in is None:
        context = {"template": "visit_login.html", "error": "用户名或密码不正确，或该账号不是乡镇（街道）工作人员账号。"}
        return _page(request, None, context, status_code=401)
    return signed_in


@router.get("", response_class=HTMLResponse)
async def visit_page(request: Request, member: Visitor, saved: str | None = None) -> HTMLResponse:
    today = datetime.now(request.app.state.survey.campaign.zone).date()
    values = {"visited_on": today.isoformat(), "visitor": member.display_name}
    return _page(request, member, {"template": "visit_form.html", "values": values, "errors": {}, "saved": saved})


@router.post("", response_class=HTMLResponse)
async def record_visit(request: Request, member: Visitor) -> Response:
    """Check the visit like a row of a sheet, then send it the same way."""
    values = {k: str(v) for k, v in (await request.form()).items() if isinstance(v, str)}
    PAGES.check_csrf(request, values.get("csrf", ""))
    survey = request.app.state.survey
    errors: dict[str, str] = {}
    try:
        form = VisitForm.model_validate(values)
    except ValidationError as exc:
        errors = {e["field"]: e["message"] for e in field_errors(list(exc.errors()))}
    else:
        unit = request.app.state.units.unit(member.unit)
        if unit is None or form.village not in {p.name for p in unit.places}:
            errors["village"] = "请从本单位的村/社区中选择"
        campaign = survey.campaign
        today = datetime.now(campaign.zone).date()
        if not campaign.opens_on <= form.visited_on <= min(campaign.closes_on, today):
            errors["visited_on"] = f"走访日期应在征集期内（{campaign.window_text()}），且不晚于今天"
    if errors:
        context = {"template": "visit_form.html", "values": values, "errors": errors, "saved": None}
        return _page(request, member, context, status_code=422)
    row = VisitRow(row=1, unit=member.unit, **form.model_dump())
    report = await survey.import_sheet(member, SheetResult(rows=[row], problems=[]))
    await request.app.state.audit.record(member, "record_visit", member.unit, village=form.village, accepted=report.accepted)
    code = next((r.get("tracking_code") for r in report.rows if r.get("tracking_code")), None)
    return RedirectResponse(f"/visits?saved={code or 'visit'}", status_code=303)
