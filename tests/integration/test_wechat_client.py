"""The WeChat message API client over real HTTP against the local fake: token cache, retries, 48-hour window, logs."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI

from minsheng_wechat.client import SERVICE_WINDOW, ApiCredentials, OutsideServiceWindow, WechatApi, WechatApiError
from tests.fakes.wechat_api import create_fake_wechat_api, serve

APPID = "wx5f3e9a0c1d2b4e6f"
SECRET = "0123456789abcdef0123456789abcdef"
CREDS = ApiCredentials(APPID, SECRET)
OPENID = "oQx7Z5tVbK2mR9pLw3sYhN4cDe8F"
NOW = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)
CUSTOM = "/cgi-bin/message/custom/send"
TEMPLATE = "/cgi-bin/message/template/send"
TOKEN = "/cgi-bin/token"


class Clock:
    """A controllable clock for the client's token cache and window check."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def fake() -> FastAPI:
    return create_fake_wechat_api({APPID: SECRET})


@pytest.fixture
async def base_url(fake: FastAPI) -> AsyncIterator[str]:
    async with serve(fake) as url:
        yield url


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def api(base_url: str, clock: Clock) -> AsyncIterator[WechatApi]:
    async with WechatApi(base_url, clock=clock) as client:
        yield client


def recent() -> datetime:
    return NOW - timedelta(hours=1)


def texts(fake: FastAPI) -> list[str]:
    return [m["body"]["text"]["content"] for m in fake.state.messages if m["endpoint"] == "custom"]


async def test_the_token_is_fetched_once_and_cached_for_two_sends(api: WechatApi, fake: FastAPI):
    await api.send_text(CREDS, OPENID, "first", recent())
    await api.send_text(CREDS, OPENID, "second", recent())

    assert fake.state.token_fetches == 1
    assert fake.state.requests.count(TOKEN) == 1
    assert texts(fake) == ["first", "second"]
    assert all(m["appid"] == APPID and m["body"]["touser"] == OPENID for m in fake.state.messages)


async def test_the_cached_token_is_refreshed_five_minutes_before_it_expires(api: WechatApi, fake: FastAPI, clock: Clock):
    first = await api.access_token(CREDS)
    clock.advance(timedelta(seconds=7200 - 300 - 1))
    assert await api.access_token(CREDS) == first
    clock.advance(timedelta(seconds=2))
    second = await api.access_token(CREDS)

    assert second != first
    assert fake.state.token_fetches == 2


async def test_concurrent_sends_fetch_the_token_once(api: WechatApi, fake: FastAPI):
    await asyncio.gather(*(api.send_text(CREDS, OPENID, "message " + str(i), recent()) for i in range(8)))

    assert fake.state.token_fetches == 1
    assert sorted(texts(fake)) == sorted("message " + str(i) for i in range(8))


async def test_an_expired_token_is_refreshed_and_the_message_delivered_once(api: WechatApi, fake: FastAPI):
    await api.send_text(CREDS, OPENID, "before", recent())
    fake.state.expire_tokens()

    await api.send_text(CREDS, OPENID, "after", recent())

    assert fake.state.token_fetches == 2
    assert fake.state.requests.count(CUSTOM) == 3  # before, after with the stale token, after with the new one
    assert texts(fake) == ["before", "after"]


async def test_concurrent_senders_refresh_an_expired_token_once(api: WechatApi, fake: FastAPI):
    await api.access_token(CREDS)
    fake.state.expire_tokens()

    await asyncio.gather(*(api.send_text(CREDS, OPENID, "message " + str(i), recent()) for i in range(5)))

    assert fake.state.token_fetches == 2
    assert len(texts(fake)) == 5


async def test_a_token_rejected_twice_raises_without_a_third_try(api: WechatApi, fake: FastAPI):
    fake.state.reject_all_tokens = True

    with pytest.raises(WechatApiError) as raised:
        await api.send_text(CREDS, OPENID, "hello", recent())

    assert raised.value.errcode == 40001
    assert not isinstance(raised.value, OutsideServiceWindow)
    assert fake.state.token_fetches == 2
    assert fake.state.requests.count(CUSTOM) == 2
    assert fake.state.messages == []


