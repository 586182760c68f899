"""Event contract v1: the messages the services publish on the topic exchange."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 1

TITLE_MAX = 100
BODY_MAX = 5000
PLACE_MAX = 100


class Channel(StrEnum):
    """Where a suggestion came in."""

    WEB = "web"
    WECHAT = "wechat"
    HOTLINE = "hotline"
    HOTLINE_TRANSCRIPT = "hotline_transcript"
    DOOR_TO_DOOR = "door_to_door"
    SYMPOSIUM = "symposium"


class SubmitterGroup(StrEnum):
    """Who made the suggestion, as the campaign notice distinguishes them."""

    RESIDENT = "resident"
    NPC_DEPUTY = "npc_deputy"  # 人大代表
    CPPCC_MEMBER = "cppcc_member"  # 政协委员
    PARTY_DELEGATE = "party_delegate"  # 党代表
    RETIRED_CADRE = "retired_cadre"  # 离退休老干部
    DEMOCRATIC_PARTY = "democratic_party"  # 民主党派、工商联、无党派人士


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def full_text(title: str | None, text: str) -> str:
    """What a suggestion says, title first: the one text models read and learn from."""
    return f"{title}\n{text}" if title else text


class Location(_Strict):
    """Place as the submitter gave it: free text, not yet matched to a unit."""

    town: str | None = Field(default=None, max_length=PLACE_MAX, description="乡镇或街道")
    village: str | None = Field(default=None, max_length=PLACE_MAX, description="村或社区")
    detail: str | None = Field(default=None, max_length=200, description="更具体的位置")


class PersonalData(_Strict):
    """Contact data: kept apart from the suggestion text, never logged."""

    name: str | None = Field(default=None, max_length=50)
    phone: str | None = Field(default=None, max_length=20)
    wechat_openid: str | None = Field(default=None, max_length=64)


class Attachment(_Strict):
    """A picture or recording that came with a suggestion, by the channel's reference (never the bytes)."""

    kind: Literal["image", "voice", "recording"]
    channel_ref: str = Field(min_length=1, max_length=200, description="the channel's id of the message that carried it")
    media_id: str | None = Field(default=None, max_length=200, description="WeChat MediaId, to fetch the media later")
    url: str | None = Field(default=None, max_length=1000)
    format: str | None = Field(default=None, max_length=20)


class SuggestionContent(_Strict):
    """What the submitter asked for and where, without personal data."""

    channel: Channel
    channel_ref: str = Field(min_length=1, max_length=200, description="the channel's own id of this submission")
    account: str | None = Field(default=None, max_length=100, description="the channel account it came through, e.g. an appid")
    campaign: str = Field(min_length=1, max_length=50)
    title: str | None = Field(default=None, max_length=TITLE_MAX)
    text: str = Field(default="", max_length=BODY_MAX, description="empty only while `awaiting` says what must complete it")
    awaiting: Literal["transcription", "text"] | None = Field(
        default=None, description="kept without words yet: a recording to transcribe, or a picture that needs a description"
    )
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)
    location: Location = Field(default_factory=Location)
    submitter_group: SubmitterGroup = SubmitterGroup.RESIDENT
    unit: str | None = Field(default=None, max_length=50, description="unit code, when the channel knows it")
    tracking_code: str = Field(min_length=1, max_length=20)
    submitted_at: AwareDatetime

    @model_validator(mode="after")
    def _has_words_or_says_why_not(self) -> SuggestionContent:
        if not self.text and self.awaiting is None:
            raise ValueError("a suggestion without text must say what it is awaiting")
        return self


class Classification(_Strict):
    """One model's verdict on a suggestion: category, responsible unit, and its place among the others."""

    category: str = Field(min_length=1, max_length=50)
    confidence: float = Field(ge=0.0, le=1.0)
    needs_review: bool
    model_version: str = Field(min_length=1, max_length=100)
    unit: str | None = Field(default=None, max_length=50)
    unit_source: Literal["location", "text", "account", "group", "default"] | None = None
    cluster_id: str | None = Field(default=None, max_length=64, description="suggestions about the same concrete thing")
    duplicate_of: str | None = Field(default=None, max_length=64, description="the first suggestion this one repeats")
    classified_at: AwareDatetime


