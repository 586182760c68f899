"""A trained classifier with the metadata that says what it learnt from, saved and loaded with a checksum."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.pipeline import Pipeline

from minsheng_classifier.recipes import build_pipeline

MODEL_FILE = "model.joblib"
META_FILE = "model.json"


class ModelUnavailable(Exception):
    """The model folder is missing, incomplete or corrupt."""


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
    def train(
        cls, texts: list[str], labels: list[str], data_checksum: str, seed: int = 0, recipe: str = "linear"
    ) -> TextClassifier:
        """Fit on the examples; the version names the recipe and the data it came from."""
        started = datetime.now(UTC)
        pipeline = build_pipeline(recipe, seed).fit(texts, labels)
        meta = {
            "version": f"{recipe}-{data_checksum[:12]}",
            "recipe": recipe,
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
