"""A TV hotline call through Twilio: greeting, speech, recording fallback, tracking code read out; stored and classified."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.twilio_voice import TwilioCall, spoken, twiml
from tests.helpers import Spy, eventually

pytestmark = pytest.mark.integration


def call(system, **kwargs) -> TwilioCall:
    settings = system.hotline_settings
    return TwilioCall(settings.twilio_auth_token.get_secret_value(), settings.public_url, **kwargs)


async def stored(system, ref: str, status: str = "classified"):
    async def probe():
        return await system.db.suggestions.find_one({"channel_ref": ref, "status": status})

    return await eventually(probe)


async def test_a_signed_call_from_greeting_to_a_stored_classified_suggestion(system):
    caller = call(system)
    greeting = twiml(await caller.post(system.hotline, "/twilio/voice"))
    gather = greeting.find("Gather")
    assert gather is not None and gather.get("input") == "speech" and gather.get("language") == "cmn-Hans-CN"
    assert gather.get("action") == "/twilio/voice/speech" and system.hotline_settings.campaign.name in spoken(greeting)

    words = "我是西地镇上店子村的，村里到镇上的路一下雨全是泥，希望明年能硬化。"
    answer = twiml(await caller.post(system.hotline, "/twilio/voice/speech", SpeechResult=words, Confidence="0.91"))
    assert answer.find("Hangup") is not None
    doc = await stored(system, caller.call_sid)
    said = spoken(answer).replace(" ", "").replace("，", "-")
    assert doc["tracking_code"] in said  # read out one character at a time
    assert (doc["channel"], doc["text"], doc.get("awaiting")) == ("hotline", words, None)
    assert doc["classification"]["category"] == "road_traffic" and doc["unit"] == "xidi"
    personal = await system.db.personal_data.find_one({"_id": doc["_id"]})
    assert system.store_settings.vault.open("phone", personal["phone"]) == "13912345678"
    assert "13912345678" not in str(doc)


async def test_twilios_retries_of_a_callback_give_one_suggestion_and_the_same_answer(system):
    caller = call(system)
    spy = await Spy.bind(system.amqp_url, "suggestion.received.*")
    try:
        params = {"SpeechResult": "希望在元宝山街道多建几个公共厕所", "Confidence": "0.88"}
        answers = await asyncio.gather(*(caller.post(system.hotline, "/twilio/voice/speech", **params) for _ in range(3)))
        assert len({a.text for a in answers}) == 1
        await stored(system, caller.call_sid)
        assert await system.db.suggestions.count_documents({"channel": "hotline"}) == 1
        assert len({m.body for m in await spy.drain()}) == 1
    finally:
        await spy.close()


async def test_unclear_speech_falls_back_to_a_recording_kept_for_an_operator(system):
    caller = call(system)
    unclear = twiml(await caller.post(system.hotline, "/twilio/voice/speech", SpeechResult="路 那个 嗯", Confidence="0.21"))
    record = unclear.find("Record")
    assert record is not None and "没有听清" in spoken(unclear)
    action = record.get("action")
    assert action.startswith("/twilio/voice/recording?")
    url = "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE1234"
    done = twiml(await caller.post(system.hotline, action, RecordingUrl=url, RecordingDuration="17"))
    doc = await stored(system, caller.call_sid)
    assert doc["tracking_code"] in spoken(done).replace(" ", "").replace("，", "-")
    assert (doc["awaiting"], doc["text"]) == ("transcription", "路 那个 嗯")  # kept, flagged, with what was heard
    assert doc["attachments"] == [{"kind": "recording", "channel_ref": caller.call_sid, "url": url}]
    assert doc["classification"]["needs_review"] is True

    silent = call(system, caller="anonymous")
    empty = twiml(await silent.post(system.hotline, "/twilio/voice/speech"))  # nothing heard at all
    action = empty.find("Record").get("action")
    twiml(await silent.post(system.hotline, action, RecordingUrl=url + "5"))
    doc = await stored(system, silent.call_sid)
    assert (doc["text"], doc["awaiting"]) == ("", "transcription")
    assert await system.db.personal_data.find_one({"_id": doc["_id"]}) is None  # no number to keep


async def test_wrong_or_missing_signatures_and_bad_parameters_change_nothing(system):
    caller = call(system)
    spy = await Spy.bind(system.amqp_url)
    try:
        params = {"SpeechResult": "希望修路", "Confidence": "0.9"}
        assert (
            await caller.post(system.hotline, "/twilio/voice/speech", signature="bm90IGEgc2lnbmF0dXJl", **params)
        ).status_code == 403
        assert (await caller.post(system.hotline, "/twilio/voice/speech", signature="", **params)).status_code == 403
        # signed for another URL: what a proxy that rewrites the host would break if we validated the request URL
        other = TwilioCall(caller.auth_token, "http://elsewhere.example", call_sid=caller.call_sid)
        assert (await other.post(system.hotline, "/twilio/voice/speech", **params)).status_code == 403
        no_sid = TwilioCall(caller.auth_token, caller.public_url, call_sid="")
        assert (await no_sid.post(system.hotline, "/twilio/voice/speech", **params)).status_code == 400
        huge = await caller.post(system.hotline, "/twilio/voice/speech", SpeechResult="路" * 6000, Confidence="0.9")
        assert huge.status_code == 400 and "SpeechResult" in huge.text
        bad_url = await caller.post(system.hotline, "/twilio/voice/recording", RecordingUrl="javascript:alert(1)")
        assert bad_url.status_code == 400
        assert await spy.drain() == []
        assert await system.db.suggestions.count_documents({}) == 0
    finally:
        await spy.close()


async def test_outside_the_window_the_caller_hears_that_collection_is_closed(system, monkeypatch):
    from datetime import date, timedelta

    hotline = system.apps["hotline"].state.hotline
    later = {"opens_on": date.today() + timedelta(days=5), "closes_on": date.today() + timedelta(days=9)}
    monkeypatch.setattr(hotline, "campaign", hotline.campaign.model_copy(update=later))
    caller = call(system)
    greeting = twiml(await caller.post(system.hotline, "/twilio/voice"))
    assert "不在征集期内" in spoken(greeting) and greeting.find("Gather") is None
    late = twiml(await caller.post(system.hotline, "/twilio/voice/speech", SpeechResult="希望修路", Confidence="0.9"))
    assert "不在征集期内" in spoken(late)
    assert await system.db.suggestions.count_documents({}) == 0


async def test_a_mobile_caller_gets_the_code_by_sms_once_through_twilios_rest_api(system):
    from minsheng_intake_hotline.sms import SmsReceipts
    from tests.fakes.twilio_api import create_fake_twilio_api
    from tests.fakes.wechat_api import serve

    account, token = "AC" + "1" * 32, "rest-api-token-0123456789abcdef"
    fake = create_fake_twilio_api(account, token)
    state = system.apps["hotline"].state
    async with serve(fake) as twilio_rest:
        state.sms = SmsReceipts(account, token, "+15005550006", api_base=twilio_rest)
        try:
            caller = call(system, caller="+8613812345678")
            params = {"SpeechResult": "希望在陈栅子乡建一个卫生院", "Confidence": "0.93"}
            for _ in range(2):  # Twilio retries the callback: still one SMS
                await caller.post(system.hotline, "/twilio/voice/speech", **params)
            doc = await stored(system, caller.call_sid)

            async def sent():
                return fake.state.messages

            [message] = await eventually(sent)
            assert message["to"] == "+8613812345678" and doc["tracking_code"] in message["body"]
            landline = call(system, caller="+863142345678")
            await landline.post(system.hotline, "/twilio/voice/speech", **params)
            await stored(system, landline.call_sid)
            assert len(fake.state.messages) == 1  # an SMS cannot reach a landline
        finally:
            state.sms = None
