"""The store application: consumes events into MongoDB and serves staff queries."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

import structlog
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from minsheng_core.bus import Consumer, connect
from minsheng_core.events import Channel, SuggestionClassified, SuggestionReceived
from minsheng_core.http import install_common
from minsheng_core.logging import configure_logging
from minsheng_core.mongo import mongo_client
from minsheng_core.topology import Topology

from minsheng_store.repository import CLASSIFIED, RECEIVED, SuggestionFilter, SuggestionRepository
from minsheng_store.schemas import CountRow, CountsRead, SuggestionPage, SuggestionRead
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

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mongo = mongo_client(settings.mongo_url.get_secret_value())
        connection = None
        consumer = None
        try:
            repo = SuggestionRepository(mongo[settings.mongo_database])
            await repo.ensure_indexes()
            connection = await connect(settings.amqp_url.get_secret_value(), "store")
            await Topology.load(settings.topology_file).declare(connection)

            async def handle(event: SuggestionReceived | SuggestionClassified) -> None:
                if isinstance(event, SuggestionReceived):
                    await repo.apply_received(event)
                else:
                    await repo.apply_classified(event)
                log.info("event_stored", event_type=event.event_type)

            consumer = Consumer(connection, settings.queue, handle, prefetch=settings.prefetch)
            await consumer.start()
            app.state.repo, app.state.mongo, app.state.connection = repo, mongo, connection
            yield
        finally:
            if consumer is not None:
                await consumer.stop()
            if connection is not None:
                await connection.close()
            await mongo.close()

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
        received_from: datetime | None = None,
        received_to: datetime | None = None,
        q: Annotated[str | None, Query(max_length=100, description="text contains")] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> SuggestionPage:
        """Suggestions matching every given filter, newest first."""
        filters = SuggestionFilter(category, channel.value if channel else None, unit, status, received_from, received_to, q)
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

    return app
