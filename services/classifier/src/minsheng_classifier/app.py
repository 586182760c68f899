"""The classifier application: consumes received suggestions, publishes classifications, serves predictions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from minsheng_classifier.clusters import ClusterIndex
from minsheng_classifier.corpus import load_examples
from minsheng_classifier.model import ModelUnavailable, TextClassifier
from minsheng_classifier.settings import ClassifierSettings
from minsheng_classifier.similarity import Comparer
from minsheng_classifier.sorting import Sorter, event_handler
from minsheng_core.bus import Consumer, Publisher
from minsheng_core.events import BODY_MAX
from minsheng_core.http import install_common
from minsheng_core.lifecycle import background, open_infrastructure
from minsheng_core.logging import configure_logging
from minsheng_core.units import load_units

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


async def watch_model(sorter: Sorter, model_dir: Path, interval: float) -> None:
    """Load a new model version when one appears in the folder, without stopping consumption."""
    while True:
        await asyncio.sleep(interval)
        try:
            meta = TextClassifier.read_meta(model_dir)
            if meta["model_sha256"] == sorter.model.meta.get("model_sha256"):
                continue
            sorter.use(await asyncio.to_thread(TextClassifier.load, model_dir))
            log.info("model_reloaded", model_version=sorter.model.version)
        except (ModelUnavailable, ValueError) as exc:
            log.warning("model_reload_skipped", reason=str(exc)[:300])


def create_app(settings: ClassifierSettings | None = None) -> FastAPI:
    """Build the app; the model loads and the consumer starts in the lifespan. No usable model: no start."""
    settings = settings or ClassifierSettings()
    configure_logging("classifier", settings.log_format, settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            model = await asyncio.to_thread(TextClassifier.load, settings.model_dir)
        except ModelUnavailable as exc:
            log.error("classifier_cannot_start", reason=str(exc))
            raise RuntimeError(f"classifier cannot start: {exc}") from None
        units = load_units(settings.units_file)
        corpus = [e.text for e in load_examples(settings.corpus_dir)]
        async with contextlib.AsyncExitStack() as stack:
            mongo, connection = await open_infrastructure(stack, settings, "classifier")
            comparer = Comparer(units.unit_names(), units.place_names(), corpus)
            index = ClusterIndex(mongo[settings.mongo_database], comparer)
            person_secret = settings.person_key_secret.get_secret_value().encode()
            sorter = Sorter(model, settings.campaign, units, settings.review_threshold, index, person_secret)
            publisher = Publisher(connection)
            await publisher.start()
            consumer = Consumer(connection, settings.queue, event_handler(sorter, publisher), prefetch=settings.prefetch)
            await consumer.start()
            stack.push_async_callback(consumer.stop)
            await stack.enter_async_context(background(watch_model(sorter, settings.model_dir, settings.model_reload_seconds)))
            app.state.sorter, app.state.connection, app.state.mongo = sorter, connection, mongo
            log.info("classifier_started", model_version=model.version)
            yield

    app = FastAPI(title="Minsheng classifier", version="1", lifespan=lifespan)
    install_common(app)

    @app.post("/api/v1/predict", response_model=PredictionRead, tags=["classifier"])
    async def predict(body: PredictionCreate, request: Request) -> PredictionRead:
        """The category the classifier would give this text (for the operator console)."""
        sorter: Sorter = request.app.state.sorter
        prediction, version = await sorter.predict(body.text)
        classification = sorter.classification(prediction, version)
        return PredictionRead(
            category=classification.category,
            category_name=sorter.campaign.category_name(classification.category),
            confidence=classification.confidence,
            needs_review=classification.needs_review,
            model_version=classification.model_version,
        )

    return app
