"""The webhook relay end to end: events published on the real broker reach a local HTTP subscriber, signed, without
personal data; a subscriber that is down for an hour (on the relay's injected clock) gets every event once, in order;
given-up deliveries are replayed; the admin API refuses bad input and anyone but administrators."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from minsheng_core.bus import Publisher, connect
from minsheng_core.events import (
    Channel,
    Classification,
    HouseholdVisited,
    Notification,
    NotificationChannel,
    NotificationSent,
    PersonalData,
    SuggestionClassified,
    SuggestionContent,
    SuggestionReceived,
    Visit,
)
from minsheng_core.staff import Role, StaffDirectory
from minsheng_webhooks import cli
from minsheng_webhooks.app import create_app
from minsheng_webhooks.settings import WebhookSettings
from minsheng_webhooks.signing import verify_signature
from tests.helpers import eventually

pytestmark = pytest.mark.integration
PHONE = "13812345678"
PHONE_IN_TEXT = "13900001111"


class ManualClock:
    """The relay's time, moved on by the test: an hour of outage takes no hour."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Receiver:
    """A subscriber's HTTP endpoint in a thread: checks every signature, answers 200, or 500 while ``failing``;
    ``stop()`` takes it off the network (connections refused) until ``start()``."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.secret = ""
        self.failing = False
        self.refuse: set[str] = set()  # event ids answered 422
        self.received: list[dict[str, Any]] = []  # verified requests answered 200
        self.refused = 0  # bad signatures
        self.requests = 0
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/minsheng/hook?token=abc"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests += 1
                headers = {k.lower(): v for k, v in self.headers.items()}
                ok = verify_signature(
                    receiver.secret,
                    body,
                    headers.get("x-minsheng-timestamp"),
                    headers.get("x-minsheng-signature"),
                    now=receiver.clock(),
                )
                if not ok:
                    receiver.refused += 1
                    status = 401
                elif receiver.failing:
                    status = 500
                elif headers.get("x-minsheng-event-id") in receiver.refuse:
                    status = 422
                else:
                    receiver.received.append({"headers": headers, "body": body, "path": self.path})
                    status = 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def event_ids(self) -> list[str]:
        return [r["headers"]["x-minsheng-event-id"] for r in self.received]


class Relay:
    def __init__(self, app, client: httpx.AsyncClient, publisher: Publisher, clock: ManualClock, db, settings) -> None:
        self.app, self.client, self.publisher, self.clock, self.db, self.settings = app, client, publisher, clock, db, settings
        self.admin: dict[str, str] = {}

    async def sign_in(self, username: str, role: Role, unit: str | None = None) -> dict[str, str]:
        directory = StaffDirectory(self.db)
        member = await directory.create(username, "a test password", role, username, unit)
        return {"Authorization": f"Bearer {await directory.open_session(member)}"}

    async def subscribe(self, receiver: Receiver, events: list[str]) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/webhooks/subscriptions", json={"url": receiver.url, "events": events}, headers=self.admin
        )
        assert response.status_code == 201, response.text
        created = response.json()
        receiver.secret = created["secret"]
        return created

    async def deliveries(self, subscription_id: str, state: str | None = None) -> list[dict[str, Any]]:
        params = {"limit": 500, **({"state": state} if state else {})}
        response = await self.client.get(
            f"/api/v1/webhooks/subscriptions/{subscription_id}/deliveries", params=params, headers=self.admin
        )
        assert response.status_code == 200, response.text
        return response.json()["items"]

    async def attempts(self, subscription_id: str) -> int:
        return sum(d["attempts"] for d in await self.deliveries(subscription_id))

    async def advance(self, subscription_id: str, **delta: float) -> None:
        """Move the relay's clock on and wait until the dispatcher made its next attempt."""
        before = await self.attempts(subscription_id)
        self.clock.advance(**delta)
        self.app.state.dispatcher.wake()

        async def attempted() -> bool:
            return await self.attempts(subscription_id) > before

        await eventually(attempted)


