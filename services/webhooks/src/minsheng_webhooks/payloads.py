"""What a webhook carries: the event as published, minus the personal data that must never leave the project."""

from __future__ import annotations

import json
import re
from typing import Any

from minsheng_core.events import AnyEvent, HouseholdVisited, SuggestionReceived
from minsheng_core.personal import PersonalDataVault

# A mainland mobile number typed into free text: kept recognisable (138****5678), no longer callable.
_MOBILE = re.compile(r"(?<![0-9A-Za-z])((?:\+?86)?1[3-9]\d)\d{4}(\d{4})(?![0-9A-Za-z])")


def _mask(text: str | None) -> str | None:
    return _MOBILE.sub(r"\1****\2", text) if text else text


def outgoing(event: AnyEvent, vault: PersonalDataVault) -> dict[str, Any]:
    """The event as JSON for subscribers outside the project.

    ``SuggestionReceived.personal`` is left out (the schema's default), mobile numbers written into the text are masked,
    and a visited household's name or address becomes a stable keyed pseudonym, so visits can still be counted."""
    if isinstance(event, SuggestionReceived):
        data = event.model_dump(mode="json", exclude={"personal"})
        body = data["body"]
        body["title"], body["text"] = _mask(body["title"]), _mask(body["text"])
        body["location"]["detail"] = _mask(body["location"]["detail"])
        return data
    data = event.model_dump(mode="json")
    if isinstance(event, HouseholdVisited):
        data["body"]["household"] = "hh_" + vault.lookup("household", event.body.household)[:24]
    return data


def encode(data: dict[str, Any]) -> str:
    """The exact text that is signed and sent (compact JSON, UTF-8)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
