"""Classifier service end to end: units and clusters on stored suggestions, staff corrections, model reloads."""

from __future__ import annotations

import asyncio
import json
import shutil

import httpx
import pytest
from asgi_lifespan import LifespanManager

from minsheng_classifier.app import create_app as classifier_app
from minsheng_classifier.shipped import train_from
from tests.helpers import Spy, eventually

pytestmark = pytest.mark.integration


async def submit(system, text, **extra):
    response = await system.web.post("/api/v1/suggestions", json={"text": text, **extra})
    assert response.status_code == 202, response.text
    return response.json()["suggestion_id"]


async def classified(system, suggestion_id):
    return await eventually(lambda: system.db.suggestions.find_one({"_id": suggestion_id, "status": "classified"}))


async def test_unit_cluster_and_duplicate_reach_the_store(system):
    first = await submit(
        system, "石佛村的幸福路坑太多了，希望重新硬化", location={"town": "滦河镇"}, contact={"phone": "13900000001"}
    )
    doc = await classified(system, first)
    assert (doc["unit"], doc["classification"]["unit_source"]) == ("luanhe", "location")
    assert doc["cluster_id"] == first and doc["duplicate_of"] is None

    same_person = await submit(system, "幸福路还是没修，坑太多了！", contact={"phone": "139-0000-0001"})
    other_person = await submit(system, "建议把滦河镇石佛村幸福路拓宽", contact={"phone": "13900000002"})
    doc = await classified(system, same_person)
    assert (doc["cluster_id"], doc["duplicate_of"]) == (first, first)
    doc = await classified(system, other_person)
    assert (doc["cluster_id"], doc["duplicate_of"]) == (first, None)
    page = await system.store.get("/api/v1/suggestions", params={"unit": "luanhe"}, headers=system.staff_headers)
    assert {item["suggestion_id"] for item in page.json()["items"]} == {first, other_person}  # the repeat names no place


async def test_content_free_text_is_other_and_needs_review(system):
    # The web and WeChat channels refuse such a text; a survey sheet or a transcript may still carry one.
    from minsheng_core.bus import Publisher, connect
    from minsheng_core.events import Channel, SuggestionContent, SuggestionReceived, utc_now

    event = SuggestionReceived(
        suggestion_id="content-free",
        body=SuggestionContent(
            channel=Channel.HOTLINE_TRANSCRIPT,
            channel_ref="call-1",
            campaign="2020",
            text="👍👍👍！！！",
            tracking_code="CF000-00001",
            submitted_at=utc_now(),
        ),
    )
    connection = await connect(system.amqp_url, "test")
    try:
        publisher = Publisher(connection)
        await publisher.start()
        await publisher.publish(event)
    finally:
        await connection.close()
    doc = await classified(system, "content-free")
    assert (doc["category"], doc["needs_review"]) == ("other", True)


async def test_a_staff_correction_wins_at_once_and_is_an_event(system):
    sid = await submit(system, "小区门口的路灯坏了，晚上很黑", location={"town": "元宝山街道"})
    await classified(system, sid)
    spy = await Spy.bind(system.amqp_url, "suggestion.corrected")
    try:
        response = await system.store.patch(
            f"/api/v1/suggestions/{sid}/classification",
            json={"category": "community", "note": "小区内的路灯归物业"},
            headers=system.staff_headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["category"], body["needs_review"], body["correction"]["category"]) == ("community", False, "community")
        messages = await spy.drain()
        assert [json.loads(m.body)["body"]["category"] for m in messages] == ["community"]
    finally:
        await spy.close()

    # a later verdict of the model (a redelivery, a new version) does not undo it
    from minsheng_core.bus import Publisher, connect
    from minsheng_core.events import Classification, SuggestionClassified, utc_now

    connection = await connect(system.amqp_url, "test")
    try:
        publisher = Publisher(connection)
        await publisher.start()
        later = Classification(
            category="urban_management", confidence=0.99, needs_review=False, model_version="v9", classified_at=utc_now()
        )
        await publisher.publish(SuggestionClassified(suggestion_id=sid, body=later))
    finally:
        await connection.close()
    doc = await eventually(lambda: system.db.suggestions.find_one({"_id": sid, "classification.model_version": "v9"}))
    assert doc["category"] == "community"

    export = await system.store.get("/api/v1/exports/corrections.jsonl", headers=system.staff_headers)
    assert [json.loads(line) for line in export.text.splitlines()] == [
        {"text": "小区门口的路灯坏了，晚上很黑", "label": "community"}
    ]


@pytest.mark.parametrize(
    ("payload", "status"),
    [({"category": "parks"}, 422), ({"unit": "nowhere"}, 422), ({}, 422), ({"category": {"$ne": 1}}, 422)],
)
async def test_bad_corrections_change_nothing(system, payload, status):
    sid = await submit(system, "村里的路该修了")
    await classified(system, sid)
    response = await system.store.patch(f"/api/v1/suggestions/{sid}/classification", json=payload, headers=system.staff_headers)
    assert response.status_code == status
    assert "correction" not in await system.db.suggestions.find_one({"_id": sid})
    missing = await system.store.patch(
        "/api/v1/suggestions/nope/classification", json={"category": "other"}, headers=system.staff_headers
    )
    assert missing.status_code == 404


async def test_the_classifier_refuses_to_start_without_a_usable_model(system, tmp_path):
    settings = system.classifier_settings.model_copy(update={"model_dir": tmp_path / "empty"})
    with pytest.raises(RuntimeError, match="classifier cannot start: no model in"):
        async with LifespanManager(classifier_app(settings)):
            pass


async def test_a_new_model_version_is_loaded_while_consuming(system, model_dir, tmp_path):
    live_dir = tmp_path / "live"
    shutil.copytree(model_dir, live_dir)
    settings = system.classifier_settings.model_copy(update={"model_dir": live_dir, "model_reload_seconds": 0.2})
    async with LifespanManager(classifier_app(settings)) as manager:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://classifier")
        before = (await client.post("/api/v1/predict", json={"text": "修路"})).json()["model_version"]
        corrections = tmp_path / "corrections.jsonl"
        corrections.write_text(json.dumps({"text": "修路修路", "label": "road_traffic"}, ensure_ascii=False) + "\n")
        from minsheng_classifier.corpus import CAMPAIGN_CORPUS

        new = await asyncio.to_thread(train_from, [CAMPAIGN_CORPUS, corrections], live_dir)
        assert new.version != before

        async def reloaded():
            return (await client.post("/api/v1/predict", json={"text": "修路"})).json()["model_version"] == new.version

        await eventually(reloaded, timeout=30)
        # consumption went on: a suggestion submitted now is classified
        doc = await classified(system, await submit(system, "希望多建几个公园"))
        assert doc["classification"]["model_version"] in {before, new.version}
        await client.aclose()
