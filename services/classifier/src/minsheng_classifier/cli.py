"""minsheng-classify: train a model, or sort JSON lines from stdin in batch."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from minsheng_classifier.corpus import CAMPAIGN_CORPUS
from minsheng_classifier.model import TextClassifier
from minsheng_classifier.settings import DEFAULT_MODEL_DIR
from minsheng_classifier.shipped import campaign_model, train_from


def _train(args: argparse.Namespace) -> int:
    model = train_from(args.data, args.model, seed=args.seed)
    print(json.dumps(model.meta, ensure_ascii=False))
    return 0


def _predict(args: argparse.Namespace) -> int:
    model = TextClassifier.load(args.model) if args.model else campaign_model(DEFAULT_MODEL_DIR, CAMPAIGN_CORPUS)
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
            if not isinstance(text, str) or not text.strip():
                raise ValueError("text must be a non-empty string")
        except (ValueError, KeyError, TypeError) as exc:
            print(f'line {number}: expected {{"id": …, "text": …}} ({exc})', file=sys.stderr)
            return 2
        batch.append((record.get("id"), text))
        if len(batch) >= 512:
            flush()
    flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minsheng-classify", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train on JSON lines {text, label}")
    train.add_argument("--data", type=Path, required=True, help="JSON-lines file or folder of them")
    train.add_argument("--model", type=Path, required=True, help="folder to write the model to")
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(run=_train)
    predict = sub.add_parser("predict", help="JSON lines {id, text} on stdin → {id, category, confidence} on stdout")
    predict.add_argument("--model", type=Path, help="model folder (default: the shipped campaign model)")
    predict.set_defaults(run=_predict)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