class Correction(_Strict):
    """A staff member's correction of category and/or unit; it wins over any model."""

    category: str | None = Field(default=None, min_length=1, max_length=50)
    unit: str | None = Field(default=None, min_length=1, max_length=50)
    corrected_by: str = Field(min_length=1, max_length=100)
    note: str | None = Field(default=None, max_length=500)
    corrected_at: AwareDatetime

    @model_validator(mode="after")
    def _corrects_something(self) -> Correction:
        if self.category is None and self.unit is None:
            raise ValueError("a correction names a category, a unit, or both")
        return self


class _Event(_Strict):
    event_id: UUID = Field(default_factory=uuid4)
    schema_version: Literal[1] = SCHEMA_VERSION
    occurred_at: AwareDatetime = Field(default_factory=utc_now)

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @property
    def subject_id(self) -> str:
        """The id of what the event is about (a suggestion, a visit): the key of idempotent writes."""
        raise NotImplementedError

    def routing_key(self) -> str:
        """Return the topic routing key that names what happened."""
        raise NotImplementedError


class _SuggestionEvent(_Event):
    suggestion_id: str = Field(min_length=1, max_length=64)

    @property
    def subject_id(self) -> str:
        return self.suggestion_id


class SuggestionReceived(_SuggestionEvent):
    """A channel accepted a suggestion."""

    event_type: Literal["suggestion.received"] = "suggestion.received"
    body: SuggestionContent
    personal: PersonalData = Field(default_factory=PersonalData)

    def routing_key(self) -> str:
        return f"suggestion.received.{self.body.channel.value}"


class SuggestionClassified(_SuggestionEvent):
    """The classifier assigned a category to a suggestion."""

    event_type: Literal["suggestion.classified"] = "suggestion.classified"
    body: Classification

    def routing_key(self) -> str:
        return f"suggestion.classified.{self.body.category}"


class SuggestionCorrected(_SuggestionEvent):
    """Staff corrected the classification of a suggestion."""

    event_type: Literal["suggestion.corrected"] = "suggestion.corrected"
    body: Correction

    def routing_key(self) -> str:
        return "suggestion.corrected"


class SuggestionAttachmentAdded(_SuggestionEvent):
    """The submitter sent a picture or recording for a suggestion they made a moment before."""

    event_type: Literal["suggestion.attachment_added"] = "suggestion.attachment_added"
    body: Attachment

    def routing_key(self) -> str:
        return "suggestion.attachment_added"


class Visit(_Strict):
    """A household visited door to door (入户走访), with or without suggestions; what coverage is counted from."""

    unit: str = Field(min_length=1, max_length=50, description="the unit whose staff visited")
    place: str = Field(min_length=1, max_length=PLACE_MAX, description="village or community, as the registry names it")
    household: str = Field(min_length=1, max_length=100, description="householder or address")
    visited_on: date
    visitor: str = Field(min_length=1, max_length=50)
    suggestion_ids: list[str] = Field(default_factory=list, max_length=50, description="suggestions collected on the visit")


class HouseholdVisited(_Event):
    """Unit staff recorded a household visit."""

    event_type: Literal["visit.recorded"] = "visit.recorded"
    visit_id: str = Field(min_length=1, max_length=64)
    body: Visit

    @property
    def subject_id(self) -> str:
        return self.visit_id

    def routing_key(self) -> str:
        return "visit.recorded.door_to_door"


class Symposium(_Strict):
    """A symposium (座谈会) a unit held with residents, deputies or other groups, and the suggestions it gave."""

    unit: str = Field(min_length=1, max_length=50)
    held_on: date
    place: str = Field(min_length=1, max_length=PLACE_MAX)
    host: str = Field(min_length=1, max_length=50)
    participants: int = Field(ge=1, le=10_000)
    groups: list[SubmitterGroup] = Field(default_factory=list, max_length=6, description="who took part")
    suggestion_ids: list[str] = Field(default_factory=list, max_length=200)


class SymposiumHeld(_Event):
    """Unit staff recorded a symposium."""

    event_type: Literal["symposium.held"] = "symposium.held"
    symposium_id: str = Field(min_length=1, max_length=64)
    body: Symposium

    @property
    def subject_id(self) -> str:
        return self.symposium_id

    def routing_key(self) -> str:
        return "symposium.held"


