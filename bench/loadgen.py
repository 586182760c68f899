"""The HTTP load generator: vegeta (built from bench/loadgen by scripts/bench), the same for every endpoint measured."""

from __future__ import annotations

import base64
import json
import random
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from minsheng_core.paths import REPO_ROOT

VEGETA = REPO_ROOT / "var" / "bin" / "vegeta"
CORPUS = REPO_ROOT / "services" / "classifier" / "corpus"


def suggestion_texts(seed: int = 7) -> list[str]:
    """Realistic suggestion texts of every category and voice, from the campaign corpus."""
    from pydantic import ValidationError

    from minsheng_intake_web.schemas import SuggestionCreate

    texts = []
    for path in sorted(CORPUS.glob("*.jsonl")):
        for line in filter(str.strip, path.read_text(encoding="utf-8").splitlines()):
            text = json.loads(line)["text"]
            try:  # only what the web form accepts: every submission of the benchmark should be accepted
                SuggestionCreate(text=text)
            except ValidationError:
                continue
            texts.append(text)
    random.Random(seed).shuffle(texts)
    return texts


def write_targets(path: Path, url: str, count: int, texts: list[str]) -> list[str]:
    """Vegeta JSON targets, one web submission each with its own Idempotency-Key; returns the keys."""
    keys = []
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            key = f"bench-{uuid.uuid4().hex}"
            keys.append(key)
            body = json.dumps({"text": texts[i % len(texts)], "location": {"town": "双塔山镇"}}, ensure_ascii=False)
            target = {
                "method": "POST",
                "url": url,
                "body": base64.b64encode(body.encode()).decode(),
                "header": {"Content-Type": ["application/json"], "Idempotency-Key": [key]},
            }
            out.write(json.dumps(target) + "\n")
    return keys


@dataclass(frozen=True)
class Attack:
    """What vegeta measured for one attack."""

    requests: int
    accepted: int  # 2xx
    throughput: float  # successful requests per second
    p50_ms: float
    p99_ms: float
    duration_s: float
    status_codes: dict[str, int]


def attack(targets: Path, rate: int, duration_s: float, max_workers: int = 64, count: int | None = None) -> Attack:
    """Run vegeta at a constant rate (0 = as fast as it goes, bounded by workers) and read its JSON report."""
    results = targets.with_suffix(f".{rate}.bin")
    command = [str(VEGETA), "attack", "-format=json", "-lazy", f"-targets={targets}", f"-rate={rate}/s", "-timeout=30s"]
    command += [f"-max-workers={max_workers}", f"-output={results}"]
    command += [f"-duration={duration_s}s"] if count is None else ["-duration=0"]
    if rate == 0:
        command += [f"-workers={max_workers}"]
    subprocess.run(command, check=True)
    reported = subprocess.run([str(VEGETA), "report", "-type=json", str(results)], check=True, capture_output=True)
    report = json.loads(reported.stdout)
    accepted = sum(n for code, n in report["status_codes"].items() if code.startswith("2"))
    return Attack(
        requests=report["requests"],
        accepted=accepted,
        throughput=report["throughput"],
        p50_ms=report["latencies"]["50th"] / 1e6,
        p99_ms=report["latencies"]["99th"] / 1e6,
        duration_s=(report["duration"] + report["wait"]) / 1e9,
        status_codes=report["status_codes"],
    )