async def test_a_wrong_secret_raises_40125(api: WechatApi, fake: FastAPI):
    wrong = ApiCredentials(APPID, "not-the-secret")

    with pytest.raises(WechatApiError) as raised:
        await api.access_token(wrong)
    assert raised.value.errcode == 40125
    assert "invalid appsecret" in raised.value.errmsg

    with pytest.raises(WechatApiError) as raised:
        await api.send_template(wrong, OPENID, "tpl", {"thing1": "x"})
    assert raised.value.errcode == 40125
    assert fake.state.requests.count(TEMPLATE) == 0
    assert fake.state.token_fetches == 0


async def test_outside_the_48_hour_window_nothing_is_sent(api: WechatApi, fake: FastAPI):
    with pytest.raises(OutsideServiceWindow) as raised:
        await api.send_text(CREDS, OPENID, "too late", NOW - timedelta(hours=49))

    assert isinstance(raised.value, WechatApiError)
    assert fake.state.requests == []
    assert fake.state.messages == []


async def test_just_inside_the_48_hour_window_the_message_is_sent(api: WechatApi, fake: FastAPI):
    await api.send_text(CREDS, OPENID, "just in time", NOW - SERVICE_WINDOW)

    assert texts(fake) == ["just in time"]


async def test_wechat_saying_out_of_time_limit_raises_outside_service_window(api: WechatApi, fake: FastAPI):
    fake.state.outside_window.add(OPENID)

    with pytest.raises(OutsideServiceWindow) as raised:
        await api.send_text(CREDS, OPENID, "hello", recent())

    assert raised.value.errcode == 45015
    assert fake.state.requests.count(CUSTOM) == 1
    assert fake.state.messages == []


async def test_out_of_response_count_limit_also_raises_outside_service_window(api: WechatApi, fake: FastAPI):
    fake.state.errcodes[OPENID] = 45047

    with pytest.raises(OutsideServiceWindow) as raised:
        await api.send_text(CREDS, OPENID, "hello", recent())

    assert raised.value.errcode == 45047


async def test_other_errors_raise_wechat_api_error_without_the_openid(api: WechatApi, fake: FastAPI):
    fake.state.errcodes[OPENID] = 43004
    fake.state.echo_openid_in_errmsg = True

    with pytest.raises(WechatApiError) as raised:
        await api.send_text(CREDS, OPENID, "hello", recent())

    assert type(raised.value) is WechatApiError
    assert raised.value.errcode == 43004
    assert "require subscribe" in raised.value.errmsg
    assert OPENID not in raised.value.errmsg
    assert OPENID not in str(raised.value)
    assert fake.state.requests.count(CUSTOM) == 1  # no retry for a definitive answer


async def test_a_template_message_is_delivered_with_the_documented_shape(api: WechatApi, fake: FastAPI):
    fake.state.outside_window.add(OPENID)  # template messages are not bound to the window
    data = {"thing1": "路灯维修", "time2": "2025年3月10日"}

    await api.send_template(CREDS, OPENID, "tplAbC123", data, url="https://minsheng.example/s/42")
    await api.send_template(CREDS, OPENID, "tplAbC123", {"thing1": "x"})

    first, second = (m["body"] for m in fake.state.messages)
    assert first == {
        "touser": OPENID,
        "template_id": "tplAbC123",
        "url": "https://minsheng.example/s/42",
        "data": {"thing1": {"value": "路灯维修"}, "time2": {"value": "2025年3月10日"}},
    }
    assert second == {"touser": OPENID, "template_id": "tplAbC123", "data": {"thing1": {"value": "x"}}}
    assert fake.state.token_fetches == 1


