"""Generate the JSON Schema of every event model, for downstream subscribers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from minsheng_core.events import EVENT_MODELS


def event_schemas() -> dict[str, dict]:
    """Return file name → JSON Schema for each published event model."""
    return {f"{model.__name__}.v1.json": model.model_json_schema(mode="serialization") for model in EVENT_MODELS}


def render(schema: dict) -> str:
    """Serialise a schema the way it is checked in: stable keys, UTF-8, final newline."""
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schemas to a folder, or with --check report whether the folder is stale."""
    parser = argparse.ArgumentParser(prog="minsheng-schemas", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/schemas"))
    parser.add_argument("--check", action="store_true", help="exit 1 if the checked-in schemas differ")
    args = parser.parse_args(argv)
    stale = []
    for name, schema in event_schemas().items():
        path = args.out / name
        text = render(schema)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print("stale event schemas, run `uv run minsheng-schemas`: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
