"""Turning a received suggestion into a classification event; no FastAPI here."""

from __future__ import annotations

import asyncio
import uuid

from minsheng_core.bus import InvalidMessage, Publisher
from minsheng_core.campaign import Campaign
from minsheng_core.events import Classification, SuggestionClassified, SuggestionReceived, utc_now

from minsheng_classifier.model import Prediction, TextClassifier

_EVENT_NAMESPACE = uuid.UUID("0b6f2a8e-8c43-4d7e-9a55-1f0f5c2d9e11")


def classification_text(title: str | None, text: str) -> str:
    """What the model reads: the title (when given) and the text."""
    return f"{title}\n{text}" if title else text


class Sorter:
    """Classifies suggestions with one model and a review threshold."""

    def __init__(self, model: TextClassifier, campaign: Campaign, review_threshold: float) -> None:
        unknown = set(model.categories) - set(campaign.category_codes())
        if unknown:
            raise ValueError(f"model {model.version} has categories outside the campaign taxonomy: {sorted(unknown)}")
        self.model = model
        self.campaign = campaign
        self.review_threshold = review_threshold

    async def predict(self, text: str) -> Prediction:
        """Predict off the event loop: the model is CPU-bound."""
        return (await asyncio.to_thread(self.model.predict, [text]))[0]

    def classification(self, prediction: Prediction) -> Classification:
        return Classification(
            category=prediction.category,
            confidence=round(prediction.confidence, 4),
            needs_review=prediction.confidence < self.review_threshold,
            model_version=self.model.version,
            classified_at=utc_now(),
        )

    async def classify(self, event: SuggestionReceived) -> SuggestionClassified:
        prediction = await self.predict(classification_text(event.body.title, event.body.text))
        return SuggestionClassified(
            # the same suggestion and model always give the same event id, so subscribers can drop repeats
            event_id=uuid.uuid5(_EVENT_NAMESPACE, f"{event.suggestion_id}:{self.model.version}"),
            suggestion_id=event.suggestion_id,
            body=self.classification(prediction),
        )


def event_handler(sorter: Sorter, publisher: Publisher):
    """Consumer handler: classify each received suggestion and publish the result."""

    async def handle(event: SuggestionReceived | object) -> None:
        if not isinstance(event, SuggestionReceived):
            raise InvalidMessage(f"classifier takes suggestion.received events only, got {type(event).__name__}")
        await publisher.publish(await sorter.classify(event))

    return handle
