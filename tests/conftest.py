"""Fixtures: each test gets its own RabbitMQ vhost and its own database on the real servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import yaml
from pymongo import AsyncMongoClient

from minsheng_core.staff import Role, StaffDirectory
from tests.fakes.wechat_platform import WechatPlatform

AMQP_HOST = os.environ.get("MINSHENG_TEST_AMQP_HOST", "127.0.0.1:5672")
MANAGEMENT_URL = os.environ.get("MINSHENG_TEST_RABBITMQ_MANAGEMENT", "http://127.0.0.1:15672")
RABBIT_USER = os.environ.get("MINSHENG_TEST_RABBITMQ_USER", "guest")
RABBIT_PASSWORD = os.environ.get("MINSHENG_TEST_RABBITMQ_PASSWORD", "guest")
MONGO_URL = os.environ.get("MINSHENG_TEST_MONGO_URL", "mongodb://127.0.0.1:27017/")


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """A fresh vhost on the real broker, removed afterwards."""
    vhost = unique("test")
    auth = (RABBIT_USER, RABBIT_PASSWORD)
    with httpx.Client(base_url=MANAGEMENT_URL, auth=auth, timeout=30) as api:
        api.put(f"/api/vhosts/{quote(vhost, safe='')}").raise_for_status()
        api.put(
            f"/api/permissions/{quote(vhost, safe='')}/{RABBIT_USER}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        ).raise_for_status()
        yield f"amqp://{RABBIT_USER}:{RABBIT_PASSWORD}@{AMQP_HOST}/{quote(vhost, safe='')}"
        api.delete(f"/api/vhosts/{quote(vhost, safe='')}")


@pytest.fixture
async def mongo_db() -> AsyncIterator[tuple[str, str]]:
    """(url, database name) of a fresh database on the real store, dropped afterwards."""
    name = unique("test")
    yield MONGO_URL, name
    client: AsyncMongoClient = AsyncMongoClient(MONGO_URL)
    await client.drop_database(name)
    await client.close()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The campaign model trained once for the session from the corpus in the repository."""
    from minsheng_classifier.corpus import CAMPAIGN_CORPUS
    from minsheng_classifier.shipped import train_from

    directory = tmp_path_factory.mktemp("model")
    train_from([CAMPAIGN_CORPUS], directory)
    return directory