class Outcome(StrEnum):
    """What became of a suggestion."""

    ADOPTED = "adopted"  # 采纳: taken into a project
    MERGED = "merged"  # 合并: answered together with another suggestion or project
    REFERRED = "referred"  # 转办: handed to a department outside this campaign's projects
    NOT_ADOPTED = "not_adopted"  # 未采纳: with a reason and an explanation


class Reason(StrEnum):
    """Why a suggestion was not adopted."""

    DUPLICATE = "duplicate"
    OUTSIDE_REMIT = "outside_remit"
    ALREADY_PLANNED = "already_planned"
    BEYOND_MEANS = "beyond_means"
    NOT_FEASIBLE = "not_feasible"
    AGAINST_POLICY = "against_policy"
    OTHER = "other"


class Decision(_Strict):
    """A released decision on one suggestion, with the explanation its submitter will read."""

    decision_id: str = Field(min_length=1, max_length=64, description="one id per release; notifications are keyed by it")
    outcome: Outcome
    project_id: str | None = Field(default=None, max_length=64, description="the project it was adopted into or merged with")
    merged_into: str | None = Field(default=None, max_length=64, description="the suggestion it was merged into")
    referred_to: str | None = Field(default=None, max_length=100, description="the department it was referred to")
    reason: Reason | None = Field(default=None, description="required when not adopted")
    explanation: str = Field(min_length=1, max_length=1000, description="plain Chinese, for the submitter")
    unit: str | None = Field(default=None, max_length=50, description="the unit responsible for the suggestion")
    category: str | None = Field(default=None, max_length=50)
    decided_by: str = Field(min_length=1, max_length=100)
    released_by: str = Field(min_length=1, max_length=100)
    released_at: AwareDatetime

    @model_validator(mode="after")
    def _outcome_has_what_it_needs(self) -> Decision:
        if self.outcome is Outcome.NOT_ADOPTED and self.reason is None:
            raise ValueError("a suggestion not adopted needs a reason")
        if self.outcome is Outcome.ADOPTED and self.project_id is None:
            raise ValueError("an adopted suggestion names its project")
        if self.outcome is Outcome.MERGED and self.project_id is None and self.merged_into is None:
            raise ValueError("a merged suggestion names the suggestion or project it was merged into")
        if self.outcome is Outcome.REFERRED and self.referred_to is None:
            raise ValueError("a referred suggestion names the department")
        return self


class SuggestionDecided(_SuggestionEvent):
    """A decision on a suggestion was released."""

    event_type: Literal["suggestion.decided"] = "suggestion.decided"
    body: Decision

    def routing_key(self) -> str:
        return f"suggestion.decided.{self.body.outcome.value}"


class NotificationChannel(StrEnum):
    """How a submitter was told."""

    WECHAT_MESSAGE = "wechat_message"  # customer-service message, inside the 48-hour window
    WECHAT_TEMPLATE = "wechat_template"
    SMS = "sms"
    WEB = "web"  # the status page only: nothing to send


class Notification(_Strict):
    """A submitter was told of a decision."""

    decision_id: str = Field(min_length=1, max_length=64)
    channel: NotificationChannel
    attempts: int = Field(ge=1, le=100)
    sent_at: AwareDatetime


class NotificationSent(_SuggestionEvent):
    """The notifier delivered a decision to its submitter."""

    event_type: Literal["notification.sent"] = "notification.sent"
    body: Notification

    def routing_key(self) -> str:
        return f"notification.sent.{self.body.channel.value}"


AnyEvent = (
    SuggestionReceived
    | SuggestionClassified
    | SuggestionCorrected
    | SuggestionAttachmentAdded
    | SuggestionDecided
    | NotificationSent
    | HouseholdVisited
    | SymposiumHeld
)
Event = Annotated[AnyEvent, Field(discriminator="event_type")]
EVENT_MODELS: tuple[type[_Event], ...] = (
    SuggestionReceived,
    SuggestionClassified,
    SuggestionCorrected,
    SuggestionAttachmentAdded,
    SuggestionDecided,
    NotificationSent,
    HouseholdVisited,
    SymposiumHeld,
)
