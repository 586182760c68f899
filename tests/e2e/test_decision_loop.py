"""The decision loop end to end (issue 7): residents submit on the web, on WeChat and on the TV hotline; the suggestions
are classified and clustered; the district office makes the cluster a project, adopts its suggestions, answers the
others with a reason, releases; the notifier tells each submitter once, on the channel they used, through local fakes
of the WeChat and Twilio APIs; the store counts the outcomes and the notifications delivered. A notifier restarted
while messages are still going out sends the rest, and nothing twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any

import pytest

from minsheng_core.events import utc_now
from tests.conftest import TEST_OPENIDS
from tests.fakes.twilio_voice import TwilioCall
from tests.helpers import eventually
from tests.notifier_support import DISTRICT, SMS_FROM, STATUS_PAGE, Env, notifier_env

pytestmark = pytest.mark.integration

OPENID = TEST_OPENIDS[0]  # the suite-wide log scanner fails the run if it is ever logged
LUANHE = {"town": "滦河镇", "village": "石佛村"}
# The same road in the same village, from three channels: one cluster.
ROAD_WEB = "石佛村的幸福路坑太多了，希望重新硬化"
ROAD_WECHAT = "建议把滦河镇石佛村幸福路拓宽"
ROAD_CALLS = [
    "滦河镇石佛村幸福路一下雨全是泥，盼望修一修",
    "我是滦河镇石佛村的，幸福路坑坑洼洼，老人孩子走路常摔跤，希望修一修",
    "滦河镇石佛村幸福路太窄了，两辆车错不开，希望拓宽硬化",
    "石佛村幸福路上大车多，路面全压坏了，滦河镇能不能给重新铺一下",
]
# Unrelated: a stadium on the web without contact, a railway on the hotline.
STADIUM = "滦河镇希望建一座大型体育馆，能举办全国比赛"
RAILWAY = "建议滦河镇修一条通往北京的高速铁路"
PHONES = ["+8613800001111", "+8615100002222", "+8618600003333", "+8613700004444", "+8613600005555"]
WEB_PHONE = "13912345678"
PROJECT = "石佛村幸福路硬化"
NOT_ADOPTED = {"stadium": "beyond_means", "railway": "outside_remit"}


@dataclass
class Submitter:
    """One resident's suggestion as the store has it, and how they can be reached."""

    doc: dict[str, Any]
    channel: str  # the notification channel they should be told on
    to: str | None = None  # phone number (E.164) or openid
    access_code: str | None = None

    @property
    def sid(self) -> str:
        return self.doc["_id"]

    @property
    def code(self) -> str:
        return self.doc["tracking_code"]


@pytest.fixture
async def notifier(amqp_url: str, mongo_db: tuple[str, str], tmp_path: Path, system: Any) -> AsyncIterator[Env]:
    """The notifier's settings on the system's vhost and database, on the wall clock without quiet hours."""
    quiet = {"quiet_hours_start": time(0, 0), "quiet_hours_end": time(0, 0)}
    async with notifier_env(amqp_url, mongo_db[0], mongo_db[1], tmp_path, clock=utc_now, **quiet) as env:
        yield env


async def classified(system: Any, **query: Any) -> dict[str, Any]:
    """The suggestion once the store has it classified (and clustered)."""
    return await eventually(lambda: system.db.suggestions.find_one({**query, "status": "classified"}), timeout=45)


async def by_web(system: Any, text: str, phone: str | None = None) -> Submitter:
    body: dict[str, Any] = {"text": text, "location": LUANHE}
    if phone:
        body["contact"] = {"phone": phone}
    response = await system.web.post("/api/v1/suggestions", json=body)
    assert response.status_code == 202, response.text
    receipt = response.json()
    doc = await classified(system, _id=receipt["suggestion_id"])
    return Submitter(doc, "sms" if phone else "web", "+86" + phone if phone else None, receipt["access_code"])


async def by_wechat(system: Any, text: str, msg_id: int) -> Submitter:
    district = system.wechat_accounts[0]
    assert district.appid == DISTRICT
    response = await district.send(system.wechat, district.text(OPENID, text, msg_id=msg_id))
    assert response.status_code == 200, response.text
    doc = await classified(system, channel_ref=f"{district.appid}:{msg_id}")
    assert doc["tracking_code"] in district.open_reply(response.text)["Content"]
    return Submitter(doc, "wechat_message", OPENID)


async def by_phone(system: Any, text: str, caller: str) -> Submitter:
    settings = system.hotline_settings
    call = TwilioCall(settings.twilio_auth_token.get_secret_value(), settings.public_url, caller=caller)
    answer = await call.post(system.hotline, "/twilio/voice/speech", SpeechResult=text, Confidence="0.92")
    assert answer.status_code == 200, answer.text
    return Submitter(await classified(system, channel_ref=call.call_sid), "sms", caller)


