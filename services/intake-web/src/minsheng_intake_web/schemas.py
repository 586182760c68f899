"""Request and response schemas of the web channel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from minsheng_core.events import BODY_MAX, TITLE_MAX, Location, SubmitterGroup
from minsheng_core.phones import Phone
from minsheng_core.text import require_words


class _Strict(BaseModel):
    # strict: a number or an object where text is expected is an error, never coerced
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


class ContactCreate(_Strict):
    name: str | None = Field(default=None, max_length=50)
    phone: Phone | None = None


class SuggestionCreate(_Strict):
    """A suggestion as a resident submits it on the portal."""

    title: str | None = Field(default=None, max_length=TITLE_MAX)
    text: Annotated[str, AfterValidator(require_words)] = Field(min_length=1, max_length=BODY_MAX)
    location: Location = Field(default_factory=Location)
    submitter_group: SubmitterGroup = Field(default=SubmitterGroup.RESIDENT, strict=False)
    contact: ContactCreate = Field(default_factory=ContactCreate)


class SuggestionAcceptedRead(BaseModel):
    suggestion_id: str
    tracking_code: str
    access_code: str = Field(description="shown once; needed with the tracking code to look up the status")
    message: str


class DecisionStatusRead(BaseModel):
    """The decision on a suggestion and its explanation, as released by the district office."""

    outcome: str = Field(description="adopted, merged, referred or not_adopted")
    outcome_name: str = Field(description="the outcome in Chinese")
    reason: str | None = None
    reason_name: str | None = None
    explanation: str
    project_title: str | None = Field(default=None, description="the project it was adopted into or merged with")
    released_at: datetime


class SuggestionStatusRead(BaseModel):
    tracking_code: str
    status: str
    status_text: str
    category: str | None = None
    category_name: str | None = None
    title: str | None = None
    text: str
    submitted_at: datetime
    decision: DecisionStatusRead | None = None
