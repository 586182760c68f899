"""The classifier application: consumes received suggestions, publishes classifications, serves predictions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI, Request
from minsheng_core.bus import Consumer, Publisher, connect
from minsheng_core.events import BODY_MAX
from minsheng_core.http import install_common
from minsheng_core.logging import configure_logging
from minsheng_core.topology import Topology
from pydantic import BaseModel, ConfigDict, Field

from minsheng_classifier.settings import ClassifierSettings
from minsheng_classifier.shipped import campaign_model
from minsheng_classifier.sorting import Sorter, event_handler

log = structlog.get_logger(__name__)


class PredictionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    text: str = Field(min_length=1, max_length=BODY_MAX)


class PredictionRead(BaseModel):
    category: str
    category_name: str
    confidence: float
    needs_review: bool
    model_version: str


def create_app(settings: ClassifierSettings | None = None) -> FastAPI:
    """Build the app; the model loads (or trains) and the consumer starts in the lifespan."""
    settings = settings or ClassifierSettings()
    configure_logging("classifier", settings.log_format, settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model = await asyncio.to_thread(campaign_model, settings.model_dir, settings.corpus_dir)
        sorter = Sorter(model, settings.campaign, settings.review_threshold)
        app.state.sorter = sorter
        connection = await connect(settings.amqp_url.get_secret_value(), "classifier")
        consumer = None
        try:
            await Topology.load(settings.topology_file).declare(connection)
            publisher = Publisher(connection)
            await publisher.start()
            consumer = Consumer(connection, settings.queue, event_handler(sorter, publisher), prefetch=settings.prefetch)
            await consumer.start()
            app.state.connection = connection
            log.info("classifier_started", model_version=model.version)
            yield
        finally:
            if consumer is not None:
                await consumer.stop()
            await connection.close()

    app = FastAPI(title="Minsheng classifier", version="1", lifespan=lifespan)

    install_common(app)

    @app.post("/api/v1/predict", response_model=PredictionRead, tags=["classifier"])
    async def predict(body: PredictionCreate, request: Request) -> PredictionRead:
        """The category the classifier would give this text (for the operator console)."""
        sorter: Sorter = request.app.state.sorter
        classification = sorter.classification(await sorter.predict(body.text))
        return PredictionRead(
            category=classification.category,
            category_name=sorter.campaign.category_name(classification.category),
            confidence=classification.confidence,
            needs_review=classification.needs_review,
            model_version=classification.model_version,
        )

    return app
