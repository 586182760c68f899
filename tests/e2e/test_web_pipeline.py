"""A web submission travels intake-web → RabbitMQ → classifier → store on the real servers."""

from __future__ import annotations

import json

import pytest

from tests.helpers import Spy, eventually

pytestmark = pytest.mark.integration

ROAD = {
    "title": "村里的路该修了",
    "text": "我们村到镇上的那条土路一下雨就全是泥，孩子上学很难走，希望明年能硬化成水泥路。",
    "location": {"town": "西地镇", "village": "上店子村"},
    "contact": {"name": "张三", "phone": "13812345678"},
}


async def stored(system, suggestion_id: str, status: str = "classified"):
    async def probe():
        doc = await system.db.suggestions.find_one({"_id": suggestion_id})
        return doc if doc and doc["status"] == status else None

    return await eventually(probe)


async def test_submission_is_stored_classified_and_visible_to_staff(system):
    response = await system.web.post("/api/v1/suggestions", json=ROAD)
    assert response.status_code == 202, response.text
    receipt = response.json()
    assert receipt["tracking_code"] in receipt["message"]

    doc = await stored(system, receipt["suggestion_id"])
    assert doc["text"] == ROAD["text"]
    assert doc["channel"] == "web"
    assert doc["location"]["village"] == "上店子村"
    assert doc["classification"]["category"] == "road_traffic"
    assert 0 < doc["classification"]["confidence"] <= 1
    stored_text = json.dumps(doc, default=str, ensure_ascii=False)
    assert "13812345678" not in stored_text and "张三" not in stored_text  # contact data lives apart
    personal = await system.db.personal_data.find_one({"_id": receipt["suggestion_id"]})
    assert system.store_settings.vault.open("phone", personal["phone"]) == "13812345678"

    page = (
        await system.store.get("/api/v1/suggestions", params={"category": "road_traffic"}, headers=system.staff_headers)
    ).json()
    assert [item["suggestion_id"] for item in page["items"]] == [receipt["suggestion_id"]]
    assert "13812345678" not in json.dumps(page, ensure_ascii=False)
    one = await system.store.get(f"/api/v1/suggestions/{receipt['suggestion_id']}", headers=system.staff_headers)
    assert one.json()["classification"]["model_version"].startswith("linear-")
    counts = (await system.store.get("/api/v1/reports/counts", headers=system.staff_headers)).json()
    assert counts["rows"] == [{"category": "road_traffic", "channel": "web", "count": 1}]

    status = await system.web.get(
        f"/api/v1/suggestions/{receipt['tracking_code']}", params={"access_code": receipt["access_code"]}
    )
    assert status.status_code == 200
    assert status.json()["category_name"] == "道路交通"


async def test_status_needs_the_right_access_code(system):
    receipt = (await system.web.post("/api/v1/suggestions", json=ROAD)).json()
    wrong = str((int(receipt["access_code"]) + 1) % 1_000_000).zfill(6)
    bad = await system.web.get(f"/api/v1/suggestions/{receipt['tracking_code']}", params={"access_code": wrong})
    unknown = await system.web.get("/api/v1/suggestions/ABCDE-FGHJK", params={"access_code": receipt["access_code"]})
    assert bad.status_code == unknown.status_code == 404
    assert bad.json() == unknown.json()


async def test_same_idempotency_key_gives_one_suggestion_and_one_event(system):
    spy = await Spy.bind(system.amqp_url, "suggestion.received.#")
    try:
        headers = {"Idempotency-Key": "portal-2019-abcdef-0001"}
        first = await system.web.post("/api/v1/suggestions", json=ROAD, headers=headers)
        second = await system.web.post("/api/v1/suggestions", json=ROAD, headers=headers)
        assert first.status_code == second.status_code == 202
        assert first.json() == second.json()
        await stored(system, first.json()["suggestion_id"])
        assert len(await spy.drain()) == 1
        assert await system.db.suggestions.count_documents({}) == 1

        other = await system.web.post("/api/v1/suggestions", json={**ROAD, "text": "别的内容"}, headers=headers)
        assert other.status_code == 409
        assert len(await spy.drain()) == 0
    finally:
        await spy.close()


async def test_html_is_stored_as_given_and_escaped_when_shown(system):
    text = '<script>alert("x")</script> 路灯坏了 <b>请修</b>'
    receipt = (await system.web.post("/api/v1/suggestions", json={"text": text})).json()
    doc = await stored(system, receipt["suggestion_id"])
    assert doc["text"] == text
    page = await system.web.get(
        "/status", params={"tracking_code": receipt["tracking_code"], "access_code": receipt["access_code"]}
    )
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text


