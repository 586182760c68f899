"""Personal data end to end: nothing in clear in the database or the intakes' outboxes after submissions through
the web, WeChat and the hotline; the contact endpoint by role (clear and audited, masked, refused); erasure on
request, which a redelivered event does not undo and which reaches the outboxes; repeat callers found by hash."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from minsheng_core.events import PersonalData
from minsheng_core.personal import LOOKUP_FIELDS
from minsheng_core.staff import Role
from tests.helpers import eventually

pytestmark = pytest.mark.integration

PHONE, NAME = "13812345678", "张三丰"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
CALLER = "13912345678"
WEB = {
    "text": "滦河镇石佛村的幸福路坑太多了，希望重新硬化。有事打我电话 139-0000-1234",
    "location": {"town": "滦河镇", "village": "石佛村"},
    "contact": {"name": NAME, "phone": PHONE},
}


async def stored(system, query: dict, status: str = "classified") -> dict:
    return await eventually(lambda: system.db.suggestions.find_one({**query, "status": status}))


async def submit_web(system) -> dict:
    response = await system.web.post("/api/v1/suggestions", json=WEB)
    assert response.status_code == 202, response.text
    return await stored(system, {"_id": response.json()["suggestion_id"]})


async def everything_in(system) -> str:
    """Every document of every collection of the test's database, as text."""
    dump = []
    for name in await system.db.list_collection_names():
        dump += await system.db[name].find().to_list(None)
    return json.dumps(dump, default=str, ensure_ascii=False)


