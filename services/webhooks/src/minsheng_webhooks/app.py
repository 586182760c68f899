"""The webhook relay: consumes minsheng.webhooks, records a delivery per matching subscription, sends them signed.

Run: ``uvicorn --factory minsheng_webhooks.app:create_app --port 8007``. Administrators manage subscriptions with a
staff token from the store (``POST /api/v1/auth/token`` on the store; the sessions live in the same database).
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

import httpx
import structlog
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError

from minsheng_core.audit import AuditLog
from minsheng_core.bus import Consumer
from minsheng_core.events import AnyEvent
from minsheng_core.http import error_responses, install_common
from minsheng_core.lifecycle import background, open_infrastructure
from minsheng_core.logging import configure_logging
from minsheng_core.staff import Role, StaffDirectory, StaffMember
from minsheng_core.staff_pages import token_member
from minsheng_webhooks.deliveries import Deliveries, Leases, State
from minsheng_webhooks.dispatcher import Clock, Dispatcher
from minsheng_webhooks.payloads import encode, outgoing
from minsheng_webhooks.schemas import DeliveryPage, DeliveryRead, ReplayRead, SubscriptionCreated, SubscriptionRead
from minsheng_webhooks.settings import WebhookSettings
from minsheng_webhooks.subscriptions import Subscription, SubscriptionCreate, Subscriptions, private_target

log = structlog.get_logger(__name__)
SUBSCRIPTION_ID = r"^whs_[0-9a-f]{16}$"
DELIVERY_ID = r"^whd_[0-9a-f]{24}$"


async def administrator(member: Annotated[StaffMember, Depends(token_member)]) -> StaffMember:
    """Webhook subscriptions send data out of the project: the district office's administrators only."""
    if not member.has(Role.ADMIN):
        raise HTTPException(status_code=403, detail="webhook subscriptions are managed by the district office's administrators")
    return member


