"""The notifier application: learns contacts and decisions from the bus, tells submitters, serves delivery records."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import structlog
from fastapi import FastAPI

from minsheng_core.audit import AuditLog
from minsheng_core.bus import Consumer, Handler, Publisher
from minsheng_core.erasures import honour_erasures
from minsheng_core.events import AnyEvent, SuggestionDecided, SuggestionReceived, utc_now
from minsheng_core.http import install_common
from minsheng_core.lifecycle import background, open_infrastructure
from minsheng_core.logging import configure_logging
from minsheng_core.sms import TwilioSms
from minsheng_core.staff import StaffDirectory
from minsheng_notifier import api
from minsheng_notifier.contacts import ContactBook
from minsheng_notifier.dispatcher import Dispatcher
from minsheng_notifier.records import Notifications
from minsheng_notifier.schedule import QuietHours
from minsheng_notifier.senders import SmsSender, WechatSender
from minsheng_notifier.settings import NotifierSettings
from minsheng_wechat.accounts import load_accounts
from minsheng_wechat.client import WechatApi

log = structlog.get_logger(__name__)


def event_handler(contacts: ContactBook, records: Notifications, clock: Callable[[], datetime]) -> Handler:
    """Contacts from received suggestions, a delivery record per released decision; both idempotent."""

    async def handle(event: AnyEvent) -> None:
        if isinstance(event, SuggestionReceived):
            kept = await contacts.record(event)
            log.info("contact_recorded" if kept else "contact_erased_before", channel=event.body.channel.value)
        elif isinstance(event, SuggestionDecided):
            new = await records.add(event, clock())
            log.info("decision_to_notify" if new else "decision_already_known", decision_id=event.body.decision_id)

    return handle


async def _stop(dispatcher: Dispatcher, task: asyncio.Task[None], grace: float) -> None:
    """Let the sends in flight finish (within the grace period), then stop; one cut short stays "sending" → unknown."""
    dispatcher.stop()
    try:
        await asyncio.wait_for(task, grace)
    except TimeoutError:
        log.warning("notifier_stopped_mid_send")


def create_app(settings: NotifierSettings | None = None, clock: Callable[[], datetime] | None = None) -> FastAPI:
    """Build the app; connections, the consumer and the dispatcher live in the lifespan. ``clock``: for tests."""
    settings = settings or NotifierSettings()
    configure_logging("notifier", settings.log_format, settings.log_level)
    now = clock or utc_now
    campaign = settings.campaign
    accounts = load_accounts(settings.wechat_accounts_file, production=settings.environment == "production")
    quiet = QuietHours(settings.quiet_hours_start, settings.quiet_hours_end, campaign.zone)
    vault = settings.vault

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            mongo, connection = await open_infrastructure(stack, settings, "notifier")
            db = mongo[settings.mongo_database]
            contacts, records = ContactBook(db, vault), Notifications(db)
            staff, audit = StaffDirectory(db), AuditLog(db)
            for store in (contacts, records, staff, audit):
                await store.ensure_indexes()
            wechat_api = WechatApi(settings.wechat_api_base, timeout=settings.wechat_timeout_seconds, clock=now)
            stack.push_async_callback(wechat_api.aclose)
            sms = None
            if settings.sms_from:
                sms = SmsSender(
                    TwilioSms(
                        settings.twilio_account_sid.get_secret_value(),
                        settings.twilio_auth_token.get_secret_value(),
                        settings.sms_from,
                        settings.twilio_api_base,
                        settings.twilio_timeout_seconds,
                    )
                )
            publisher = Publisher(connection)
            await publisher.start()
            dispatcher = Dispatcher(
                settings=settings,
                records=records,
                contacts=contacts,
                accounts=accounts,
                wechat=WechatSender(wechat_api),
                sms=sms,
                publisher=publisher,
                quiet=quiet,
                clock=now,
            )
            consumer = Consumer(connection, settings.queue, event_handler(contacts, records, now), prefetch=settings.prefetch)
            await consumer.start()
            stack.push_async_callback(consumer.stop)
            # Personal data erased on request (the store's tombstones) is erased from the contacts too.
            await stack.enter_async_context(background(honour_erasures(db, contacts.erase, settings.erasure_interval_seconds)))
            task = asyncio.create_task(dispatcher.run())
            stack.push_async_callback(_stop, dispatcher, task, settings.shutdown_grace_seconds)
            app.state.mongo, app.state.connection = mongo, connection
            app.state.records, app.state.staff, app.state.audit, app.state.dispatcher = records, staff, audit, dispatcher
            log.info("notifier_started", sms=sms is not None, wechat_accounts=len(accounts))
            yield

    app = FastAPI(title="Minsheng notifier", version="1", lifespan=lifespan)
    app.state.settings, app.state.clock = settings, now
    install_common(app)
    app.include_router(api.router)
    return app
