"""The operators' console at the TV station: sign in, take a caller's suggestion down, correct it until published.

Keyboard-first and Chinese. The classifier's guess and the phone-number check are fetched as the operator types;
the console works without them (the classifier may be down). Forms carry a CSRF token bound to the session.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import structlog
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from minsheng_core.events import BODY_MAX, PLACE_MAX
from minsheng_core.http import field_errors
from minsheng_core.ids import normalise_tracking_code
from minsheng_core.outbox import Entry, SubmissionKeyConflict
from minsheng_core.phones import Phone, canonical_phone
from minsheng_core.staff import Role, StaffMember
from minsheng_core.staff_pages import StaffPages
from minsheng_core.text import require_words
from minsheng_intake_hotline.suggestions import CollectionClosed, HotlineIntake, OperatorEntry

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
SESSION_COOKIE = "minsheng_console"
CONSOLE_ROLES = (Role.OPERATOR, Role.ADMIN)


class EntryForm(BaseModel):
    """The console form, validated with messages in Chinese."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    phone: Phone
    name: str | None = Field(default=None, max_length=50)
    town: str | None = Field(default=None, max_length=PLACE_MAX)
    village: str | None = Field(default=None, max_length=PLACE_MAX)
    detail: str | None = Field(default=None, max_length=200)
    text: Annotated[str, AfterValidator(require_words)] = Field(min_length=1, max_length=BODY_MAX)

    def entry(self) -> OperatorEntry:
        optional = (self.name, self.town, self.village, self.detail)
        return OperatorEntry(self.phone, *(value or None for value in optional), self.text)


PAGES = StaffPages("/console", SESSION_COOKIE, CONSOLE_ROLES)


async def operator(request: Request) -> StaffMember:
    """The signed-in operator (or administrator)."""
    return await PAGES.member(request)


Operator = Annotated[StaffMember, Depends(operator)]


def _page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    hotline: HotlineIntake = request.app.state.hotline
    return templates.TemplateResponse(request, name, {"campaign": hotline.campaign, **context}, status_code=status_code)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    return _page(request, "login.html", {"error": None})


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=40)],
    password: Annotated[str, Form(max_length=200)],
) -> Response:
    signed_in = await PAGES.sign_in(request, username, password)
    if signed_in is None:
        return _page(request, "login.html", {"error": "用户名或密码不正确，或该账号不是接线员账号。"}, status_code=401)
    return signed_in


@router.post("/logout")
async def logout(request: Request, member: Operator, csrf: Annotated[str, Form()]) -> Response:
    return await PAGES.sign_out(request, csrf)


def _places(request: Request) -> dict[str, list[str]]:
    """Town → its villages and communities, for the suggestions as the operator types."""
    return {unit.name: [place.name for place in unit.places] for unit in request.app.state.units.units if unit.places}


