"""The staff console (Chinese web pages at /staff): the overview a unit or the district office works from, the
suggestion list with its filters and the review queue, one suggestion with its pictures and the correction form.
Unit staff see their own unit only; supervisors see everything and change nothing."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from minsheng_core.events import Channel
from minsheng_core.staff import Role, StaffMember
from minsheng_core.staff_pages import StaffPages
from minsheng_store.access import OutOfScope, scoped_unit, unit_scope
from minsheng_store.corrections import CorrectionRefused, correct, visible_suggestion
from minsheng_store.reports import report_for
from minsheng_store.repository import PENDING, SuggestionFilter
from minsheng_store.schemas import CorrectionCreate
from minsheng_store.supervision import supervision_of
from minsheng_store.weekly import PlaceCoverage, place_coverage, visited_households

router = APIRouter(prefix="/staff", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
PAGES = StaffPages("/staff", "minsheng_staff", (Role.ADMIN, Role.UNIT_STAFF, Role.SUPERVISOR))
CHANNEL_NAMES = {
    Channel.WEB: "网站",
    Channel.WECHAT: "微信公众号",
    Channel.HOTLINE: "电视热线",
    Channel.HOTLINE_TRANSCRIPT: "热线录音",
    Channel.DOOR_TO_DOOR: "入户走访",
    Channel.SYMPOSIUM: "座谈会",
}
PAGE_SIZE = 30


async def staff_member(request: Request) -> StaffMember:
    return await PAGES.member(request)


Member = Annotated[StaffMember, Depends(staff_member)]


def _page(request: Request, name: str, member: StaffMember | None, context: dict[str, Any], status_code: int = 200):
    state = request.app.state
    unit_names = {u.code: u.name for u in state.units.units} | {state.units.district.code: state.units.district.name}
    unit_names["unassigned"] = "未定"
    base = {
        "campaign": state.campaign,
        "member": member,
        "csrf": PAGES.csrf(request),
        "unit_names": unit_names,
        "channel_names": {c.value: n for c, n in CHANNEL_NAMES.items()},
    }
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    return _page(request, "staff_login.html", None, {"error": None})


@router.post("/login")
async def login(
    request: Request, username: Annotated[str, Form(max_length=40)], password: Annotated[str, Form(max_length=200)]
) -> Response:
    signed_in = await PAGES.sign_in(request, username, password)
    if signed_in is None:
        return _page(request, "staff_login.html", None, {"error": "用户名或密码不正确。"}, status_code=401)
    return signed_in


@router.post("/logout")
async def logout(request: Request, member: Member, csrf: Annotated[str, Form()]) -> Response:
    return await PAGES.sign_out(request, csrf)


def _bars(counts: dict[str, int]) -> list[dict[str, Any]]:
    """Rows for a bar list: label, count, width relative to the largest."""
    top = max(counts.values(), default=0) or 1
    return [{"key": k, "count": n, "width": round(100 * n / top)} for k, n in sorted(counts.items(), key=lambda kv: -kv[1])]


async def _coverage(request: Request, scope: str | None) -> list[PlaceCoverage]:
    state = request.app.state
    visited = await visited_households(state.db, scope)
    units = [u for u in state.units.units if scope is None or u.code == scope]
    return [line for unit in units for line in place_coverage(unit, visited, state.campaign)]


@router.get("", response_class=HTMLResponse)
async def overview(request: Request, member: Member) -> HTMLResponse:
    """Counts by category, unit and channel, the daily trend, coverage bars and the deadlines."""
    state = request.app.state
    scope = unit_scope(member)
    by_category: dict[str, int] = {}
    by_unit: dict[str, int] = {}
    by_channel: dict[str, int] = {}
    for row in await state.repo.tallies.rows(unit=scope):  # kept up to date as suggestions change
        by_category[row["category"]] = by_category.get(row["category"], 0) + row["count"]
        by_unit[row["unit"]] = by_unit.get(row["unit"], 0) + row["count"]
        by_channel[row["channel"]] = by_channel.get(row["channel"], 0) + row["count"]
    today = datetime.now(state.campaign.zone).date()
    deadlines = [
        {"name": "责任领导和联络员报送", "date": state.campaign.deadlines.contacts_registered},
        {"name": "分类汇总表报送", "date": state.campaign.deadlines.summary_tables},
        {"name": "征集截止", "date": state.campaign.closes_on},
    ]
    for deadline in deadlines:
        deadline["days_left"] = (deadline["date"] - today).days
    review: dict[str, Any] = {"needs_review": True, "status": {"$ne": PENDING}} | ({"unit": scope} if scope else {})
    context = {
        "category_names": {c.code: c.name for c in state.campaign.categories} | {"unclassified": "未分类"},
        "total": sum(by_category.values()),
        "categories": _bars(by_category),
        "units": _bars(by_unit),
        "channels": _bars(by_channel),
        "trend": _bars({r["day"]: r["count"] for r in await state.repo.tallies.by_day(scope)}),
        "coverage": await _coverage(request, scope),
        "deadlines": deadlines,
        "review_count": await state.db.suggestions.count_documents(review),
        "today": today,
    }
    context["trend"].sort(key=lambda r: r["key"])
    return _page(request, "staff_overview.html", member, context)


@router.get("/suggestions", response_class=HTMLResponse)
async def suggestions(
    request: Request,
    member: Member,
    category: Annotated[str | None, Query(max_length=50, pattern=r"^[a-z_]*$")] = None,
    channel: Annotated[str | None, Query(max_length=30, pattern=r"^[a-z_]*$")] = None,
    unit: Annotated[str | None, Query(max_length=50, pattern=r"^[a-z_]*$")] = None,
    review: bool = False,
    q: Annotated[str | None, Query(max_length=100)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    """The suggestion list with its filters; ``review=true`` is the review queue."""
    try:
        unit = scoped_unit(member, unit)
    except OutOfScope as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    filters = SuggestionFilter(
        category=category or None,
        channel=channel or None,
        unit=unit or None,
        needs_review=True if review else None,
        text_contains=q or None,
    )
    total, docs = await request.app.state.repo.list(filters, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    context = {
        "items": docs,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "filters": {"category": category or "", "channel": channel or "", "unit": unit or "", "review": review, "q": q or ""},
    }
    return _page(request, "staff_suggestions.html", member, context)


@router.get("/suggestions/{suggestion_id}", response_class=HTMLResponse)
async def suggestion(request: Request, member: Member, suggestion_id: str, saved: bool = False) -> HTMLResponse:
    doc = await visible_suggestion(request.app.state, member, suggestion_id[:64])
    if doc is None:
        raise HTTPException(status_code=404, detail="没有找到这条建议")
    return _page(request, "staff_suggestion.html", member, {"doc": doc, "saved": saved, "error": None})


@router.post("/suggestions/{suggestion_id}/correct", response_class=HTMLResponse)
async def correct_from_page(request: Request, member: Member, suggestion_id: str) -> Response:
    """The correction form: a category (and, for the district office, a unit)."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    PAGES.check_csrf(request, form.get("csrf", ""))
    if member.has(Role.SUPERVISOR):
        raise HTTPException(status_code=403, detail="督查账号只能查看，不能修改")
    try:
        correction = CorrectionCreate(
            category=form.get("category") or None, unit=form.get("unit") or None, note=form.get("note") or None
        )
        await correct(request.app.state, member, suggestion_id[:64], correction)
    except (CorrectionRefused, ValidationError) as exc:
        status = exc.status if isinstance(exc, CorrectionRefused) else 422
        doc = await visible_suggestion(request.app.state, member, suggestion_id[:64])
        if doc is None:
            raise HTTPException(status_code=404, detail="没有找到这条建议") from None
        message = str(exc) if isinstance(exc, CorrectionRefused) else "修改内容有误（备注不超过 500 字）"
        return _page(request, "staff_suggestion.html", member, {"doc": doc, "saved": False, "error": message}, status)
    return RedirectResponse(f"/staff/suggestions/{suggestion_id}?saved=true", status_code=303)


@router.get("/supervision", response_class=HTMLResponse)
async def supervision_page(request: Request, member: Member) -> HTMLResponse:
    """The supervision notice as a page, for the district office and its supervisors."""
    if member.has(Role.UNIT_STAFF):
        raise HTTPException(status_code=403, detail="督查通报仅供区民心办和督查人员查看")
    report = await supervision_of(request.app.state)
    return _page(request, "staff_supervision.html", member, {"report": report})


@router.get("/weekly", response_class=HTMLResponse)
async def weekly_page(
    request: Request,
    member: Member,
    unit: Annotated[str | None, Query(max_length=50, pattern=r"^[a-z_]+$")] = None,
    report_date: Annotated[date | None, Query(alias="date")] = None,
) -> HTMLResponse:
    """The weekly progress report as a page (the XLSX is one click away)."""
    report = await report_for(request, member, unit, report_date)
    return _page(request, "staff_weekly.html", member, {"report": report})
