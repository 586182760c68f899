"""minsheng-bench-reports: report counts from the tallies against a scan of the suggestions, as the store grows.

One database (named ``bench_reports_…``, dropped at the end) grows to each size in turn. Suggestions are inserted in
bulk with ``tallied`` set, and the tallies are brought to what ``Tallies.settle`` would leave (``--tallies``). At each size the
district and unit counts are read from the tallies and, side by side in the same run, computed by scanning the
suggestions; the two must agree (and agree with what was inserted), or the benchmark exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from minsheng_core.campaign import Campaign
from minsheng_core.events import Channel, SubmitterGroup
from minsheng_core.mongo import mongo_client
from minsheng_core.units import UnitRegistry, load_units
from minsheng_store.repository import CLASSIFIED, SuggestionRepository
from minsheng_store.settings import StoreSettings
from minsheng_store.tallies import Tallies, TallyKey, key_of

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
DATABASE_PREFIX = "bench_reports_"
UPSERT, LOAD = "upsert", "load"
# FerretDB 1.24 (SQLite) keeps the cursor of every matched update open until the whole command ends: an update
# command that matches more documents than its connection pool holds (100) waits forever. Keep commands small.
UPDATES_PER_COMMAND = 50
TALLY_MODES = {
    UPSERT: "one $inc upsert per day per batch, as settle() moves them",
    LOAD: "tally documents written in bulk after each growth step",
}
SEED = 20191015
T = TypeVar("T")

# Rough shares of the 2019 campaign: most suggestions were collected door to door and at symposiums.
CHANNEL_WEIGHTS = {
    Channel.DOOR_TO_DOOR: 40,
    Channel.WECHAT: 20,
    Channel.WEB: 12,
    Channel.SYMPOSIUM: 12,
    Channel.HOTLINE: 10,
    Channel.HOTLINE_TRANSCRIPT: 6,
}
CATEGORY_WEIGHTS = {
    "road_traffic": 22,
    "environment": 14,
    "rural": 12,
    "urban_management": 10,
    "housing": 9,
    "social_security": 8,
    "health": 7,
    "community": 6,
    "education_sports": 5,
    "culture": 4,
    "other": 3,
}
PHRASES = {
    "road_traffic": ("门前道路坑洼不平，雨天积水，建议尽快硬化修补。", "路口没有红绿灯，上下学时段车多，建议加装信号灯。"),
    "housing": ("老旧小区楼道墙皮脱落，建议纳入改造。", "房屋年久失修漏雨，希望帮助维修。"),
    "environment": ("河道垃圾较多，有异味，建议定期清理。", "附近企业夜间排放烟尘，希望加强监管。"),
    "social_security": ("希望提高农村老人养老金标准。", "低保申请手续复杂，建议简化办理流程。"),
    "community": ("社区缺少居民活动场所，建议建设活动室。", "希望社区增设便民服务点。"),
    "health": ("村卫生室药品不全，看病要跑到镇上，建议充实。", "希望定期组织老年人免费体检。"),
    "rural": ("村里自来水经常停水，建议改造供水管网。", "希望村里安装路灯，晚上出行不便。"),
    "culture": ("希望建设文化广场，丰富群众业余生活。", "建议村图书室延长开放时间。"),
    "education_sports": ("学校周边缺少健身器材，建议增设。", "希望改善幼儿园办学条件，增加学位。"),
    "urban_management": ("早市占道经营严重，影响通行，建议规范管理。", "小区周边乱停车，建议施划停车位。"),
    "other": ("希望政务服务大厅周末也能办理业务。", "建议加强冬季取暖安全宣传。"),
}
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@dataclass
class Build:
    """How one growth step went."""

    added: int = 0
    generate_s: float = 0.0
    insert_s: float = 0.0
    tally_s: float = 0.0
    tally_writes: int = 0

    @property
    def total_s(self) -> float:
        return self.generate_s + self.insert_s + self.tally_s


@dataclass
class Timings:
    """Medians at one size, in milliseconds."""

    size: int
    tallies_district_ms: float
    tallies_unit_ms: float
    scan_ms: float
    tally_documents: int
    problems: list[str] = field(default_factory=list)


class Generator:
    """Synthetic but plausible classified suggestions, drawn with a fixed seed from the real registry and taxonomy."""

    def __init__(self, registry: UnitRegistry, campaign: Campaign, seed: int = SEED) -> None:
        self._rng = random.Random(seed)
        self._campaign = campaign
        self._zone = campaign.zone
        # Bigger units (more villages and communities) send more suggestions; the district office a few.
        self._units = [registry.district.code, *(u.code for u in registry.units)]
        self._unit_weights = [2, *(len(u.places) + 2 for u in registry.units)]
        self._places = {u.code: [p.name for p in u.places] or [u.name] for u in registry.units}
        self._unit_names = {u.code: u.name for u in registry.units}
        self._places[registry.district.code] = [registry.district.name]
        self._unit_names[registry.district.code] = registry.district.name
        self._categories = campaign.category_codes()
        self._category_weights = [CATEGORY_WEIGHTS.get(c, 3) for c in self._categories]
        self._channels = [c.value for c in CHANNEL_WEIGHTS]
        self._channel_weights = list(CHANNEL_WEIGHTS.values())
        self._opens_at = campaign.opens_at
        self._days = (campaign.closes_on - campaign.opens_on).days + 1
        self._classified_lag = timedelta(minutes=3)

    def batch(self, start: int, count: int) -> tuple[list[dict[str, Any]], Counter[TallyKey]]:
        """Suggestion documents number start … start+count−1, each with ``tallied`` set, and their tally increments."""
        rng = self._rng
        units = rng.choices(self._units, self._unit_weights, k=count)
        categories = rng.choices(self._categories, self._category_weights, k=count)
        channels = rng.choices(self._channels, self._channel_weights, k=count)
        docs: list[dict[str, Any]] = []
        increments: Counter[TallyKey] = Counter()
        for offset in range(count):
            number = start + offset
            unit, category, channel = units[offset], categories[offset], channels[offset]
            # Daytime submissions, uniform over the days of the window.
            seconds = rng.randrange(self._days) * 86_400 + rng.randrange(7 * 3600, 21 * 3600)
            submitted = self._opens_at + timedelta(seconds=seconds)
            classified = submitted + self._classified_lag
            place = rng.choice(self._places[unit])
            confidence = round(rng.uniform(0.35, 0.99), 3)
            doc: dict[str, Any] = {
                "_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "tracking_code": _tracking_code(number),
                "channel": channel,
                "channel_ref": f"bench-{number}",
                "campaign": self._campaign.code,
                "title": None,
                "text": f"{place}{rng.choice(PHRASES.get(category, PHRASES['other']))}",
                "location": {"town": self._unit_names[unit], "village": place, "detail": None},
                "submitter_group": SubmitterGroup.RESIDENT.value,
                "channel_unit": unit if channel == Channel.DOOR_TO_DOOR else None,
                "account": None,
                "awaiting": None,
                "submitted_at": submitted,
                "received_event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "classification": {
                    "category": category,
                    "confidence": confidence,
                    "needs_review": confidence < 0.5,
                    "model_version": "bench",
                    "unit": unit,
                    "unit_source": "location",
                    "cluster_id": None,
                    "duplicate_of": None,
                    "classified_at": classified,
                },
                "cluster_id": None,
                "duplicate_of": None,
                "needs_review": confidence < 0.5,
                "category": category,
                "unit": unit,
                "status": CLASSIFIED,
                "created_at": submitted,
                "updated_at": classified,
            }
            key = key_of(doc, self._zone)
            assert key is not None  # a classified suggestion is always counted
            doc["tallied"] = key.as_dict()
            increments[key] += 1
            docs.append(doc)
        return docs, increments


def _tracking_code(number: int) -> str:
    # An odd multiplier is a bijection modulo 32**10: unique codes that do not look sequential.
    mixed = (number * 0x9E3779B97F4A7C15 + 0x5DEECE66D) % 32**10
    chars = []
    for _ in range(10):
        mixed, index = divmod(mixed, 32)
        chars.append(_CROCKFORD[index])
    return "".join(chars[:5]) + "-" + "".join(chars[5:])


async def grow(
    db: AsyncDatabase,
    generator: Generator,
    start: int,
    stop: int,
    batch: int,
    expected: Counter[TallyKey],
    mode: str,
) -> Build:
    """Insert suggestions start … stop−1 in batches and bring the tallies up to date (see ``--tallies``)."""
    build = Build(added=stop - start)
    report_every = max(batch, (stop - start) // 10)
    for first in range(start, stop, batch):
        began = time.perf_counter()
        docs, increments = generator.batch(first, min(batch, stop - first))
        inserting = time.perf_counter()
        await db.suggestions.insert_many(docs, ordered=False)
        tallying = time.perf_counter()
        if mode == UPSERT:
            # One $inc upsert per day of the batch, every count of that day in it: the moves settle() makes, gathered.
            by_day: dict[str, dict[str, int]] = {}
            for key, n in increments.items():
                by_day.setdefault(key.day, {})[f"counts.{key.cell}"] = n
            upserts = [UpdateOne({"_id": day}, {"$inc": cells}, upsert=True) for day, cells in by_day.items()]
            for chunk in range(0, len(upserts), UPDATES_PER_COMMAND):
                await db.daily_tallies.bulk_write(upserts[chunk : chunk + UPDATES_PER_COMMAND], ordered=False)
            build.tally_writes += len(upserts)
        done = time.perf_counter()
        build.generate_s += inserting - began
        build.insert_s += tallying - inserting
        build.tally_s += done - tallying
        expected.update(increments)
        if (first + batch - start) // report_every > (first - start) // report_every and first + batch < stop:
            print(f"[bench]   {first + batch:,} / {stop:,} stored", file=sys.stderr, flush=True)
    if mode == LOAD:
        began = time.perf_counter()
        await load_tallies(db, expected)
        build.tally_writes = len(expected)
        build.tally_s += time.perf_counter() - began
    return build


async def load_tallies(db: AsyncDatabase, expected: Counter[TallyKey]) -> None:
    """Replace the tallies by the totals of every suggestion inserted so far: the documents settle() would leave."""
    await Tallies(db, ZoneInfo("UTC")).load(dict(expected))


async def _median_ms(repeats: int, call: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    durations, result = [], None
    for _ in range(repeats):
        began = time.perf_counter()
        result = await call()
        durations.append((time.perf_counter() - began) * 1000)
    assert result is not None
    return statistics.median(durations), result


async def scan_counts(db: AsyncDatabase) -> list[dict[str, Any]]:
    """The district's counts by unit × category × channel, computed from every suggestion (what the tallies avoid)."""
    pipeline = [
        {"$match": {"status": {"$ne": "pending"}, "submitted_at": {"$exists": True}}},
        {"$group": {"_id": {"unit": "$unit", "category": "$category", "channel": "$channel"}, "count": {"$sum": 1}}},
    ]
    return await (await db.suggestions.aggregate(pipeline)).to_list(None)


