"""WeChat messages travel intake-wechat → RabbitMQ → classifier → store on the real servers, as WeChat sends them."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.fakes.wechat_platform import BILLION_LAUGHS_XML, aes_seal, sha1_signature
from tests.helpers import Spy, eventually

pytestmark = pytest.mark.integration

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
ROAD = "我们西地镇上店子村到镇上的土路一下雨全是泥，孩子上学难走，希望明年硬化成水泥路🙏"


async def stored(system, suggestion_id: str, status: str = "classified"):
    async def probe():
        doc = await system.db.suggestions.find_one({"_id": suggestion_id})
        return doc if doc and doc.get("status") == status else None

    return await eventually(probe)


async def by_ref(system, ref: str, status: str = "classified"):
    async def probe():
        doc = await system.db.suggestions.find_one({"channel_ref": ref})
        return doc if doc and doc.get("status") == status else None

    return await eventually(probe)


async def test_the_server_url_check_echoes_only_when_signed_by_the_account(system):
    district = system.wechat_accounts[0]
    ok = await system.wechat.get(f"/wechat/{district.appid}", params={**district.query(), "echostr": "8263441"})
    assert (ok.status_code, ok.text) == (200, "8263441")
    wrong = {**district.query(), "signature": sha1_signature("another-token", "1", "2"), "echostr": "1"}
    assert (await system.wechat.get(f"/wechat/{district.appid}", params=wrong)).status_code == 403
    missing = {k: v for k, v in district.query().items() if k != "signature"}
    assert (await system.wechat.get(f"/wechat/{district.appid}", params=missing | {"echostr": "1"})).status_code == 403
    stale = district.query(timestamp=int(time.time()) - 3600)
    assert (await system.wechat.get(f"/wechat/{district.appid}", params=stale | {"echostr": "1"})).status_code == 403
    assert (await system.wechat.get("/wechat/wx0000000000000000", params=district.query())).status_code == 404


async def test_a_plain_text_message_is_stored_classified_and_answered_with_its_tracking_code(system):
    district = system.wechat_accounts[0]
    response = await district.send(system.wechat, district.text(OPENID, ROAD, msg_id=1001))
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/xml")
    reply = district.open_reply(response.text)
    assert (reply["ToUserName"], reply["MsgType"]) == (OPENID, "text")
    doc = await by_ref(system, f"{district.appid}:1001")
    assert doc["tracking_code"] in reply["Content"] and "已收到" in reply["Content"]
    assert (doc["channel"], doc["account"], doc["text"]) == ("wechat", district.appid, ROAD)
    assert doc["classification"]["category"] == "road_traffic"
    assert doc["unit"] == "xidi"  # the place in the text beats the account
    assert OPENID not in json.dumps(doc, default=str)
    personal = await system.db.personal_data.find_one({"_id": doc["_id"]})
    assert system.store_settings.vault.open("wechat_openid", personal["wechat_openid"]) == OPENID


async def test_a_safe_mode_message_on_a_towns_account_is_stored_and_answered_sealed(system):
    town = system.wechat_accounts[1]
    response = await town.send_sealed(
        system.wechat, town.text(OPENID, "希望在镇中心建一个老年活动中心，冬天老人们没地方去", msg_id=2002)
    )
    assert response.status_code == 200
    assert "Encrypt" in response.text and "老年" not in response.text  # the reply goes back sealed
    reply = town.open_reply(response.text)  # checks the signature and the appid, decrypts independently
    doc = await by_ref(system, f"{town.appid}:2002")
    assert doc["tracking_code"] in reply["Content"]
    assert doc["account"] == town.appid
    assert (doc["unit"], doc["classification"]["unit_source"]) == ("shuangtashan", "account")


async def test_wechats_retries_of_one_message_give_one_suggestion_and_the_same_reply(system):
    district = system.wechat_accounts[0]
    spy = await Spy.bind(system.amqp_url, "suggestion.received.*")
    try:
        xml = district.text(OPENID, "建议在幸福小区增设电动车充电桩", msg_id=3003)
        first = await district.send(system.wechat, xml)
        retries = await asyncio.gather(*(district.send(system.wechat, xml) for _ in range(3)))
        contents = {district.open_reply(r.text)["Content"] for r in [first, *retries]}
        assert len(contents) == 1
        sealed = [await district.send_sealed(system.wechat, xml) for _ in range(2)]  # the same MsgId in safe mode
        assert {district.open_reply(r.text)["Content"] for r in sealed} == contents
        doc = await by_ref(system, f"{district.appid}:3003")
        assert await system.db.suggestions.count_documents({"channel": "wechat"}) == 1
        assert doc["tracking_code"] in contents.pop()
        # At least once on the bus, and always the one event first accepted: a retry never makes another.
        published = {m.body for m in await spy.drain()}
        assert len(published) == 1 and json.loads(published.pop())["suggestion_id"] == doc["_id"]
    finally:
        await spy.close()


async def test_voice_with_and_without_recognition(system):
    district = system.wechat_accounts[0]
    heard = await district.send(system.wechat, district.voice(OPENID, "media-v1", 4001, recognition="希望村里安装路灯。"))
    doc = await by_ref(system, f"{district.appid}:4001")
    assert doc["text"] == "希望村里安装路灯。" and doc["attachments"][0]["media_id"] == "media-v1"
    assert doc["tracking_code"] in district.open_reply(heard.text)["Content"]

    silent = await district.send(system.wechat, district.voice("o-second-user", "media-v2", 4002))
    assert "工作人员将根据录音整理" in district.open_reply(silent.text)["Content"]
    doc = await by_ref(system, f"{district.appid}:4002")
    assert (doc["text"], doc["awaiting"]) == ("", "transcription")
    assert doc["attachments"] == [
        {"kind": "voice", "channel_ref": f"{district.appid}:4002", "media_id": "media-v2", "format": "amr"}
    ]
    assert doc["classification"]["needs_review"] is True and doc["classification"].get("duplicate_of") is None
    page = await system.store.get("/api/v1/suggestions", params={"awaiting": "transcription"}, headers=system.staff_headers)
    [item] = page.json()["items"]
    assert (item["suggestion_id"], item["account"], item["attachments"][0]["media_id"]) == (
        doc["_id"],
        district.appid,
        "media-v2",
    )


async def test_a_picture_joins_the_senders_suggestion_of_a_moment_ago_or_waits_for_words(system):
    district = system.wechat_accounts[0]
    await district.send(system.wechat, district.text(OPENID, "小区门口的井盖坏了，晚上很危险", msg_id=5001))
    picture = district.image(OPENID, "media-img-1", 5002)
    attached = [await district.send(system.wechat, picture) for _ in range(2)]  # with a retry
    doc = await by_ref(system, f"{district.appid}:5001")
    assert {district.open_reply(r.text)["Content"] for r in attached} == {
        f"图片已补充到您刚才提交的建议（查询码：{doc['tracking_code']}）。"
    }

    async def with_picture():
        found = await system.db.suggestions.find_one({"_id": doc["_id"]})
        return found if found.get("attachments") else None

    found = await eventually(with_picture)
    assert [a["media_id"] for a in found["attachments"]] == ["media-img-1"]
    assert await system.db.suggestions.count_documents({"channel": "wechat"}) == 1

    alone = await district.send(system.wechat, district.image("o-someone-else", "media-img-2", 5003))
    assert "请再发一条文字" in district.open_reply(alone.text)["Content"]
    own = await by_ref(system, f"{district.appid}:5003")
    assert own["awaiting"] == "text" and own["attachments"][0]["url"].endswith("media-img-2")


async def test_events_answer_without_creating_suggestions(system):
    district = system.wechat_accounts[0]
    spy = await Spy.bind(system.amqp_url)
    try:
        welcome = district.open_reply((await district.send(system.wechat, district.event(OPENID, "subscribe"))).text)
        assert "欢迎关注同心双滦" in welcome["Content"] and system.wechat_settings.campaign.window_text() in welcome["Content"]
        gone = await district.send(system.wechat, district.event(OPENID, "unsubscribe"))
        assert gone.text == "success"
        menu = district.open_reply((await district.send(system.wechat, district.event(OPENID, "CLICK", "HOW_TO"))).text)
        assert "查询" in menu["Content"]
        assert await spy.drain() == []
        assert await system.db.suggestions.count_documents({}) == 0
    finally:
        await spy.close()


async def test_a_user_queries_the_status_of_their_own_suggestion_only(system):
    district = system.wechat_accounts[0]
    await district.send(system.wechat, district.text(OPENID, "希望在滦河镇中学门口设置减速带", msg_id=6001))
    doc = await by_ref(system, f"{district.appid}:6001")
    code = doc["tracking_code"]
    mine = district.open_reply((await district.send(system.wechat, district.text(OPENID, f"查询 {code.lower()}", 6002))).text)
    assert mine["Content"].startswith(f"查询码 {code}：已分类") and "道路交通" in mine["Content"]
    theirs = district.open_reply((await district.send(system.wechat, district.text("o-other", f"查询{code}", 6003))).text)
    assert "没有找到" in theirs["Content"]
    bad = district.open_reply((await district.send(system.wechat, district.text(OPENID, "查询 123", 6004))).text)
    assert "格式不正确" in bad["Content"]
    assert await system.db.suggestions.count_documents({}) == 1


async def test_bad_input_is_refused_logged_without_personal_data_and_nothing_is_published(system, caplog):
    district, town = system.wechat_accounts
    spy = await Spy.bind(system.amqp_url)
    url = f"/wechat/{district.appid}"
    good = district.text(OPENID, "希望修路", msg_id=7001)
    try:
        with caplog.at_level("INFO"):
            cases = [
                (await system.wechat.post(url, params={**district.query(), "signature": "0" * 40}, content=good), 403),
                (
                    await system.wechat.post(
                        url, params={k: v for k, v in district.query().items() if k != "signature"}, content=good
                    ),
                    403,
                ),
                (await system.wechat.post(url, params=district.query(timestamp=int(time.time()) - 600), content=good), 403),
                (await town.send_sealed(system.wechat, good, sealed_for=district.appid), 403),  # another account's payload
                (await district.send(system.wechat, "<xml><ToUserName>gh"), 400),
                (await district.send(system.wechat, BILLION_LAUGHS_XML), 400),
                (await district.send(system.wechat, f"<xml><Content>{'长' * 40_000}</Content></xml>"), 413),
            ]
            bad_seal = district.query()
            encrypted = aes_seal(district.encoding_aes_key, district.appid, good)
            bad_seal |= {"encrypt_type": "aes", "msg_signature": "0" * 40}
            envelope = f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
            cases.append((await system.wechat.post(url, params=bad_seal, content=envelope), 403))
            for response, status in cases:
                assert response.status_code == status, (response.status_code, response.text)

            video = await district.send(system.wechat, district.message(OPENID, "video", 7002, None, "<MediaId>m</MediaId>"))
            assert video.text == "success"
            for text in ("", "   ", "👍👍🙏🙏", "？？？"):
                reply = district.open_reply((await district.send(system.wechat, district.text(OPENID, text, 7003))).text)
                assert "请用文字写下您的建议" in reply["Content"]
        assert await spy.drain() == []
        assert await system.db.suggestions.count_documents({}) == 0
        logs = [r.msg for r in caplog.records if isinstance(r.msg, dict)]
        rejected = [e for e in logs if e["event"] == "wechat_request_rejected"]
        assert len(rejected) >= len(cases) - 1  # the body-size limit answers before the route, with its own line
        assert OPENID not in json.dumps(logs, default=str, ensure_ascii=False)
    finally:
        await spy.close()


async def test_outside_the_window_the_user_is_told_and_nothing_is_published(system, monkeypatch):
    from datetime import date, timedelta

    district = system.wechat_accounts[0]
    intake = system.apps["wechat"].state.intake
    closed = intake.campaign.model_copy(
        update={"opens_on": date.today() + timedelta(days=10), "closes_on": date.today() + timedelta(days=20)}
    )
    monkeypatch.setattr(intake, "campaign", closed)
    spy = await Spy.bind(system.amqp_url)
    try:
        text = district.open_reply((await district.send(system.wechat, district.text(OPENID, "希望修路", 8001))).text)
        voice = district.open_reply((await district.send(system.wechat, district.voice(OPENID, "m", 8002, "希望修路"))).text)
        for reply in (text, voice):
            assert "不在征集期内" in reply["Content"]
        assert await spy.drain() == []
    finally:
        await spy.close()
