"""Every staff endpoint of the store, by role and unit: anonymous 401, operators 403, supervisors read-only,
unit staff never see or change another unit's suggestion. The endpoints are enumerated from the app itself,
so a new endpoint without a rule fails here."""

from __future__ import annotations

import io
import json

import pytest
from openpyxl import load_workbook

from minsheng_core.staff import Role
from tests.helpers import eventually

pytestmark = pytest.mark.integration

LUANHE = {"text": "滦河镇石佛村的幸福路坑太多了，希望重新硬化", "location": {"town": "滦河镇", "village": "石佛村"}}
XIDI = {"text": "西地镇西地村的小学操场太小，希望扩建", "location": {"town": "西地镇", "village": "西地村"}}


async def classified(system, body) -> dict:
    sid = (await system.web.post("/api/v1/suggestions", json=body)).json()["suggestion_id"]
    return await eventually(lambda: system.db.suggestions.find_one({"_id": sid, "status": "classified"}))


def staff_routes(system) -> list[tuple[str, str]]:
    """Every staff operation the app publishes, included routers too (app.routes nests those)."""
    paths = system.apps["store"].openapi()["paths"]
    return [
        (method.upper(), path)
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "staff" in operation.get("tags", []) and path != "/api/v1/auth/token"
    ]


CONTACTS = {
    "leader": {"name": "赵书记", "post": "党委副书记", "phone": "13800000001"},
    "contact": {"name": "钱干事", "post": "党政办干事", "phone": "13800000002"},
}


def readable(response) -> str:
    """What a response shows, spreadsheets included."""
    if response.headers.get("content-type", "").startswith("application/vnd.openxmlformats"):
        book = load_workbook(io.BytesIO(response.content))
        return " ".join(
            str(c.value) for sheet in book.worksheets for row in sheet.iter_rows() for c in row if c.value is not None
        )
    return json.dumps(response.json(), ensure_ascii=False)


def request_for(method: str, path: str, suggestion_id: str) -> tuple[str, str, dict]:
    """The request that would touch the other unit (xidi) or its suggestion."""
    url = path.replace("{suggestion_id}", suggestion_id).replace("{unit}", "xidi")
    body = {"PATCH": {"category": "education_sports"}, "PUT": CONTACTS}.get(method)
    body = decision_bodies(suggestion_id).get((method, path), body)
    return method, url, {"json": body} if body else {}


def decision_bodies(suggestion_id: str) -> dict[tuple[str, str], dict]:
    """Valid bodies of the project and decision requests, each about the other unit's suggestion."""
    return {
        ("PUT", "/api/v1/suggestions/{suggestion_id}/decision"): {"outcome": "referred", "referred_to": "区交通局"},
        ("POST", "/api/v1/projects"): {"title": "x", "suggestion_ids": [suggestion_id]},
        ("POST", "/api/v1/projects/{project_id}/transitions"): {"to": "unit_reviewed"},
        ("POST", "/api/v1/decisions/bulk"): {"suggestion_ids": [suggestion_id], "outcome": "not_adopted", "reason": "other"},
        ("POST", "/api/v1/decisions/release"): {"suggestion_ids": [suggestion_id]},
    }


async def test_every_staff_endpoint_keeps_to_roles_and_units(system):
    theirs = await classified(system, XIDI)
    ours = await classified(system, LUANHE)
    assert (ours["unit"], theirs["unit"]) == ("luanhe", "xidi")
    headers = {
        "luanhe": await system.sign_in("luanhe-clerk", Role.UNIT_STAFF, "luanhe"),
        "operator": await system.sign_in("op", Role.OPERATOR),
        "supervisor": await system.sign_in("sup", Role.SUPERVISOR),
    }
    routes = staff_routes(system)
    assert len(routes) >= 20, routes
    for method, path in routes:
        verb, url, extra = request_for(method, path, theirs["_id"])
        anonymous = await system.store.request(verb, url, **extra)
        assert anonymous.status_code == 401, (verb, url)
        operator = await system.store.request(verb, url, headers=headers["operator"], **extra)
        assert operator.status_code == 403, (verb, url)
        clerk = await system.store.request(verb, url, headers=headers["luanhe"], **extra)
        # another unit's suggestion: refused, or simply not there in what comes back
        if clerk.status_code < 300:
            seen = readable(clerk)
            assert theirs["_id"] not in seen and theirs["text"] not in seen, (verb, url)
            assert "西地" not in seen, (verb, url)
        else:
            assert clerk.status_code in (403, 404), (verb, url, clerk.status_code)
        supervisor = await system.store.request(verb, url, headers=headers["supervisor"], **extra)
        assert (supervisor.status_code == 403) == (verb in ("PATCH", "POST", "PUT", "DELETE")), (verb, url)


