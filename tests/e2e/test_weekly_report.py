"""Weekly progress reports end to end: suggestions in through the web intake, classified and tallied, then the report
of a unit and of the district (new vs total, coverage, units behind), the staff API and the archive of reports
produced on report days."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from fastapi.routing import APIRoute
from openpyxl import load_workbook

from minsheng_core.staff import Role
from minsheng_store import reports
from minsheng_store.weekly import build_report, due_report_dates
from tests.helpers import eventually

pytestmark = pytest.mark.integration

XIDI = [
    {"text": "西地镇西地村的小学操场太小，希望扩建", "location": {"town": "西地镇", "village": "西地村"}},
    {"text": "西地村到镇上的路坑坑洼洼，希望重新硬化", "location": {"town": "西地镇", "village": "西地村"}},
]
LUANHE = {"text": "滦河镇石佛村的幸福路坑太多了，希望重新硬化", "location": {"town": "滦河镇", "village": "石佛村"}}


def shanghai_today() -> date:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


async def submitted(system, bodies: list[dict]) -> None:
    """Submit through the web intake and wait until each suggestion is classified and counted in the tallies.
    One at a time: FerretDB (the local store) loses concurrent $inc updates of one document, so suggestions settled
    side by side could leave a tally off by one; MongoDB's $inc is atomic."""
    for body in bodies:
        sid = (await system.web.post("/api/v1/suggestions", json=body)).json()["suggestion_id"]

        async def counted(sid=sid):
            doc = await system.db.suggestions.find_one({"_id": sid, "status": "classified"})
            return doc is not None and (doc.get("tallied") or {}).get("category") not in (None, "unclassified")

        await eventually(counted)


def with_weekly_routes(system) -> None:
    """Until the store's app includes the router itself, include it in the test's app."""
    app = system.apps["store"]
    # FastAPI keeps an included router as one entry (original_router) rather than copying its routes
    included = any(getattr(r, "original_router", None) is reports.router for r in app.routes)
    if not included and not any(isinstance(r, APIRoute) and r.path.startswith(reports.router.prefix) for r in app.routes):
        app.include_router(reports.router)


async def cover(system, unit: str, fraction: float | None = None, **places: int) -> None:
    """Coverage documents as the door-to-door import keeps them: a fraction of every place, or given places."""
    registry = system.apps["store"].state.units
    counts = {p.name: round(p.households * fraction) for p in registry.unit(unit).places} if fraction is not None else places
    for place, visited in counts.items():
        doc = {"unit": unit, "place": place, "visited": visited}
        await system.db.coverage.replace_one({"_id": f"{unit}|{place}"}, doc, upsert=True)


async def test_report_splits_new_and_total_by_week_and_measures_coverage(system):
    await submitted(system, [*XIDI, LUANHE])
    state = system.apps["store"].state
    today = shanghai_today()

    async def report(unit, day):
        return await build_report(state.repo.tallies, state.db, state.units, state.campaign, unit, day)

    this_week = await report("xidi", today)
    assert (this_week.unit, this_week.unit_name, this_week.new, this_week.total) == ("xidi", "西地镇", 2, 2)
    assert this_week.week_start == today - timedelta(days=6)
    web = next(c for c in this_week.channels if c.channel == "web")
    assert (web.name, web.new, web.total) == ("网站", 2, 2)
    assert sum(c.channels["web"].new for c in this_week.categories) == 2
    assert all(c.total == 0 for c in this_week.channels if c.channel != "web")

    next_week = await report("xidi", today + timedelta(days=7))
    assert (next_week.new, next_week.total) == (0, 2)
    assert sum(c.total for c in next_week.categories) == 2
    assert (await report("xidi", today - timedelta(days=1))).total == 0

    await cover(system, "xidi", 西地村=700, 碾子沟村=200)  # 705 households (target 90 %), 227 (programme: 95 %)
    await cover(system, "yuanbaoshan", fraction=1.0)
    xidi = {p.place: p for p in (await report("xidi", today)).coverage}
    assert (xidi["西地村"].households, xidi["西地村"].visited, xidi["西地村"].behind) == (705, 700, False)
    assert xidi["西地村"].rate == pytest.approx(700 / 705) and xidi["西地村"].target == 0.90
    assert xidi["碾子沟村"].target == 0.95 and xidi["碾子沟村"].behind
    assert xidi["张家营村"].visited == 0 and xidi["张家营村"].behind  # no coverage document: nobody visited yet

    district = await report(None, today)
    assert (district.unit, district.new, district.total) == (None, 3, 3)
    lines = {line.unit: line for line in district.units}
    assert (lines["xidi"].new, lines["xidi"].total, lines["luanhe"].new) == (2, 2, 1)
    assert lines["yuanbaoshan"].coverage == 1.0 and not lines["yuanbaoshan"].behind
    behind = {b.unit: b.places_behind for b in district.units_behind}
    assert "碾子沟村" in behind["xidi"] and "西地村" not in behind["xidi"]
    assert "yuanbaoshan" not in behind and "npc_office" not in behind


