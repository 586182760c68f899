"""What every channel asks of a suggestion's words before accepting them."""

from __future__ import annotations

import re

from pydantic_core import PydanticCustomError

_MEANINGFUL = re.compile(r"[\u4e00-\u9fff]|[A-Za-z]{2,}")


def has_content(text: str) -> bool:
    """Whether there is anything to read: Chinese characters or a word in Latin letters (not only emoji or punctuation)."""
    return bool(_MEANINGFUL.search(text or ""))


NO_WORDS = "请用文字写下您的建议，不能只有表情或标点符号。"


def require_words(text: str) -> str:
    """Validator for a resident's text: refuse one without words, with a message in Chinese."""
    if not has_content(text):
        raise PydanticCustomError("no_words", NO_WORDS)
    return text
