"""WeChat waits 5 s for the reply: a slow or absent broker must not delay it, and the message must not be lost."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager

from minsheng_core.events import SuggestionReceived
from minsheng_intake_wechat.app import create_app
from minsheng_intake_wechat.settings import WechatSettings
from tests.helpers import AbsentBroker, eventually, ready

pytestmark = pytest.mark.integration
WECHAT_LIMIT_SECONDS = 5  # WeChat's own limit, not a benchmark: after it, WeChat retries and the user sees nothing


async def test_a_stalled_broker_does_not_delay_the_reply_and_the_message_arrives_later(system, monkeypatch):
    district = system.wechat_accounts[0]
    publisher = system.apps["wechat"].state.intake._runtime.publisher

    async def attached():
        return publisher._exchange

    exchange = await eventually(attached)

    async def stalled(*args, **kwargs):
        await asyncio.sleep(60)

    monkeypatch.setattr(exchange, "publish", stalled)
    send = district.send(system.wechat, district.text("o-user", "希望给小区加装电梯", msg_id=9001))
    response = await asyncio.wait_for(send, WECHAT_LIMIT_SECONDS)
    reply = district.open_reply(response.text)["Content"]
    assert "已收到" in reply
    await asyncio.sleep(1.5)
    assert await system.db.suggestions.count_documents({}) == 0  # nothing got through the stalled broker
    monkeypatch.undo()

    async def stored():
        return await system.db.suggestions.find_one({"channel_ref": f"{district.appid}:9001", "status": "classified"})

    doc = await eventually(stored)
    assert doc["tracking_code"] in reply


async def test_accepted_while_the_broker_is_away_then_published(system, mongo_db, tmp_path):
    today = date.today()
    district = system.wechat_accounts[0]
    async with AbsentBroker() as broker:
        settings = WechatSettings(
            environment="test",
            amqp_url=broker.url,
            mongo_url=mongo_db[0],
            mongo_database=mongo_db[1] + "_away",
            campaign_opens_on=today - timedelta(days=1),
            campaign_closes_on=today + timedelta(days=1),
            outbox_path=tmp_path / "away-outbox.sqlite3",
            accounts_file=system.wechat_settings.accounts_file,
            drain_interval_seconds=0.2,
        )
        async with LifespanManager(create_app(settings)) as manager:
            wechat = httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://wechat")
            send = district.send_sealed(wechat, district.text("o-user", "希望修一修幸福路", msg_id=9101))
            response = await asyncio.wait_for(send, WECHAT_LIMIT_SECONDS)
            assert "已收到" in district.open_reply(response.text)["Content"]
            assert (await wechat.get("/readyz")).status_code == 503

            await broker.arrive()
            await ready(wechat)
            event = SuggestionReceived.model_validate_json(await broker.first_message("minsheng.store"))
            assert (event.body.channel_ref, event.personal.wechat_openid) == (f"{district.appid}:9101", "o-user")
            await wechat.aclose()
