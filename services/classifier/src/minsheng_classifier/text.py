"""Text normalisation before a model reads it: simplified characters, half-width forms, bounded length."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import opencc

from minsheng_core.text import has_content

__all__ = ["MODEL_MAX_CHARS", "compact", "has_content", "normalise"]

MODEL_MAX_CHARS = 3000  # the model reads this much; the store keeps the full text
_NOT_WORD = re.compile(r"[^\w\u4e00-\u9fff]+")


@lru_cache(maxsize=1)
def _to_simplified() -> opencc.OpenCC:
    return opencc.OpenCC("t2s.json")


def normalise(text: str) -> str:
    """NFKC (full-width letters and digits to half-width), traditional to simplified, truncated for the model.
    Ideographic spaces (paragraph indents, the gap after a title) and the _x000D_ that spreadsheets leave for a
    carriage return become line breaks."""
    text = (text or "").replace("\u3000", "\n").replace("_x000D_", "\n")
    text = unicodedata.normalize("NFKC", text)[:MODEL_MAX_CHARS]
    return _to_simplified().convert(text).strip()


def compact(text: str) -> str:
    """Normalised text without punctuation, spaces or emoji: what near-duplicate detection compares."""
    return _NOT_WORD.sub("", normalise(text)).lower()
