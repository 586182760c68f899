"""A town's door-to-door survey sheet through intake-survey: good rows become suggestions on the door_to_door
channel and visits that give coverage; bad rows are reported with reasons; importing again changes nothing."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
from openpyxl import Workbook

from minsheng_core.staff import Role
from tests.helpers import eventually

pytestmark = pytest.mark.integration
HEADER = ["村/社区", "户主/地址", "走访日期", "走访人", "建议内容", "联系电话"]


def local_today(system) -> date:
    """Today where the campaign is (Asia/Shanghai): not the machine's date near midnight."""
    from datetime import datetime

    return datetime.now(system.survey_settings.campaign.zone).date()


def sheet(rows: list[list[object]]) -> bytes:
    book = Workbook()
    page = book.active
    page.append(["双塔山镇入户征集登记表"])
    page.append(HEADER)
    for row in rows:
        page.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def upload(data: bytes) -> dict:
    return {"file": ("双塔山镇入户走访.xlsx", data, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")}


async def test_a_survey_sheet_becomes_suggestions_visits_and_coverage_once(system):
    today = date.today()  # the test campaign's window is open around today
    clerk = await system.sign_in("sts-clerk", Role.UNIT_STAFF, "shuangtashan")
    data = sheet(
        [
            ["西山村", "王大山", today, "张干事", "村口的路灯坏了好几个，晚上出行不安全，希望修好", "13912345678"],
            ["西山村", "王大山", today, "张干事", "希望在村里建一个老年活动室", None],
            ["西山村", "李四", today, "张干事", "无", None],
            ["大贵口村", "赵五", today - timedelta(days=1), "刘干事", "无", None],
            ["月亮村", "孙六", today, "刘干事", "希望修桥", None],
            ["西山村", "周七", today + timedelta(days=30), "刘干事", "希望修桥", None],
            ["西山村", "李四", today, "张干事", "无", None],
        ]
    )
    response = await system.survey.post("/api/v1/survey-sheets", files=upload(data), headers=clerk)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["accepted"], report["rejected"], report["duplicates"], report["visits"]) == (2, 2, 1, 3)
    outcomes = {row["row"]: row for row in report["rows"]}
    assert outcomes[7]["outcome"] == "rejected" and "月亮村" in outcomes[7]["reason"]
    assert outcomes[8]["outcome"] == "rejected" and outcomes[9]["outcome"] == "duplicate"

    async def stored():
        docs = await system.db.suggestions.find({"channel": "door_to_door"}).to_list(None)
        return docs if len(docs) == 2 and {d["status"] for d in docs} == {"classified"} else None

    docs = await eventually(stored)
    assert {d["unit"] for d in docs} == {"shuangtashan"} and {d["location"]["village"] for d in docs} == {"西山村"}

    async def covered():
        found = {d["_id"]: d["visited"] async for d in system.db.coverage.find()}
        return found if sum(found.values()) == 3 else None

    assert await eventually(covered) == {"shuangtashan|西山村": 2, "shuangtashan|大贵口村": 1}
    visit = await system.db.visits.find_one({"household": "王大山"})
    assert sorted(visit["suggestion_ids"]) == sorted(d["_id"] for d in docs)

    again = (await system.survey.post("/api/v1/survey-sheets", files=upload(data), headers=clerk)).json()
    assert (again["accepted"], again["duplicates"], again["visits"]) == (0, 3, 0)
    assert await system.db.suggestions.count_documents({"channel": "door_to_door"}) == 2
    assert {d["_id"]: d["visited"] async for d in system.db.coverage.find()} == {
        "shuangtashan|西山村": 2,
        "shuangtashan|大贵口村": 1,
    }
    audit = [a async for a in system.db.audit_log.find({"action": "import_survey_sheet"})]
    assert len(audit) == 2 and audit[0]["actor"] == "sts-clerk"


async def test_sheets_are_imported_only_by_their_units_staff(system):
    data = sheet([["西山村", "王大山", date.today(), "张干事", "无", None]])
    other = await system.sign_in("xidi-clerk", Role.UNIT_STAFF, "xidi")
    refused = await system.survey.post(
        "/api/v1/survey-sheets", params={"unit": "shuangtashan"}, files=upload(data), headers=other
    )
    assert refused.status_code == 404
    wrong_unit = (await system.survey.post("/api/v1/survey-sheets", files=upload(data), headers=other)).json()
    assert wrong_unit["rejected"] == 1  # 西山村 is not one of 西地镇's villages
    supervisor = await system.sign_in("sup", Role.SUPERVISOR)
    assert (await system.survey.post("/api/v1/survey-sheets", files=upload(data), headers=supervisor)).status_code == 403
    assert (await system.survey.post("/api/v1/survey-sheets", files=upload(data))).status_code == 401
    headerless = await system.survey.post("/api/v1/survey-sheets", files=upload(sheet([])[:100]), headers=other)
    assert headerless.status_code == 422


async def test_a_visit_recorded_on_the_phone_page_counts_like_a_row_of_a_sheet(system):
    import re

    from minsheng_core.staff import StaffDirectory

    await StaffDirectory(system.db).create("sts-walker", "a long enough pass", Role.UNIT_STAFF, "吴干事", unit="shuangtashan")
    signed = await system.survey.post("/visits/login", data={"username": "sts-walker", "password": "a long enough pass"})
    assert signed.status_code == 303
    page = (await system.survey.get("/visits")).text
    assert "双塔山镇 · 入户走访登记" in page and "西山村" in page and "石佛村" not in page  # only the unit's villages
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)[1]
    visit = {"csrf": csrf, "village": "西山村", "household": "陈家", "visited_on": date.today().isoformat(), "visitor": "吴干事"}
    done = await system.survey.post(
        "/visits", data={**visit, "suggestion": "村里缺少公共厕所，希望新建一座", "phone": "13911112222"}
    )
    assert done.status_code == 303 and "saved=" in done.headers["location"]
    code = done.headers["location"].split("saved=")[1]
    doc = await eventually(lambda: system.db.suggestions.find_one({"tracking_code": code, "status": "classified"}))
    assert (doc["channel"], doc["unit"], doc["location"]["village"]) == ("door_to_door", "shuangtashan", "西山村")
    nothing = await system.survey.post("/visits", data={**visit, "household": "林家"})  # visited, no suggestion
    assert nothing.status_code == 303

    async def covered():
        found = await system.db.coverage.find_one({"_id": "shuangtashan|西山村"})
        return found if found and found["visited"] == 2 else None

    await eventually(covered)
    for bad, field_message in (
        ({"village": "石佛村"}, "请从本单位的村/社区中选择"),
        ({"visited_on": (local_today(system) + timedelta(days=1)).isoformat()}, "不晚于今天"),
        ({"suggestion": "🙏🙏"}, "不能只有表情或标点符号"),
        ({"phone": "12"}, "格式不正确"),
    ):
        refused = await system.survey.post("/visits", data={**visit, **bad})
        assert refused.status_code == 422 and field_message in refused.text, bad
    assert (await system.survey.post("/visits", data={**visit, "csrf": "0" * 64})).status_code == 403
    assert await system.db.suggestions.count_documents({"channel": "door_to_door"}) == 1


