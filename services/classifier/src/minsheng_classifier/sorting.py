"""Turning a received suggestion into a classification event; no FastAPI here."""

from __future__ import annotations

import asyncio
import uuid

from minsheng_classifier.clusters import ClusterIndex
from minsheng_classifier.model import Prediction, TextClassifier
from minsheng_classifier.routing import resolve_unit
from minsheng_classifier.text import has_content, normalise
from minsheng_core.batching import GroupCommit
from minsheng_core.bus import InvalidMessage, Publisher
from minsheng_core.campaign import Campaign
from minsheng_core.events import AnyEvent, Classification, SuggestionClassified, SuggestionReceived, full_text, utc_now
from minsheng_core.ids import person_key
from minsheng_core.units import UnitRegistry

_EVENT_NAMESPACE = uuid.UUID("0b6f2a8e-8c43-4d7e-9a55-1f0f5c2d9e11")
NOTHING_TO_CLASSIFY = Prediction("other", 0.0)


class Sorter:
    """Category (one model, swappable while running), responsible unit, and cluster of each suggestion."""

    def __init__(
        self,
        model: TextClassifier,
        campaign: Campaign,
        units: UnitRegistry,
        review_threshold: float,
        index: ClusterIndex | None = None,
        person_secret: bytes = b"",
    ) -> None:
        self.campaign = campaign
        self.units = units
        self.review_threshold = review_threshold
        self.index = index
        self._person_secret = person_secret
        # The texts of concurrent handlers go to the model together: most of a one-text prediction is scikit-learn's
        # per-call overhead, paid once per batch this way.
        self._predictions: GroupCommit[str, tuple[Prediction, str]] = GroupCommit(self._predict_batch, max_batch=64)
        self.use(model)

    def use(self, model: TextClassifier) -> None:
        """Switch to another model; classifications in flight finish with the one they started with."""
        unknown = set(model.categories) - set(self.campaign.category_codes())
        if unknown:
            raise ValueError(f"model {model.version} has categories outside the campaign taxonomy: {sorted(unknown)}")
        self.model = model

    async def predict(self, text: str) -> tuple[Prediction, str]:
        """Category and the version of the model that gave it; off the event loop, the model is CPU-bound."""
        if not has_content(normalise(text)):
            return NOTHING_TO_CLASSIFY, self.model.version
        return await self._predictions.submit(text)

    async def _predict_batch(self, texts: list[str]) -> list[tuple[Prediction, str]]:
        model = self.model  # a batch is classified by one model, even if another is loaded meanwhile
        return [(prediction, model.version) for prediction in await asyncio.to_thread(model.predict, texts)]

    def classification(
        self, prediction: Prediction, model_version: str, unfinished: bool = False, **extra: object
    ) -> Classification:
        return Classification(
            category=prediction.category,
            confidence=round(prediction.confidence, 4),
            # words still to be completed from a recording or a picture: a person looks again whatever the model says
            needs_review=unfinished or prediction.confidence < self.review_threshold,
            model_version=model_version,
            classified_at=utc_now(),
            **extra,
        )

    async def classify(self, event: SuggestionReceived) -> SuggestionClassified:
        body = event.body
        text = full_text(body.title, body.text)
        prediction, version = await self.predict(text)
        unit = resolve_unit(self.units, body.location, text, body.unit, body.submitter_group)
        extra: dict[str, object] = {"unit": unit.unit, "unit_source": unit.source}
        if self.index is not None and has_content(text):  # nothing to compare yet: a voice awaiting transcription
            contact = event.personal.phone or event.personal.wechat_openid
            person = person_key(self._person_secret, contact) if contact else None
            village = self.units.canonical_place(body.location.village)
            fingerprint = self.index.comparer.fingerprint(text, unit.place_unit, village, person, prediction.category)
            placement = await self.index.place(event.suggestion_id, fingerprint, body.submitted_at)
            extra |= {"cluster_id": placement.cluster_id, "duplicate_of": placement.duplicate_of}
        return SuggestionClassified(
            # the same suggestion and model always give the same event id, so subscribers can drop repeats
            event_id=uuid.uuid5(_EVENT_NAMESPACE, f"{event.suggestion_id}:{version}"),
            suggestion_id=event.suggestion_id,
            body=self.classification(prediction, version, body.awaiting is not None, **extra),
        )


def event_handler(sorter: Sorter, publisher: Publisher):
    """Consumer handler: classify each received suggestion and publish the result."""

    async def handle(event: AnyEvent) -> None:
        if not isinstance(event, SuggestionReceived):
            raise InvalidMessage(f"classifier takes suggestion.received events only, got {event.event_type}")
        await publisher.publish(await sorter.classify(event))

    return handle