async def _console(
    request: Request,
    member: StaffMember,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    saved: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    hotline: HotlineIntake = request.app.state.hotline
    now = datetime.now(UTC)
    context = {
        "member": member,
        "values": values or {},
        "errors": errors or {},
        "saved": saved,
        "entry_key": (values or {}).get("entry_key") or uuid.uuid4().hex,
        "entries": await hotline.entries(member),
        "now": now,
        "zone": hotline.campaign.zone,
        "places": _places(request),
        "csrf": PAGES.csrf(request),
        "open": hotline.campaign.is_open(now),
    }
    return _page(request, "console.html", context, status_code)


@router.get("", response_class=HTMLResponse)
async def console_page(request: Request, member: Operator, saved: str | None = None) -> HTMLResponse:
    return await _console(request, member, saved=normalise_tracking_code(saved or "") if saved else None)


def _form_values(form: Any) -> dict[str, str]:
    return {k: str(v) for k, v in form.items() if isinstance(v, str)}


def _errors(exc: ValidationError) -> dict[str, str]:
    return {e["field"]: e["message"] for e in field_errors(list(exc.errors()))}


@router.post("/entries", response_class=HTMLResponse)
async def take_entry(request: Request, member: Operator) -> Response:
    """Accept what the operator typed; the caller is told the tracking code at once."""
    values = _form_values(await request.form())
    PAGES.check_csrf(request, values.get("csrf", ""))
    hotline: HotlineIntake = request.app.state.hotline
    entry_key = values.get("entry_key", "")
    if not (8 <= len(entry_key) <= 64 and entry_key.isalnum()):
        raise HTTPException(status_code=400, detail="缺少表单编号，请刷新页面")
    try:
        form = EntryForm.model_validate(values)
        accepted = await hotline.take_entry(member, entry_key, form.entry(), datetime.now(UTC))
    except ValidationError as exc:
        return await _console(request, member, values, _errors(exc), status_code=422)
    except CollectionClosed as exc:
        return await _console(request, member, values, {"text": str(exc)}, status_code=403)
    except SubmissionKeyConflict:
        return await _console(request, member, values, {"text": "该表单已提交过，请刷新页面后录入下一条"}, status_code=409)
    log.info("console_entry_taken", staff=member.username, suggestion_id=accepted.suggestion_id, new=accepted.new)
    if accepted.new:
        await request.app.state.audit.record(member, "take_hotline_entry", accepted.suggestion_id)
    return RedirectResponse(f"/console?saved={accepted.tracking_code}", status_code=303)


async def _own_entry(hotline: HotlineIntake, member: StaffMember, entry_key: str) -> Entry:
    for entry in await hotline.entries(member, limit=200):
        if entry.submission_key == f"operator:{entry_key}":
            return entry
    raise HTTPException(status_code=404, detail="没有找到您的这条录入")


@router.get("/entries/{entry_key}", response_class=HTMLResponse)
async def entry_page(request: Request, member: Operator, entry_key: str) -> HTMLResponse:
    hotline: HotlineIntake = request.app.state.hotline
    entry = await _own_entry(hotline, member, entry_key)
    return _entry_page(request, entry, entry_key, _entry_values(entry), {})


def _entry_values(entry: Entry) -> dict[str, str]:
    body, personal = entry.event.body, entry.event.personal
    return {
        "phone": personal.phone or "",
        "name": personal.name or "",
        "town": body.location.town or "",
        "village": body.location.village or "",
        "detail": body.location.detail or "",
        "text": body.text,
    }


def _entry_page(
    request: Request, entry: Entry, entry_key: str, values: dict[str, str], errors: dict[str, str], status_code: int = 200
) -> HTMLResponse:
    now = datetime.now(UTC)
    context = {
        "entry": entry,
        "entry_key": entry_key,
        "values": values,
        "errors": errors,
        "editable": entry.editable(now),
        "zone": request.app.state.hotline.campaign.zone,
        "places": _places(request),
        "csrf": PAGES.csrf(request),
    }
    return _page(request, "entry.html", context, status_code)


@router.post("/entries/{entry_key}", response_class=HTMLResponse)
async def revise_entry(request: Request, member: Operator, entry_key: str) -> Response:
    """Correct one's own entry while it is still held back."""
    values = _form_values(await request.form())
    PAGES.check_csrf(request, values.get("csrf", ""))
    hotline: HotlineIntake = request.app.state.hotline
    entry = await _own_entry(hotline, member, entry_key)
    try:
        form = EntryForm.model_validate(values)
    except ValidationError as exc:
        return _entry_page(request, entry, entry_key, values, _errors(exc), status_code=422)
    if not entry.editable(datetime.now(UTC)) or not await hotline.revise_entry(member, entry, form.entry()):
        return _entry_page(request, entry, entry_key, values, {"text": "这条录入已发布，不能再修改。"}, status_code=409)
    log.info("console_entry_revised", staff=member.username, suggestion_id=entry.event.suggestion_id)
    await request.app.state.audit.record(member, "revise_hotline_entry", entry.event.suggestion_id)
    return RedirectResponse(f"/console?saved={entry.event.body.tracking_code}", status_code=303)


class PredictRequest(BaseModel):
    text: str = Field(max_length=BODY_MAX)


@router.post("/api/predict")
async def predict(request: Request, member: Operator, body: PredictRequest) -> dict[str, Any]:
    """What the classifier would say for the text typed so far; ``available: false`` when it cannot answer now."""
    if not body.text.strip():
        return {"available": True, "category": None}
    classifier: httpx.AsyncClient = request.app.state.classifier
    try:
        answer = await classifier.post("/api/v1/predict", json={"text": body.text})
        answer.raise_for_status()
        verdict = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        log.info("console_prediction_unavailable", error=type(exc).__name__)
        return {"available": False}
    hotline: HotlineIntake = request.app.state.hotline
    category = verdict.get("category")
    return {
        "available": True,
        "category": category,
        "category_name": hotline.campaign.category_name(category) if category else None,
        "confidence": verdict.get("confidence"),
    }


class PhoneCheck(BaseModel):
    phone: str = Field(max_length=32)


@router.post("/api/phone")
async def phone_history(request: Request, member: Operator, body: PhoneCheck) -> dict[str, Any]:
    """Suggestions this campaign already has from the number: a warning, with links, before a repeat is taken.
    A POST: a phone number in a query string would end up in proxies' access logs."""
    number = canonical_phone(body.phone)
    if len(number) < 7:
        return {"count": 0, "items": []}
    hotline: HotlineIntake = request.app.state.hotline
    codes = await hotline.codes_from_phone(number)
    items = [{"tracking_code": code, "link": f"/console/suggestions/{code}"} for code in codes]
    return {"count": len(items), "items": items}


@router.get("/suggestions/{tracking_code}", response_class=HTMLResponse)
async def suggestion_page(request: Request, member: Operator, tracking_code: str) -> HTMLResponse:
    """An earlier suggestion, as the phone-number warning links to it."""
    code = normalise_tracking_code(tracking_code)
    hotline: HotlineIntake = request.app.state.hotline
    tracked = await hotline.runtime.track(code) if code else None
    if tracked is None:
        raise HTTPException(status_code=404, detail="没有找到该查询码")
    return _page(request, "suggestion.html", {"tracked": tracked, "zone": hotline.campaign.zone})
