"""The notifier end to end: events in on the real broker, records in the real store, messages out to local fakes of
the WeChat and Twilio APIs. Time is the test's own clock, so quiet hours and backoff are crossed without waiting."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from minsheng_core.events import (
    Channel,
    Decision,
    Outcome,
    PersonalData,
    Reason,
    SuggestionContent,
    SuggestionDecided,
    SuggestionReceived,
)
from minsheng_core.ids import suggestion_id_for, tracking_code_for
from minsheng_core.staff import Role, StaffDirectory
from tests.conftest import TEST_OPENIDS
from tests.helpers import eventually
from tests.notifier_support import DISTRICT, MORNING, SHANGHAI, SMS_FROM, STATUS_PAGE, TEMPLATE_ID, TOWN, Env, notifier_env

LONG_AGO = MORNING - timedelta(days=4)  # WeChat's 48-hour window is long over
TEST_SECRET = b"notifier-tests"
# The suite-wide log scanner knows these openids: a leak of either fails the run.
RECENT_OPENID, LAPSED_OPENID, OTHER_OPENID = TEST_OPENIDS
PHONES = ("13912345678", "13800001111", "15100002222", "18600003333", "13700004444", "13600005555", "13500006666")


@pytest.fixture
async def env(amqp_url: str, mongo_db: tuple[str, str], tmp_path: Path) -> AsyncIterator[Env]:
    async with notifier_env(amqp_url, mongo_db[0], mongo_db[1], tmp_path) as environment:
        yield environment


def received(
    ref: str,
    channel: Channel,
    *,
    phone: str | None = None,
    openid: str | None = None,
    account: str | None = None,
    submitted_at: datetime = MORNING - timedelta(hours=2),
) -> SuggestionReceived:
    sid = suggestion_id_for(channel.value, ref)
    return SuggestionReceived(
        suggestion_id=sid,
        body=SuggestionContent(
            channel=channel,
            channel_ref=ref,
            account=account,
            campaign="2020",
            text="村里到镇上的路一下雨就是泥，希望硬化",
            tracking_code=tracking_code_for(TEST_SECRET, sid),
            submitted_at=submitted_at,
        ),
        personal=PersonalData(phone=phone, wechat_openid=openid),
    )


def decided(
    suggestion: SuggestionReceived, outcome: Outcome = Outcome.ADOPTED, explanation: str | None = None
) -> SuggestionDecided:
    extra: dict[str, Any] = {
        Outcome.ADOPTED: {"project_id": "proj-road-1"},
        Outcome.NOT_ADOPTED: {"reason": Reason.ALREADY_PLANNED},
        Outcome.REFERRED: {"referred_to": "区交通运输局"},
        Outcome.MERGED: {"merged_into": "another-suggestion"},
    }[outcome]
    return SuggestionDecided(
        suggestion_id=suggestion.suggestion_id,
        body=Decision(
            decision_id="dec-" + uuid.uuid4().hex[:16],
            outcome=outcome,
            explanation=explanation or "您反映的道路硬化问题已纳入2020年民心工程，预计明年汛期前完工。",
            decided_by="admin",
            released_by="admin",
            released_at=MORNING - timedelta(minutes=5),
            **extra,
        ),
    )


def code(suggestion: SuggestionReceived) -> str:
    return suggestion.body.tracking_code


async def test_each_submitter_is_told_once_on_the_channel_they_used(env: Env, log_events: Any):
    web = received("web-1", Channel.WEB, phone="139-1234-5678")
    hotline = received("CA-hotline-1", Channel.HOTLINE, phone="+8613800001111")
    recent = received("wx-1", Channel.WECHAT, openid=RECENT_OPENID, account=DISTRICT, submitted_at=MORNING - timedelta(hours=3))
    lapsed = received("wx-2", Channel.WECHAT, openid=LAPSED_OPENID, account=DISTRICT, submitted_at=LONG_AGO)
    silent = received("web-2", Channel.WEB)  # left no contact
    landline = received("visit-1", Channel.DOOR_TO_DOOR, phone="0314-2051234")  # no SMS to a landline
    suggestions = [web, hotline, recent, lapsed, silent, landline]
    decisions = [
        decided(web),
        decided(hotline, Outcome.NOT_ADOPTED, "该路段已列入市级改造计划，将由市交通局统一实施，感谢您的关注。"),
        decided(recent),
        decided(lapsed, Outcome.REFERRED),
        decided(silent),
        decided(landline),
    ]
    ids = [d.body.decision_id for d in decisions]

    async with env.running():
        await env.publish(*suggestions, *decisions)
        docs = await env.settled(*ids)

        assert [d["channel"] for d in docs] == ["sms", "sms", "wechat_message", "wechat_template", "web", "web"]
        assert all(len(d["attempts"]) == 1 and d["attempts"][0]["outcome"] in ("sent", "status_page") for d in docs)
        assert all(d["event_published"] for d in docs)

        # SMS: to the E.164 number, with the code, the outcome, the explanation and the status page.
        by_number = {m["to"]: m for m in env.sms()}
        assert sorted(by_number) == ["+8613800001111", "+8613912345678"]
        assert len(env.sms()) == 2
        first = by_number["+8613912345678"]["body"]
        assert first.startswith(f"【民心工程】您的建议（查询码{code(web)}）已被采纳")
        assert first.endswith(f"{STATUS_PAGE}?tracking_code={code(web)}")
        assert "已纳入2020年民心工程" in first and len(first) <= env.settings.sms_max_chars
        second = by_number["+8613800001111"]["body"]
        assert "暂未采纳" in second and "市交通局" in second and by_number["+8613800001111"]["from"] == SMS_FROM

        # WeChat: a customer-service message inside the 48 hours, a template message after them.
        [custom] = [m for m in env.wechat_messages() if m["endpoint"] == "custom"]
        [template] = [m for m in env.wechat_messages() if m["endpoint"] == "template"]
        assert custom["appid"] == DISTRICT and custom["body"]["touser"] == RECENT_OPENID
        assert code(recent) in custom["body"]["text"]["content"] and "已被采纳" in custom["body"]["text"]["content"]
        assert template["body"]["touser"] == LAPSED_OPENID and template["body"]["template_id"] == TEMPLATE_ID
        assert template["body"]["data"]["keyword1"]["value"] == code(lapsed)
        assert template["body"]["data"]["keyword2"]["value"] == "已转交办理"
        assert template["body"]["url"] == f"{STATUS_PAGE}?tracking_code={code(lapsed)}"
        assert len(env.wechat_messages()) == 2

        # One NotificationSent per decision, on its channel.
        events = await env.sent_events()
        assert sorted((e.body.decision_id, e.body.channel.value, e.body.attempts) for e in events) == sorted(
            (d["_id"], d["channel"], 1) for d in docs
        )
        assert {e.suggestion_id for e in events} == {s.suggestion_id for s in suggestions}

        # The same decisions delivered again (a redelivery, a replay from parking): nobody hears twice.
        await env.publish(*decisions, *suggestions)
        await eventually(_logged(log_events, "decision_already_known", len(decisions)))
        env.clock.advance(timedelta(hours=1))
        await env.settled(*ids)
        assert len(env.sms()) == 2 and len(env.wechat_messages()) == 2
        assert await env.sent_events() == []


def _logged(log_events: Any, event: str, n: int) -> Any:
    async def probe() -> bool:
        return len([e for e in log_events() if e.get("event") == event]) >= n

    return probe


async def test_outside_the_window_without_a_template_the_status_page_is_all_there_is(env: Env):
    lapsed = received("wx-town-1", Channel.WECHAT, openid=OTHER_OPENID, account=TOWN, submitted_at=MORNING - timedelta(days=3))
    # The same user wrote again yesterday, on another suggestion: that reopens the window for both.
    again = received("wx-town-2", Channel.WECHAT, openid=OTHER_OPENID, account=TOWN, submitted_at=MORNING - timedelta(hours=20))
    before_again = decided(lapsed)

    async with env.running():
        await env.publish(lapsed, before_again)
        [doc] = await env.settled(before_again.body.decision_id, state="given_up")
        assert doc["reason"] == "no_template" and doc["channel"] == "wechat_template"
        assert env.wechat_messages() == []

        await env.publish(again)
        after_again = decided(lapsed, Outcome.MERGED)
        await env.publish(after_again)
        await env.settled(after_again.body.decision_id)
        [message] = env.wechat_messages()
        assert message["endpoint"] == "custom" and message["appid"] == TOWN and message["body"]["touser"] == OTHER_OPENID
        assert "已与同类建议合并办理" in message["body"]["text"]["content"]


async def test_wechat_refusing_the_customer_service_message_falls_back_to_the_template(env: Env):
    recent = received("wx-3", Channel.WECHAT, openid=RECENT_OPENID, account=DISTRICT, submitted_at=MORNING - timedelta(hours=1))
    decision = decided(recent)
    env.wechat.state.outside_window.add(RECENT_OPENID)  # WeChat says 45015: the user's window is closed after all

    async with env.running():
        await env.publish(recent, decision)
        [doc] = await env.settled(decision.body.decision_id)

    assert doc["channel"] == "wechat_template"
    assert [m["endpoint"] for m in env.wechat_messages()] == ["template"]
    assert "45015" in doc["attempts"][0]["note"]


async def test_quiet_hours_hold_messages_until_morning_but_not_the_status_page(env: Env):
    env.clock.now = datetime(2019, 11, 20, 22, 30, tzinfo=SHANGHAI).astimezone(UTC)
    caller = received("CA-night", Channel.HOTLINE, phone="13912345678")
    silent = received("web-night", Channel.WEB)
    night_call, night_web = decided(caller), decided(silent)

    async with env.running():
        await env.publish(caller, silent, night_call, night_web)
        await env.settled(night_web.body.decision_id)

        async def deferred() -> dict[str, Any] | None:
            doc = await env.record(night_call.body.decision_id)
            return doc if doc and doc["waiting_for"] == "quiet_hours" else None

        doc = await eventually(deferred)
        assert doc["state"] == "pending"
        morning = datetime(2019, 11, 21, 8, 0, tzinfo=SHANGHAI).astimezone(UTC)
        assert doc["due_at"] == morning and doc["attempts"] == []
        assert env.sms() == []

        env.clock.now = morning + timedelta(seconds=1)
        [doc] = await env.settled(night_call.body.decision_id)
        assert doc["sent_at"] >= morning
        assert [m["to"] for m in env.sms()] == ["+8613912345678"]


async def test_failures_are_retried_with_backoff_then_given_up_with_the_reason(env: Env):
    caller = received("CA-fail", Channel.HOTLINE, phone="13912345678")
    decision = decided(caller)
    env.twilio.state.fail_next = 100  # Twilio answers 500 to everything

    async with env.running():
        await env.publish(caller, decision)
        for attempt in (1, 2):
            [doc] = await env.settled(decision.body.decision_id, state="failed")
            await eventually(lambda n=attempt: _attempts(env, decision, n))
            doc = await env.record(decision.body.decision_id)
            assert doc is not None and doc["state"] == "failed"
            # 60 s doubled per failure, with jitter between half and all of it.
            nominal = 60 * 2 ** (attempt - 1)
            delay = doc["due_at"] - env.clock.now
            assert timedelta(seconds=nominal / 2 - 1) <= delay <= timedelta(seconds=nominal + 1)
            env.clock.advance(delay + timedelta(seconds=1))
        [doc] = await env.settled(decision.body.decision_id, state="given_up")

    assert [(a["outcome"], a["error"], a["code"]) for a in doc["attempts"]] == [("failed", "twilio_error", 500)] * 3
    assert doc["reason"].startswith("gave up after 3 attempts: twilio_error 500")
    assert env.sms() == []
    assert len(env.twilio.state.requests) == 3
    assert await env.sent_events() == []


async def _attempts(env: Env, decision: SuggestionDecided, n: int) -> bool:
    doc = await env.record(decision.body.decision_id)
    return doc is not None and len(doc["attempts"]) == n


async def test_a_wechat_api_that_times_out_is_tried_again_later_and_then_succeeds(env: Env):
    recent = received(
        "wx-slow", Channel.WECHAT, openid=RECENT_OPENID, account=DISTRICT, submitted_at=MORNING - timedelta(hours=1)
    )
    decision = decided(recent)
    env.wechat.state.delay_next = 3  # the client's three tries for a token all time out (0.5 s each)
    env.wechat.state.delay_seconds = 1.5

    async with env.running():
        await env.publish(recent, decision)
        [doc] = await env.settled(decision.body.decision_id, state="failed")
        assert doc["attempts"][0]["error"] == "wechat_unreachable"
        assert "ReadTimeout" in doc["attempts"][0]["detail"]
        assert env.wechat_messages() == []
        env.clock.advance(timedelta(minutes=2))
        [doc] = await env.settled(decision.body.decision_id)

    assert [a["outcome"] for a in doc["attempts"]] == ["failed", "sent"]
    assert len(env.wechat_messages()) == 1
    [event] = await env.sent_events()
    assert event.body.attempts == 2 and event.body.channel.value == "wechat_message"


async def test_refusals_that_cannot_succeed_are_given_up_at_once(env: Env):
    opted_out = received("CA-optout", Channel.HOTLINE, phone="13912345678")
    unfollowed = received("wx-gone", Channel.WECHAT, openid=OTHER_OPENID, account=DISTRICT, submitted_at=LONG_AGO)
    env.twilio.state.unsubscribed.add("+8613912345678")
    env.wechat.state.errcodes[OTHER_OPENID] = 43004  # require subscribe
    env.wechat.state.echo_openid_in_errmsg = True
    sms_decision, wechat_decision = decided(opted_out), decided(unfollowed)

    async with env.running():
        await env.publish(opted_out, unfollowed, sms_decision, wechat_decision)
        sms_doc, wechat_doc = await env.settled(sms_decision.body.decision_id, wechat_decision.body.decision_id, state="given_up")

    assert sms_doc["reason"] == "twilio_error 400 code 21610" and len(sms_doc["attempts"]) == 1
    assert wechat_doc["reason"] == "wechat_error 43004" and len(wechat_doc["attempts"]) == 1
    assert OTHER_OPENID not in json.dumps(wechat_doc, default=str)


async def test_a_decision_before_its_suggestion_waits_for_the_contact(env: Env):
    caller = received("CA-late", Channel.HOTLINE, phone="13912345678")
    never = received("web-never", Channel.WEB, phone="13800001111")  # its SuggestionReceived never reaches the notifier
    early, orphan = decided(caller), decided(never)

    async with env.running():
        await env.publish(early, orphan)

        async def waiting() -> bool:
            docs = [await env.record(d.body.decision_id) for d in (early, orphan)]
            return all(d is not None and d["waiting_for"] == "contact" for d in docs)

        await eventually(waiting)
        await env.publish(caller)
        [doc] = await env.settled(early.body.decision_id)
        assert doc["channel"] == "sms" and [m["to"] for m in env.sms()] == ["+8613912345678"]

        env.clock.advance(timedelta(seconds=301))  # the contact wait is over: the status page it is
        [doc] = await env.settled(orphan.body.decision_id)
        assert doc["channel"] == "web" and doc["attempts"][0]["note"] == "no_contact"
        assert len(env.sms()) == 1


async def test_a_restart_midway_sends_the_rest_and_nothing_twice(env: Env):
    callers = [received(f"CA-restart-{i}", Channel.HOTLINE, phone=phone) for i, phone in enumerate(PHONES)]
    decisions = [decided(c) for c in callers]
    env.twilio.state.delay_next = len(callers)
    env.twilio.state.delay_seconds = 0.3

    async with env.running(dispatch_concurrency=1):
        await env.publish(*callers, *decisions)
        await eventually(lambda: _sms_count(env, 2), interval=0.02)
    # Stopped while some were still to send (what was in flight finished within the grace period).
    states = [(await env.record(d.body.decision_id) or {}).get("state") for d in decisions]
    assert "pending" in states and "sending" not in states
    sent_before = len(env.sms())
    assert sent_before < len(callers)

    async with env.running():
        docs = await env.settled(*(d.body.decision_id for d in decisions))

    assert sorted(m["to"] for m in env.sms()) == sorted("+86" + p for p in PHONES)
    assert all(len(d["attempts"]) == 1 for d in docs)
    events = await env.sent_events()
    assert sorted(e.body.decision_id for e in events) == sorted(d.body.decision_id for d in decisions)


async def _sms_count(env: Env, n: int) -> bool:
    return len(env.sms()) >= n


async def test_an_interrupted_send_is_never_resent_by_itself_and_staff_may_resend_it(env: Env):
    caller = received("CA-crash", Channel.HOTLINE, phone="13912345678")
    decision = decided(caller)
    env.twilio.state.delay_next = 1
    env.twilio.state.delay_seconds = 1.0  # shorter than the client's timeout, longer than the shutdown grace
    decision_id = decision.body.decision_id

    async with env.running(shutdown_grace_seconds=0.1):
        await env.publish(caller, decision)
        await env.settled(decision_id, state="sending")
    # The process went away mid-request: Twilio got the message anyway, the record could not say so.
    await eventually(lambda: _sms_count(env, 1))
    assert (await env.record(decision_id) or {})["state"] == "sending"

    directory = StaffDirectory(env.db)
    admin = await directory.create("notify-admin", "a test password", Role.ADMIN, "区办管理员")
    supervisor = await directory.create("notify-super", "a test password", Role.SUPERVISOR, "督考办")
    unit_staff = await directory.create("notify-unit", "a test password", Role.UNIT_STAFF, "双塔山镇", "shuangtashan")
    as_admin = {"Authorization": "Bearer " + await directory.open_session(admin)}
    as_supervisor = {"Authorization": "Bearer " + await directory.open_session(supervisor)}
    as_unit = {"Authorization": "Bearer " + await directory.open_session(unit_staff)}

    async with env.running() as client:
        env.clock.advance(timedelta(seconds=121))
        [doc] = await env.settled(decision_id, state="unknown")
        assert "may or may not have arrived" in doc["reason"]
        for _ in range(3):  # several more rounds of the dispatcher: still not resent
            env.clock.advance(timedelta(minutes=30))
            await _rounds(env, 2)
        assert len(env.sms()) == 1 and (await env.record(decision_id) or {})["state"] == "unknown"

        page = (await client.get("/api/v1/notifications", params={"state": "unknown"}, headers=as_supervisor)).json()
        assert page["counts"]["unknown"] == 1 and [i["decision_id"] for i in page["items"]] == [decision_id]
        assert (await client.get("/api/v1/notifications")).status_code == 401
        assert (await client.get("/api/v1/notifications", headers=as_unit)).status_code == 403
        assert (await client.post(f"/api/v1/notifications/{decision_id}/resend", headers=as_supervisor)).status_code == 403

        answer = await client.post(f"/api/v1/notifications/{decision_id}/resend", headers=as_admin)
        assert answer.status_code == 200 and answer.json()["state"] in ("pending", "sending", "sent")
        [doc] = await env.settled(decision_id)
        assert len(env.sms()) == 2
        again = await client.post(f"/api/v1/notifications/{decision_id}/resend", headers=as_admin)
        assert again.status_code == 409

        one = (await client.get(f"/api/v1/notifications/{decision_id}", headers=as_admin)).json()
        assert (
            one["state"] == "sent" and one["resends"][0]["by"] == "notify-admin" and one["resends"][0]["from_state"] == "unknown"
        )
        assert [a["outcome"] for a in one["attempts"]] == ["sent"]
        assert (await client.get("/api/v1/notifications/nope", headers=as_admin)).status_code == 404

    [audit] = await env.db.audit_log.find({"action": "resend_notification"}).to_list(None)
    assert audit["actor"] == "notify-admin" and audit["target"] == decision_id
    [event] = await env.sent_events()
    assert event.body.decision_id == decision_id


async def _rounds(env: Env, n: int) -> None:
    """Wait until the dispatcher has gone through ``n`` more rounds."""
    assert env.app is not None
    dispatcher = env.app.state.dispatcher
    target = dispatcher.rounds + n

    async def probe() -> bool:
        return dispatcher.rounds >= target

    await eventually(probe)


async def test_contacts_are_sealed_at_rest_and_never_logged(env: Env, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    web = received("web-private", Channel.WEB, phone="13912345678")
    chat = received("wx-private", Channel.WECHAT, openid=RECENT_OPENID, account=DISTRICT)
    decisions = [decided(web), decided(chat)]

    async with env.running():
        await env.publish(web, chat, *decisions)
        await env.settled(*(d.body.decision_id for d in decisions))

    stored = json.dumps(await env.db.notifier_contacts.find().to_list(None), default=str)
    stored += json.dumps(await env.db.notifications.find().to_list(None), default=str)
    assert "13912345678" not in stored and RECENT_OPENID not in stored
    assert stored.count("gcm1.") == 2
    logged = "\n".join(str(r.msg) + " " + r.getMessage() for r in caplog.records)
    assert "notification_sent" in logged
    assert "13912345678" not in logged and "+8613912345678" not in logged and RECENT_OPENID not in logged


async def test_two_replicas_side_by_side_tell_each_submitter_once(env: Env):
    callers = [received(f"CA-replica-{i}", Channel.HOTLINE, phone=phone) for i, phone in enumerate(PHONES)]
    chats = [received(f"wx-replica-{i}", Channel.WECHAT, openid=RECENT_OPENID, account=DISTRICT) for i in range(3)]
    decisions = [decided(s) for s in [*callers, *chats]]

    async with env.running(dispatch_concurrency=2), env.running(dispatch_concurrency=2):
        await env.publish(*callers, *chats, *decisions)
        docs = await env.settled(*(d.body.decision_id for d in decisions))

    assert sorted(m["to"] for m in env.sms()) == sorted("+86" + p for p in PHONES)
    assert len(env.wechat_messages()) == len(chats)
    claims = await env.db.notification_claims.find().to_list(None)
    assert all(len(d["attempts"]) == 1 for d in docs), (docs, claims)
    assert len(await env.sent_events()) == len(decisions)


async def test_erased_personal_data_is_forgotten_and_not_brought_back(env: Env):
    from minsheng_core import erasures

    caller = received("CA-erase", Channel.HOTLINE, phone="13912345678")

    async with env.running(erasure_interval_seconds=0.1):
        await env.publish(caller)

        async def stored() -> bool:
            return await env.db.notifier_contacts.count_documents({"_id": caller.suggestion_id}) == 1

        await eventually(stored)
        await erasures.record_erasure(env.db, caller.suggestion_id, "notify-admin")

        async def forgotten() -> bool:
            return await env.db.notifier_contacts.count_documents({"_id": caller.suggestion_id}) == 0

        await eventually(forgotten)
        decision = decided(caller)
        await env.publish(caller, decision)  # a redelivery after the erasure, then the decision
        [doc] = await env.settled(decision.body.decision_id)

    assert doc["channel"] == "web" and doc["attempts"][0]["note"] == "contact_erased" and env.sms() == []
    assert await env.db.notifier_contacts.count_documents({}) == 0
