"""Labelled examples: JSON lines {"text", "label"} read from files or folders, with a checksum for the record."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from minsheng_core.paths import REPO_ROOT

CAMPAIGN_CORPUS = REPO_ROOT / "services" / "classifier" / "corpus"


@dataclass(frozen=True)
class Example:
    text: str
    label: str


def corpus_files(path: Path) -> list[Path]:
    """The JSON-lines files of a corpus: the file itself, or every *.jsonl in a folder, sorted."""
    return sorted(path.glob("*.jsonl")) if path.is_dir() else [path]


def load_examples(path: Path) -> list[Example]:
    """Read examples; a line that is not a valid example stops the load with its file and line number."""
    examples = []
    for file in corpus_files(path):
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                text, label = record["text"], record["label"]
                if not isinstance(text, str) or not isinstance(label, str) or not text.strip() or not label:
                    raise ValueError("text and label must be non-empty strings")
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{file}:{number}: not a labelled example ({exc})") from exc
            examples.append(Example(text.strip(), label))
    if not examples:
        raise ValueError(f"no examples in {path}")
    return examples


def checksum(path: Path) -> str:
    """SHA-256 over the corpus files' names and bytes, so a model records exactly what it learnt from."""
    digest = hashlib.sha256()
    for file in corpus_files(path):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()
