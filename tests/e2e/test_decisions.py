"""Decisions end to end: a cluster becomes a project and its suggestions are adopted, others are not adopted with a
reason, each release published once as SuggestionDecided and shown to the submitter on the web status page;
bad decisions are refused and change nothing; the store applies decisions and notifications idempotently."""

from __future__ import annotations

import io
import json
import uuid
from collections import Counter
from datetime import datetime, timedelta

import pytest
from openpyxl import load_workbook

from minsheng_core.bus import Publisher, connect
from minsheng_core.events import (
    Decision,
    Notification,
    NotificationChannel,
    NotificationSent,
    Outcome,
    Reason,
    SuggestionDecided,
    utc_now,
)
from minsheng_core.staff import Role
from minsheng_store.repository import SuggestionRepository
from tests.helpers import Spy, eventually

pytestmark = pytest.mark.integration

ROAD = [
    {"text": "石佛村的幸福路坑太多了，希望重新硬化", "location": {"town": "滦河镇", "village": "石佛村"}},
    {"text": "建议把滦河镇石佛村幸福路拓宽", "location": {"town": "滦河镇"}},
    {"text": "滦河镇石佛村幸福路一下雨全是泥，盼望修一修", "location": {"town": "滦河镇", "village": "石佛村"}},
]
OTHERS = [
    {"text": "滦河镇希望建一座大型体育馆，能举办全国比赛", "location": {"town": "滦河镇"}},
    {"text": "建议滦河镇修一条通往北京的高速铁路", "location": {"town": "滦河镇"}},
]
SCHOOL = {"text": "西地镇西地村的小学操场太小，希望扩建", "location": {"town": "西地镇", "village": "西地村"}}


async def submitted(system, body) -> dict:
    """Submit through the web form's API and wait until the store has it classified; the receipt is kept alongside."""
    response = await system.web.post("/api/v1/suggestions", json=body)
    assert response.status_code == 202, response.text
    receipt = response.json()
    doc = await eventually(lambda: system.db.suggestions.find_one({"_id": receipt["suggestion_id"], "status": "classified"}))
    return doc | {"access_code": receipt["access_code"]}


async def publish(system, event) -> None:
    connection = await connect(system.amqp_url, "test")
    try:
        publisher = Publisher(connection)
        await publisher.start()
        await publisher.publish(event)
    finally:
        await connection.close()


def decided(messages) -> list[tuple[str, str, str]]:
    bodies = [(m.routing_key, json.loads(m.body)) for m in messages]
    return sorted((key, body["suggestion_id"], body["body"]["decision_id"]) for key, body in bodies)