# The district's account and a town's (whose unit becomes the default unit of what arrives there).
WECHAT_ACCOUNTS = [
    {
        "appid": "wx5e1a0c3d7b9f2468",
        "name": "同心双滦",
        "token": "testtoken1",
        "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    },
    {
        "appid": "wx71c4e9a02b5d8f36",
        "name": "双塔山镇",
        "token": "testtoken2",
        "encoding_aes_key": "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut",
        "unit": "shuangtashan",
    },
]


class System:
    """The services running in-process on the test's own vhost and database."""

    def __init__(self, amqp_url: str, mongo_url: str, database: str, outbox: Path, model_dir: Path) -> None:
        from datetime import date, timedelta

        from minsheng_classifier.settings import ClassifierSettings
        from minsheng_intake_hotline.settings import HotlineSettings
        from minsheng_intake_survey.settings import SurveySettings
        from minsheng_intake_web.settings import WebSettings
        from minsheng_intake_wechat.settings import WechatSettings
        from minsheng_store.settings import StoreSettings

        today = date.today()
        common = dict(
            environment="test",
            amqp_url=amqp_url,
            mongo_url=mongo_url,
            mongo_database=database,
            campaign_opens_on=today - timedelta(days=2),
            campaign_closes_on=today + timedelta(days=2),
            log_format="json",
        )
        self.web_settings = WebSettings(
            **common, outbox_path=outbox, drain_interval_seconds=0.5, submissions_rate="1000/minute", lookups_rate="1000/minute"
        )
        accounts = outbox.parent / "wechat-accounts.yaml"
        accounts.write_text(yaml.safe_dump({"accounts": WECHAT_ACCOUNTS}, allow_unicode=True), encoding="utf-8")
        self.wechat_settings = WechatSettings(
            **common,
            outbox_path=outbox.parent / "wechat-outbox.sqlite3",
            accounts_file=accounts,
            drain_interval_seconds=0.5,
        )
        self.hotline_settings = HotlineSettings(
            **common,
            outbox_path=outbox.parent / "hotline-outbox.sqlite3",
            drain_interval_seconds=0.5,
            public_url="http://hotline",
            twilio_auth_token="test-twilio-auth-token",
            transcripts_token="test-transcripts-token",
            edit_window_minutes=10,
        )
        self.survey_settings = SurveySettings(
            **common, outbox_path=outbox.parent / "survey-outbox.sqlite3", drain_interval_seconds=0.5
        )
        self.wechat_accounts = [WechatPlatform(a["appid"], a["token"], a["encoding_aes_key"]) for a in WECHAT_ACCOUNTS]
        self.store_settings = StoreSettings(**common)
        self.classifier_settings = ClassifierSettings(**common, model_dir=model_dir)
        self.amqp_url = amqp_url
        self.db = AsyncMongoClient(mongo_url, tz_aware=True)[database]
        self.staff_headers: dict[str, str] = {}  # an administrator's token, once the store is up
        self.apps: dict[str, object] = {}

    async def sign_in(self, username: str, role: Role, unit: str | None = None) -> dict[str, str]:
        """Create a staff account and return the headers that authenticate its requests to the staff API."""
        directory = StaffDirectory(self.db)
        member = await directory.create(username, "a test password", role, username, unit)
        return {"Authorization": f"Bearer {await directory.open_session(member)}"}


@pytest.fixture
async def system(amqp_url: str, mongo_db: tuple[str, str], model_dir: Path, tmp_path: Path) -> AsyncIterator[System]:
    """Start classifier, store and the intakes; clients on .web, .wechat, .hotline, .survey, .store…"""
    from asgi_lifespan import LifespanManager

    from minsheng_classifier.app import create_app as classifier_app
    from minsheng_intake_hotline.app import create_app as hotline_app
    from minsheng_intake_survey.app import create_app as survey_app
    from minsheng_intake_web.app import create_app as web_app
    from minsheng_intake_wechat.app import create_app as wechat_app
    from minsheng_store.app import create_app as store_app

    system = System(amqp_url, mongo_db[0], mongo_db[1], tmp_path / "outbox.sqlite3", model_dir)
    apps = [
        ("classifier", classifier_app(system.classifier_settings)),
        ("store", store_app(system.store_settings)),
        ("web", web_app(system.web_settings)),
        ("wechat", wechat_app(system.wechat_settings)),
        ("hotline", hotline_app(system.hotline_settings)),
        ("survey", survey_app(system.survey_settings)),
    ]
    managers = []
    try:
        for name, app in apps:
            manager = LifespanManager(app, startup_timeout=120)
            await manager.__aenter__()
            managers.append(manager)
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url=f"http://{name}")
            setattr(system, name, client)
            system.apps[name] = app
        system.staff_headers = await system.sign_in("test-admin", Role.ADMIN)
        yield system
    finally:
        for name, _ in apps:
            client = getattr(system, name, None)
            if client is not None:
                await client.aclose()
        for manager in reversed(managers):
            await manager.__aexit__(None, None, None)
        await system.db.client.close()


@pytest.fixture(scope="session", autouse=True)
def _logging_as_the_services_do() -> None:
    """Configure logging before any logger is first used (structlog caches loggers), the way every service does,
    so that tests read log events from the standard library's records whatever order they run in."""
    from minsheng_core.logging import configure_logging

    configure_logging("tests", "json", "info")


@pytest.fixture
def log_events(caplog: pytest.LogCaptureFixture):
    """The structlog events logged during the test so far (event dicts)."""
    import logging

    caplog.set_level(logging.DEBUG)
    return lambda: [record.msg for record in caplog.records if isinstance(record.msg, dict)]


# Personal data never appears in logs: every log record of the whole run is scanned at the end, and the run fails
# if a phone number or one of the tests' WeChat openids shows up in any of them.
_PHONE_IN_LOGS = __import__("re").compile(r"(?<![0-9A-Za-z])(?:\+?86)?1[3-9]\d{9}(?![0-9A-Za-z])")
TEST_OPENIDS = ("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "o-second-user", "o-someone-else")


class _LogScanner(__import__("logging").Handler):
    def __init__(self) -> None:
        super().__init__(level=0)
        self.leaks: list[str] = []
        self.records = 0

    def emit(self, record) -> None:
        """Scan the record as the services' own handler writes it (their formatter masks phone numbers)."""
        import logging

        self.records += 1
        ours = next((h for h in logging.getLogger().handlers if getattr(h, "_minsheng", False)), None)
        try:
            text = ours.format(record) if ours is not None else record.getMessage()
        except Exception:  # a record that cannot be formatted cannot leak either
            return
        if _PHONE_IN_LOGS.search(text) or any(openid in text for openid in TEST_OPENIDS):
            self.leaks.append(f"{record.name}: {text[:300]}")


LOG_SCANNER = _LogScanner()


def pytest_configure(config) -> None:
    import logging

    logging.getLogger().addHandler(LOG_SCANNER)


def pytest_sessionfinish(session, exitstatus) -> None:
    if LOG_SCANNER.leaks:
        print(f"\npersonal data in {len(LOG_SCANNER.leaks)} of {LOG_SCANNER.records} log records:")
        for leak in LOG_SCANNER.leaks[:20]:
            print("  " + leak)
        session.exitstatus = 1
