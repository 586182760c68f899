"""The store application: consumes events into MongoDB and serves staff queries."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path as PathlibPath
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import PlainTextResponse
from fastapi.staticfiles import StaticFiles

from minsheng_core.audit import AuditLog
from minsheng_core.bus import Consumer, InvalidMessage, Publisher
from minsheng_core.events import (
    AnyEvent,
    Channel,
    HouseholdVisited,
    NotificationSent,
    SuggestionAttachmentAdded,
    SuggestionClassified,
    SuggestionCorrected,
    SuggestionDecided,
    SuggestionReceived,
    SymposiumHeld,
)
from minsheng_core.http import IsoDateTime, error_responses, install_common
from minsheng_core.lifecycle import background, open_infrastructure
from minsheng_core.logging import configure_logging
from minsheng_core.staff import Role, StaffDirectory
from minsheng_core.units import load_units
from minsheng_store import console, contacts, contract, personal_api, reports, summary_api, supervision
from minsheng_store.access import DistrictReader, Editor, OutOfScope, Reader, scoped_unit, unit_scope
from minsheng_store.corrections import CorrectionRefused, correct, visible_suggestion
from minsheng_store.decisions import ensure_indexes as ensure_decision_indexes
from minsheng_store.decisions_api import router as decisions_router
from minsheng_store.projects import ensure_indexes as ensure_project_indexes
from minsheng_store.projects_api import router as projects_router
from minsheng_store.repository import CLASSIFIED, RECEIVED, SuggestionFilter, SuggestionRepository
from minsheng_store.schemas import CorrectionCreate, CountRow, CountsRead, SignIn, SuggestionPage, SuggestionRead, TokenRead
from minsheng_store.settings import StoreSettings
from minsheng_store.visits import Visits, apply_symposium

log = structlog.get_logger(__name__)


def _repository(request: Request) -> SuggestionRepository:
    return request.app.state.repo


Repo = Annotated[SuggestionRepository, Depends(_repository)]


def create_app(settings: StoreSettings | None = None) -> FastAPI:
    """Build the app; the consumer and connections live in the lifespan."""
    settings = settings or StoreSettings()
    configure_logging("store", settings.log_format, settings.log_level)
    campaign = settings.campaign
    units = load_units(settings.units_file)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            mongo, connection = await open_infrastructure(stack, settings, "store")
            repo = SuggestionRepository(mongo[settings.mongo_database], campaign.zone, settings.vault)
            await repo.ensure_indexes()
            visits = Visits(mongo[settings.mongo_database])
            await visits.ensure_indexes()
            await ensure_project_indexes(mongo[settings.mongo_database])
            await ensure_decision_indexes(mongo[settings.mongo_database])

            async def handle(event: AnyEvent) -> None:
                if isinstance(event, SuggestionReceived):
                    await repo.apply_received(event)
                elif isinstance(event, SuggestionCorrected):
                    await repo.apply_corrected(event)
                elif isinstance(event, SuggestionAttachmentAdded):
                    await repo.apply_attachment_added(event)
                elif isinstance(event, HouseholdVisited):
                    await visits.apply(event)
                elif isinstance(event, SymposiumHeld):
                    await apply_symposium(mongo[settings.mongo_database], event)
                elif isinstance(event, SuggestionClassified):
                    await repo.apply_classified(event)
                elif isinstance(event, SuggestionDecided):
                    await repo.apply_decided(event)
                elif isinstance(event, NotificationSent):
                    await repo.apply_notified(event)
                else:  # bound by mistake: park it rather than store it as something it is not
                    raise InvalidMessage(f"the store does not take {event.event_type} events")
                log.info("event_stored", event_type=event.event_type)

            consumer = Consumer(connection, settings.queue, handle, prefetch=settings.prefetch)
            await consumer.start()
            stack.push_async_callback(consumer.stop)
            publisher = Publisher(connection)
            await publisher.start()
            app.state.repo, app.state.mongo, app.state.connection, app.state.publisher = repo, mongo, connection, publisher
            app.state.db = mongo[settings.mongo_database]
            app.state.staff = StaffDirectory(mongo[settings.mongo_database])
            app.state.audit = AuditLog(mongo[settings.mongo_database])
            await app.state.staff.ensure_indexes()
            await app.state.audit.ensure_indexes()
            # Every report day (Friday) the weekly reports of the district and of each unit are produced and kept.
            await stack.enter_async_context(background(reports.run_weekly_schedule(app.state)))
            # Tally moves recorded by the writes are added into the day documents by one folder at a time.
            await stack.enter_async_context(background(repo.tallies.fold_forever(settings.tally_fold_seconds)))
            yield

    app = FastAPI(title="Minsheng store (staff API)", version="1", lifespan=lifespan)

    app.state.units, app.state.campaign, app.state.settings = units, campaign, settings
    install_common(app)
    app.include_router(contacts.router)
    app.include_router(personal_api.router)
    app.include_router(console.router)
    app.include_router(summary_api.router)
    app.include_router(reports.router)
    app.include_router(supervision.router)
    app.include_router(projects_router)
    app.include_router(decisions_router)
    app.include_router(contract.router)  # the event contract, public: AsyncAPI and JSON Schemas
    console.PAGES.install(app)
    app.mount("/static", StaticFiles(directory=PathlibPath(__file__).parent / "static"), name="static")

    @app.post("/api/v1/auth/token", response_model=TokenRead, tags=["staff"], responses=error_responses(401))
    async def sign_in(credentials: SignIn, request: Request) -> TokenRead:
        """A session token for the staff API (``Authorization: Bearer …``), valid for 12 hours."""
        member = await request.app.state.staff.authenticate(credentials.username, credentials.password)
        if member is None:
            log.info("staff_sign_in_refused")
            raise HTTPException(status_code=401, detail="wrong user name or password")
        token = await request.app.state.staff.open_session(member)
        log.info("staff_signed_in", staff=member.username)
        return TokenRead(token=token, username=member.username, role=member.role.value, unit=member.unit)

    @app.get("/api/v1/suggestions", response_model=SuggestionPage, tags=["staff"])
    async def list_suggestions(
        repo: Repo,
        member: Reader,
        category: Annotated[str | None, Query(max_length=50, pattern=r"^[a-z_]+$")] = None,
        channel: Channel | None = None,
        unit: Annotated[str | None, Query(max_length=50)] = None,
        status: Annotated[str | None, Query(pattern=f"^({RECEIVED}|{CLASSIFIED})$")] = None,
        needs_review: bool | None = None,
        received_from: IsoDateTime | None = None,
        received_to: IsoDateTime | None = None,
        q: Annotated[str | None, Query(max_length=100, description="text contains")] = None,
        awaiting: Annotated[str | None, Query(pattern="^(transcription|text)$", description="still to complete")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> SuggestionPage:
        """Suggestions matching every given filter, newest first; unit staff see their own unit's only."""
        try:
            unit = scoped_unit(member, unit)
        except OutOfScope as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None
        filters = SuggestionFilter(
            category, channel.value if channel else None, unit, status, needs_review, received_from, received_to, q, awaiting
        )
        total, docs = await repo.list(filters, limit, offset)
        return SuggestionPage(total=total, limit=limit, offset=offset, items=[SuggestionRead.from_document(d) for d in docs])

    @app.get("/api/v1/suggestions/{suggestion_id}", response_model=SuggestionRead, tags=["staff"], responses=error_responses(404))
    async def get_suggestion(
        suggestion_id: Annotated[str, Path(max_length=64)], request: Request, member: Reader
    ) -> SuggestionRead:
        """One suggestion by id; contact data is not part of it."""
        doc = await visible_suggestion(request.app.state, member, suggestion_id)
        if doc is None:
            raise HTTPException(status_code=404, detail="suggestion not found")
        return SuggestionRead.from_document(doc)

    @app.get("/api/v1/reports/counts", response_model=CountsRead, tags=["staff"])
    async def counts(repo: Repo, member: Reader) -> CountsRead:
        """Number of suggestions by category × channel (of the member's unit, for unit staff)."""
        totals: dict[tuple[str, str], int] = {}
        for row in await repo.tallies.rows(unit=unit_scope(member)):  # kept up to date: no scan of the suggestions
            key = (row["category"], row["channel"])
            totals[key] = totals.get(key, 0) + row["count"]
        rows = [CountRow(category=c, channel=ch, count=n) for (c, ch), n in sorted(totals.items())]
        return CountsRead(rows=rows, total=sum(r.count for r in rows))

    @app.patch(
        "/api/v1/suggestions/{suggestion_id}/classification",
        response_model=SuggestionRead,
        tags=["staff"],
        responses=error_responses(404, 503),
    )
    async def correct_classification(
        suggestion_id: Annotated[str, Path(max_length=64)],
        correction: CorrectionCreate,
        request: Request,
        repo: Repo,
        member: Editor,
    ) -> SuggestionRead:
        """Correct category and/or unit; published as an event, and it wins over the model at once.
        Unit staff correct the category of their own unit's suggestions; moving one to another unit is the district
        office's decision."""
        try:
            return SuggestionRead.from_document(await correct(request.app.state, member, suggestion_id, correction))
        except CorrectionRefused as exc:
            raise HTTPException(status_code=exc.status, detail=str(exc)) from None

    @app.get("/api/v1/audit", tags=["staff"])
    async def audit_log(
        request: Request, member: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 100
    ) -> list[dict[str, Any]]:
        """The most recent staff actions (administrators and supervisors; unit staff see their own)."""
        if member.has(Role.UNIT_STAFF):
            return await request.app.state.audit.recent(limit, actor=member.username)
        return await request.app.state.audit.recent(limit)

    @app.get(
        "/api/v1/exports/corrections.jsonl",
        response_class=PlainTextResponse,
        tags=["staff"],
        responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}}},
    )
    async def export_corrections(repo: Repo, member: DistrictReader) -> PlainTextResponse:
        """Staff-corrected texts as JSON lines {text, label}: training data for the next model."""
        lines = [json.dumps(example, ensure_ascii=False) for example in await repo.corrected_examples()]
        return PlainTextResponse("\n".join(lines) + ("\n" if lines else ""), media_type="application/x-ndjson")

    return app