@pytest.fixture
async def relay(amqp_url, mongo_db) -> AsyncIterator[Relay]:
    clock = ManualClock()
    settings = WebhookSettings(
        environment="test",
        amqp_url=amqp_url,
        mongo_url=mongo_db[0],
        mongo_database=mongo_db[1],
        log_format="json",
        dispatch_interval_seconds=0.2,
        request_timeout_seconds=5,
    )
    app = create_app(settings, clock=clock, rng=random.Random(7))
    async with LifespanManager(app, startup_timeout=60) as manager:
        connection = await connect(amqp_url, "test-publisher")
        publisher = Publisher(connection)
        await publisher.start()
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhooks") as client:
            relay = Relay(app, client, publisher, clock, app.state.mongo[mongo_db[1]], settings)
            relay.admin = await relay.sign_in("hook-admin", Role.ADMIN)
            yield relay
        await connection.close()


@pytest.fixture
async def receiver(relay) -> AsyncIterator[Receiver]:
    receiver = Receiver(relay.clock)
    receiver.start()
    yield receiver
    receiver.stop()


def received(n: int, *, phone: str | None = PHONE) -> SuggestionReceived:
    now = datetime.now(UTC)
    return SuggestionReceived(
        suggestion_id=f"s-{n}",
        body=SuggestionContent(
            channel=Channel.WEB,
            channel_ref=f"ref-{n}",
            campaign="2020",
            text=f"村口路灯坏了，有事打{PHONE_IN_TEXT}",
            tracking_code="ABCDE-FGHJK",
            submitted_at=now,
        ),
        personal=PersonalData(name="王大山", phone=phone),
    )


def classified(n: int, occurred_at: datetime) -> SuggestionClassified:
    return SuggestionClassified(
        suggestion_id=f"s-{n}",
        occurred_at=occurred_at,
        body=Classification(
            category="road_traffic", confidence=0.9, needs_review=False, model_version="m1", classified_at=occurred_at
        ),
    )


async def test_events_reach_the_subscriber_signed_and_without_personal_data(relay, receiver, log_events):
    subscription = await relay.subscribe(receiver, ["suggestion.#", "visit.#"])
    assert subscription["secret"].startswith("whsec_") and subscription["active"] is True
    suggestion = received(1)
    visit = HouseholdVisited(
        visit_id="v-1",
        body=Visit(unit="shuangtashan", place="西山村", household="王大山家", visited_on=date.today(), visitor="张干事"),
    )
    told = NotificationSent(
        suggestion_id="s-1",
        body=Notification(decision_id="d1", channel=NotificationChannel.SMS, attempts=1, sent_at=datetime.now(UTC)),
    )
    for event in (suggestion, suggestion, visit, told):  # the suggestion twice: a redelivery from the broker
        await relay.publisher.publish(event)

    async def all_handled() -> list:
        return [e for e in log_events() if e.get("event") == "webhook_deliveries_recorded"]

    handled = await eventually(lambda: _at_least(all_handled, 3))
    assert sorted(e["recorded"] for e in handled) == [0, 1, 1]  # the redelivered suggestion added no delivery
    await eventually(lambda: len(receiver.received) >= 2)

    assert receiver.refused == 0
    assert sorted(receiver.event_ids()) == sorted([str(suggestion.event_id), str(visit.event_id)])  # not the SMS notice
    by_type = {r["headers"]["x-minsheng-event-type"]: r for r in receiver.received}
    request = by_type["suggestion.received"]
    assert request["path"] == "/minsheng/hook?token=abc"
    assert request["headers"]["x-minsheng-delivery-id"].startswith("whd_")
    assert request["headers"]["content-type"].startswith("application/json")
    body = request["body"]
    payload = json.loads(body)
    assert "personal" not in payload and PHONE.encode() not in body and "王大山".encode() not in body
    assert PHONE_IN_TEXT.encode() not in body and "139****1111" in payload["body"]["text"]
    assert SuggestionReceived.model_validate(payload).event_id == suggestion.event_id  # still the published contract
    # The signature covers the timestamp and the exact body: any change breaks it.
    headers = request["headers"]
    timestamp, signature = headers["x-minsheng-timestamp"], headers["x-minsheng-signature"]
    assert signature.startswith("sha256=")
    assert verify_signature(receiver.secret, body, timestamp, signature, now=relay.clock())
    assert not verify_signature(receiver.secret, body.replace(b"ABCDE", b"ABCDF"), timestamp, signature, now=relay.clock())
    assert not verify_signature(receiver.secret, body, str(int(timestamp) + 1), signature, now=relay.clock())
    assert not verify_signature("whsec_other", body, timestamp, signature, now=relay.clock())
    assert not verify_signature(receiver.secret, body, timestamp, signature, now=relay.clock() + timedelta(minutes=6))
    # A visited household is a pseudonym outside the project.
    visit_payload = json.loads(by_type["visit.recorded"]["body"])
    assert visit_payload["body"]["household"].startswith("hh_") and "王大山" not in by_type["visit.recorded"]["body"].decode()

    deliveries = await relay.deliveries(subscription["id"])
    assert len(deliveries) == 2 and {d["state"] for d in deliveries} == {"delivered"}
    log = deliveries[0]["log"]
    assert len(log) == 1 and log[0]["status"] == 200 and log[0]["error"] is None and log[0]["duration_ms"] >= 0
    stored = await relay.db.webhook_subscriptions.find_one({"_id": subscription["id"]})
    assert stored["secret"].startswith("gcm1.") and receiver.secret not in json.dumps(stored, default=str)
    listed = (await relay.client.get("/api/v1/webhooks/subscriptions", headers=relay.admin)).json()
    assert listed[0]["deliveries"] == {"pending": 0, "delivered": 2, "failed": 0} and "secret" not in listed[0]


