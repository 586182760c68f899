"""The classified summary table (分类汇总表) end to end: suggestions in through the web intake and classified, the
unit's draft built from them, projects entered, the head's sign-off, submission, the district's consolidation, the
executive meeting's study and the approval; edits that void a sign-off, who may do what, and the workbooks."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest
from fastapi.routing import APIRoute
from openpyxl import load_workbook

from minsheng_core.staff import Role
from minsheng_store import summary_api
from tests.helpers import eventually

pytestmark = pytest.mark.integration

ROAD = {"text": "滦河镇石佛村的幸福路坑太多了，希望重新硬化", "location": {"town": "滦河镇", "village": "石佛村"}}
LONG = {
    "text": "滦河镇石佛村小学的操场还是土地面，一下雨孩子们就没法上体育课，希望给学校修建塑胶跑道和篮球场，"
    "再配上一些体育器材，让孩子们能好好锻炼身体",
    "location": {"town": "滦河镇", "village": "石佛村"},
}
XIDI = {"text": "西地镇西地村的小学操场太小，希望扩建", "location": {"town": "西地镇", "village": "西地村"}}
TABLES = "/api/v1/summary-tables"
CONTACTS = {
    "leader": {"name": "赵书记", "post": "党委副书记", "phone": "13800000001"},
    "contact": {"name": "钱干事", "post": "党政办干事", "phone": "13800000002"},
}


async def classified(system, body) -> dict:
    sid = (await system.web.post("/api/v1/suggestions", json=body)).json()["suggestion_id"]
    return await eventually(lambda: system.db.suggestions.find_one({"_id": sid, "status": "classified"}))


async def unit_with_head(system, unit: str) -> tuple[dict, dict]:
    """(clerk, head) headers of the unit; the head designated by the district office."""
    clerk = await system.sign_in(f"{unit}-clerk", Role.UNIT_STAFF, unit)
    head = await system.sign_in(f"{unit}-head", Role.UNIT_STAFF, unit)
    admin = system.staff_headers
    designated = await system.store.put(f"/api/v1/units/{unit}/head", json={"username": f"{unit}-head"}, headers=admin)
    assert designated.status_code == 200, designated.text
    return clerk, head


def groups(table: dict) -> dict[str, tuple[str, dict]]:
    """group id → (category, group)"""
    return {g["group_id"]: (s["category"], g) for s in table["sections"] for g in s["groups"]}


def project_for(table: dict, title: str = "石佛村幸福路硬化工程", **extra) -> dict:
    """A project from the table's largest group, in that group's category."""
    group_id, (category, _) = next(iter(sorted(groups(table).items(), key=lambda item: -item[1][1]["count"])))
    body = {"category": category, "title": title, "description": "全长1.2公里，水泥硬化", "place": "石佛村"}
    return body | {"estimate_yuan": 1_200_000, "suggestion_groups": [group_id]} | extra


async def step(system, unit: str, name: str, headers: dict, **body):
    return await system.store.post(f"{TABLES}/{unit}/{name}", json=body or None, headers=headers)


async def submitted_table(system, unit: str, clerk: dict, head: dict, **project) -> dict:
    drafted = (await system.store.post(f"{TABLES}/{unit}/draft", headers=clerk)).json()
    projects = {"projects": [project_for(drafted, **project)]}
    assert (await system.store.put(f"{TABLES}/{unit}/projects", json=projects, headers=clerk)).status_code == 200
    assert (await step(system, unit, "sign-off", head)).status_code == 200
    answer = await step(system, unit, "submit", clerk)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_a_units_table_goes_from_draft_to_approval_and_every_step_is_recorded(system):
    road, duplicate, school = [await classified(system, body) for body in (ROAD, ROAD, LONG)]
    clerk, head = await unit_with_head(system, "luanhe")

    drafted = await system.store.post(f"{TABLES}/luanhe/draft", headers=clerk)
    assert drafted.status_code == 200, drafted.text
    table = drafted.json()
    assert (table["unit"], table["unit_name"], table["state"], table["version"]) == ("luanhe", "滦河镇", "draft", 1)
    campaign = system.store_settings.campaign
    assert [s["category"] for s in table["sections"]] == campaign.category_codes()
    docs = [road, duplicate, school]
    expected = {(d["category"], d.get("cluster_id") or d["_id"]) for d in docs}
    assert {(category, gid) for gid, (category, _) in groups(table).items()} == expected
    assert sum(g["count"] for _, g in groups(table).values()) == 3
    school_group = groups(table)[school.get("cluster_id") or school["_id"]][1]
    assert school_group["text"] == LONG["text"][:60] and len(school_group["text"]) == 60

    project = project_for(table)
    entered = await system.store.put(f"{TABLES}/luanhe/projects", json={"projects": [project]}, headers=clerk)
    assert entered.status_code == 200, entered.text
    section = next(s for s in entered.json()["sections"] if s["category"] == project["category"])
    assert [p["title"] for p in section["projects"]] == ["石佛村幸福路硬化工程"] and entered.json()["version"] == 2

    signed = await step(system, "luanhe", "sign-off", head, note="同意上报")
    assert signed.status_code == 200, signed.text
    assert signed.json()["state"] == "signed_off"
    assert signed.json()["signed_off"]["by"] == "luanhe-head" and signed.json()["signed_off"]["version"] == 2
    sent = await step(system, "luanhe", "submit", clerk)
    assert sent.status_code == 200 and sent.json()["state"] == "submitted"
    # the test campaign's window is today ± 2 days and the deadline moves with it: weeks away
    assert campaign.deadlines.summary_tables > datetime.now(campaign.zone).date()
    assert sent.json()["submitted"]["late"] is False and sent.json()["submitted"]["by"] == "luanhe-clerk"
    for name, state in (("consolidate", "consolidated"), ("study", "studied"), ("approve", "approved")):
        note = "区政府第12次常务会议" if name == "study" else None
        answer = await step(system, "luanhe", name, system.staff_headers, note=note)
        assert answer.status_code == 200 and answer.json()["state"] == state, answer.text

    final = (await system.store.get(f"{TABLES}/luanhe", headers=clerk)).json()
    assert [(h["step"], h["by"]) for h in final["history"]] == [
        ("draft", "luanhe-clerk"),
        ("projects", "luanhe-clerk"),
        ("sign_off", "luanhe-head"),
        ("submit", "luanhe-clerk"),
        ("consolidate", "test-admin"),
        ("study", "test-admin"),
        ("approve", "test-admin"),
    ]
    assert final["history"][2]["note"] == "同意上报" and final["history"][5]["note"] == "区政府第12次常务会议"
    assert all(h["at"] for h in final["history"])

    audit = (await system.store.get("/api/v1/audit", params={"limit": 500}, headers=system.staff_headers)).json()
    actions = [(a["actor"], a["action"]) for a in reversed(audit) if a["target"] == "luanhe"]
    assert actions == [
        ("test-admin", "designate_unit_head"),
        ("luanhe-clerk", "refresh_summary_table"),
        ("luanhe-clerk", "set_summary_table_projects"),
        ("luanhe-head", "sign_off_summary_table"),
        ("luanhe-clerk", "submit_summary_table"),
        ("test-admin", "consolidate_summary_table"),
        ("test-admin", "study_summary_table"),
        ("test-admin", "approve_summary_table"),
    ]

    overview = (await system.store.get(TABLES, headers=system.staff_headers)).json()
    line = next(u for u in overview["units"] if u["unit"] == "luanhe")
    assert (line["state"], line["late"], line["signed_off_by"], line["suggestions"], line["projects"]) == (
        "approved",
        False,
        "luanhe-head",
        3,
        1,
    )
    assert "luanhe" not in overview["missing"] and "xidi" in overview["missing"]
    assert next(u for u in overview["units"] if u["unit"] == "xidi")["state"] == "missing"
    assert overview["deadline"] == campaign.deadlines.summary_tables.isoformat() and overview["deadline_passed"] is False


async def test_an_edit_after_sign_off_needs_a_new_sign_off(system):
    await classified(system, ROAD)
    clerk, head = await unit_with_head(system, "luanhe")
    table = (await system.store.post(f"{TABLES}/luanhe/draft", headers=clerk)).json()
    await system.store.put(f"{TABLES}/luanhe/projects", json={"projects": [project_for(table)]}, headers=clerk)
    assert (await step(system, "luanhe", "sign-off", head)).json()["state"] == "signed_off"

    # a refresh that finds what was there changes nothing: the sign-off stands
    again = (await system.store.post(f"{TABLES}/luanhe/draft", headers=clerk)).json()
    assert (again["state"], again["version"]) == ("signed_off", 2)

    edited = await system.store.put(
        f"{TABLES}/luanhe/projects", json={"projects": [project_for(table, estimate_yuan=1_500_000)]}, headers=clerk
    )
    assert edited.status_code == 200
    assert (edited.json()["state"], edited.json()["version"], edited.json()["signed_off"]) == ("draft", 3, None)
    reopened = edited.json()["history"][-2]
    assert reopened["step"] == "reopened" and "luanhe-head" in reopened["note"] and reopened["by"] == "luanhe-clerk"
    refused = await step(system, "luanhe", "submit", clerk)
    assert refused.status_code == 409 and "sign-off" in refused.json()["detail"]

    assert (await step(system, "luanhe", "sign-off", head)).json()["signed_off"]["version"] == 3
    assert (await step(system, "luanhe", "submit", clerk)).json()["state"] == "submitted"
    # an edit after submission withdraws it, too
    await classified(system, LONG)
    refreshed = (await system.store.post(f"{TABLES}/luanhe/draft", headers=clerk)).json()
    assert (refreshed["state"], refreshed["submitted"], refreshed["version"]) == ("draft", None, 4)
    assert "withdrawn" in refreshed["history"][-2]["note"]
    assert [p["estimate_yuan"] for s in refreshed["sections"] for p in s["projects"]] == [1_500_000]  # projects kept

    await step(system, "luanhe", "sign-off", head)
    await step(system, "luanhe", "submit", clerk)
    await step(system, "luanhe", "consolidate", system.staff_headers)
    late_edit = await system.store.put(f"{TABLES}/luanhe/projects", json={"projects": []}, headers=clerk)
    assert late_edit.status_code == 409 and "consolidated" in late_edit.json()["detail"]


async def test_only_the_head_signs_off_and_steps_keep_their_order(system):
    await classified(system, ROAD)
    clerk = await system.sign_in("luanhe-clerk", Role.UNIT_STAFF, "luanhe")
    assert (await step(system, "luanhe", "sign-off", clerk)).status_code == 409  # no draft yet
    projects = {"projects": [{"category": "road_traffic", "title": "修路"}]}
    assert (await system.store.put(f"{TABLES}/luanhe/projects", json=projects, headers=clerk)).status_code == 409
    assert (await system.store.post(f"{TABLES}/luanhe/draft", headers=clerk)).status_code == 200

    no_head = await step(system, "luanhe", "sign-off", clerk)
    assert no_head.status_code == 403 and "designated" in no_head.json()["detail"]
    head = await system.sign_in("luanhe-head", Role.UNIT_STAFF, "luanhe")
    xidi_clerk = await system.sign_in("xidi-clerk", Role.UNIT_STAFF, "xidi")
    await system.sign_in("sup", Role.SUPERVISOR)
    for username in ("xidi-clerk", "sup", "nobody-here"):
        wrong = await system.store.put("/api/v1/units/luanhe/head", json={"username": username}, headers=system.staff_headers)
        assert wrong.status_code == 422, (username, wrong.text)
    designation = {"username": "luanhe-head"}
    assert (await system.store.put("/api/v1/units/luanhe/head", json=designation, headers=clerk)).status_code == 403
    designated = await system.store.put("/api/v1/units/luanhe/head", json=designation, headers=system.staff_headers)
    assert designated.status_code == 200 and designated.json()["designated_by"] == "test-admin"
    assert (await system.store.get("/api/v1/units/luanhe/head", headers=clerk)).json()["username"] == "luanhe-head"

    for not_the_head in (clerk, system.staff_headers):
        refused = await step(system, "luanhe", "sign-off", not_the_head)
        assert refused.status_code == 403 and "head" in refused.json()["detail"]
    assert (await step(system, "luanhe", "sign-off", xidi_clerk)).status_code == 404

    early = await step(system, "luanhe", "submit", clerk)
    assert early.status_code == 409 and early.json()["detail"].startswith("submit before sign-off")
    too_early = (("consolidate", "consolidate before submission"), ("study", "study before"), ("approve", "approve before"))
    for name, detail in too_early:
        answer = await step(system, "luanhe", name, system.staff_headers)
        assert answer.status_code == 409 and answer.json()["detail"].startswith(detail), (name, answer.text)
    assert (await step(system, "luanhe", "sign-off", head)).status_code == 200
    twice = await step(system, "luanhe", "sign-off", head)
    assert twice.status_code == 409 and "already" in twice.json()["detail"]
    assert (await step(system, "luanhe", "consolidate", clerk)).status_code == 403  # the district office's step

    bad_projects = [
        {"category": "no_such_category", "title": "修路"},
        {"category": "road_traffic", "title": ""},
        {"category": "road_traffic", "title": "修" * 101},
        {"category": "road_traffic", "title": "修路", "estimate_yuan": -1},
        {"category": "road_traffic", "title": "修路", "suggestion_groups": ["not-a-group"]},
    ]
    for bad in bad_projects:
        answer = await system.store.put(f"{TABLES}/luanhe/projects", json={"projects": [bad]}, headers=clerk)
        assert answer.status_code == 422, bad
    # a refused edit leaves the sign-off standing
    assert (await system.store.get(f"{TABLES}/luanhe", headers=clerk)).json()["state"] == "signed_off"


async def test_another_units_clerk_finds_nothing_and_supervisors_only_read(system):
    await classified(system, XIDI)
    xidi_clerk, xidi_head = await unit_with_head(system, "xidi")
    xidi_table = await submitted_table(system, "xidi", xidi_clerk, xidi_head)
    luanhe = await system.sign_in("luanhe-clerk", Role.UNIT_STAFF, "luanhe")
    operator = await system.sign_in("op", Role.OPERATOR)
    supervisor = await system.sign_in("sup", Role.SUPERVISOR)
    routes = [r for r in summary_api.router.routes if isinstance(r, APIRoute)]
    assert len(routes) == 13
    for route in routes:
        for method in route.methods:
            url = route.path.replace("{unit}", "xidi")
            # the bodies the store-wide access test sends: none of them must turn a refusal into a 422
            body = {"PUT": CONTACTS}.get(method, {"projects": "nonsense"} if method == "POST" else None)
            extra = {"json": body} if body else {}
            assert (await system.store.request(method, url, **extra)).status_code == 401, (method, url)
            assert (await system.store.request(method, url, headers=operator, **extra)).status_code == 403, (method, url)
            theirs = await system.store.request(method, url, headers=luanhe, **extra)
            expected = 404 if "{unit}" in route.path else 403
            assert theirs.status_code == expected, (method, url, theirs.status_code)
            read = await system.store.request(method, url, headers=supervisor, **extra)
            changes = method in ("POST", "PUT", "PATCH", "DELETE")
            assert (read.status_code == 403) == changes, (method, url, read.status_code)
            if not changes:
                assert read.status_code == 200, (method, url, read.status_code)
    unchanged = (await system.store.get(f"{TABLES}/xidi", headers=xidi_clerk)).json()
    assert unchanged["state"] == "submitted" and unchanged["revision"] == xidi_table["revision"]
    assert (await system.store.get(TABLES, headers=xidi_clerk)).status_code == 403  # the district's overview


async def test_the_units_workbook_is_the_table_a_clerk_hands_in(system):
    await classified(system, ROAD)
    await classified(system, LONG)
    clerk, head = await unit_with_head(system, "luanhe")
    table = await submitted_table(system, "luanhe", clerk, head, title='=HYPERLINK("http://evil.example","点我")')
    answer = await system.store.get(f"{TABLES}/luanhe/xlsx", headers=clerk)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in answer.headers["content-disposition"]
    ws = load_workbook(io.BytesIO(answer.content)).active
    assert ws["A1"].value == "滦河镇2020年民心工程意见建议分类汇总表"
    assert "填报单位（盖章）：滦河镇" in ws["A2"].value and "已报送" in ws["A2"].value
    assert [c.value for c in ws[3]] == ["序号", "类别", "建议事项（归并后）", "建议数量", "拟办项目", "估算金额（万元）", "备注"]
    values = [[c.value for c in row] for row in ws.iter_rows(min_row=4)]
    texts = {g["text"] for _, g in groups(table).values()}
    assert texts <= {row[2] for row in values}
    total = next(row for row in values if row[0] == "合计")
    assert total[3] == 2 and total[5] == 120.0
    signature = next(row[0] for row in values if row[0] and str(row[0]).startswith("单位负责人（签字）"))
    day = datetime.now(system.store_settings.campaign.zone).strftime("%Y年%m月%d日")
    assert signature.startswith("单位负责人（签字）：luanhe-head") and f"日期：{day}" in signature
    formula = [c for row in ws.iter_rows() for c in row if isinstance(c.value, str) and "HYPERLINK" in c.value]
    assert formula and all(c.data_type == "s" and c.value.startswith("'=") for c in formula)
    assert not [c for row in ws.iter_rows() for c in row if c.data_type == "f"]
    assert ws.column_dimensions["C"].width > ws.column_dimensions["A"].width
    assert any(r.min_col == 1 and r.max_col == 7 for r in ws.merged_cells.ranges)  # the title over the whole width


async def test_the_consolidated_workbook_holds_every_submitted_unit_and_flags_late_ones(system):
    await classified(system, ROAD)
    await classified(system, XIDI)
    luanhe_clerk, luanhe_head = await unit_with_head(system, "luanhe")
    xidi_clerk, xidi_head = await unit_with_head(system, "xidi")
    await submitted_table(system, "luanhe", luanhe_clerk, luanhe_head)
    store = system.apps["store"]
    campaign = store.state.campaign
    yesterday = datetime.now(campaign.zone).date() - timedelta(days=1)
    store.state.campaign = campaign.model_copy(
        update={"deadlines": campaign.deadlines.model_copy(update={"summary_tables": yesterday})}
    )
    try:
        late = await submitted_table(system, "xidi", xidi_clerk, xidi_head, title="西地村小学操场扩建")
        assert late["submitted"]["late"] is True
        overview = (await system.store.get(TABLES, headers=system.staff_headers)).json()
        answer = await system.store.get(f"{TABLES}/consolidated/xlsx", headers=system.staff_headers)
    finally:
        store.state.campaign = campaign
    flags = {u["unit"]: (u["state"], u["late"], u["overdue"]) for u in overview["units"]}
    assert flags["luanhe"] == ("submitted", False, False) and flags["xidi"] == ("submitted", True, False)
    assert flags["shuangtashan"] == ("missing", False, True) and overview["deadline_passed"] is True

    assert answer.status_code == 200
    workbook = load_workbook(io.BytesIO(answer.content))
    assert workbook.sheetnames == ["全区汇总", "分类合计", "报送情况"]
    rows = workbook["全区汇总"]
    assert rows["A1"].value == "全区2020年民心工程意见建议分类汇总表"
    assert [c.value for c in rows[3]][:3] == ["序号", "单位", "类别"]
    assert {c.value for c in rows["B"][3:]} >= {"滦河镇", "西地镇"}
    projects = {c.value for c in rows["F"][3:] if c.value}
    assert any(p.startswith("石佛村幸福路硬化工程") for p in projects)
    assert any(p.startswith("西地村小学操场扩建") for p in projects)
    totals = workbook["分类合计"]
    total = next(row for row in totals.iter_rows(values_only=True) if row[0] == "合计")
    assert total[2] == 2 and total[4] == 2 and total[5] == 240.0
    status = {row[1]: row[6] for row in workbook["报送情况"].iter_rows(min_row=4, values_only=True)}
    assert status["西地镇"] == "逾期报送" and status["滦河镇"] is None and status["双塔山镇"] == "逾期未报"

    clerk_answer = await system.store.get(f"{TABLES}/consolidated/xlsx", headers=luanhe_clerk)
    assert clerk_answer.status_code == 403
