"""Request and response schemas of the web channel."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from minsheng_core.events import BODY_MAX, TITLE_MAX, Location, SubmitterGroup
from minsheng_core.text import require_words

PHONE_PATTERN = r"^(1[3-9]\d{9}|0\d{9,11})$"  # mobile, or landline with its area code


def _phone_digits(value: object) -> object:
    """People write 139-0000-0001, 139 0000 0001 or 0314-2345678: keep the digits, validate those."""
    return re.sub(r"[\s\-()（）]", "", value) if isinstance(value, str) else value


Phone = Annotated[str, BeforeValidator(_phone_digits), Field(pattern=PHONE_PATTERN, description="手机或座机")]


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


class SuggestionStatusRead(BaseModel):
    tracking_code: str
    status: str
    status_text: str
    category: str | None = None
    category_name: str | None = None
    title: str | None = None
    text: str
    submitted_at: datetime