async def measure(
    db: AsyncDatabase, tallies: Tallies, unit: str, size: int, repeats: int, expected: Counter[TallyKey]
) -> Timings:
    """Time the three ways to the report's counts at this size and check that they agree with what was inserted."""

    async def district() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return await tallies.rows(), await tallies.by_day()

    district_ms, (rows, by_day) = await _median_ms(repeats, district)
    unit_ms, unit_rows = await _median_ms(repeats, lambda: tallies.rows(unit=unit))
    scan_ms, scanned = await _median_ms(repeats, lambda: scan_counts(db))

    problems: list[str] = []
    want_rows = Counter[tuple[str, str, str]]()
    want_days = Counter[str]()
    for key, n in expected.items():
        want_rows[(key.unit, key.category, key.channel)] += n
        want_days[key.day] += n
    got_rows = {(r["unit"], r["category"], r["channel"]): r["count"] for r in rows}
    got_scan = {(r["_id"]["unit"], r["_id"]["category"], r["_id"]["channel"]): r["count"] for r in scanned}
    got_unit = {(r["unit"], r["category"], r["channel"]): r["count"] for r in unit_rows}
    got_days = {r["day"]: r["count"] for r in by_day}
    stored: dict[TallyKey, int] = {}
    day_documents = 0
    async for doc in db.daily_tallies.find({}):
        day_documents += 1
        for cell, n in (doc.get("counts") or {}).items():
            if n > 0:
                stored[TallyKey(*cell.split("|"), day=doc["_id"])] = n
    if sum(got_scan.values()) != size:
        problems.append(f"scan counts {sum(got_scan.values())} suggestions, {size} stored")
    if got_rows != got_scan:
        problems.append(f"tallies rows() differ from the scan in {len(set(got_rows.items()) ^ set(got_scan.items()))} rows")
    if got_rows != dict(want_rows):
        problems.append("tallies rows() differ from what was inserted")
    if got_unit != {k: v for k, v in got_scan.items() if k[0] == unit}:
        problems.append(f"tallies rows(unit={unit}) differ from the scan")
    if got_days != dict(want_days) or sum(got_days.values()) != size:
        problems.append(f"tallies by_day() total {sum(got_days.values())}, {size} stored")
    if stored != dict(expected):
        problems.append("tally documents differ from the increments of the inserted suggestions")
    return Timings(size, district_ms, unit_ms, scan_ms, day_documents, problems)


