"""Measuring the classifier: categories on held-out text, units on a labelled set, duplicates and clusters on
labelled pairs, per-message latency. Used by `minsheng-classify evaluate` and `benchmark`."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.metrics import accuracy_score, f1_score

from minsheng_classifier.model import TextClassifier
from minsheng_classifier.routing import resolve_unit
from minsheng_classifier.similarity import Comparer, Fingerprint
from minsheng_core.events import Location, SubmitterGroup
from minsheng_core.paths import REPO_ROOT
from minsheng_core.units import UnitRegistry

EVALUATION_DIR = REPO_ROOT / "services" / "classifier" / "evaluation"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class CategoryScores:
    examples: int
    accuracy: float
    macro_f1: float
    per_class_f1: dict[str, float]


def score_categories(truth: list[str], predicted: list[str]) -> CategoryScores:
    labels = sorted(set(truth))
    per_class = f1_score(truth, predicted, labels=labels, average=None, zero_division=0)
    return CategoryScores(
        examples=len(truth),
        accuracy=float(accuracy_score(truth, predicted)),
        macro_f1=float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)),
        per_class_f1={label: float(f) for label, f in zip(labels, per_class, strict=True)},
    )


def per_message_latency_ms(model: TextClassifier, texts: list[str]) -> dict[str, float]:
    """p50/p99 of classifying one message at a time, as the consumer does."""
    timings = []
    for text in texts:
        started = time.perf_counter()
        model.predict([text])
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {"p50": statistics.median(timings), "p99": timings[min(len(timings) - 1, int(len(timings) * 0.99))]}


def score_units(registry: UnitRegistry, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy of the unit resolver, overall and by the rule that decided."""
    right = 0
    by_source: dict[str, list[int]] = {}
    misses = []
    for record in records:
        decision = resolve_unit(
            registry,
            Location(**{k: v for k, v in (record.get("location") or {}).items() if v}),
            record["text"],
            record.get("account_unit"),
            SubmitterGroup(record.get("submitter_group") or "resident"),
        )
        ok = decision.unit == record["unit"]
        right += ok
        by_source.setdefault(decision.source, [0, 0])
        by_source[decision.source][0] += ok
        by_source[decision.source][1] += 1
        if not ok:
            misses.append({"text": record["text"][:60], "expected": record["unit"], "got": decision.unit, "by": decision.source})
    return {
        "examples": len(records),
        "accuracy": right / len(records),
        "by_source": {k: {"right": v[0], "of": v[1]} for k, v in sorted(by_source.items())},
        "misses": misses,
    }


def _fingerprint(side: dict[str, Any], registry: UnitRegistry, comparer: Comparer, category: str) -> Fingerprint:
    location = Location(town=side.get("town") or None, village=side.get("village") or None)
    unit = resolve_unit(registry, location, side["text"]).place_unit
    village = registry.canonical_place(side.get("village"))
    return comparer.fingerprint(side["text"], unit, village, side.get("person"), category)


def score_pairs(
    registry: UnitRegistry, comparer: Comparer, model: TextClassifier, records: list[dict[str, Any]]
) -> dict[str, Any]:
    """Precision and recall of 'same cluster' (duplicate or same thing) and of 'duplicate', on labelled pairs."""
    texts = sorted({r[side]["text"] for r in records for side in ("a", "b")})
    category = dict(zip(texts, (p.category for p in model.predict(texts)), strict=True))
    counts = {"cluster": [0, 0, 0], "duplicate": [0, 0, 0]}  # true positives, predicted positives, actual positives
    errors = []
    for record in records:
        a, b = (_fingerprint(record[s], registry, comparer, category[record[s]["text"]]) for s in ("a", "b"))
        got = comparer.relation(a, b)
        want = record["label"]
        for name, positive in (("cluster", {"duplicate", "same_thing"}), ("duplicate", {"duplicate"})):
            predicted, actual = got in positive, want in positive
            counts[name][0] += predicted and actual
            counts[name][1] += predicted
            counts[name][2] += actual
        if got != want:
            errors.append({"want": want, "got": got, "a": record["a"]["text"][:40], "b": record["b"]["text"][:40]})
    return {
        "pairs": len(records),
        **{
            name: {"precision": tp / pp if pp else 0.0, "recall": tp / ap if ap else 0.0} for name, (tp, pp, ap) in counts.items()
        },
        "errors": errors,
    }