async def test_html_form_submits_in_chinese(system):
    form = await system.web.get("/")
    assert form.status_code == 200 and "提交建议" in form.text and 'name="viewport"' in form.text
    token = form.text.split('name="form_token" value="')[1].split('"')[0]
    data = {"form_token": token, "text": "希望在社区里建一个老年活动室", "town": "城关街道", "submitter_group": "retired_cadre"}
    receipt = await system.web.post("/submit", data=data)
    assert receipt.status_code == 202 and "查询码" in receipt.text
    again = await system.web.post("/submit", data=data)  # double-click: same token, same suggestion
    assert again.status_code == 202
    code = receipt.text.split('class="code">')[1].split("<")[0]
    assert code in again.text
    doc = await eventually(lambda: system.db.suggestions.find_one({"tracking_code": code}))
    assert doc["submitter_group"] == "retired_cadre"

    invalid = await system.web.post("/submit", data={"form_token": "tok-12345678", "text": "", "phone": "12"})
    assert invalid.status_code == 422
    assert "必填" in invalid.text or "不能为空" in invalid.text
    assert "格式不正确" in invalid.text


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "text"),
        ({"text": ""}, "text"),
        ({"text": "路" * 5001}, "text"),
        ({"text": 123}, "text"),
        ({"text": {"$gt": ""}}, "text"),
        ({"text": "修路", "location": {"town": {"$ne": None}}}, "location.town"),
        ({"text": "修路", "contact": {"phone": "abc"}}, "contact.phone"),
        ({"text": "修路", "submitter_group": "mayor"}, "submitter_group"),
        ({"text": "修路", "$where": "1"}, "$where"),
        ({"text": "修路", "title": ["a"]}, "title"),
    ],
)
async def test_bad_input_is_rejected_with_the_field_named_and_nothing_published(system, payload, field):
    spy = await Spy.bind(system.amqp_url)
    try:
        response = await system.web.post("/api/v1/suggestions", json=payload)
        assert response.status_code == 422
        body = response.json()
        assert body["error"] == "请求内容有误"
        assert field in [f["field"] for f in body["fields"]]
        assert len(await spy.drain()) == 0
    finally:
        await spy.close()


async def test_oversized_and_undecodable_bodies(system):
    spy = await Spy.bind(system.amqp_url)
    try:
        big = await system.web.post(
            "/api/v1/suggestions", content=b'{"text": "' + b"a" * 70_000 + b'"}', headers={"content-type": "application/json"}
        )
        assert big.status_code == 413
        assert "KB" in big.json()["error"]
        broken = await system.web.post(
            "/api/v1/suggestions", content=b'{"text": "\xff\xfe"}', headers={"content-type": "application/json"}
        )
        assert broken.status_code == 400
        assert "UTF-8" in broken.json()["error"]
        assert len(await spy.drain()) == 0
    finally:
        await spy.close()


async def test_outside_the_window_collection_is_closed(system):
    from datetime import date

    import httpx
    from asgi_lifespan import LifespanManager

    from minsheng_intake_web.app import create_app

    closed = system.web_settings.model_copy(update={"campaign_opens_on": None, "campaign_closes_on": None})
    assert closed.campaign.closes_on == date(2019, 11, 15)
    spy = await Spy.bind(system.amqp_url)
    try:
        async with LifespanManager(create_app(closed)) as manager:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://web") as web:
                response = await web.post("/api/v1/suggestions", json=ROAD)
                assert response.status_code == 403
                assert "不在征集期内" in response.json()["error"]
                page = await web.get("/")
                assert "现在不接收建议" in page.text and '<form method="post"' not in page.text
        assert len(await spy.drain()) == 0
    finally:
        await spy.close()


async def test_health_and_readiness(system):
    for client in (system.web, system.store, system.classifier):
        assert (await client.get("/healthz")).json() == {"status": "ok"}

        async def ready(client=client):
            return (await client.get("/readyz")).status_code == 200

        await eventually(ready)  # intake-web connects to the broker in the background


async def test_staff_api_requires_a_token(system):
    assert (await system.store.get("/api/v1/suggestions")).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await system.store.get("/api/v1/suggestions", headers=wrong)).status_code == 401


async def test_redelivered_and_out_of_order_events_end_in_one_merged_document(system):
    from datetime import UTC, datetime

    from minsheng_core.bus import Publisher, connect
    from minsheng_core.events import Classification, SuggestionClassified, SuggestionContent, SuggestionReceived

    now = datetime.now(UTC)
    received = SuggestionReceived(
        suggestion_id="hotline-call-1",
        body=SuggestionContent(
            channel="hotline",
            channel_ref="CA1",
            campaign="2020",
            text="村卫生室没有医生",
            tracking_code="HHHHH-11111",
            submitted_at=now,
        ),
    )
    classified = SuggestionClassified(
        suggestion_id="hotline-call-1",
        body=Classification(category="health", confidence=0.8, needs_review=False, model_version="external", classified_at=now),
    )
    connection = await connect(system.amqp_url, "test")
    try:
        publisher = Publisher(connection)
        await publisher.start()
        await publisher.publish(classified)
        await eventually(lambda: system.db.suggestions.find_one({"_id": "hotline-call-1", "status": "pending"}))
        await publisher.publish(received)
        await publisher.publish(received)
    finally:
        await connection.close()
    doc = await stored(system, "hotline-call-1")
    assert await system.db.suggestions.count_documents({"channel_ref": "CA1"}) == 1
    # the classifier also classified the received event: the newer classification wins, the document stays one
    assert doc["classification"]["model_version"] in {
        "external",
        (await system.classifier.post("/api/v1/predict", json={"text": "x"})).json()["model_version"],
    }
    assert doc["text"] == "村卫生室没有医生"
