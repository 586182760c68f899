"""The pipeline under load: web submissions at rising rates until it saturates, then a burst of 20,000."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from pymongo import MongoClient

from bench.loadgen import Attack, attack, write_targets
from bench.stage import Service, Stage
from minsheng_core.mongo import mongo_client
from minsheng_store.tallies import UNCLASSIFIED, Tallies

CLASSIFIED = "classified"


@dataclass(frozen=True)
class Step:
    """One constant-rate step: what was offered, accepted, and how fast it went all the way through."""

    offered_rate: int
    attack: Attack
    sustained: float  # accepted and stored and classified per second, first request to last classification
    e2e_p50_ms: float
    e2e_p99_ms: float
    lost: int


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def wait_classified(stage: Stage, expected: int, timeout_s: float) -> tuple[int, float]:
    """Wait until `expected` suggestions are stored and classified; returns (count, seconds waited)."""
    return asyncio.run(_wait_classified(stage, expected, timeout_s))


async def _wait_classified(stage: Stage, expected: int, timeout_s: float) -> tuple[int, float]:
    # Counted from the store's tallies (a stored suggestion without a category yet is "unclassified" there): a
    # count_documents on the suggestions would scan them all in FerretDB four times a second, loading the very
    # database the pipeline waits on.
    started = time.monotonic()
    client = mongo_client(stage.mongo_url)
    try:
        tallies = Tallies(client[stage.database], ZoneInfo("Asia/Shanghai"))
        count = 0
        while time.monotonic() - started < timeout_s:
            count = sum(row["count"] for row in await tallies.rows() if row["category"] != UNCLASSIFIED)
            if count >= expected:
                break
            await asyncio.sleep(0.25)
    finally:
        await client.close()
    return count, time.monotonic() - started


def end_to_end_ms(stage: Stage, since_epoch: float) -> list[float]:
    """Per suggestion submitted since `since_epoch`: from acceptance (submitted_at) to its last write (classified and stored)."""
    from datetime import UTC, datetime

    since = datetime.fromtimestamp(since_epoch, UTC)
    with MongoClient(stage.mongo_url, tz_aware=True) as client:
        docs = client[stage.database].suggestions.find(
            {"submitted_at": {"$gte": since}, "status": CLASSIFIED}, {"submitted_at": 1, "updated_at": 1}
        )
        return [(d["updated_at"] - d["submitted_at"]).total_seconds() * 1000 for d in docs]


def run_step(stage: Stage, web: Service, texts: list[str], rate: int, seconds: float, accepted_before: int) -> Step:
    """Offer `rate` submissions per second for `seconds`, then wait for all accepted ones to be classified and stored."""
    targets = stage.directory / f"step-{rate}.targets"
    write_targets(targets, f"{web.url}/api/v1/suggestions", int(rate * seconds), texts)
    started = time.time()
    result = attack(targets, rate=rate, duration_s=seconds)
    expected = accepted_before + result.accepted
    count, _ = wait_classified(stage, expected, timeout_s=max(60.0, seconds * 6))
    finished = time.time()
    latencies = end_to_end_ms(stage, started)
    sustained = (min(count, expected) - accepted_before) / (finished - started)
    return Step(rate, result, sustained, _percentile(latencies, 0.5), _percentile(latencies, 0.99), max(0, expected - count))


def rising(stage: Stage, web: Service, texts: list[str], rates: list[int], seconds: float) -> list[Step]:
    """Steps at rising rates until the pipeline no longer keeps up (sustained below 85 % of offered, or errors)."""
    steps: list[Step] = []
    accepted = 0
    for rate in rates:
        step = run_step(stage, web, texts, rate, seconds, accepted)
        accepted += step.attack.accepted
        steps.append(step)
        print(
            f"[bench] offered {rate}/s: accepted {step.attack.accepted}/{step.attack.requests}, "
            f"sustained {step.sustained:.0f}/s, "
            f"accept p99 {step.attack.p99_ms:.0f} ms, e2e p99 {step.e2e_p99_ms:.0f} ms, lost {step.lost}",
            flush=True,
        )
        if step.sustained < 0.85 * rate or step.attack.accepted < step.attack.requests:
            break
    return steps


@dataclass(frozen=True)
class Burst:
    submissions: int
    attack: Attack
    drained_s: float  # first request to the last suggestion classified and stored
    stored: int
    peak_rss_mib: dict[str, float]


def burst(stage: Stage, services: dict[str, Service], texts: list[str], submissions: int = 20_000) -> Burst:
    """As many submissions as the intake takes, as fast as it takes them; time until everything is through."""
    web = services["intake-web"]
    targets = stage.directory / "burst.targets"
    write_targets(targets, f"{web.url}/api/v1/suggestions", submissions, texts)
    started = time.time()
    result = attack(targets, rate=0, duration_s=0, max_workers=32, count=submissions)
    count, _ = wait_classified(stage, result.accepted, timeout_s=1800)
    drained = time.time() - started
    return Burst(submissions, result, drained, count, {name: s.peak_rss_mib() for name, s in services.items()})