async def test_a_symposium_and_its_suggestions_are_recorded_once(system):
    clerk = await system.sign_in("pqz-clerk", Role.UNIT_STAFF, "pianqiaozi")
    record = {
        "held_on": date.today().isoformat(),
        "place": "镇政府三楼会议室",
        "host": "李镇长",
        "participants": 18,
        "groups": ["npc_deputy", "resident"],
        "suggestions": [
            {"text": "建议在镇中心建设一处停车场", "submitter_group": "npc_deputy", "name": "王代表"},
            {"text": "希望增加通往市区的公交班次"},
        ],
    }
    first = await system.survey.post("/api/v1/symposiums", json=record, headers=clerk)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["new"] and len(answer["tracking_codes"]) == 2

    async def stored():
        docs = await system.db.suggestions.find({"channel": "symposium", "status": "classified"}).to_list(None)
        return docs if len(docs) == 2 else None

    docs = await eventually(stored)
    assert {d["unit"] for d in docs} == {"pianqiaozi"} and {d["submitter_group"] for d in docs} == {"npc_deputy", "resident"}
    symposium = await eventually(lambda: system.db.symposiums.find_one({"_id": answer["symposium_id"]}))
    assert symposium["participants"] == 18 and sorted(symposium["suggestion_ids"]) == sorted(d["_id"] for d in docs)

    again = (await system.survey.post("/api/v1/symposiums", json=record, headers=clerk)).json()
    assert again == {**answer, "new": False}
    assert await system.db.suggestions.count_documents({"channel": "symposium"}) == 2
    for bad in ({"held_on": "2001-01-01"}, {"suggestions": []}, {"suggestions": [{"text": "！！"}]}, {"participants": 0}):
        assert (await system.survey.post("/api/v1/symposiums", json={**record, **bad}, headers=clerk)).status_code == 422, bad
    other = await system.sign_in("xidi-clerk2", Role.UNIT_STAFF, "xidi")
    params = {"unit": "pianqiaozi"}
    assert (await system.survey.post("/api/v1/symposiums", json=record, params=params, headers=other)).status_code == 404


async def test_two_participants_saying_the_same_thing_are_two_suggestions_and_a_changed_record_is_refused(system):
    clerk = await system.sign_in("dm-clerk", Role.UNIT_STAFF, "damiao")
    same = "希望在社区增设老年食堂"
    record = {
        "held_on": date.today().isoformat(),
        "place": "社区会议室",
        "host": "赵主任",
        "participants": 16,
        "suggestions": [{"text": same}, {"text": same, "submitter_group": "cppcc_member"}, {"text": same}],
    }
    first = await system.survey.post("/api/v1/symposiums", json=record, headers=clerk)
    assert first.status_code == 200, first.text
    codes = first.json()["tracking_codes"]
    assert len(set(codes)) == 3

    async def stored():
        docs = await system.db.suggestions.find({"channel": "symposium", "status": "classified"}).to_list(None)
        return docs if len(docs) == 3 else None

    groups = sorted(d["submitter_group"] for d in await eventually(stored))
    assert groups == ["cppcc_member", "resident", "resident"]
    assert (await system.survey.post("/api/v1/symposiums", json=record, headers=clerk)).json()["tracking_codes"] == codes

    changed = {**record, "suggestions": [{"text": same, "submitter_group": "npc_deputy"}, *record["suggestions"][1:]]}
    refused = await system.survey.post("/api/v1/symposiums", json=changed, headers=clerk)
    assert refused.status_code == 409 and "第 1 条建议" in refused.json()["detail"], refused.text
    more = await system.survey.post("/api/v1/symposiums", json={**record, "participants": 20}, headers=clerk)
    assert more.status_code == 409 and "参会人数" in more.json()["detail"], more.text
    assert await system.db.suggestions.count_documents({"channel": "symposium"}) == 3
