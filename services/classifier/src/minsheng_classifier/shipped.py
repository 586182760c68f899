"""The campaign model the service ships: trained from the corpus in the repository, retrained when it changes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import structlog

from minsheng_classifier.corpus import checksum, load_examples
from minsheng_classifier.model import ModelUnavailable, TextClassifier

log = structlog.get_logger(__name__)


def data_checksum(sources: list[Path]) -> str:
    """One checksum over several corpus files or folders, in the order given."""
    if len(sources) == 1:
        return checksum(sources[0])
    return hashlib.sha256("".join(checksum(s) for s in sources).encode()).hexdigest()


def train_from(sources: list[Path], model_dir: Path, seed: int = 0, recipe: str = "linear") -> TextClassifier:
    """Train on corpus files or folders (e.g. the campaign corpus plus staff corrections) and save the model."""
    examples = [e for source in sources for e in load_examples(source)]
    texts, labels = [e.text for e in examples], [e.label for e in examples]
    model = TextClassifier.train(texts, labels, data_checksum(sources), seed, recipe)
    model.meta["sources"] = {source.name: checksum(source) for source in sources}
    model.save(model_dir)
    return model


def campaign_model(model_dir: Path, corpus_dir: Path) -> TextClassifier:
    """The model in model_dir if it was trained on this corpus (alone or with corrections); otherwise train it now."""
    try:
        model = TextClassifier.load(model_dir)
    except ModelUnavailable as exc:
        log.info("campaign_model_missing", reason=str(exc))
    else:
        if checksum(corpus_dir) in model.meta.get("sources", {}).values():
            return model
        log.info("campaign_model_stale", model_version=model.version)
    model = train_from([corpus_dir], model_dir)
    log.info("campaign_model_trained", model_version=model.version, seconds=model.meta["training_seconds"])
    return model