async def test_staff_get_the_report_in_their_scope_as_json_and_xlsx(system):
    with_weekly_routes(system)
    await submitted(system, [XIDI[0], LUANHE])
    today = shanghai_today().isoformat()
    clerk = await system.sign_in("xidi-clerk", Role.UNIT_STAFF, "xidi")
    supervisor = await system.sign_in("sup", Role.SUPERVISOR)
    operator = await system.sign_in("op", Role.OPERATOR)
    url = "/api/v1/reports/weekly"

    own = await system.store.get(url, params={"date": today}, headers=clerk)
    assert own.status_code == 200, own.text
    assert (own.json()["unit"], own.json()["new"], own.json()["total"], own.json()["units"]) == ("xidi", 1, 1, [])
    assert (await system.store.get(url, params={"unit": "xidi"}, headers=clerk)).status_code == 200
    for other in ("luanhe", "district", "nosuchunit"):
        assert (await system.store.get(url, params={"unit": other}, headers=clerk)).status_code == 404, other
        assert (await system.store.get(f"{url}/xlsx", params={"unit": other}, headers=clerk)).status_code == 404, other
    assert (await system.store.get(url)).status_code == 401
    assert (await system.store.get(url, headers=operator)).status_code == 403

    district = (await system.store.get(url, params={"date": today}, headers=system.staff_headers)).json()
    assert (district["unit"], district["new"], len(district["units"])) == (None, 2, len(system.apps["store"].state.units.units))
    luanhe = await system.store.get(url, params={"unit": "luanhe", "date": today}, headers=supervisor)
    assert (luanhe.json()["unit"], luanhe.json()["total"]) == ("luanhe", 1)
    assert (await system.store.get(url, params={"unit": "nosuchunit"}, headers=system.staff_headers)).status_code == 404
    assert (await system.store.get(url, params={"unit": "Robert'); DROP"}, headers=system.staff_headers)).status_code == 422
    assert (await system.store.get(url, params={"date": "not a date"}, headers=system.staff_headers)).status_code == 422

    sheet = await system.store.get(f"{url}/xlsx", params={"date": today}, headers=clerk)
    assert sheet.status_code == 200
    assert sheet.headers["content-type"] == reports.XLSX
    disposition = sheet.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="weekly-report-xidi-') and "filename*=UTF-8''" in disposition
    disposition.encode("ascii")  # the header itself is ASCII; the Chinese name is percent-encoded
    book = load_workbook(io.BytesIO(sheet.content))
    assert book.sheetnames == ["汇总", "入户覆盖率"]
    assert book["汇总"]["A1"].value.startswith("西地镇民心工程意见建议征集周报（截至")
    assert book["汇总"]["O6"].value is not None  # the first category's running total
    whole = await system.store.get(f"{url}/xlsx", params={"date": today}, headers=system.staff_headers)
    assert load_workbook(io.BytesIO(whole.content)).sheetnames == ["汇总", "入户覆盖率", "各单位进度", "落后单位"]


async def test_due_reports_are_produced_once_and_archived_in_scope(system):
    with_weekly_routes(system)
    await submitted(system, [XIDI[0]])
    live = system.apps["store"].state
    today = shanghai_today()
    # a window of six weeks around today, so that report days are due whatever weekday the test runs on
    campaign = live.campaign.model_copy(update={"opens_on": today - timedelta(days=21), "closes_on": today + timedelta(days=21)})
    state = SimpleNamespace(repo=live.repo, db=live.db, units=live.units, campaign=campaign)
    due = due_report_dates(campaign, today)
    assert len(due) == 3
    ids = [f"{code}|{day.isoformat()}" for day in due for code in ["district", *(u.code for u in live.units.units)]]
    already = await system.db.weekly_reports.count_documents({"_id": {"$in": ids}})  # a schedule may have run

    assert await reports.produce_due_reports(state, today) == len(ids) - already
    assert await system.db.weekly_reports.count_documents({}) == len(ids)
    assert await reports.produce_due_reports(state, today) == 0
    assert await reports.produce_due_reports(state, today - timedelta(days=7)) == 0
    assert await system.db.weekly_reports.count_documents({}) == len(ids)

    stored = await system.db.weekly_reports.find_one({"_id": f"xidi|{due[-1].isoformat()}"})
    assert (
        stored["unit"] == "xidi" and stored["report"]["unit"] == "xidi" and stored["report"]["report_date"] == due[-1].isoformat()
    )
    counted = 1 if due[-1] == today else 0  # submitted today: in the report of today only, none of the earlier ones
    assert (stored["report"]["new"], stored["report"]["total"]) == (counted, counted)

    url = "/api/v1/reports/weekly/archive"
    clerk = await system.sign_in("xidi-clerk", Role.UNIT_STAFF, "xidi")
    own = (await system.store.get(url, headers=clerk)).json()
    assert [entry["id"] for entry in own] == [f"xidi|{day.isoformat()}" for day in reversed(due)]
    assert (await system.store.get(url, params={"unit": "luanhe"}, headers=clerk)).status_code == 404
    everything = (await system.store.get(url, params={"limit": 500}, headers=system.staff_headers)).json()
    assert len(everything) == len(ids) and everything[0]["report_date"] == due[-1].isoformat()
    district = (await system.store.get(url, params={"unit": "district"}, headers=system.staff_headers)).json()
    assert [entry["report"]["unit"] for entry in district] == [None] * len(due)
    assert district[0]["report"]["units"][0]["unit"] == live.units.units[0].code


async def test_the_weekly_report_as_a_page_of_the_staff_console(system):
    from minsheng_core.staff import Role, StaffDirectory

    await StaffDirectory(system.db).create("xidi-reader", "a long enough pass", Role.UNIT_STAFF, "读报人", unit="xidi")
    signed = await system.store.post("/staff/login", data={"username": "xidi-reader", "password": "a long enough pass"})
    assert signed.status_code == 303
    page = await system.store.get("/staff/weekly")
    assert page.status_code == 200 and "西地镇周报" in page.text and 'id="week-new"' in page.text
    assert (await system.store.get("/staff/weekly", params={"unit": "luanhe"})).status_code == 404
