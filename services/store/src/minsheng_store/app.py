"""The store application: consumes events into MongoDB and serves staff queries."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

import structlog
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from minsheng_core.bus import Consumer, Publisher, PublishFailed
from minsheng_core.events import (
    AnyEvent,
    Channel,
    Correction,
    SuggestionAttachmentAdded,
    SuggestionCorrected,
    SuggestionReceived,
    utc_now,
)
from minsheng_core.http import install_common
from minsheng_core.lifecycle import open_infrastructure
from minsheng_core.logging import configure_logging
from minsheng_core.units import load_units
from minsheng_store.repository import CLASSIFIED, RECEIVED, SuggestionFilter, SuggestionRepository
from minsheng_store.schemas import CorrectionCreate, CountRow, CountsRead, SuggestionPage, SuggestionRead
from minsheng_store.settings import StoreSettings

log = structlog.get_logger(__name__)
bearer = HTTPBearer(auto_error=False)


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
            repo = SuggestionRepository(mongo[settings.mongo_database])
            await repo.ensure_indexes()

            async def handle(event: AnyEvent) -> None:
                if isinstance(event, SuggestionReceived):
                    await repo.apply_received(event)
                elif isinstance(event, SuggestionCorrected):
                    await repo.apply_corrected(event)
                elif isinstance(event, SuggestionAttachmentAdded):
                    await repo.apply_attachment_added(event)
                else:
                    await repo.apply_classified(event)
                log.info("event_stored", event_type=event.event_type)

            consumer = Consumer(connection, settings.queue, handle, prefetch=settings.prefetch)
            await consumer.start()
            stack.push_async_callback(consumer.stop)
            publisher = Publisher(connection)
            await publisher.start()
            app.state.repo, app.state.mongo, app.state.connection, app.state.publisher = repo, mongo, connection, publisher
            yield

    app = FastAPI(title="Minsheng store (staff API)", version="1", lifespan=lifespan)

    install_common(app)

    def staff(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        expected = settings.api_token.get_secret_value()
        if credentials is None or not secrets.compare_digest(credentials.credentials, expected):
            raise HTTPException(status_code=401, detail="staff token required", headers={"WWW-Authenticate": "Bearer"})

    @app.get("/api/v1/suggestions", response_model=SuggestionPage, dependencies=[Depends(staff)], tags=["staff"])
    async def list_suggestions(
        repo: Repo,
        category: Annotated[str | None, Query(max_length=50, pattern=r"^[a-z_]+$")] = None,
        channel: Channel | None = None,
        unit: Annotated[str | None, Query(max_length=50)] = None,
        status: Annotated[str | None, Query(pattern=f"^({RECEIVED}|{CLASSIFIED})$")] = None,
        needs_review: bool | None = None,
        received_from: datetime | None = None,
        received_to: datetime | None = None,
        q: Annotated[str | None, Query(max_length=100, description="text contains")] = None,
        awaiting: Annotated[str | None, Query(pattern="^(transcription|text)$", description="still to complete")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> SuggestionPage:
        """Suggestions matching every given filter, newest first."""
        filters = SuggestionFilter(
            category, channel.value if channel else None, unit, status, needs_review, received_from, received_to, q, awaiting
        )
        total, docs = await repo.list(filters, limit, offset)
        return SuggestionPage(total=total, limit=limit, offset=offset, items=[SuggestionRead.from_document(d) for d in docs])

    @app.get("/api/v1/suggestions/{suggestion_id}", response_model=SuggestionRead, dependencies=[Depends(staff)], tags=["staff"])
    async def get_suggestion(suggestion_id: Annotated[str, Path(max_length=64)], repo: Repo) -> SuggestionRead:
        """One suggestion by id; contact data is not part of it."""
        doc = await repo.get(suggestion_id)
        if doc is None:
            raise HTTPException(status_code=404, detail="suggestion not found")
        return SuggestionRead.from_document(doc)

    @app.get("/api/v1/reports/counts", response_model=CountsRead, dependencies=[Depends(staff)], tags=["staff"])
    async def counts(repo: Repo) -> CountsRead:
        """Number of suggestions by category × channel."""
        rows = [CountRow(**r) for r in await repo.counts_by_category_and_channel()]
        return CountsRead(rows=rows, total=sum(r.count for r in rows))

    @app.patch(
        "/api/v1/suggestions/{suggestion_id}/classification",
        response_model=SuggestionRead,
        dependencies=[Depends(staff)],
        tags=["staff"],
    )
    async def correct_classification(
        suggestion_id: Annotated[str, Path(max_length=64)], correction: CorrectionCreate, request: Request, repo: Repo
    ) -> SuggestionRead:
        """Correct category and/or unit; published as an event, and it wins over the model at once."""
        if correction.category is None and correction.unit is None:
            raise HTTPException(status_code=422, detail="give a category, a unit, or both")
        if correction.category is not None and correction.category not in campaign.category_codes():
            raise HTTPException(status_code=422, detail=f"category must be one of {campaign.category_codes()}")
        if correction.unit is not None and correction.unit not in units.codes():
            raise HTTPException(status_code=422, detail="unknown unit code")
        if await repo.get(suggestion_id) is None:
            raise HTTPException(status_code=404, detail="suggestion not found")
        event = SuggestionCorrected(
            suggestion_id=suggestion_id,
            body=Correction(**correction.model_dump(), corrected_by="staff-api", corrected_at=utc_now()),
        )
        try:
            await request.app.state.publisher.publish(event)
        except PublishFailed as exc:
            log.error("correction_not_published", error=str(exc)[:200])
            raise HTTPException(status_code=503, detail="the correction could not be published; nothing changed") from exc
        await repo.apply_corrected(event)  # at once; the consumer applies the same event again, idempotently
        return SuggestionRead.from_document(await repo.get(suggestion_id))

    @app.get("/api/v1/exports/corrections.jsonl", response_class=PlainTextResponse, dependencies=[Depends(staff)], tags=["staff"])
    async def export_corrections(repo: Repo) -> PlainTextResponse:
        """Staff-corrected texts as JSON lines {text, label}: training data for the next model."""
        lines = [json.dumps(example, ensure_ascii=False) for example in await repo.corrected_examples()]
        return PlainTextResponse("\n".join(lines) + ("\n" if lines else ""), media_type="application/x-ndjson")

    return app