async def test_a_subscriber_down_for_an_hour_gets_every_event_once_and_in_order(relay, receiver):
    receiver.failing = True
    subscription = await relay.subscribe(receiver, ["suggestion.classified.*"])
    sid = subscription["id"]
    start = datetime.now(UTC) - timedelta(minutes=5)
    events = [classified(n, start + timedelta(seconds=n)) for n in range(6)]
    for n in (3, 0, 5, 1, 4, 2):  # published out of order: delivered in the order they occurred
        await relay.publisher.publish(events[n])

    async def all_recorded_and_the_oldest_tried() -> bool:
        deliveries = await relay.deliveries(sid)
        oldest = [d for d in deliveries if d["event_id"] == str(events[0].event_id)]
        return len(deliveries) == 6 and oldest[0]["attempts"] == 1

    await eventually(all_recorded_and_the_oldest_tried)
    for _ in range(3):  # half an hour answering 500…
        await relay.advance(sid, minutes=10)
    receiver.stop()  # …then half an hour off the network
    for _ in range(3):
        await relay.advance(sid, minutes=10)
    assert receiver.received == []
    pending = await relay.deliveries(sid, "pending")
    assert len(pending) == 6
    head = next(d for d in pending if d["event_id"] == str(events[0].event_id))
    # Only the oldest is retried, the others wait behind it (the first one published may have been tried once
    # before the older ones were recorded).
    assert head["attempts"] == 7 and sum(d["attempts"] for d in pending if d is not head) <= 1
    errors = [entry["error"] for entry in head["log"]]
    assert "HTTP 500" in errors and "ConnectError" in errors

    receiver.failing = False
    receiver.start()
    await relay.advance(sid, minutes=10)  # past the longest backoff
    await eventually(lambda: len(receiver.received) == 6)

    assert receiver.event_ids() == [str(e.event_id) for e in events]  # each once, in the order they occurred
    assert len({r["headers"]["x-minsheng-delivery-id"] for r in receiver.received}) == 6
    assert receiver.refused == 0
    deliveries = await relay.deliveries(sid)
    assert {d["state"] for d in deliveries} == {"delivered"}
    head = next(d for d in deliveries if d["event_id"] == str(events[0].event_id))
    assert head["log"][-1]["status"] == 200 and head["attempts"] == len(head["log"]) >= 8
    assert sum(d["attempts"] for d in deliveries if d["id"] != head["id"]) <= 5 + 1
    # Nothing is sent again, however much later the dispatcher looks.
    requests = receiver.requests
    relay.clock.advance(hours=30)
    relay.app.state.dispatcher.wake()
    await asyncio.sleep(1)
    assert receiver.requests == requests and len(receiver.received) == 6


