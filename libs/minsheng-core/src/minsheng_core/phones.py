"""Phone numbers as residents write them and as Twilio sends them, reduced to one form."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, Field

PHONE_PATTERN = r"^(1[3-9]\d{9}|0\d{9,11})$"  # mobile, or landline with its area code
_SEPARATORS = re.compile(r"[\s\-()（）]")


def canonical_phone(raw: str) -> str:
    """Digits only, without the country code: 139-0000-0001, +86 139 0000 0001 and 008613900000001 are one number."""
    digits = _SEPARATORS.sub("", raw.strip())
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
    return digits


def is_mobile(phone: str) -> bool:
    """Whether an SMS can reach the (canonical) number."""
    return bool(re.fullmatch(r"1[3-9]\d{9}", phone))


def _canonical(value: object) -> object:
    return canonical_phone(value) if isinstance(value, str) else value


Phone = Annotated[str, BeforeValidator(_canonical), Field(pattern=PHONE_PATTERN, description="手机或座机")]
