"""Nothing accepted is lost: intake-web takes submissions while the broker is away and publishes them later."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager

from minsheng_core.events import SuggestionReceived
from minsheng_intake_web.app import create_app
from minsheng_intake_web.settings import WebSettings
from tests.helpers import AbsentBroker, ready

pytestmark = pytest.mark.integration


async def test_accepted_while_the_broker_is_away_then_published(mongo_db, tmp_path):
    today = date.today()
    async with AbsentBroker() as broker:
        settings = WebSettings(
            environment="test",
            amqp_url=broker.url,
            mongo_url=mongo_db[0],
            mongo_database=mongo_db[1],
            campaign_opens_on=today - timedelta(days=1),
            campaign_closes_on=today + timedelta(days=1),
            outbox_path=tmp_path / "outbox.sqlite3",
            drain_interval_seconds=0.2,
        )
        async with LifespanManager(create_app(settings)) as manager:
            web = httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://web")
            response = await web.post("/api/v1/suggestions", json={"text": "希望修一修幸福路"})
            assert response.status_code == 202
            suggestion_id = response.json()["suggestion_id"]
            assert (await web.get("/readyz")).status_code == 503

            await broker.arrive()
            await ready(web)
            body = await broker.first_message("minsheng.store")
            assert SuggestionReceived.model_validate_json(body).suggestion_id == suggestion_id
            await web.aclose()


async def test_a_flood_from_one_client_is_told_to_wait_in_chinese_and_others_are_not(system):
    settings = system.web_settings.model_copy(
        update={"submissions_rate": "3/minute", "lookups_rate": "5/minute", "trust_forwarded_for": True}
    )
    async with LifespanManager(create_app(settings)) as manager:
        web = httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://web")
        one = {"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}
        answers = [await web.post("/api/v1/suggestions", json={"text": f"希望修路{i}号"}, headers=one) for i in range(4)]
        assert [a.status_code for a in answers] == [202, 202, 202, 429]
        assert answers[-1].json()["detail"] == "提交过于频繁，请稍后再试。" and answers[-1].headers["retry-after"] == "60"
        other = await web.post("/api/v1/suggestions", json={"text": "希望修桥"}, headers={"X-Forwarded-For": "198.51.100.2"})
        assert other.status_code == 202
        lookups = [await web.get("/status", params={"tracking_code": "X", "access_code": "1"}, headers=one) for _ in range(6)]
        assert lookups[-1].status_code == 429 and "查询过于频繁" in lookups[-1].text
        await web.aclose()