async def test_a_cluster_is_adopted_into_a_project_and_the_others_are_not_adopted_with_a_reason(system):
    road = [await submitted(system, body) for body in ROAD]
    others = [await submitted(system, body) for body in OTHERS]
    assert {d["unit"] for d in road + others} == {"luanhe"} and len({d["cluster_id"] for d in road}) == 1
    clerk = await system.sign_in("luanhe-clerk", Role.UNIT_STAFF, "luanhe")
    admin = system.staff_headers
    spy = await Spy.bind(system.amqp_url, "suggestion.decided.*")
    try:
        project = (
            await system.store.post(
                "/api/v1/projects", json={"title": "石佛村幸福路硬化", "cluster_id": road[0]["cluster_id"]}, headers=clerk
            )
        ).json()

        # The unit drafts: the cluster adopted into the project, with the template's explanation.
        adopt = {"cluster_id": road[0]["cluster_id"], "outcome": "adopted", "project_id": project["project_id"]}
        drafted = await system.store.post("/api/v1/decisions/bulk", json=adopt, headers=clerk)
        assert drafted.status_code == 200, drafted.text
        drafts = drafted.json()["decisions"]
        assert sorted(d["suggestion_id"] for d in drafts) == sorted(d["_id"] for d in road)
        assert {d["state"] for d in drafts} == {"draft"} and drafted.json()["released"] == 0
        first = next(d for d in drafts if d["suggestion_id"] == road[0]["_id"])
        assert road[0]["tracking_code"] in first["explanation"] and "“石佛村幸福路硬化”" in first["explanation"]
        assert "{" not in first["explanation"]

        # Unit staff do not release: the district office does.
        release_road = {"suggestion_ids": [d["_id"] for d in road]}
        assert (await system.store.post("/api/v1/decisions/release", json=release_road, headers=clerk)).status_code == 403
        one = f"/api/v1/suggestions/{road[0]['_id']}/decision"
        assert (await system.store.post(f"{one}/release", headers=clerk)).status_code == 403
        assert (
            await system.store.post("/api/v1/decisions/bulk", json=adopt | {"release": True}, headers=clerk)
        ).status_code == 403
        assert await spy.drain() == []

        released = await system.store.post("/api/v1/decisions/release", json=release_road, headers=admin)
        assert released.status_code == 200, released.text
        assert (released.json()["released"], released.json()["unchanged"]) == (3, 0)
        messages = decided(await spy.drain())
        assert [(key, sid) for key, sid, _ in messages] == sorted(("suggestion.decided.adopted", d["_id"]) for d in road)

        # The others: not adopted, beyond this year's means, drafted and released in one request.
        not_adopted = {"suggestion_ids": [d["_id"] for d in others], "outcome": "not_adopted", "reason": "beyond_means"}
        answer = (await system.store.post("/api/v1/decisions/bulk", json=not_adopted | {"release": True}, headers=admin)).json()
        assert answer["released"] == 2 and {d["reason_name"] for d in answer["decisions"]} == {"超出本年度财力"}
        assert [key for key, _, _ in decided(await spy.drain())] == ["suggestion.decided.not_adopted"] * 2

        # Released again unchanged: nothing published twice.
        again = (await system.store.post("/api/v1/decisions/release", json=release_road, headers=admin)).json()
        assert (again["released"], again["unchanged"]) == (0, 3)
        assert (await system.store.post(f"{one}/release", headers=admin)).json()["state"] == "released"
        assert await spy.drain() == []

        # The store holds the decisions; staff see them on the suggestion; the project lists its adopted suggestions.
        for doc in road:
            stored = await system.store.get(f"/api/v1/suggestions/{doc['_id']}", headers=clerk)
            decision = stored.json()["decision"]
            assert (decision["outcome"], decision["project_id"], decision["released_by"]) == (
                "adopted",
                project["project_id"],
                "test-admin",
            )
        stored = await system.db.suggestions.find_one({"_id": others[0]["_id"]})
        assert (stored["decision"]["outcome"], stored["decision"]["reason"]) == ("not_adopted", "beyond_means")
        assert "财力" in stored["decision"]["explanation"]

        # A correction: the explanation edited and released again is a new decision, published once.
        edited = {"outcome": "not_adopted", "reason": "beyond_means", "explanation": "经测算需投资约2亿元，超出本年度财力。"}
        changed = (await system.store.put(f"/api/v1/suggestions/{others[0]['_id']}/decision", json=edited, headers=clerk)).json()
        assert changed["state"] == "changed"
        corrected = (await system.store.post(f"/api/v1/suggestions/{others[0]['_id']}/decision/release", headers=admin)).json()
        assert corrected["state"] == "released" and corrected["decision_id"] != answer["decisions"][0]["decision_id"]
        assert [sid for _, sid, _ in decided(await spy.drain())] == [others[0]["_id"]]
        stored = await system.db.suggestions.find_one({"_id": others[0]["_id"]})
        assert stored["decision"]["explanation"] == edited["explanation"] and len(stored["decisions"]) == 2

        # The submitter sees the decision on the status page, and in the JSON answer.
        status = await system.web.get(
            f"/api/v1/suggestions/{road[0]['tracking_code']}", params={"access_code": road[0]["access_code"]}
        )
        assert status.status_code == 200
        shown = status.json()["decision"]
        assert (shown["outcome"], shown["outcome_name"], shown["project_title"]) == ("adopted", "采纳", "石佛村幸福路硬化")
        assert shown["explanation"] == first["explanation"] and status.json()["status_text"] == "已答复（采纳）"
        page = await system.web.get(
            "/status", params={"tracking_code": others[0]["tracking_code"], "access_code": others[0]["access_code"]}
        )
        assert page.status_code == 200
        assert "未采纳" in page.text and "超出本年度财力" in page.text and "经测算需投资约2亿元" in page.text

        # The outcomes report: per unit, per category, by reason.
        report = (await system.store.get("/api/v1/reports/outcomes", headers=admin)).json()
        assert (report["overall"]["adopted"], report["overall"]["not_adopted"], report["overall"]["total"]) == (3, 2, 5)
        assert report["overall"]["not_adopted_by_reason"]["beyond_means"] == 2
        luanhe = next(u for u in report["units"] if u["unit"] == "luanhe")
        assert (luanhe["adopted"], luanhe["not_adopted_by_reason"]["beyond_means"], luanhe["name"]) == (3, 2, "滦河镇")
        assert sum(c["total"] for c in report["categories"]) == 5
        adopted = {c["category"]: c["adopted"] for c in report["categories"] if c["adopted"]}
        assert adopted == dict(Counter(d["category"] for d in road))  # as each one is classified now
        assert (await system.store.get("/api/v1/reports/outcomes", headers=clerk)).json()["overall"]["total"] == 5
        xidi_clerk = await system.sign_in("xidi-clerk", Role.UNIT_STAFF, "xidi")
        assert (await system.store.get("/api/v1/reports/outcomes", headers=xidi_clerk)).json()["overall"]["total"] == 0
        # The weekly report carries the same figures, up to its report date, and a sheet of them in the workbook.
        today = datetime.now(system.store_settings.campaign.zone).date().isoformat()
        weekly = (await system.store.get("/api/v1/reports/weekly", params={"date": today}, headers=clerk)).json()
        assert (weekly["outcomes"]["overall"]["adopted"], weekly["outcomes"]["overall"]["not_adopted"]) == (3, 2)
        workbook = await system.store.get("/api/v1/reports/weekly/xlsx", params={"date": today}, headers=admin)
        sheet = load_workbook(io.BytesIO(workbook.content))["办理结果"]
        total = next(row for row in sheet.iter_rows(values_only=True) if row[0] == "合计")
        assert total[1:5] == (3, 0, 0, 2)
    finally:
        await spy.close()

    # The notifier's receipts are recorded once per decision and channel, and counted per channel.
    decision_id = (await system.db.suggestions.find_one({"_id": road[1]["_id"]}))["decision"]["decision_id"]
    notification = Notification(decision_id=decision_id, channel=NotificationChannel.SMS, attempts=1, sent_at=utc_now())
    sent = NotificationSent(suggestion_id=road[1]["_id"], body=notification)
    await publish(system, sent)
    await publish(system, sent)  # redelivered
    await publish(system, sent.model_copy(update={"event_id": uuid.uuid4()}))  # reported twice by mistake

    async def sms_counted():
        report = (await system.store.get("/api/v1/reports/outcomes", headers=admin)).json()
        return report if next(n["count"] for n in report["notifications"] if n["channel"] == "sms") >= 1 else None

    report = await eventually(sms_counted)
    doc = await system.db.suggestions.find_one({"_id": road[1]["_id"]})
    assert [(n["decision_id"], n["channel"]) for n in doc["notifications"]] == [(decision_id, "sms")]
    assert next(n["count"] for n in report["notifications"] if n["channel"] == "sms") == 1
    shown = (await system.store.get(f"/api/v1/suggestions/{road[1]['_id']}", headers=admin)).json()
    assert [n["channel"] for n in shown["notifications"]] == ["sms"]


