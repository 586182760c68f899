"""Staff API responses of the store."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from minsheng_core.events import Outcome, Reason


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


class DecisionSummaryRead(BaseModel):
    """The decision released last on a suggestion, as the store applied it."""

    decision_id: str
    outcome: str
    reason: str | None = None
    explanation: str
    project_id: str | None = None
    merged_into: str | None = None
    referred_to: str | None = None
    decided_by: str
    released_by: str
    released_at: datetime


class NotificationRead(BaseModel):
    decision_id: str
    channel: str
    attempts: int
    sent_at: datetime


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
    decision: DecisionSummaryRead | None = None
    notifications: list[NotificationRead] = Field(default_factory=list, description="who was told, by decision and channel")

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


# ------------------------------------------------------------------------------------------------ projects

MAX_ESTIMATE_YUAN = 100_000_000_000  # as the summary tables: anything above is a typo
SuggestionId = Annotated[str, Field(min_length=1, max_length=64)]
SuggestionIds = Annotated[list[SuggestionId], Field(min_length=1, max_length=500)]


class _Request(BaseModel):
    # strict: a number where text is expected is an error, never coerced (enums keep their JSON strings: strict=False)
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


class CandidateProjectCreate(_Request):
    """A candidate project, from a cluster (all its suggestions the member may see) or from hand-picked suggestions."""

    title: str = Field(min_length=1, max_length=100)
    category: str | None = Field(default=None, max_length=50, description="default: the most frequent among its suggestions")
    unit: str | None = Field(default=None, max_length=50, description="default: the member's unit, else the most frequent")
    place: str | None = Field(default=None, max_length=100, description="village, community or street")
    estimate_yuan: int | None = Field(default=None, ge=0, le=MAX_ESTIMATE_YUAN, description="估算金额, whole yuan")
    description: str | None = Field(default=None, max_length=2000)
    cluster_id: str | None = Field(default=None, min_length=1, max_length=64)
    suggestion_ids: SuggestionIds | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CandidateProjectCreate:
        if (self.cluster_id is None) == (self.suggestion_ids is None):
            raise ValueError("give either cluster_id or suggestion_ids")
        return self


class ProjectUpdate(_Request):
    """Changes to a project that is not approved or rejected yet; null clears place, cost estimate and description."""

    title: str | None = Field(default=None, min_length=1, max_length=100)
    category: str | None = Field(default=None, max_length=50)
    place: str | None = Field(default=None, max_length=100)
    estimate_yuan: int | None = Field(default=None, ge=0, le=MAX_ESTIMATE_YUAN, description="估算金额, whole yuan")
    description: str | None = Field(default=None, max_length=2000)
    add_suggestion_ids: list[SuggestionId] = Field(default_factory=list, max_length=500)
    remove_suggestion_ids: list[SuggestionId] = Field(default_factory=list, max_length=500)


class ProjectTransitionCreate(_Request):
    """Move a project to its next approval step, or to rejected."""

    to: str = Field(min_length=1, max_length=50, pattern=r"^[a-z][a-z0-9_]*$")
    note: str | None = Field(default=None, max_length=500)


class ProjectStepRead(BaseModel):
    from_status: str | None
    to_status: str
    by: str
    at: datetime
    note: str | None = None


class ProjectRead(BaseModel):
    project_id: str
    campaign: str
    title: str
    category: str
    category_name: str
    unit: str
    unit_name: str
    place: str | None = None
    estimate_yuan: int | None = None
    description: str | None = None
    cluster_id: str | None = None
    suggestion_ids: list[str]
    status: str
    status_name: str
    next_status: str | None = Field(description="the step it may move to next (besides rejected); None when final")
    history: list[ProjectStepRead]
    created_by: str
    created_at: datetime
    updated_at: datetime


class ProjectPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[ProjectRead]


# ------------------------------------------------------------------------------------------------ decisions


class DecisionCreate(_Request):
    """A decision draft; without an explanation, it is drafted from the campaign's template for the outcome and reason."""

    outcome: Outcome = Field(strict=False)
    project_id: str | None = Field(default=None, min_length=1, max_length=64)
    merged_into: str | None = Field(default=None, min_length=1, max_length=64, description="another suggestion")
    referred_to: str | None = Field(default=None, min_length=1, max_length=100, description="the department")
    reason: Reason | None = Field(default=None, strict=False, description="why not adopted")
    explanation: str | None = Field(default=None, max_length=1000, description="plain Chinese; may use {tracking_code} …")


class BulkDecisionCreate(DecisionCreate):
    """One decision for many suggestions: a list of ids or every suggestion of a cluster the member may see."""

    suggestion_ids: SuggestionIds | None = None
    cluster_id: str | None = Field(default=None, min_length=1, max_length=64)
    release: bool = Field(default=False, description="release at once (administrators only)")

    @model_validator(mode="after")
    def _one_selection(self) -> BulkDecisionCreate:
        if (self.cluster_id is None) == (self.suggestion_ids is None):
            raise ValueError("give either cluster_id or suggestion_ids")
        return self


class ReleaseCreate(_Request):
    """Release the drafted decisions of these suggestions."""

    suggestion_ids: SuggestionIds


DecisionState = Literal["draft", "released", "changed"]


class DecisionRead(BaseModel):
    suggestion_id: str
    tracking_code: str | None = None
    unit: str | None = None
    state: DecisionState = Field(description="draft: never released; released: as released; changed: edited since released")
    outcome: Outcome
    outcome_name: str
    project_id: str | None = None
    merged_into: str | None = None
    referred_to: str | None = None
    reason: Reason | None = None
    reason_name: str | None = None
    explanation: str
    drafted_by: str
    drafted_at: datetime
    decision_id: str | None = Field(default=None, description="of the last release")
    released_by: str | None = None
    released_at: datetime | None = None


class DecisionPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[DecisionRead]


class BulkDecisionRead(BaseModel):
    decisions: list[DecisionRead]
    released: int = Field(description="decisions published by this request")
    unchanged: int = Field(description="already released as they are: not published again")
