"""Projects end to end: a cluster of suggestions becomes a candidate project of its unit, which moves through the
campaign's approval steps one at a time, each move by a role allowed to make it and recorded with who and when."""

from __future__ import annotations

import pytest

from minsheng_core.staff import Role
from tests.helpers import eventually

pytestmark = pytest.mark.integration

# Three suggestions about the same road in 滦河镇 (one cluster), and one about a school in 西地镇.
ROAD = [
    {"text": "石佛村的幸福路坑太多了，希望重新硬化", "location": {"town": "滦河镇", "village": "石佛村"}},
    {"text": "建议把滦河镇石佛村幸福路拓宽", "location": {"town": "滦河镇"}},
    {"text": "滦河镇石佛村幸福路一下雨全是泥，盼望修一修", "location": {"town": "滦河镇", "village": "石佛村"}},
]
SCHOOL = {"text": "西地镇西地村的小学操场太小，希望扩建", "location": {"town": "西地镇", "village": "西地村"}}


async def classified(system, body) -> dict:
    response = await system.web.post("/api/v1/suggestions", json=body)
    assert response.status_code == 202, response.text
    sid = response.json()["suggestion_id"]
    return await eventually(lambda: system.db.suggestions.find_one({"_id": sid, "status": "classified"}))


async def test_a_cluster_becomes_a_project_that_moves_one_approval_step_at_a_time(system):
    road = [await classified(system, body) for body in ROAD]
    cluster = road[0]["cluster_id"]
    assert cluster and all(doc["cluster_id"] == cluster for doc in road) and {d["unit"] for d in road} == {"luanhe"}
    clerk = await system.sign_in("luanhe-clerk", Role.UNIT_STAFF, "luanhe")
    other_clerk = await system.sign_in("xidi-clerk", Role.UNIT_STAFF, "xidi")
    supervisor = await system.sign_in("sup", Role.SUPERVISOR)
    admin = system.staff_headers

    body = {"title": "石佛村幸福路硬化", "cluster_id": cluster, "place": "石佛村", "estimate_yuan": 800000}
    created = await system.store.post("/api/v1/projects", json=body, headers=clerk | {"Idempotency-Key": "road-project-1"})
    assert created.status_code == 201, created.text
    project = created.json()
    assert (project["unit"], project["status"], project["status_name"], project["next_status"]) == (
        "luanhe",
        "proposed",
        "拟定",
        "unit_reviewed",
    )
    assert project["category"] == road[0]["category"] and project["estimate_yuan"] == 800000
    assert sorted(project["suggestion_ids"]) == sorted(d["_id"] for d in road)
    again = await system.store.post("/api/v1/projects", json=body, headers=clerk | {"Idempotency-Key": "road-project-1"})
    assert again.status_code == 200 and again.json()["project_id"] == project["project_id"]
    assert await system.db.projects.count_documents({}) == 1

    url = f"/api/v1/projects/{project['project_id']}"
    assert (await system.store.get(url, headers=other_clerk)).status_code == 404  # another unit's: not there at all
    assert (await system.store.get("/api/v1/projects", headers=other_clerk)).json()["total"] == 0
    assert (await system.store.get(url, headers=supervisor)).status_code == 200

    async def move(to, headers):
        return await system.store.post(f"{url}/transitions", json={"to": to, "note": f"to {to}"}, headers=headers)

    assert (await move("unit_reviewed", other_clerk)).status_code == 404
    assert (await move("unit_reviewed", supervisor)).status_code == 403
    assert (await move("office_reviewed", clerk)).status_code == 409  # one step at a time
    assert (await move("unit_reviewed", clerk)).json()["status"] == "unit_reviewed"
    assert (await move("unit_reviewed", clerk)).status_code == 200  # a retry changes nothing
    refused = await move("office_reviewed", clerk)
    assert refused.status_code == 403 and "unit_staff" in refused.json()["detail"]
    assert (await move("approved", admin)).status_code == 409
    assert (await move("finished", admin)).status_code == 422
    assert (await move("office_reviewed", admin)).json()["status"] == "office_reviewed"
    changed = await system.store.patch(url, json={"estimate_yuan": 750000, "place": None}, headers=admin)
    assert changed.status_code == 200 and (changed.json()["estimate_yuan"], changed.json()["place"]) == (750000, None)
    assert (await system.store.patch(url, json={"estimate_yuan": -1}, headers=admin)).status_code == 422
    approved = (await move("approved", admin)).json()
    assert (approved["status"], approved["status_name"], approved["next_status"]) == ("approved", "区政府审定", None)
    assert [(h["from_status"], h["to_status"], h["by"]) for h in approved["history"]] == [
        (None, "proposed", "luanhe-clerk"),
        ("proposed", "unit_reviewed", "luanhe-clerk"),
        ("unit_reviewed", "office_reviewed", "test-admin"),
        ("office_reviewed", "approved", "test-admin"),
    ]
    assert all(h["at"] for h in approved["history"])
    assert (await move("rejected", admin)).status_code == 409  # final
    assert (await system.store.patch(url, json={"title": "改名"}, headers=admin)).status_code == 409

    audit = (await system.store.get("/api/v1/audit", headers=admin)).json()
    moves = [(a["actor"], a["details"]["after"]["status"]) for a in audit if a["action"] == "move_project"]
    assert sorted(moves) == sorted(
        [("luanhe-clerk", "unit_reviewed"), ("test-admin", "office_reviewed"), ("test-admin", "approved")]
    )
    assert [a["actor"] for a in audit if a["action"] == "create_project"] == ["luanhe-clerk"]


async def test_projects_of_hand_picked_suggestions_stay_within_the_members_unit(system):
    ours = await classified(system, ROAD[0])
    theirs = await classified(system, SCHOOL)
    clerk = await system.sign_in("luanhe-clerk", Role.UNIT_STAFF, "luanhe")

    mixed = {"title": "混合项目", "suggestion_ids": [ours["_id"], theirs["_id"], "no-such-suggestion"]}
    refused = await system.store.post("/api/v1/projects", json=mixed, headers=clerk)
    assert refused.status_code == 404
    assert refused.json()["detail"]["suggestion_ids"] == [theirs["_id"], "no-such-suggestion"]
    elsewhere = {"title": "西地项目", "unit": "xidi", "suggestion_ids": [ours["_id"]]}
    assert (await system.store.post("/api/v1/projects", json=elsewhere, headers=clerk)).status_code == 403
    both = {"title": "x", "cluster_id": ours["cluster_id"], "suggestion_ids": [ours["_id"]]}
    assert (await system.store.post("/api/v1/projects", json=both, headers=clerk)).status_code == 422
    assert await system.db.projects.count_documents({}) == 0

    district = {
        "title": "两镇共建",
        "unit": "xidi",
        "category": "education_sports",
        "suggestion_ids": [ours["_id"], theirs["_id"]],
    }
    made = await system.store.post("/api/v1/projects", json=district, headers=system.staff_headers)
    assert made.status_code == 201 and made.json()["unit"] == "xidi"
    assert (await system.store.get("/api/v1/projects", headers=clerk)).json()["items"] == []
    listed = (await system.store.get("/api/v1/projects", params={"unit": "xidi"}, headers=system.staff_headers)).json()
    assert [p["title"] for p in listed["items"]] == ["两镇共建"]
    assert (await system.store.get("/api/v1/projects", params={"unit": "xidi"}, headers=clerk)).status_code == 404