async def test_a_delivery_the_subscriber_refuses_does_not_hold_the_others_back(relay, receiver):
    subscription = await relay.subscribe(receiver, ["suggestion.classified.*"])
    sid = subscription["id"]
    start = datetime.now(UTC) - timedelta(minutes=5)
    events = [classified(n, start + timedelta(seconds=n)) for n in range(3)]
    receiver.refuse = {str(events[0].event_id)}  # the subscriber is up, and answers 422 to this one
    for event in events:
        await relay.publisher.publish(event)
    await eventually(lambda: len(receiver.received) == 2)
    assert receiver.event_ids() == [str(events[1].event_id), str(events[2].event_id)]
    [refused] = await relay.deliveries(sid, "pending")
    assert refused["event_id"] == str(events[0].event_id) and refused["last_status"] == 422
    assert refused["last_error"] == "HTTP 422"

    receiver.refuse = set()  # fixed on the subscriber's side: the next retry goes through
    await relay.advance(sid, minutes=10)
    await eventually(lambda: len(receiver.received) == 3)
    assert receiver.event_ids()[2] == str(events[0].event_id)
    assert {d["state"] for d in await relay.deliveries(sid)} == {"delivered"}


async def test_given_up_deliveries_are_replayed(relay, receiver, monkeypatch):
    receiver.failing = True
    subscription = await relay.subscribe(receiver, ["suggestion.classified.road_traffic"])
    sid = subscription["id"]
    start = datetime.now(UTC) - timedelta(minutes=5)
    events = [classified(n, start + timedelta(seconds=n)) for n in range(3)]
    for event in events:
        await relay.publisher.publish(event)

    async def tried() -> bool:
        deliveries = await relay.deliveries(sid)
        return len(deliveries) == 3 and sum(d["attempts"] for d in deliveries) >= 1

    await eventually(tried)
    relay.clock.advance(hours=25)  # past the retry window: the next attempts give up
    relay.app.state.dispatcher.wake()

    async def all_failed() -> list:
        failed = await relay.deliveries(sid, "failed")
        return failed if len(failed) == 3 else []

    failed = sorted(await eventually(all_failed), key=lambda d: d["occurred_at"])
    assert all(d["last_error"] == "HTTP 500" and d["given_up_at"] for d in failed)
    assert receiver.received == []

    receiver.failing = False
    first = failed[0]["id"]
    response = await relay.client.post(f"/api/v1/webhooks/deliveries/{first}/replay", headers=relay.admin)
    assert response.status_code == 200 and response.json() == {"replayed": 1}
    await eventually(lambda: len(receiver.received) == 1)
    assert receiver.event_ids() == [str(events[0].event_id)]
    again = await relay.client.post(f"/api/v1/webhooks/deliveries/{first}/replay", headers=relay.admin)
    assert again.status_code == 409  # delivered now: only failed deliveries are replayed

    # The command line replays one delivery of the subscription…
    monkeypatch.setenv("MINSHENG_WEBHOOKS_MONGO_URL", relay.settings.mongo_url.get_secret_value())
    monkeypatch.setenv("MINSHENG_WEBHOOKS_MONGO_DATABASE", relay.settings.mongo_database)
    assert await asyncio.to_thread(cli.main, ["replay", "--subscription", sid, "--delivery", failed[1]["id"]]) == 0
    await eventually(lambda: len(receiver.received) == 2)
    # …and the API all that are still failed.
    response = await relay.client.post(f"/api/v1/webhooks/subscriptions/{sid}/replay", headers=relay.admin)
    assert response.json() == {"replayed": 1}
    await eventually(lambda: len(receiver.received) == 3)
    assert receiver.event_ids() == [str(e.event_id) for e in events]
    assert {d["state"] for d in await relay.deliveries(sid)} == {"delivered"}
    actions = [r["action"] for r in await relay.db.audit_log.find({"target": sid}).to_list(None)]
    assert actions.count("replay_webhook_deliveries") == 3 and "create_webhook_subscription" in actions


