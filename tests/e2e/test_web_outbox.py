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