async def test_bad_decisions_are_refused_and_change_nothing(system):
    ours = [await submitted(system, body) for body in OTHERS]
    theirs = await submitted(system, SCHOOL)
    clerk = await system.sign_in("luanhe-clerk", Role.UNIT_STAFF, "luanhe")
    supervisor = await system.sign_in("sup", Role.SUPERVISOR)
    admin = system.staff_headers
    url = f"/api/v1/suggestions/{ours[0]['_id']}/decision"
    spy = await Spy.bind(system.amqp_url, "suggestion.decided.*")
    try:
        # A draft without a reason is kept (work in progress) but cannot be released: no reason, no explanation.
        draft = await system.store.put(url, json={"outcome": "not_adopted"}, headers=clerk)
        assert draft.status_code == 200 and draft.json()["explanation"] == ""
        refused = await system.store.post(f"{url}/release", headers=admin)
        assert refused.status_code == 422
        assert "needs a reason" in refused.text and "explanation is empty" in refused.text
        blank = {"outcome": "not_adopted", "reason": "not_feasible", "explanation": "   "}
        assert (await system.store.put(url, json=blank, headers=clerk)).json()["explanation"] == ""
        refused = await system.store.post(f"{url}/release", headers=admin)
        assert refused.status_code == 422 and "explanation is empty" in refused.text

        # Wrong drafts are refused at once.
        cases = [
            ({"outcome": "adopted", "project_id": "no-such-project"}, 422),
            ({"outcome": "adopted", "reason": "other"}, 422),
            ({"outcome": "merged", "merged_into": ours[0]["_id"]}, 422),
            ({"outcome": "merged", "merged_into": theirs["_id"]}, 422),  # another unit's, for this clerk
            ({"outcome": "not_adopted", "reason": "no_reason_at_all"}, 422),
            ({"outcome": "not_adopted", "reason": "other", "explanation": "x" * 1001}, 422),
        ]
        for body, status in cases:
            assert (await system.store.put(url, json=body, headers=clerk)).status_code == status, body
        assert (
            await system.store.put(url, json={"outcome": "referred", "referred_to": "区交通局"}, headers=supervisor)
        ).status_code == 403
        theirs_url = f"/api/v1/suggestions/{theirs['_id']}/decision"
        assert (
            await system.store.put(theirs_url, json={"outcome": "referred", "referred_to": "区交通局"}, headers=clerk)
        ).status_code == 404

        # Bulk over another unit's suggestion, or an unknown one: the whole request is refused, nothing drafted.
        ids = [ours[1]["_id"], theirs["_id"], "no-such-suggestion"]
        bulk = {"suggestion_ids": ids, "outcome": "not_adopted", "reason": "outside_remit"}
        refused = await system.store.post("/api/v1/decisions/bulk", json=bulk, headers=clerk)
        assert refused.status_code == 404 and refused.json()["detail"]["suggestion_ids"] == ids[1:]
        refused = await system.store.post("/api/v1/decisions/bulk", json=bulk | {"release": True}, headers=admin)
        assert refused.status_code == 404 and refused.json()["detail"]["suggestion_ids"] == ["no-such-suggestion"]
        assert await system.db.decision_drafts.count_documents({"_id": {"$in": ids}}) == 0
        # Releasing a list with one incomplete draft releases none of them.
        fine = {"outcome": "referred", "referred_to": "区发改局"}
        assert (
            await system.store.put(f"/api/v1/suggestions/{ours[1]['_id']}/decision", json=fine, headers=clerk)
        ).status_code == 200
        both = {"suggestion_ids": [ours[1]["_id"], ours[0]["_id"]]}
        refused = await system.store.post("/api/v1/decisions/release", json=both, headers=admin)
        assert refused.status_code == 422 and refused.json()["detail"]["suggestion_ids"] == [ours[0]["_id"]]

        assert await spy.drain() == []
        assert await system.db.suggestions.count_documents({"decision": {"$exists": True}}) == 0
    finally:
        await spy.close()


