"""minsheng-classify: train, ship, predict in batch, evaluate, and run the external benchmark."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from minsheng_classifier.benchmark import TIPDM, report, run_benchmark
from minsheng_classifier.corpus import CAMPAIGN_CORPUS, load_examples
from minsheng_classifier.evaluation import (
    EVALUATION_DIR,
    per_message_latency_ms,
    read_jsonl,
    score_categories,
    score_pairs,
    score_units,
)
from minsheng_classifier.model import ModelUnavailable, TextClassifier
from minsheng_classifier.recipes import RECIPES
from minsheng_classifier.settings import DEFAULT_MODEL_DIR
from minsheng_classifier.shipped import campaign_model, train_from
from minsheng_classifier.similarity import Comparer
from minsheng_core.units import DEFAULT_UNITS_FILE, load_units


def _train(args: argparse.Namespace) -> int:
    model = train_from(args.data, args.model, seed=args.seed, recipe=args.recipe)
    print(json.dumps(model.meta, ensure_ascii=False))
    return 0


def _ship(args: argparse.Namespace) -> int:
    model = campaign_model(args.model, CAMPAIGN_CORPUS)
    print(f"campaign model {model.version} in {args.model}")
    return 0


def _model(path: Path | None) -> TextClassifier:
    return TextClassifier.load(path) if path else campaign_model(DEFAULT_MODEL_DIR, CAMPAIGN_CORPUS)


def _predict(args: argparse.Namespace) -> int:
    model = _model(args.model)
    batch: list[tuple[object, str]] = []

    def flush() -> None:
        for (item_id, _), p in zip(batch, model.predict([t for _, t in batch]), strict=True):
            print(json.dumps({"id": item_id, "category": p.category, "confidence": round(p.confidence, 4)}, ensure_ascii=False))
        batch.clear()

    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            text = record["text"]
            if not isinstance(text, str):
                raise ValueError("text must be a string")
        except (ValueError, KeyError, TypeError) as exc:
            print(f'line {number}: expected {{"id": …, "text": …}} ({exc})', file=sys.stderr)
            return 2
        batch.append((record.get("id"), text))
        if len(batch) >= 512:
            flush()
    flush()
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    model = _model(args.model)
    units = load_units(args.units)
    heldout = read_jsonl(args.evaluation / "heldout.jsonl")
    texts = [r["text"] for r in heldout]
    scores = score_categories([r["label"] for r in heldout], [p.category for p in model.predict(texts)])
    latency = per_message_latency_ms(model, texts[:300])
    unit_scores = score_units(units, read_jsonl(args.evaluation / "units.jsonl"))
    comparer = Comparer(units.unit_names(), units.place_names(), [e.text for e in load_examples(CAMPAIGN_CORPUS)])
    pair_scores = score_pairs(units, comparer, model, read_jsonl(args.evaluation / "pairs.jsonl"))
    print(f"model {model.version} ({model.meta['examples']} training examples)\n")
    print(f"categories on {scores.examples} held-out examples: accuracy {scores.accuracy:.4f}, macro-F1 {scores.macro_f1:.4f}")
    for label, f1 in scores.per_class_f1.items():
        print(f"  {label:18} F1 {f1:.4f}")
    print(f"per-message latency: p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms")
    print(f"\nunits on {unit_scores['examples']} labelled suggestions: accuracy {unit_scores['accuracy']:.4f}")
    for source, counts in unit_scores["by_source"].items():
        print(f"  decided by {source:9} {counts['right']}/{counts['of']}")
    print(f"\npairs ({pair_scores['pairs']}):")
    for name in ("cluster", "duplicate"):
        print(f"  {name:9} precision {pair_scores[name]['precision']:.4f}, recall {pair_scores[name]['recall']:.4f}")
    if args.verbose:
        for miss in unit_scores["misses"]:
            print("unit miss:", json.dumps(miss, ensure_ascii=False))
        for error in pair_scores["errors"]:
            print("pair error:", json.dumps(error, ensure_ascii=False))
    return 0


def _benchmark(args: argparse.Namespace) -> int:
    if not args.data.exists():
        print(f"benchmark data not found: {args.data}", file=sys.stderr)
        return 2
    print(report(run_benchmark(args.data, tuple(args.recipe or RECIPES))))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minsheng-classify", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train on JSON lines {text, label}")
    train.add_argument("--data", type=Path, required=True, action="append", help="JSON-lines file or folder; repeatable")
    train.add_argument("--model", type=Path, required=True, help="folder to write the model to")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--recipe", choices=RECIPES, default="linear", help="linear, stacked (minutes to train), fast or blend")
    train.set_defaults(run=_train)
    ship = sub.add_parser("ship", help="build the campaign model the service ships, if missing or stale")
    ship.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    ship.set_defaults(run=_ship)
    predict = sub.add_parser("predict", help="JSON lines {id, text} on stdin → {id, category, confidence} on stdout")
    predict.add_argument("--model", type=Path, help="model folder (default: the shipped campaign model)")
    predict.set_defaults(run=_predict)
    evaluate = sub.add_parser("evaluate", help="held-out categories, units, duplicate/cluster pairs, latency")
    evaluate.add_argument("--model", type=Path, help="model folder (default: the shipped campaign model)")
    evaluate.add_argument("--evaluation", type=Path, default=EVALUATION_DIR)
    evaluate.add_argument("--units", type=Path, default=DEFAULT_UNITS_FILE)
    evaluate.add_argument("--verbose", action="store_true", help="list every miss")
    evaluate.set_defaults(run=_evaluate)
    bench = sub.add_parser("benchmark", help="TipDM 2020 benchmark against TF-IDF + LinearSVC")
    bench.add_argument("--data", type=Path, default=TIPDM)
    bench.add_argument(
        "--recipe", choices=RECIPES, action="append", help="recipe to run against the baseline; repeatable (default: all)"
    )
    bench.set_defaults(run=_benchmark)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ModelUnavailable as exc:
        print(f"minsheng-classify: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