async def test_admin_api_refuses_bad_input_and_anyone_but_administrators(relay):
    url = "/api/v1/webhooks/subscriptions"
    good = {"url": "https://partner.example.org/hooks/minsheng", "events": ["suggestion.decided.*"]}

    async def refused(body: dict[str, Any], field: str, words: str) -> None:
        response = await relay.client.post(url, json=body, headers=relay.admin)
        assert response.status_code == 422, body
        errors = response.json()["fields"]
        assert errors[0]["field"].startswith(field) and words in errors[0]["message"], errors

    await refused({**good, "url": "ftp://partner.example.org/x"}, "url", "only http:// and https://")
    await refused({**good, "url": "javascript:alert(1)"}, "url", "only http:// and https://")
    await refused({**good, "url": "https://user:pw@partner.example.org/x"}, "url", "credentials")
    await refused({**good, "url": "https:///nohost"}, "url", "no host")
    await refused({**good, "events": ["suggestion.deleted"]}, "events", "matches no event")
    await refused({**good, "events": ["orders.#"]}, "events", "matches no event")
    await refused({**good, "events": ["suggestion..received"]}, "events", "not a routing-key pattern")
    await refused({**good, "events": []}, "events", "")
    await refused({**good, "secret": "mine"}, "secret", "")
    assert await relay.db.webhook_subscriptions.count_documents({}) == 0

    assert (await relay.client.post(url, json=good)).status_code == 401
    assert (await relay.client.get(url)).status_code == 401
    for name, role, unit in (("hook-clerk", Role.UNIT_STAFF, "shuangtashan"), ("hook-super", Role.SUPERVISOR, None)):
        headers = await relay.sign_in(name, role, unit)
        assert (await relay.client.post(url, json=good, headers=headers)).status_code == 403
        assert (await relay.client.get(url, headers=headers)).status_code == 403

    created = await relay.client.post(url, json=good, headers=relay.admin)
    assert created.status_code == 201
    sid = created.json()["id"]
    clerk = await relay.sign_in("hook-clerk2", Role.UNIT_STAFF, "shuangtashan")
    assert (await relay.client.post(f"{url}/{sid}/disable", headers=clerk)).status_code == 403
    assert (await relay.client.post(f"{url}/{sid}/replay", headers=clerk)).status_code == 403
    assert (await relay.client.get(f"{url}/{sid}/deliveries", headers=clerk)).status_code == 403
    disabled = await relay.client.post(f"{url}/{sid}/disable", headers=relay.admin)
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    assert (await relay.client.get(f"{url}/whs_0000000000000000", headers=relay.admin)).status_code == 404
    audit = await relay.db.audit_log.find({"target": sid}).to_list(None)
    assert [(r["actor"], r["action"]) for r in audit] == [
        ("hook-admin", "create_webhook_subscription"),
        ("hook-admin", "disable_webhook_subscription"),
    ]
    assert "/hooks/minsheng" not in json.dumps(audit, default=str)  # the target's host only


async def test_a_disabled_subscription_records_nothing(relay, receiver):
    disabled = await relay.subscribe(receiver, ["suggestion.#"])
    await relay.client.post(f"/api/v1/webhooks/subscriptions/{disabled['id']}/disable", headers=relay.admin)
    enabled = await relay.subscribe(Receiver(relay.clock), ["suggestion.#"])  # another one, still active
    await relay.publisher.publish(received(7, phone=None))

    async def recorded() -> bool:
        return await relay.db.webhook_deliveries.count_documents({"subscription_id": enabled["id"]}) == 1

    await eventually(recorded)  # one event, both subscriptions looked at together
    assert await relay.db.webhook_deliveries.count_documents({"subscription_id": disabled["id"]}) == 0


async def _at_least(probe, n: int):
    found = await probe()
    return found if len(found) >= n else None
