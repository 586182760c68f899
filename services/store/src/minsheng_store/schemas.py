"""Staff API responses of the store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ClassificationRead(BaseModel):
    category: str
    confidence: float
    needs_review: bool
    model_version: str
    unit: str | None = None
    unit_source: str | None = None
    classified_at: datetime


class CorrectionRead(BaseModel):
    category: str | None = None
    unit: str | None = None
    corrected_by: str
    note: str | None = None
    corrected_at: datetime


class CorrectionCreate(BaseModel):
    """A staff correction of category and/or unit."""

    model_config = ConfigDict(extra="forbid", strict=True)
    category: str | None = Field(default=None, max_length=50)
    unit: str | None = Field(default=None, max_length=50)
    note: str | None = Field(default=None, max_length=500)


class AttachmentRead(BaseModel):
    kind: str
    channel_ref: str
    media_id: str | None = None
    url: str | None = None
    format: str | None = None


class SuggestionRead(BaseModel):
    suggestion_id: str
    tracking_code: str
    status: str
    channel: str
    channel_ref: str
    account: str | None = None
    campaign: str
    title: str | None
    text: str
    awaiting: str | None = Field(default=None, description="transcription (a recording) or text (a picture): to complete")
    attachments: list[AttachmentRead] = Field(default_factory=list)
    location: dict[str, str | None]
    submitter_group: str
    submitted_at: datetime
    category: str | None = None
    unit: str | None = None
    needs_review: bool | None = None
    cluster_id: str | None = None
    duplicate_of: str | None = None
    classification: ClassificationRead | None = None
    correction: CorrectionRead | None = None

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


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=40)
    password: str = Field(min_length=1, max_length=200)


class TokenRead(BaseModel):
    token: str
    username: str
    role: str
    unit: str | None
