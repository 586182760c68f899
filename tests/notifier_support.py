"""The notifier in-process for tests: its settings on a test's vhost and database, local fakes of the WeChat and Twilio
APIs over real HTTP, and an ``Env`` to start and stop notifier instances and read what they sent."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import yaml
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from minsheng_core.bus import Publisher, connect
from minsheng_core.events import NotificationSent
from minsheng_notifier.app import create_app
from minsheng_notifier.settings import NotifierSettings
from tests.conftest import WECHAT_ACCOUNTS
from tests.fakes.twilio_api import create_fake_twilio_api
from tests.fakes.wechat_api import create_fake_wechat_api, serve
from tests.helpers import Spy, eventually

SHANGHAI = ZoneInfo("Asia/Shanghai")
# A Wednesday at 10:00 in the campaign's zone: outside quiet hours.
MORNING = datetime(2019, 11, 20, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)
DISTRICT = WECHAT_ACCOUNTS[0]["appid"]  # with a decision template
TOWN = WECHAT_ACCOUNTS[1]["appid"]  # without one
SECRETS = {DISTRICT: "district-app-secret-0123456789ab", TOWN: "town-app-secret-0123456789abcdef"}
TEMPLATE_ID = "tpl-decision-Xq3v9LmN2"
ACCOUNT_SID = "AC" + "5b2e8d1f4a7c3e6b9d0f2a5c8e1b4d7f"
AUTH_TOKEN = "c4f7a2e9b1d8c5a3f6e0b9d2a7c4e1f8"
SMS_FROM = "+15005550006"
STATUS_PAGE = "https://minsheng.example/status"


class Clock:
    """The notifier's time: still unless the test moves it."""

    def __init__(self, now: datetime = MORNING) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class Env:
    """A notifier on the test's own vhost and database, its fake APIs, a publisher and a spy on what it publishes."""

    def __init__(self, settings: NotifierSettings, wechat: FastAPI, twilio: FastAPI, db: Any, clock: Any) -> None:
        self.settings = settings
        self.wechat = wechat
        self.twilio = twilio
        self.db = db
        self.clock = clock  # a Clock, or any callable giving the time (the wall clock)
        self.publisher: Publisher | None = None
        self.spy: Spy | None = None
        self.client: httpx.AsyncClient | None = None
        self.app: FastAPI | None = None

    @contextlib.asynccontextmanager
    async def running(self, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        """Run one notifier instance (start, yield its HTTP client, stop as a deployment stops it)."""
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        app = create_app(settings, clock=self.clock)
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://notifier") as client:
                self.client, self.app = client, app
                if self.publisher is None:  # the topology exists once a service has declared it
                    self.publisher = Publisher(await connect(self.settings.amqp_url.get_secret_value(), "test"))
                    await self.publisher.start()
                    self.spy = await Spy.bind(self.settings.amqp_url.get_secret_value(), "notification.sent.#")
                yield client

    async def publish(self, *events: Any) -> None:
        assert self.publisher is not None
        for event in events:
            await self.publisher.publish(event)

    async def record(self, decision_id: str) -> dict[str, Any] | None:
        return await self.db.notifications.find_one({"_id": decision_id})

    async def settled(self, *decision_ids: str, state: str = "sent", timeout: float = 30) -> list[dict[str, Any]]:
        """Wait until every record has reached the state; return them."""

        async def probe() -> list[dict[str, Any]] | None:
            docs = [await self.record(d) for d in decision_ids]
            done = all(doc is not None and doc["state"] == state for doc in docs)
            # A sent record is settled once its NotificationSent is confirmed by the broker too.
            return docs if done and all(state != "sent" or doc["event_published"] for doc in docs) else None

        return await eventually(probe, timeout=timeout, interval=0.05)

    async def sent_events(self) -> list[NotificationSent]:
        assert self.spy is not None
        return [NotificationSent.model_validate_json(m.body) for m in await self.spy.drain(settle=0.5)]

    def sms(self) -> list[dict[str, Any]]:
        return list(self.twilio.state.messages)

    def wechat_messages(self) -> list[dict[str, Any]]:
        return list(self.wechat.state.messages)


def write_accounts(path: Path) -> Path:
    """The notifier's accounts file: the test accounts with AppSecrets, the district's with a decision template."""
    accounts = [{**a, "app_secret": SECRETS[a["appid"]]} for a in WECHAT_ACCOUNTS]
    accounts[0]["decision_template_id"] = TEMPLATE_ID
    path.write_text(yaml.safe_dump({"accounts": accounts}, allow_unicode=True), encoding="utf-8")
    return path


@contextlib.asynccontextmanager
async def notifier_env(
    amqp_url: str,
    mongo_url: str,
    database: str,
    tmp_path: Path,
    clock: Callable[[], datetime] | None = None,
    **overrides: Any,
) -> AsyncIterator[Env]:
    """Fakes of the WeChat and Twilio APIs served over HTTP, and an Env whose notifier settings point at them."""
    accounts = write_accounts(tmp_path / "notifier-accounts.yaml")
    wechat = create_fake_wechat_api(SECRETS)
    twilio = create_fake_twilio_api(ACCOUNT_SID, AUTH_TOKEN)
    db_client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    async with serve(wechat) as wechat_url, serve(twilio) as twilio_url:
        settings = NotifierSettings(
            **{
                "environment": "test",
                "amqp_url": amqp_url,
                "mongo_url": mongo_url,
                "mongo_database": database,
                "log_format": "json",
                "status_page_url": STATUS_PAGE,
                "wechat_accounts_file": accounts,
                "wechat_api_base": wechat_url,
                "wechat_timeout_seconds": 0.5,
                "twilio_account_sid": ACCOUNT_SID,
                "twilio_auth_token": AUTH_TOKEN,
                "twilio_api_base": twilio_url,
                "twilio_timeout_seconds": 2.0,
                "sms_from": SMS_FROM,
                "retry_base_seconds": 60,
                "retry_max_seconds": 600,
                "max_attempts": 3,
                "contact_wait_seconds": 300,
                "stale_sending_seconds": 120,
                "dispatch_interval_seconds": 0.05,
                **overrides,
            }
        )
        environment = Env(settings, wechat, twilio, db_client[database], clock or Clock())
        try:
            yield environment
        finally:
            if environment.publisher is not None:
                await environment.publisher._connection.close()  # type: ignore[union-attr]
            if environment.spy is not None:
                await environment.spy.close()
            await db_client.close()
