"""A trainable Chinese text classifier: jieba words and character n-grams, linear model, calibrated confidence."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jieba
import joblib
import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import LinearSVC

from minsheng_classifier.text import normalise

jieba.setLogLevel(logging.WARNING)
MODEL_FILE = "model.joblib"
META_FILE = "model.json"
_SPACES = re.compile(r"\s+")


class ModelUnavailable(Exception):
    """The model folder is missing, incomplete or corrupt."""


def normalise_all(texts: list[str]) -> list[str]:
    """The pipeline's first step: every text normalised once (simplified characters, half-width, bounded length)."""
    return [normalise(t) for t in texts]


def _presegmented(text: str) -> bool:
    # Word-segmented corpora put a space between most words; people put one now and then between phrases.
    return text.count(" ") >= 0.6 * max(1, len(_SPACES.sub("", text)) / 2)


def words(text: str) -> list[str]:
    """Word tokens of normalised text: jieba, or the given segmentation when the text comes segmented."""
    tokens = text.split() if _presegmented(text) else jieba.lcut(text)
    return [w for w in tokens if w.strip()]


def chars(text: str) -> str:
    """Normalised text without whitespace, for character n-grams that survive typos and unknown words."""
    return _SPACES.sub("", text)


def build_pipeline(seed: int = 0) -> Pipeline:
    """The feature union and the calibrated linear classifier."""
    features = FeatureUnion(
        [
            (
                "words",
                TfidfVectorizer(
                    tokenizer=words, token_pattern=None, lowercase=True, ngram_range=(1, 2), sublinear_tf=True, min_df=1
                ),
            ),
            ("chars", TfidfVectorizer(preprocessor=chars, analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=1)),
        ]
    )
    classifier = CalibratedClassifierCV(LinearSVC(C=0.5, class_weight="balanced", random_state=seed), cv=5, method="sigmoid")
    return Pipeline(
        [("normalise", FunctionTransformer(normalise_all)), ("features", features), ("classifier", classifier)]
    )


@dataclass(frozen=True)
class Prediction:
    category: str
    confidence: float


@dataclass
class TextClassifier:
    """A fitted pipeline with the metadata that says what it is and what it learnt from."""

    pipeline: Pipeline
    meta: dict[str, Any]

    @property
    def version(self) -> str:
        return self.meta["version"]

    @property
    def categories(self) -> list[str]:
        return list(self.meta["categories"])

    @classmethod
    def train(cls, texts: list[str], labels: list[str], data_checksum: str, seed: int = 0) -> TextClassifier:
        """Fit on the examples; the version names the data it came from."""
        started = datetime.now(UTC)
        pipeline = build_pipeline(seed).fit(texts, labels)
        meta = {
            "version": f"tfidf-svm-{data_checksum[:12]}",
            "data_sha256": data_checksum,
            "examples": len(texts),
            "categories": sorted(set(labels)),
            "trained_at": started.isoformat(),
            "training_seconds": round((datetime.now(UTC) - started).total_seconds(), 2),
        }
        return cls(pipeline, meta)

    def predict(self, texts: list[str]) -> list[Prediction]:
        """Most probable category and its calibrated probability for each text."""
        if not texts:
            return []
        probabilities = self.pipeline.predict_proba(texts)
        classes = self.pipeline.classes_
        best = np.argmax(probabilities, axis=1)
        return [Prediction(str(classes[i]), float(probabilities[row, i])) for row, i in enumerate(best)]

    def save(self, directory: Path) -> None:
        """Write the model, then its metadata with the model's checksum: a reader never sees a half-written pair."""
        directory.mkdir(parents=True, exist_ok=True)
        staged = directory / f".{MODEL_FILE}.tmp"
        joblib.dump(self.pipeline, staged)
        self.meta["model_sha256"] = _sha256(staged)
        os.replace(staged, directory / MODEL_FILE)
        staged_meta = directory / f".{META_FILE}.tmp"
        staged_meta.write_text(json.dumps(self.meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        os.replace(staged_meta, directory / META_FILE)

    @staticmethod
    def read_meta(directory: Path) -> dict[str, Any]:
        """The metadata of the model in a folder; ModelUnavailable with the reason if there is none."""
        try:
            meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelUnavailable(f"no model in {directory} (build it with `make train`)") from exc
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"model metadata in {directory} is unreadable: {exc}") from exc
        if not isinstance(meta, dict) or not {"version", "categories", "model_sha256"} <= set(meta):
            raise ModelUnavailable(f"model metadata in {directory} is incomplete")
        return meta

    @classmethod
    def load(cls, directory: Path) -> TextClassifier:
        """Load a model this project trained, after checking it is the file its metadata describes."""
        meta = cls.read_meta(directory)
        path = directory / MODEL_FILE
        if not path.exists() or _sha256(path) != meta["model_sha256"]:
            raise ModelUnavailable(f"model file {path} is missing or does not match its metadata (corrupt?)")
        try:
            # joblib unpickles: only ever load models this project wrote and checksummed, never uploads
            pipeline = joblib.load(path)
        except Exception as exc:
            raise ModelUnavailable(f"model file {path} cannot be loaded: {type(exc).__name__}: {exc}") from exc
        return cls(pipeline, meta)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
