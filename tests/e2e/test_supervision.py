"""Supervision: the units late with contacts or summary tables, quiet this week, and the places behind on coverage,
as JSON and as the notice (XLSX) — for the district office and its supervisors only."""

from __future__ import annotations

import io
from datetime import date

import pytest
from openpyxl import load_workbook

from minsheng_core.staff import Role
from tests.helpers import eventually

pytestmark = pytest.mark.integration


async def test_the_supervisors_see_who_is_late_and_behind(system):
    sid = (
        await system.web.post("/api/v1/suggestions", json={"text": "希望修缮石佛村的老桥", "location": {"town": "滦河镇"}})
    ).json()
    await eventually(lambda: system.db.suggestions.find_one({"_id": sid["suggestion_id"], "status": "classified"}))
    await system.db.coverage.insert_one({"_id": "xidi|西地村", "unit": "xidi", "place": "西地村", "visited": 700})
    await system.db.visits.insert_one({"_id": "v1", "unit": "xidi", "place": "西地村", "visited_on": date.today().isoformat()})
    supervisor = await system.sign_in("sup", Role.SUPERVISOR)
    report = (await system.store.get("/api/v1/supervision", headers=supervisor)).json()
    quiet = {q["unit"] for q in report["quiet_units"]}
    assert "luanhe" not in quiet and "xidi" not in quiet and "damiao" in quiet  # a suggestion, a visit, nothing
    behind = {(p["unit"], p["place"]) for p in report["places_behind"]}
    assert ("xidi", "西地村") not in behind and ("xidi", "东营子村") in behind  # 700 of 705 households is 99 %
    assert "xidi" in {u["unit"] for u in report["contacts"]["units"]}
    assert report["summary_tables_late"] == []  # the test window's deadline has not passed

    notice = await system.store.get("/api/v1/supervision/xlsx", headers=system.staff_headers)
    book = load_workbook(io.BytesIO(notice.content))
    assert book.sheetnames == ["未报送联络人", "汇总表逾期", "本周无进展", "覆盖率未达标"]
    rows = [[c.value for c in row] for row in book["覆盖率未达标"].iter_rows(min_row=3)]
    assert ["西地镇", "东营子村"] in [row[:2] for row in rows]
    clerk = await system.sign_in("xidi-clerk", Role.UNIT_STAFF, "xidi")
    assert (await system.store.get("/api/v1/supervision", headers=clerk)).status_code == 403


async def test_the_supervision_page_for_the_district_only(system):
    import re

    from minsheng_core.staff import StaffDirectory

    await StaffDirectory(system.db).create("sup-page", "a long enough pass", Role.SUPERVISOR, "督查")
    signed = await system.store.post("/staff/login", data={"username": "sup-page", "password": "a long enough pass"})
    assert signed.status_code == 303
    page = await system.store.get("/staff/supervision")
    assert page.status_code == 200 and "督查通报" in page.text and "大庙镇" in re.sub(r"\s+", "", page.text)