def report(builds: list[Build], timings: list[Timings], unit: str, args: argparse.Namespace) -> str:
    """The build and the timing tables, in markdown."""
    lines = [
        f"### Building (insert_many of {args.batch:,}; tallies: {TALLY_MODES[args.tallies]})",
        "",
        "| N | added | generate s | insert s | insert docs/s | tally writes | tally s | build s | overall docs/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for build, t in zip(builds, timings, strict=True):
        lines.append(
            f"| {t.size:,} | {build.added:,} | {build.generate_s:.1f} | {build.insert_s:.1f} "
            f"| {_rate(build.added, build.insert_s)} | {build.tally_writes:,} | {build.tally_s:.1f} "
            f"| {build.total_s:.1f} | {_rate(build.added, build.total_s)} |"
        )
    lines += [
        "",
        f"### Report counts (median of {args.repeats}; district = rows() + by_day(); unit = rows(unit={unit!r}))",
        "",
        "| N | day documents | tallies district ms | tallies unit ms | scan ms | scan/tallies | counts equal |",
        "|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for t in timings:
        lines.append(
            f"| {t.size:,} | {t.tally_documents:,} | {t.tallies_district_ms:.1f} | {t.tallies_unit_ms:.1f} "
            f"| {t.scan_ms:.1f} | {t.scan_ms / t.tallies_district_ms:.1f}× | {'yes' if not t.problems else 'NO'} |"
        )
    return "\n".join(lines)


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if seconds > 0 else "–"


async def run(args: argparse.Namespace) -> int:
    settings = StoreSettings()
    campaign = settings.campaign
    registry = load_units(settings.units_file)
    zone: ZoneInfo = campaign.zone
    generator = Generator(registry, campaign, args.seed)
    # The unit report is timed for the unit with the most villages and communities: the largest one.
    unit = max(registry.units, key=lambda u: len(u.places)).code
    client = mongo_client(args.mongo_url or settings.mongo_url.get_secret_value())
    builds: list[Build] = []
    timings: list[Timings] = []
    expected: Counter[TallyKey] = Counter()
    try:
        await client.drop_database(args.database)
        db = client[args.database]
        repo = SuggestionRepository(db, zone)
        if not args.no_indexes:
            await repo.ensure_indexes()  # as the store runs: every write also maintains the staff queries' indexes
        stored = 0
        for size in sorted(set(args.sizes)):
            build = await grow(db, generator, stored, size, args.batch, expected, args.tallies)
            stored = size
            print(
                f"[bench] N={size:,}: built in {build.total_s:.1f} s "
                f"(insert {_rate(build.added, build.insert_s)} docs/s, tallies {build.tally_s:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
            timed = await measure(db, repo.tallies, unit, size, args.repeats, expected)
            print(
                f"[bench] N={size:,}: tallies {timed.tallies_district_ms:.1f} ms, scan {timed.scan_ms:.1f} ms",
                file=sys.stderr,
                flush=True,
            )
            builds.append(build)
            timings.append(timed)
    finally:
        if not args.keep:
            await client.drop_database(args.database)
        await client.close()
    print(report(builds, timings, unit, args))
    failed = [f"N={t.size:,}: {p}" for t in timings for p in t.problems]
    for problem in failed:
        print(f"MISMATCH {problem}", file=sys.stderr)
    return 1 if failed else 0


def _database(name: str) -> str:
    if not name.startswith(DATABASE_PREFIX):
        raise argparse.ArgumentTypeError(f"the database name must start with {DATABASE_PREFIX!r}: it is dropped")
    return name


def main(argv: list[str] | None = None) -> int:
    """Grow a throwaway database through the sizes and print how report time compares, tallies against a scan."""
    parser = argparse.ArgumentParser(prog="minsheng-bench-reports", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="numbers of suggestions")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (the median is reported)")
    parser.add_argument("--batch", type=int, default=5_000, help="suggestions per insert_many")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--mongo-url", default=None, help="default: MINSHENG_STORE_MONGO_URL or the local store")
    parser.add_argument("--database", type=_database, default=f"{DATABASE_PREFIX}{os.getpid()}")
    parser.add_argument(
        "--tallies",
        choices=(UPSERT, LOAD),
        default=UPSERT,
        help="upsert (default): one $inc upsert per day of each batch, with every count of that day (what settle() "
        "does, gathered); load: write the same day documents in bulk after each growth step",
    )
    parser.add_argument("--no-indexes", action="store_true", help="skip the store's indexes on the suggestions")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards (default: drop it)")
    args = parser.parse_args(argv)
    if any(size < 1 for size in args.sizes) or args.repeats < 1 or args.batch < 1:
        parser.error("sizes, repeats and batch must be positive")
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
