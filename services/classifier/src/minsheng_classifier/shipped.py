"""The campaign model the service ships: trained from the corpus in the repository, retrained when it changes."""

from __future__ import annotations

from pathlib import Path

import structlog

from minsheng_classifier.corpus import checksum, load_examples
from minsheng_classifier.model import META_FILE, TextClassifier

log = structlog.get_logger(__name__)


def train_from(data: Path, model_dir: Path, seed: int = 0) -> TextClassifier:
    """Train on a corpus file or folder and save the model with the corpus checksum."""
    examples = load_examples(data)
    model = TextClassifier.train([e.text for e in examples], [e.label for e in examples], checksum(data), seed)
    model.save(model_dir)
    return model


def campaign_model(model_dir: Path, corpus_dir: Path) -> TextClassifier:
    """Load the model in model_dir if it was trained on this corpus; otherwise train it now."""
    if (model_dir / META_FILE).exists():
        model = TextClassifier.load(model_dir)
        if model.meta.get("data_sha256") == checksum(corpus_dir):
            return model
        log.info("campaign_model_stale", model_version=model.version)
    log.info("campaign_model_training", corpus=str(corpus_dir))
    model = train_from(corpus_dir, model_dir)
    log.info("campaign_model_trained", model_version=model.version, seconds=model.meta["training_seconds"])
    return model
