"""The intake-hotline application: Twilio's voice webhooks, the operators' console, the transcript API."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import structlog
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from minsheng_core.audit import AuditLog
from minsheng_core.http import install_common
from minsheng_core.intake import open_intake
from minsheng_core.logging import configure_logging
from minsheng_core.staff import StaffDirectory
from minsheng_core.units import load_units
from minsheng_intake_hotline import console, transcripts_api, voice
from minsheng_intake_hotline.settings import HotlineSettings
from minsheng_intake_hotline.sms import SmsReceipts
from minsheng_intake_hotline.suggestions import HotlineIntake

log = structlog.get_logger(__name__)


def create_app(settings: HotlineSettings | None = None) -> FastAPI:
    """Build the app; connections open in the lifespan."""
    settings = settings or HotlineSettings()
    configure_logging("intake-hotline", settings.log_format, settings.log_level)
    campaign = settings.campaign
    units = load_units(settings.units_file)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            runtime = await open_intake(stack, app, settings, "intake-hotline")
            staff = StaffDirectory(runtime.db)
            await staff.ensure_indexes()
            app.state.audit = AuditLog(runtime.db)
            classifier = httpx.AsyncClient(base_url=settings.classifier_url, timeout=settings.classifier_timeout_seconds)
            stack.push_async_callback(classifier.aclose)
            app.state.hotline = HotlineIntake(
                campaign, runtime, settings.min_speech_confidence, timedelta(minutes=settings.edit_window_minutes)
            )
            app.state.staff, app.state.classifier = staff, classifier
            app.state.sms = (
                SmsReceipts(
                    settings.twilio_account_sid,
                    settings.twilio_auth_token.get_secret_value(),
                    settings.sms_from,
                    settings.twilio_api_base,
                )
                if settings.sms_receipts and settings.sms_from
                else None
            )
            log.info("intake_hotline_started", campaign=campaign.code)
            yield

    app = FastAPI(title="Minsheng intake-hotline", version="1", lifespan=lifespan)
    app.state.settings, app.state.units = settings, units
    install_common(app, settings.max_body_bytes)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.include_router(voice.router)
    app.include_router(console.router)
    console.PAGES.install(app)
    app.include_router(transcripts_api.router)
    return app