async def test_unit_staff_work_on_their_own_units_suggestions(system):
    ours = await classified(system, LUANHE)
    await classified(system, XIDI)
    clerk = await system.sign_in("luanhe-clerk", Role.UNIT_STAFF, "luanhe")
    page = (await system.store.get("/api/v1/suggestions", headers=clerk)).json()
    assert [item["suggestion_id"] for item in page["items"]] == [ours["_id"]]
    assert (await system.store.get("/api/v1/suggestions", params={"unit": "xidi"}, headers=clerk)).status_code == 404
    counts = (await system.store.get("/api/v1/reports/counts", headers=clerk)).json()
    assert counts["total"] == 1
    fixed = await system.store.patch(
        f"/api/v1/suggestions/{ours['_id']}/classification", json={"category": "rural"}, headers=clerk
    )
    assert fixed.status_code == 200 and fixed.json()["correction"]["corrected_by"] == "luanhe-clerk"
    moved = await system.store.patch(f"/api/v1/suggestions/{ours['_id']}/classification", json={"unit": "xidi"}, headers=clerk)
    assert moved.status_code == 403
    audit = (await system.store.get("/api/v1/audit", headers=system.staff_headers)).json()
    assert [(a["actor"], a["action"], a["target"]) for a in audit] == [("luanhe-clerk", "correct_classification", ours["_id"])]
    assert audit[0]["details"]["after"] == {"category": "rural"}


async def test_signing_in_gives_a_token_and_wrong_passwords_nothing(system):
    await system.sign_in("clerk2", Role.SUPERVISOR)
    good = await system.store.post("/api/v1/auth/token", json={"username": "clerk2", "password": "a test password"})
    assert good.status_code == 200 and good.json()["role"] == "supervisor"
    token = good.json()["token"]
    assert (await system.store.get("/api/v1/suggestions", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    bad = await system.store.post("/api/v1/auth/token", json={"username": "clerk2", "password": "wrong password"})
    assert bad.status_code == 401 and "token" not in bad.json()


async def test_units_register_their_contacts_and_the_office_sees_who_is_missing(system):
    clerk = await system.sign_in("xidi-clerk", Role.UNIT_STAFF, "xidi")
    before = (await system.store.get("/api/v1/units/contacts/missing", headers=system.staff_headers)).json()
    deadline = system.store_settings.campaign.deadlines.contacts_registered  # the test window opened two days ago
    assert "xidi" in [u["unit"] for u in before["units"]] and before["deadline"] == deadline.isoformat()
    assert before["late"] is False
    saved = await system.store.put("/api/v1/units/xidi/contacts", json=CONTACTS, headers=clerk)
    assert saved.status_code == 200 and saved.json()["registered_by"] == "xidi-clerk"
    assert (await system.store.get("/api/v1/units/xidi/contacts", headers=clerk)).json()["leader"]["name"] == "赵书记"
    after = (await system.store.get("/api/v1/units/contacts/missing", headers=system.staff_headers)).json()
    assert "xidi" not in [u["unit"] for u in after["units"]] and len(after["units"]) == len(before["units"]) - 1
    bad = await system.store.put(
        "/api/v1/units/xidi/contacts", json={**CONTACTS, "leader": {"name": "", "post": "x", "phone": "1"}}, headers=clerk
    )
    assert bad.status_code == 422
    assert (await system.store.get("/api/v1/units/contacts/missing", headers=clerk)).status_code == 403


async def test_every_staff_page_keeps_unit_staff_to_their_unit(system):
    """The console's pages (not in the API schema) walked the same way, signed in by cookie."""
    from minsheng_core.staff import StaffDirectory
    from minsheng_store import console

    theirs = await classified(system, XIDI)
    await StaffDirectory(system.db).create("luanhe-page", "a long enough pass", Role.UNIT_STAFF, "滦河文书", unit="luanhe")
    signed = await system.store.post("/staff/login", data={"username": "luanhe-page", "password": "a long enough pass"})
    assert signed.status_code == 303
    walked = 0
    for route in console.router.routes:
        for method in route.methods - {"HEAD"}:
            if route.path.endswith(("/login", "/logout")):
                continue
            url = route.path.replace("{suggestion_id}", theirs["_id"])
            data = {"csrf": "x", "category": "rural"} if method == "POST" else None
            response = await system.store.request(method, url, data=data, params={"unit": "xidi"} if method == "GET" else None)
            walked += 1
            if response.status_code < 300:
                assert theirs["_id"] not in response.text and theirs["text"] not in response.text, url
                assert "西地镇周报" not in response.text, url
            else:
                assert response.status_code in (403, 404), (url, response.status_code)
    assert walked >= 6
    doc = await system.db.suggestions.find_one({"_id": theirs["_id"]})
    assert "correction" not in doc  # nothing changed on the other unit's suggestion