async def test_non_ascii_text_arrives_as_utf8_without_escapes(api: WechatApi, fake: FastAPI):
    text = "您好！您反映的“小区路灯不亮”已修复，感谢支持 ✅"

    await api.send_text(CREDS, OPENID, text, recent())

    [message] = fake.state.messages
    assert message["body"]["text"]["content"] == text
    assert text.encode("utf-8") in message["raw"]
    assert b"\\u" not in message["raw"]
    assert message["content_type"] == "application/json; charset=utf-8"


async def test_a_transient_503_is_retried_and_the_message_delivered_once(api: WechatApi, fake: FastAPI):
    await api.access_token(CREDS)
    fake.state.fail_next = 2

    await api.send_text(CREDS, OPENID, "hello", recent())

    assert fake.state.requests.count(CUSTOM) == 3
    assert texts(fake) == ["hello"]


async def test_a_503_on_the_token_endpoint_is_retried(api: WechatApi, fake: FastAPI):
    fake.state.fail_next = 1

    await api.send_text(CREDS, OPENID, "hello", recent())

    assert fake.state.requests.count(TOKEN) == 2
    assert fake.state.token_fetches == 1
    assert texts(fake) == ["hello"]


async def test_persistent_503_gives_up_after_three_attempts(api: WechatApi, fake: FastAPI):
    await api.access_token(CREDS)
    fake.state.fail_next = 10

    with pytest.raises(WechatApiError) as raised:
        await api.send_text(CREDS, OPENID, "hello", recent())

    assert raised.value.errcode == -1
    assert fake.state.requests.count(CUSTOM) == 3
    assert fake.state.messages == []


async def test_an_unreachable_server_raises_after_retries(clock: Clock, log_events):
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async with WechatApi("http://127.0.0.1:" + str(port), clock=clock) as api:
        with pytest.raises(WechatApiError) as raised:
            await api.access_token(CREDS)
        logs = log_events()

    assert raised.value.errcode == -1
    assert [e["event"] for e in logs] == ["wechat_api_retry", "wechat_api_retry", "wechat_api_unreachable"]


async def test_logs_never_carry_the_openid_the_text_the_secret_or_the_token(
    api: WechatApi, fake: FastAPI, caplog: pytest.LogCaptureFixture, log_events
):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="httpx")  # services keep httpx at WARNING; here its URLs are checked too
    text = "私密内容 private text"
    await api.send_text(CREDS, OPENID, text, recent())
    fake.state.expire_tokens()
    await api.send_template(CREDS, OPENID, "tplAbC123", {"thing1": text})
    fake.state.fail_next = 1
    await api.send_text(CREDS, OPENID, text, recent())
    fake.state.outside_window.add(OPENID)
    with pytest.raises(OutsideServiceWindow):
        await api.send_text(CREDS, OPENID, text, recent())
    with pytest.raises(OutsideServiceWindow):
        await api.send_text(CREDS, OPENID, text, NOW - timedelta(days=3))
    logs = log_events()

    events = [entry["event"] for entry in logs]
    assert events.count("wechat_message_sent") == 3
    assert "wechat_access_token_rejected" in events
    assert "wechat_api_retry" in events
    assert [e["msgtype"] for e in logs if e["event"] == "wechat_message_sent"] == ["text", "template", "text"]

    secrets_ = [OPENID, text, SECRET, *fake.state.issued_tokens]
    assert len(fake.state.issued_tokens) == 2
    for entry in logs:
        rendered = repr(entry)
        assert not [s for s in secrets_ if s in rendered], entry

    # httpx logs each request URL, whose query string carries the secret and the token.
    assert any("HTTP Request" in record.getMessage() for record in caplog.records)
    for record in caplog.records:
        message = record.getMessage()
        assert not [s for s in secrets_ if s in message], message


async def test_naive_datetimes_are_refused(api: WechatApi, fake: FastAPI):
    with pytest.raises(ValueError):
        await api.send_text(CREDS, OPENID, "hello", datetime(2025, 3, 10, 9, 0))
    assert fake.state.requests == []
