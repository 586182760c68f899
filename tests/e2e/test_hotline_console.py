"""The operators' console over HTTP: sign-in, an entry with its code at once, corrections until published,
the classifier's guess (and its absence), the repeat-caller warning, bad input."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from minsheng_core.staff import Role, StaffDirectory
from tests.helpers import Spy, eventually

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery"


async def sign_in(system, username: str = "op1", role: Role = Role.OPERATOR) -> str:
    """Create the account, sign in on system.hotline (the cookie stays on the client); return the form's CSRF token."""
    await StaffDirectory(system.db).create(username, PASSWORD, role, "王接线")
    response = await system.hotline.post("/console/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 303 and response.headers["location"] == "/console"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    return csrf_of((await system.hotline.get("/console")).text)


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page)[1]


def entry_key_of(page: str) -> str:
    return re.search(r'name="entry_key" value="([0-9a-f]+)"', page)[1]


async def test_the_console_needs_an_operator_session(system):
    assert (await system.hotline.get("/console")).headers["location"] == "/console/login"
    assert (await system.hotline.post("/console/api/predict", json={"text": "修路"})).status_code == 401
    await StaffDirectory(system.db).create("sup1", PASSWORD, Role.SUPERVISOR, "督查")
    refused = await system.hotline.post("/console/login", data={"username": "sup1", "password": PASSWORD})
    assert refused.status_code == 401 and "不是接线员账号" in refused.text
    wrong = await system.hotline.post("/console/login", data={"username": "nobody", "password": "x" * 12})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers


async def test_an_entry_gets_its_code_at_once_is_editable_then_published_and_stored(system):
    csrf = await sign_in(system)
    page = (await system.hotline.get("/console")).text
    form = {
        "csrf": csrf,
        "entry_key": entry_key_of(page),
        "phone": "139 1234 5678",
        "name": "李大爷",
        "town": "双塔山镇",
        "village": "西山村",
        "text": "村口的桥太窄了，希望加宽",
    }
    saved = await system.hotline.post("/console/entries", data=form)
    assert saved.status_code == 303
    code = saved.headers["location"].split("saved=")[1]
    again = await system.hotline.post("/console/entries", data=form)  # a double click: the same entry
    assert again.headers["location"] == saved.headers["location"]
    console = (await system.hotline.get("/console", params={"saved": code})).text
    assert code in console and "前可修改" in console and "村口的桥太窄了" in console

    edit_link = re.search(r'href="(/console/entries/[0-9a-f]+)"', console)[1]
    fixed = await system.hotline.post(edit_link, data={**form, "text": "西山村村口的桥太窄了，错车危险，希望加宽"})
    assert fixed.status_code == 303
    assert await system.db.suggestions.count_documents({}) == 0  # held: not published yet

    # the edit window passes (here: moved into the past), the drainer publishes the corrected text
    outbox = system.apps["hotline"].state.hotline.runtime.outbox
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    await outbox.db.execute("UPDATE outbox SET hold_until = ?", (past,))
    await outbox.db.commit()

    async def published():
        return await system.db.suggestions.find_one({"tracking_code": code, "status": "classified"})

    doc = await eventually(published)
    assert doc["text"] == "西山村村口的桥太窄了，错车危险，希望加宽" and doc["channel"] == "hotline"
    assert doc["location"]["village"] == "西山村" and doc["unit"] == "shuangtashan"
    assert (
        system.store_settings.vault.open("phone", (await system.db.personal_data.find_one({"_id": doc["_id"]}))["phone"])
        == "13912345678"
    )
    late = await system.hotline.post(edit_link, data={**form, "text": "再改一次试试看"})
    assert late.status_code == 409 and "已发布" in late.text
    actions = [(a["actor"], a["action"]) async for a in system.db.audit_log.find().sort("at", 1)]
    assert actions == [("op1", "take_hotline_entry"), ("op1", "revise_hotline_entry")]


async def test_bad_entries_get_chinese_messages_and_nothing_is_taken(system):
    csrf = await sign_in(system)
    spy = await Spy.bind(system.amqp_url)
    try:
        page = (await system.hotline.get("/console")).text
        base = {"csrf": csrf, "entry_key": entry_key_of(page), "phone": "13912345678", "text": "希望修路"}
        no_text = await system.hotline.post("/console/entries", data={**base, "text": ""})
        assert no_text.status_code == 422
        emoji = await system.hotline.post("/console/entries", data={**base, "text": "👍👍"})
        assert emoji.status_code == 422 and "不能只有表情或标点符号" in emoji.text
        bad_phone = await system.hotline.post("/console/entries", data={**base, "phone": "12345"})
        assert bad_phone.status_code == 422 and "格式不正确" in bad_phone.text
        forged = await system.hotline.post("/console/entries", data={**base, "csrf": "0" * 64})
        assert forged.status_code == 403
        xss = await system.hotline.post("/console/entries", data={**base, "name": "<script>alert(1)</script>", "phone": "1"})
        assert "<script>alert(1)</script>" not in xss.text and "&lt;script&gt;" in xss.text
        assert await spy.drain() == []
        assert await system.apps["hotline"].state.hotline.entries(await _member(system)) == []
    finally:
        await spy.close()


async def _member(system):
    from minsheng_core.staff import StaffMember

    return StaffMember("op1", "王接线", Role.OPERATOR, None)


async def test_the_classifiers_guess_and_the_console_without_it(system):
    await sign_in(system)
    state = system.apps["hotline"].state
    own = state.classifier
    try:
        # In these tests the classifier runs in-process: point the console's client at it.
        state.classifier = httpx.AsyncClient(transport=httpx.ASGITransport(app=system.apps["classifier"]), base_url="http://c")
        guess = (await system.hotline.post("/console/api/predict", json={"text": "村里的路坑坑洼洼，希望硬化"})).json()
        assert guess["available"] and guess["category"] == "road_traffic" and guess["category_name"] == "道路交通"
        state.classifier = httpx.AsyncClient(base_url="http://127.0.0.1:9", timeout=0.5)  # nothing listens there
        assert (await system.hotline.post("/console/api/predict", json={"text": "修路"})).json() == {"available": False}
    finally:
        state.classifier = own


async def test_a_repeat_caller_is_pointed_out_with_links(system):
    csrf = await sign_in(system)
    page = (await system.hotline.get("/console")).text
    form = {"csrf": csrf, "entry_key": entry_key_of(page), "phone": "13700001111", "text": "希望小区加装电梯"}
    code = (await system.hotline.post("/console/entries", data=form)).headers["location"].split("saved=")[1]
    answer = (await system.hotline.post("/console/api/phone", json={"phone": "+86 137-0000-1111"})).json()
    assert answer == {"count": 1, "items": [{"tracking_code": code, "link": f"/console/suggestions/{code}"}]}
    assert (await system.hotline.post("/console/api/phone", json={"phone": "13700002222"})).json()["count"] == 0
    shown = await system.hotline.get(f"/console/suggestions/{code}")
    assert shown.status_code == 200 and "希望小区加装电梯" in shown.text
