"""Staff API responses of the store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class ClassificationRead(BaseModel):
    category: str
    confidence: float
    needs_review: bool
    model_version: str
    unit: str | None = None
    classified_at: datetime


class SuggestionRead(BaseModel):
    suggestion_id: str
    tracking_code: str
    status: str
    channel: str
    channel_ref: str
    campaign: str
    title: str | None
    text: str
    location: dict[str, str | None]
    submitter_group: str
    unit: str | None
    submitted_at: datetime
    classification: ClassificationRead | None = None

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> SuggestionRead:
        return cls(suggestion_id=doc["_id"], **{k: v for k, v in doc.items() if k in cls.model_fields})


class SuggestionPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[SuggestionRead]


class CountRow(BaseModel):
    category: str | None
    channel: str | None
    count: int


class CountsRead(BaseModel):
    rows: list[CountRow]
    total: int
