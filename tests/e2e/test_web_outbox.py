"""Nothing accepted is lost: intake-web takes submissions while the broker is away and publishes them later."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import quote

import aio_pika
import httpx
import pytest
from asgi_lifespan import LifespanManager

from minsheng_core.events import SuggestionReceived
from minsheng_intake_web.app import create_app
from minsheng_intake_web.settings import WebSettings
from tests.conftest import AMQP_HOST, MANAGEMENT_URL, RABBIT_PASSWORD, RABBIT_USER, unique
from tests.helpers import eventually

pytestmark = pytest.mark.integration


async def test_accepted_while_the_broker_is_away_then_published(mongo_db, tmp_path):
    vhost = unique("later")  # does not exist yet: the broker refuses the connection
    url = f"amqp://{RABBIT_USER}:{RABBIT_PASSWORD}@{AMQP_HOST}/{quote(vhost, safe='')}"
    today = date.today()
    settings = WebSettings(
        environment="test",
        amqp_url=url,
        mongo_url=mongo_db[0],
        mongo_database=mongo_db[1],
        campaign_opens_on=today - timedelta(days=1),
        campaign_closes_on=today + timedelta(days=1),
        outbox_path=tmp_path / "outbox.sqlite3",
        drain_interval_seconds=0.2,
    )
    management = httpx.AsyncClient(base_url=MANAGEMENT_URL, auth=(RABBIT_USER, RABBIT_PASSWORD))
    try:
        async with LifespanManager(create_app(settings)) as manager:
            web = httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://web")
            response = await web.post("/api/v1/suggestions", json={"text": "希望修一修幸福路"})
            assert response.status_code == 202
            suggestion_id = response.json()["suggestion_id"]
            assert (await web.get("/readyz")).status_code == 503

            # the broker "comes back"
            (await management.put(f"/api/vhosts/{quote(vhost, safe='')}")).raise_for_status()
            permissions = {"configure": ".*", "write": ".*", "read": ".*"}
            (await management.put(f"/api/permissions/{quote(vhost, safe='')}/{RABBIT_USER}", json=permissions)).raise_for_status()

            async def ready():
                return (await web.get("/readyz")).status_code == 200

            await eventually(ready, timeout=30)
            connection = await aio_pika.connect(url)
            try:
                channel = await connection.channel()
                queue = await channel.get_queue("minsheng.store")

                async def published():
                    return await queue.get(fail=False)

                message = await eventually(published, timeout=30)
                assert SuggestionReceived.model_validate_json(message.body).suggestion_id == suggestion_id
                await message.ack()
            finally:
                await connection.close()
            await web.aclose()
    finally:
        await management.delete(f"/api/vhosts/{quote(vhost, safe='')}")
        await management.aclose()