async def submit(system: Any, callers: int) -> tuple[list[Submitter], dict[str, Submitter]]:
    """The road's submitters (web with a mobile, WeChat, ``callers`` hotline calls) and the two unrelated ones."""
    assert 1 <= callers <= min(len(ROAD_CALLS), len(PHONES) - 1)
    road = [await by_web(system, ROAD_WEB, WEB_PHONE), await by_wechat(system, ROAD_WECHAT, 7001)]
    for i in range(callers):
        road.append(await by_phone(system, ROAD_CALLS[i], PHONES[i + 1]))
    others = {"stadium": await by_web(system, STADIUM), "railway": await by_phone(system, RAILWAY, PHONES[0])}
    cluster = road[0].doc["cluster_id"]
    assert cluster and [s.doc["cluster_id"] for s in road] == [cluster] * len(road)
    assert all(s.doc["cluster_id"] != cluster for s in others.values())
    assert {s.doc["unit"] for s in [*road, *others.values()]} == {"luanhe"}
    return road, others


async def decide(system: Any, road: list[Submitter], others: dict[str, Submitter]) -> dict[str, dict[str, Any]]:
    """As the district office: a project from the cluster, its suggestions adopted, the others not, all released; the
    released decisions by suggestion id."""
    admin = system.staff_headers
    cluster = road[0].doc["cluster_id"]
    made = await system.store.post("/api/v1/projects", json={"title": PROJECT, "cluster_id": cluster}, headers=admin)
    assert made.status_code == 201, made.text
    project = made.json()
    assert sorted(project["suggestion_ids"]) == sorted(s.sid for s in road)

    adopt = {"cluster_id": cluster, "outcome": "adopted", "project_id": project["project_id"]}
    drafted = await system.store.post("/api/v1/decisions/bulk", json=adopt, headers=admin)
    assert drafted.status_code == 200, drafted.text
    assert sorted(d["suggestion_id"] for d in drafted.json()["decisions"]) == sorted(s.sid for s in road)
    for name, reason in NOT_ADOPTED.items():
        body = {"suggestion_ids": [others[name].sid], "outcome": "not_adopted", "reason": reason}
        answer = await system.store.post("/api/v1/decisions/bulk", json=body, headers=admin)
        assert answer.status_code == 200, answer.text
    everyone = [*road, *others.values()]
    released = await system.store.post(
        "/api/v1/decisions/release", json={"suggestion_ids": [s.sid for s in everyone]}, headers=admin
    )
    assert released.status_code == 200, released.text
    assert released.json()["released"] == len(everyone)
    decisions = {d["suggestion_id"]: d for d in released.json()["decisions"]}
    for s in everyone:  # explanations drafted from the campaign's templates, filled in
        explanation = decisions[s.sid]["explanation"]
        assert s.code in explanation and "{" not in explanation
    assert all(f"“{PROJECT}”" in decisions[s.sid]["explanation"] for s in road)

    async def stored() -> dict[str, dict[str, Any]] | None:
        docs = await system.db.suggestions.find({"_id": {"$in": [s.sid for s in everyone]}}).to_list(None)
        done = len(docs) == len(everyone) and all(d.get("decision", {}).get("decision_id") for d in docs)
        return {d["_id"]: d["decision"] | {"explanation": decisions[d["_id"]]["explanation"]} for d in docs} if done else None

    return await eventually(stored)


def outcome_words(decision: dict[str, Any]) -> str:
    return "已被采纳" if decision["outcome"] == "adopted" else "暂未采纳"


async def counted(system: Any, expected: dict[str, int]) -> dict[str, Any]:
    """The outcomes report once it counts the expected notifications per channel (NotificationSent reached the store)."""

    told: dict[str, int] = {}

    async def probe() -> dict[str, Any] | None:
        report = (await system.store.get("/api/v1/reports/outcomes", headers=system.staff_headers)).json()
        told.clear()
        told.update({n["channel"]: n["count"] for n in report["notifications"] if n["count"]})
        return report if told == expected else None

    try:
        return await eventually(probe, timeout=30)
    except AssertionError:
        raise AssertionError(f"notifications counted {told}, expected {expected}") from None