Admin = Annotated[StaffMember, Depends(administrator)]
SubscriptionId = Annotated[str, Path(pattern=SUBSCRIPTION_ID)]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: WebhookSettings | None = None, *, clock: Clock | None = None, rng: random.Random | None = None
) -> FastAPI:
    """Build the app; ``clock`` and ``rng`` stand in for time and jitter in tests."""
    settings = settings or WebhookSettings()
    clock = clock or _utc_now
    configure_logging("webhooks", settings.log_format, settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            mongo, connection = await open_infrastructure(stack, settings, "webhooks")
            db = mongo[settings.mongo_database]
            vault = settings.vault
            subscriptions, deliveries = Subscriptions(db, vault), Deliveries(db)
            await subscriptions.ensure_indexes()
            await deliveries.ensure_indexes()
            client = httpx.AsyncClient(
                timeout=settings.request_timeout_seconds,
                follow_redirects=False,
                trust_env=False,
                proxy=settings.outbound_proxy,
            )
            stack.push_async_callback(client.aclose)
            owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
            leases = Leases(db, owner, timedelta(seconds=settings.lease_seconds))
            dispatcher = Dispatcher(settings, subscriptions, deliveries, leases, client, clock, rng)

            async def handle(event: AnyEvent) -> None:
                routing_key = event.routing_key()
                wanted = await subscriptions.matching(routing_key)
                if not wanted:
                    return
                body = encode(outgoing(event, vault))
                recorded = 0
                for subscription in wanted:
                    recorded += await deliveries.record(subscription.id, event, routing_key, body, clock())
                log.info("webhook_deliveries_recorded", event_type=event.event_type, recorded=recorded, matching=len(wanted))
                dispatcher.wake()

            app.state.mongo, app.state.connection = mongo, connection
            app.state.staff, app.state.audit = StaffDirectory(db), AuditLog(db)
            app.state.subscriptions, app.state.deliveries, app.state.dispatcher = subscriptions, deliveries, dispatcher
            await app.state.audit.ensure_indexes()
            await stack.enter_async_context(background(dispatcher.run()))
            consumer = Consumer(connection, settings.queue, handle, prefetch=settings.prefetch)
            await consumer.start()
            stack.push_async_callback(consumer.stop)
            log.info("webhooks_started", queue=settings.queue)
            yield

    app = FastAPI(title="Minsheng webhooks", version="1", lifespan=lifespan)
    app.state.settings = settings
    install_common(app)

    async def found(request: Request, subscription_id: str) -> Subscription:
        subscription = await request.app.state.subscriptions.get(subscription_id)
        if subscription is None:
            raise HTTPException(status_code=404, detail="no such webhook subscription")
        return subscription

    @app.post("/api/v1/webhooks/subscriptions", status_code=201, response_model=SubscriptionCreated, tags=["webhooks"])
    async def create_subscription(create: SubscriptionCreate, request: Request, member: Admin) -> SubscriptionCreated:
        """Subscribe a URL to the events matching the patterns; the answer carries the signing secret, this once."""
        if not settings.private_targets_allowed and private_target(create.url):
            problem = "the URL points to a private, loopback or link-local address, which is refused here"
            raise RequestValidationError([{"type": "webhook_url", "loc": ("body", "url"), "msg": problem, "input": create.url}])
        subscription, secret = await request.app.state.subscriptions.create(create, member.username, clock())
        await request.app.state.audit.record(
            member, "create_webhook_subscription", subscription.id, host=subscription.host, events=list(subscription.events)
        )
        log.info("webhook_subscription_created", subscription_id=subscription.id, host=subscription.host)
        return SubscriptionCreated(**SubscriptionRead.of(subscription).model_dump(), secret=secret)

    @app.get("/api/v1/webhooks/subscriptions", response_model=list[SubscriptionRead], tags=["webhooks"])
    async def list_subscriptions(request: Request, member: Admin) -> list[SubscriptionRead]:
        """Every subscription, with its deliveries counted by state."""
        state = request.app.state
        return [SubscriptionRead.of(s, await state.deliveries.counts(s.id)) for s in await state.subscriptions.all()]

    @app.get(
        "/api/v1/webhooks/subscriptions/{subscription_id}",
        response_model=SubscriptionRead,
        tags=["webhooks"],
        responses=error_responses(404),
    )
    async def get_subscription(subscription_id: SubscriptionId, request: Request, member: Admin) -> SubscriptionRead:
        subscription = await found(request, subscription_id)
        return SubscriptionRead.of(subscription, await request.app.state.deliveries.counts(subscription.id))

    async def set_active(request: Request, member: StaffMember, subscription_id: str, active: bool) -> SubscriptionRead:
        await found(request, subscription_id)
        subscription = await request.app.state.subscriptions.set_active(subscription_id, active, clock())
        action = "enable_webhook_subscription" if active else "disable_webhook_subscription"
        await request.app.state.audit.record(member, action, subscription_id)
        log.info("webhook_subscription_" + ("enabled" if active else "disabled"), subscription_id=subscription_id)
        if active:
            request.app.state.dispatcher.wake()
        return SubscriptionRead.of(subscription)

    @app.post(
        "/api/v1/webhooks/subscriptions/{subscription_id}/disable",
        response_model=SubscriptionRead,
        tags=["webhooks"],
        responses=error_responses(404),
    )
    async def disable_subscription(subscription_id: SubscriptionId, request: Request, member: Admin) -> SubscriptionRead:
        """Stop recording and sending; deliveries already recorded wait, and go out if it is enabled again."""
        return await set_active(request, member, subscription_id, False)

    @app.post(
        "/api/v1/webhooks/subscriptions/{subscription_id}/enable",
        response_model=SubscriptionRead,
        tags=["webhooks"],
        responses=error_responses(404),
    )
    async def enable_subscription(subscription_id: SubscriptionId, request: Request, member: Admin) -> SubscriptionRead:
        """Record and send again (events published while it was disabled are not delivered)."""
        return await set_active(request, member, subscription_id, True)

    @app.get(
        "/api/v1/webhooks/subscriptions/{subscription_id}/deliveries",
        response_model=DeliveryPage,
        tags=["webhooks"],
        responses=error_responses(404),
    )
    async def list_deliveries(
        subscription_id: SubscriptionId,
        request: Request,
        member: Admin,
        state: State | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> DeliveryPage:
        """The delivery log of a subscription, newest first: every attempt with its time, HTTP status or error, duration."""
        await found(request, subscription_id)
        total, docs = await request.app.state.deliveries.page(subscription_id, state, limit, offset)
        return DeliveryPage(total=total, limit=limit, offset=offset, items=[DeliveryRead.from_document(d) for d in docs])

    @app.post(
        "/api/v1/webhooks/subscriptions/{subscription_id}/replay",
        response_model=ReplayRead,
        tags=["webhooks"],
        responses=error_responses(404),
    )
    async def replay_subscription(subscription_id: SubscriptionId, request: Request, member: Admin) -> ReplayRead:
        """Send every failed (given-up) delivery of the subscription again, oldest event first."""
        await found(request, subscription_id)
        return await replay(request, member, subscription_id, None)

    @app.post(
        "/api/v1/webhooks/deliveries/{delivery_id}/replay",
        response_model=ReplayRead,
        tags=["webhooks"],
        responses=error_responses(404),
    )
    async def replay_delivery(
        delivery_id: Annotated[str, Path(pattern=DELIVERY_ID)], request: Request, member: Admin
    ) -> ReplayRead:
        """Send one failed (given-up) delivery again."""
        doc = await request.app.state.deliveries.get(delivery_id)
        if doc is None:
            raise HTTPException(status_code=404, detail="no such delivery")
        if doc["state"] != State.FAILED.value:
            raise HTTPException(status_code=409, detail=f"only failed deliveries are replayed; this one is {doc['state']}")
        return await replay(request, member, doc["subscription_id"], delivery_id)

    async def replay(request: Request, member: StaffMember, subscription_id: str, delivery_id: str | None) -> ReplayRead:
        replayed = await request.app.state.deliveries.replay(subscription_id, delivery_id, member.username, clock())
        await request.app.state.audit.record(
            member, "replay_webhook_deliveries", subscription_id, delivery=delivery_id, replayed=replayed
        )
        log.info("webhook_deliveries_replayed", subscription_id=subscription_id, replayed=replayed)
        request.app.state.dispatcher.wake()
        return ReplayRead(replayed=replayed)

    return app
