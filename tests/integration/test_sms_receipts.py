"""SMS receipts over real HTTP against the local fake of Twilio's REST API: delivery, refusals, failures, logs."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI

from minsheng_intake_hotline.sms import SmsReceipts, e164
from tests.fakes.twilio_api import create_fake_twilio_api
from tests.fakes.wechat_api import serve

ACCOUNT_SID = "AC" + "3f9c2a7e5b1d4068a9e2c7f1b5d3e8a0"
AUTH_TOKEN = "9b7e4c1a2f8d6e3b5a0c9d7f1e2b4a6c"
FROM = "+15005550006"
CALLER = "13912345678"
BODY = "您好，您对民心工程的建议已收到，查询码 K7Q2。感谢参与！"
PERSONAL = [CALLER, "+86" + CALLER, BODY]


@pytest.fixture
def fake() -> FastAPI:
    return create_fake_twilio_api(ACCOUNT_SID, AUTH_TOKEN)


@pytest.fixture
async def base_url(fake: FastAPI) -> AsyncIterator[str]:
    async with serve(fake) as url:
        yield url


@pytest.fixture
def receipts(base_url: str) -> SmsReceipts:
    return SmsReceipts(ACCOUNT_SID, AUTH_TOKEN, FROM, api_base=base_url)


def test_e164_adds_the_country_code_and_keeps_international_numbers():
    assert e164("13912345678") == "+8613912345678"
    assert e164("139-1234-5678") == "+8613912345678"
    assert e164("03142051234") == "+863142051234"
    assert e164("+8613912345678") == "+8613912345678"
    assert e164("+14155550100") == "+14155550100"


async def test_a_receipt_arrives_with_the_e164_number_the_sender_and_the_chinese_body_intact(
    receipts: SmsReceipts, fake: FastAPI
):
    sid = await receipts.send(CALLER, BODY)

    assert sid is not None and re.fullmatch(r"SM[0-9a-f]{32}", sid)
    [message] = fake.state.messages
    assert message["sid"] == sid
    assert message["to"] == "+8613912345678"
    assert message["from"] == FROM
    assert message["body"] == BODY
    assert message["account_sid"] == ACCOUNT_SID
    assert message["status"] == "queued"
    assert fake.state.requests == [("POST", "/2010-04-01/Accounts/" + ACCOUNT_SID + "/Messages.json")]


async def test_a_wrong_auth_token_returns_none_and_nothing_is_sent(base_url: str, fake: FastAPI, log_events):
    receipts = SmsReceipts(ACCOUNT_SID, "0" * 32, FROM, api_base=base_url)
    sid = await receipts.send(CALLER, BODY)
    logs = log_events()

    assert sid is None
    assert fake.state.messages == []
    assert len(fake.state.requests) == 1
    assert [(e["event"], e["status"], e["code"]) for e in logs] == [("sms_receipt_refused", 401, 20003)]


async def test_a_server_error_returns_none_without_raising(receipts: SmsReceipts, fake: FastAPI, log_events):
    fake.state.fail_next = 1
    assert await receipts.send(CALLER, BODY) is None
    assert fake.state.messages == []
    # The control is spent: the next receipt goes through.
    assert await receipts.send(CALLER, BODY) is not None
    logs = log_events()

    assert len(fake.state.messages) == 1
    assert [e["event"] for e in logs] == ["sms_receipt_refused", "sms_receipt_sent"]
    assert (logs[0]["status"], logs[0]["code"]) == (500, 20500)


async def test_a_number_twilio_refuses_returns_none(receipts: SmsReceipts, fake: FastAPI):
    assert await receipts.send("+86 139", BODY) is None
    assert fake.state.messages == []


async def test_an_unreachable_api_returns_none(log_events):
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    receipts = SmsReceipts(ACCOUNT_SID, AUTH_TOKEN, FROM, api_base="http://127.0.0.1:" + str(port))
    assert await receipts.send(CALLER, BODY) is None
    logs = log_events()

    assert [(e["event"], e["error"]) for e in logs] == [("sms_receipt_unreachable", "ConnectionError")]


async def test_logs_never_carry_the_phone_number_or_the_body(
    receipts: SmsReceipts, fake: FastAPI, base_url: str, caplog: pytest.LogCaptureFixture, log_events
):
    caplog.set_level(logging.DEBUG)
    await receipts.send(CALLER, BODY)
    await SmsReceipts(ACCOUNT_SID, "wrong", FROM, api_base=base_url).send(CALLER, BODY)
    fake.state.fail_next = 1
    await receipts.send(CALLER, BODY)
    # Twilio's 21211 message quotes the refused number.
    await receipts.send("+8613912345678x", BODY)
    logs = log_events()

    assert [e["event"] for e in logs] == ["sms_receipt_sent", "sms_receipt_refused", "sms_receipt_refused", "sms_receipt_refused"]
    assert logs[-1]["code"] == 21211
    for entry in logs:
        rendered = repr(entry)
        assert not [s for s in PERSONAL if s in rendered], entry

    # Twilio's own HTTP client logs each request; none of it may carry the number or the text either.
    assert any("Twilio API Request" in record.getMessage() for record in caplog.records)
    for record in caplog.records:
        message = record.getMessage()
        assert not [s for s in PERSONAL if s in message], message