def assert_told_once(env: Env, submitters: list[Submitter], decisions: dict[str, dict[str, Any]]) -> None:
    """Every submitter with a phone got exactly one SMS, the WeChat user exactly one message, nobody else anything."""
    sms = env.sms()
    by_number = Counter(m["to"] for m in sms)
    phones = [s.to for s in submitters if s.channel == "sms"]
    assert by_number == Counter(phones), by_number
    for s in submitters:
        if s.channel != "sms":
            continue
        [message] = [m for m in sms if m["to"] == s.to]
        assert message["from"] == SMS_FROM
        assert f"查询码{s.code}" in message["body"] and outcome_words(decisions[s.sid]) in message["body"]
        assert message["body"].endswith(f"{STATUS_PAGE}?tracking_code={s.code}")
    chats = [s for s in submitters if s.channel == "wechat_message"]
    wechat = env.wechat_messages()
    assert len(wechat) == len(chats) == 1
    [chat], [message] = chats, wechat
    assert (message["endpoint"], message["appid"], message["body"]["touser"]) == ("custom", DISTRICT, OPENID)
    content = message["body"]["text"]["content"]
    assert chat.code in content and "已被采纳" in content and decisions[chat.sid]["explanation"] in content


async def test_each_submitter_hears_once_on_their_channel_and_the_outcomes_are_counted(system: Any, notifier: Env):
    async with notifier.running():  # before the first submission: its queue must exist to learn the contacts
        road, others = await submit(system, callers=1)
        everyone = [*road, *others.values()]
        decisions = await decide(system, road, others)
        ids = [decisions[s.sid]["decision_id"] for s in everyone]
        records = await notifier.settled(*ids)

        assert [r["channel"] for r in records] == [s.channel for s in everyone]
        assert all(len(r["attempts"]) == 1 for r in records)
        assert_told_once(notifier, everyone, decisions)
        events = await notifier.sent_events()
        assert sorted((e.suggestion_id, e.body.decision_id, e.body.channel.value) for e in events) == sorted(
            (s.sid, decisions[s.sid]["decision_id"], s.channel) for s in everyone
        )

    # The web submitter without contact reads the decision and its explanation on the status page.
    stadium = others["stadium"]
    status = await system.web.get(f"/api/v1/suggestions/{stadium.code}", params={"access_code": stadium.access_code})
    assert status.status_code == 200
    shown = status.json()["decision"]
    assert (shown["outcome"], shown["reason"]) == ("not_adopted", "beyond_means")
    assert shown["explanation"] == decisions[stadium.sid]["explanation"] and "财力" in shown["explanation"]
    wrong = await system.web.get(f"/api/v1/suggestions/{stadium.code}", params={"access_code": "000000"})
    assert wrong.status_code == 404 and "财力" not in wrong.text  # the code alone does not open it

    # The outcomes report: adopted and not adopted by reason, and the notifications delivered per channel.
    # SMS: the web submitter with a mobile and both callers; WeChat: one; the status page: the one without contact.
    report = await counted(system, {"sms": 3, "wechat_message": 1, "web": 1})
    overall = report["overall"]
    assert (overall["adopted"], overall["not_adopted"], overall["total"]) == (len(road), 2, len(everyone))
    assert {r: n for r, n in overall["not_adopted_by_reason"].items() if n} == {"beyond_means": 1, "outside_remit": 1}
    assert report["notifications_total"] == len(everyone)  # each decision once, the status page included
    for s in everyone:
        doc = await system.db.suggestions.find_one({"_id": s.sid})
        assert [(n["decision_id"], n["channel"]) for n in doc["notifications"]] == [(decisions[s.sid]["decision_id"], s.channel)]


async def test_a_notifier_restarted_midway_sends_the_rest_and_nothing_twice(system: Any, notifier: Env):
    async with notifier.running(dispatch_concurrency=1):
        road, others = await submit(system, callers=4)
        everyone = [*road, *others.values()]
        phones = [s for s in everyone if s.channel == "sms"]
        assert len(phones) == 6
        # Twilio answers slowly: one message at a time goes out, the rest wait their turn.
        notifier.twilio.state.delay_next = len(phones)
        notifier.twilio.state.delay_seconds = 0.5
        decisions = await decide(system, road, others)

        async def some_sent() -> bool:
            return len(notifier.sms()) >= 2

        await eventually(some_sent, interval=0.02)
    # Stopped while messages were still to send: what was in flight finished within the grace period.
    ids = [decisions[s.sid]["decision_id"] for s in everyone]
    states = [(await notifier.record(i) or {}).get("state") for i in ids]
    assert "sending" not in states and "pending" in states, states
    assert 2 <= len(notifier.sms()) < len(phones)

    async with notifier.running():  # a fresh instance
        records = await notifier.settled(*ids)

    assert [r["channel"] for r in records] == [s.channel for s in everyone]
    assert all(len(r["attempts"]) == 1 for r in records)
    assert_told_once(notifier, everyone, decisions)
    # Twilio was asked once per number: nothing was even attempted twice.
    assert len(notifier.twilio.state.requests) == len(phones)
    events = await notifier.sent_events()
    assert sorted(e.body.decision_id for e in events) == sorted(ids)
    report = await counted(system, {"sms": len(phones), "wechat_message": 1, "web": 1})  # each recorded once
    assert report["notifications_total"] == len(everyone)