async def test_the_store_applies_decisions_once_and_the_latest_release_wins_whatever_the_order(system):
    doc = await submitted(system, OTHERS[0])
    sid = doc["_id"]
    now = utc_now()

    def decided_event(decision_id: str, released_at, explanation: str) -> SuggestionDecided:
        body = Decision(
            decision_id=decision_id,
            outcome=Outcome.NOT_ADOPTED,
            reason=Reason.NOT_FEASIBLE,
            explanation=explanation,
            decided_by="clerk",
            released_by="admin",
            released_at=released_at,
        )
        return SuggestionDecided(suggestion_id=sid, body=body)

    later = decided_event("d-later", now, "后来的答复")
    earlier = decided_event("d-earlier", now - timedelta(hours=1), "先前的答复")
    for event in (later, later, earlier, earlier):  # redelivered, and the older one last
        await publish(system, event)

    async def both_recorded():
        stored = await system.db.suggestions.find_one({"_id": sid})
        return stored if len(stored.get("decisions", [])) == 2 else None

    await eventually(both_recorded)

    async def settled():
        stored = await system.db.suggestions.find_one({"_id": sid})
        return stored if stored["decision"]["decision_id"] == "d-later" else None

    stored = await eventually(settled)
    assert stored["decision"]["explanation"] == "后来的答复"
    assert sorted(d["decision_id"] for d in stored["decisions"]) == ["d-earlier", "d-later"]
    # Applied once more, in this order, by the store's own code: the older release still does not win.
    repo = SuggestionRepository(system.db)
    await repo.apply_decided(earlier)
    await repo.apply_decided(later)
    await repo.apply_decided(earlier)
    stored = await system.db.suggestions.find_one({"_id": sid})
    assert (stored["decision"]["decision_id"], len(stored["decisions"])) == ("d-later", 2)