def outbox_rows(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return repr(db.execute("SELECT * FROM outbox").fetchall())


def outbox_file(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


async def test_nothing_personal_is_kept_in_clear_after_web_wechat_and_hotline_submissions(system):
    web = await submit_web(system)
    district = system.wechat_accounts[0]
    await district.send(system.wechat, district.text(OPENID, "希望在滦河镇中学门口设置减速带", msg_id=7001))
    wechat = await stored(system, {"channel_ref": f"{district.appid}:7001"})
    token = system.hotline_settings.transcripts_token.get_secret_value()
    calls = f"call_id,started_at,caller,text,confidence\nCC-7001,{web['submitted_at'].isoformat()},{CALLER},希望村里修路,0.9\n"
    answer = await system.hotline.post(
        "/api/v1/transcripts", content=calls.encode(), headers={"Content-Type": "text/csv", "Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
    hotline = await stored(system, {"channel_ref": "CC-7001"})

    dump = await everything_in(system)
    assert [v for v in (PHONE, NAME, OPENID, CALLER) if v in dump] == []
    vault = system.store_settings.vault
    docs = {d["_id"]: d async for d in system.db.personal_data.find()}
    assert set(docs) == {web["_id"], wechat["_id"], hotline["_id"]}
    assert vault.open("phone", docs[web["_id"]]["phone"]) == PHONE and vault.open("name", docs[web["_id"]]["name"]) == NAME
    assert docs[web["_id"]]["phone_hash"] == vault.lookup("phone", PHONE)
    assert vault.open("wechat_openid", docs[wechat["_id"]]["wechat_openid"]) == OPENID
    assert docs[wechat["_id"]]["openid_hash"] == vault.lookup("wechat_openid", OPENID)
    assert docs[hotline["_id"]]["phone_hash"] == vault.lookup("phone", CALLER)
    indexed = {tuple(i["key"]) for i in (await system.db.personal_data.index_information()).values()}
    assert {(field, 1) for field in LOOKUP_FIELDS.values()} <= {k[0] for k in indexed}

    for settings, secrets in (
        (system.web_settings, (PHONE, NAME)),
        (system.wechat_settings, (OPENID,)),
        (system.hotline_settings, (CALLER,)),
    ):
        assert [v for v in secrets if v in outbox_rows(settings.outbox_path)] == [], settings.outbox_path
        assert [v for v in secrets if v.encode() in outbox_file(settings.outbox_path)] == [], settings.outbox_path


async def test_the_contact_by_role_clear_and_audited_masked_or_refused(system):
    ours = await submit_web(system)
    assert ours["unit"] == "luanhe"
    sid = ours["_id"]
    url = f"/api/v1/suggestions/{sid}/contact"
    clerk = await system.sign_in("luanhe-clerk", Role.UNIT_STAFF, "luanhe")
    other = await system.sign_in("xidi-clerk", Role.UNIT_STAFF, "xidi")
    supervisor = await system.sign_in("sup", Role.SUPERVISOR)
    operator = await system.sign_in("op", Role.OPERATOR)

    admin_view = (await system.store.get(url, headers=system.staff_headers)).json()
    assert admin_view == {
        "suggestion_id": sid,
        "masked": False,
        "name": NAME,
        "phone": PHONE,
        "wechat_openid": None,
        "personal_data_erased_at": None,
    }
    assert (await system.store.get(url, headers=clerk)).json()["phone"] == PHONE
    masked = (await system.store.get(url, headers=supervisor)).json()
    assert (masked["masked"], masked["phone"], masked["name"]) == (True, "138****5678", "张*")
    assert (await system.store.get(url, headers=operator)).status_code == 403
    assert (await system.store.get(url, headers=other)).status_code == 404
    assert (await system.store.get(url)).status_code == 401
    assert (await system.store.get("/api/v1/suggestions/no-such-id/contact", headers=system.staff_headers)).status_code == 404

    reads = await system.db.audit_log.find({"action": "read_personal_data"}).sort("at", 1).to_list(None)
    assert [(r["actor"], r["target"]) for r in reads] == [("test-admin", sid), ("luanhe-clerk", sid)]
    assert PHONE not in json.dumps(reads, default=str) and NAME not in json.dumps(reads, default=str, ensure_ascii=False)
    # Lists and suggestion answers never carry the contact.
    listed = await system.store.get("/api/v1/suggestions", headers=system.staff_headers)
    one = await system.store.get(f"/api/v1/suggestions/{sid}", headers=system.staff_headers)
    assert [v for v in (PHONE, NAME) if v in listed.text + one.text] == []


async def test_erasure_removes_the_contact_keeps_the_suggestion_and_survives_redelivery(system, log_events):
    doc = await submit_web(system)
    sid = doc["_id"]
    web_outbox = system.apps["web"].state.intake._runtime.outbox
    event = await web_outbox.find_by_tracking_code(doc["tracking_code"])  # as accepted, contact data included
    assert event.personal == PersonalData(name=NAME, phone=PHONE)
    url = f"/api/v1/suggestions/{sid}/personal-data"
    reason = {"reason": "本人来电要求删除联系方式（2019-10-28）"}
    clerk = await system.sign_in("luanhe-clerk", Role.UNIT_STAFF, "luanhe")
    assert (await system.store.request("DELETE", url, json=reason, headers=clerk)).status_code == 403
    assert (await system.store.request("DELETE", url, json={}, headers=system.staff_headers)).status_code == 422

    erased = await system.store.request("DELETE", url, json=reason, headers=system.staff_headers)
    assert erased.status_code == 200, erased.text
    assert (erased.json()["removed_contact"], erased.json()["redacted_numbers"]) == (True, 1)
    assert await system.db.personal_data.find_one({"_id": sid}) is None
    kept = await system.db.suggestions.find_one({"_id": sid})
    assert kept["text"] == "滦河镇石佛村的幸福路坑太多了，希望重新硬化。有事打我电话 [号码已删除]"
    assert kept["personal_data_erased_at"] is not None and kept["redacted_phone_numbers"] == 1
    assert kept["category"] == doc["category"] and kept["tracking_code"] == doc["tracking_code"]
    contact = (await system.store.get(f"/api/v1/suggestions/{sid}/contact", headers=system.staff_headers)).json()
    assert (contact["phone"], contact["name"]) == (None, None) and contact["personal_data_erased_at"] is not None
    audit = await system.db.audit_log.find_one({"action": "erase_personal_data"})
    assert (audit["actor"], audit["target"], audit["details"]["reason"]) == ("test-admin", sid, reason["reason"])
    again = await system.store.request("DELETE", url, json=reason, headers=system.staff_headers)
    assert again.json()["erased_at"] == erased.json()["erased_at"] and again.json()["removed_contact"] is False

    # The intake's outbox honours the tombstone: the contact and the number in the text leave its row.
    async def scrubbed():
        row = await web_outbox.find_by_tracking_code(doc["tracking_code"])
        return row.personal == PersonalData() and "139-0000-1234" not in row.body.text

    await eventually(scrubbed)
    assert "139-0000-1234" not in outbox_file(system.web_settings.outbox_path).decode("utf-8", "replace")

    # The same SuggestionReceived again (a redelivery): nothing personal comes back.
    def received_stored() -> int:
        return sum(1 for e in log_events() if e.get("event") == "event_stored" and e.get("event_type") == "suggestion.received")

    before = received_stored()
    await system.apps["store"].state.publisher.publish(event)
    await eventually(lambda: received_stored() > before)
    assert await system.db.personal_data.find_one({"_id": sid}) is None
    assert "139-0000-1234" not in (await system.db.suggestions.find_one({"_id": sid}))["text"]


async def test_a_repeat_caller_is_found_by_the_hash_of_a_number_stored_from_another_channel(system):
    web = await submit_web(system)  # the web intake's outbox is not the hotline's: only the store knows the number
    from minsheng_core.staff import StaffDirectory

    await StaffDirectory(system.db).create("op1", "correct horse battery", Role.OPERATOR, "王接线")
    signed = await system.hotline.post("/console/login", data={"username": "op1", "password": "correct horse battery"})
    assert signed.status_code == 303
    answer = (await system.hotline.post("/console/api/phone", json={"phone": "+86 138-1234-5678"})).json()
    assert [item["tracking_code"] for item in answer["items"]] == [web["tracking_code"]]
    assert (await system.hotline.post("/console/api/phone", json={"phone": "13800000000"})).json()["count"] == 0
