"""The whole system as real processes on the private servers, a stream of submissions through every channel, and the
count afterwards: what the channels answered against what the store holds."""

from __future__ import annotations

import asyncio
import json
import re
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aio_pika
import httpx
import yaml
from pymongo import AsyncMongoClient

from minsheng_core.staff import Role, StaffDirectory
from minsheng_core.topology import parking_queue, retry_queue
from minsheng_store.tallies import Tallies
from tests.conftest import WECHAT_ACCOUNTS
from tests.fakes.twilio_voice import TwilioCall, spoken
from tests.fakes.wechat_platform import WechatPlatform
from tests.fault.servers import Ferret, RabbitNode, Service, start_all, stop_all

CONSUMER_QUEUES = ("minsheng.classifier", "minsheng.store")
TWILIO_TOKEN = "fault-twilio-auth-token"
TRANSCRIPTS_TOKEN = "fault-transcripts-token"
HOTLINE_PUBLIC_URL = "http://hotline.example"
WECHAT_LIMIT = 5.0  # WeChat gives up on a reply after 5 s and sends the message again (three tries in all)
_CODE = re.compile(r"[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}")
_PHONE = re.compile(r"(?<![0-9A-Za-z])(?:\+?86)?1[3-9]\d{9}(?![0-9A-Za-z])")

_PLACES = ["西地镇上店子村", "双塔山镇", "元宝山街道", "滦河镇", "大庙镇", "偏桥子镇", "陈栅子乡", "钢城街道"]
_ASKS = [
    "村里到镇上的路一下雨全是泥，希望明年能硬化",
    "路灯坏了很久，晚上出门不安全，希望修好",
    "希望多建几个公共厕所",
    "小区没有停车场，车停得到处都是，希望规划停车位",
    "希望在卫生院增加儿科医生",
    "村里自来水经常停，希望改造供水管网",
    "希望给老年人建一个日间照料中心",
    "学校门口没有红绿灯，孩子过马路很危险",
    "垃圾站离住户太近，夏天气味很大，希望搬远一点",
    "希望增加通往市区的公交班次",
    "希望建一个文化广场，晚上可以跳舞健身",
    "老旧小区外墙脱落，希望纳入改造",
]


def suggestion_text(n: int) -> str:
    """A different suggestion for every n (place and ask vary, the number keeps each text apart)."""
    return f"{_PLACES[n % len(_PLACES)]}：{_ASKS[(n // len(_PLACES)) % len(_ASKS)]}（第{n}条）"


class FaultSystem:
    """Classifier, store and the intakes as uvicorn processes on one vhost of the private broker and one database."""

    def __init__(self, rabbit: RabbitNode, ferret: Ferret, base: Path, model_dir: Path, tag: str) -> None:
        self.rabbit, self.ferret, self.tag, self.base = rabbit, ferret, tag, base
        self.vhost = self.database = tag
        self.amqp_url = rabbit.add_vhost(tag)
        accounts = base / "wechat-accounts.yaml"
        accounts.write_text(yaml.safe_dump({"accounts": WECHAT_ACCOUNTS}, allow_unicode=True), encoding="utf-8")
        today = date.today()
        common = {
            "ENVIRONMENT": "test",
            "AMQP_URL": self.amqp_url,
            "MONGO_URL": ferret.url,
            "MONGO_DATABASE": self.database,
            "CAMPAIGN_OPENS_ON": (today - timedelta(days=2)).isoformat(),
            "CAMPAIGN_CLOSES_ON": (today + timedelta(days=2)).isoformat(),
            "LOG_FORMAT": "json",
        }
        intake = {"DRAIN_INTERVAL_SECONDS": "0.5"}
        specs = {
            "classifier": ("CLASSIFIER", "minsheng_classifier.app", {"MODEL_DIR": str(model_dir), "MODEL_RELOAD_SECONDS": "600"}),
            "store": ("STORE", "minsheng_store.app", {}),
            "web": ("WEB", "minsheng_intake_web.app", intake | {"SUBMISSIONS_RATE": "100000/minute"}),
            "wechat": ("WECHAT", "minsheng_intake_wechat.app", intake | {"ACCOUNTS_FILE": str(accounts)}),
            "hotline": (
                "HOTLINE",
                "minsheng_intake_hotline.app",
                intake
                | {
                    "PUBLIC_URL": HOTLINE_PUBLIC_URL,
                    "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
                    "TRANSCRIPTS_TOKEN": TRANSCRIPTS_TOKEN,
                },
            ),
            "survey": ("SURVEY", "minsheng_intake_survey.app", intake),
        }
        self.services: dict[str, Service] = {}
        for name, (prefix, module, extra) in specs.items():
            values = common | extra
            if name not in ("classifier", "store"):
                values["OUTBOX_PATH"] = str(base / f"{name}-outbox.sqlite3")
            env = {f"MINSHENG_{prefix}_{key}": value for key, value in values.items()}
            self.services[name] = Service(name, f"{module}:create_app", env, base / f"{name}.log")
        self.mongo: AsyncMongoClient = AsyncMongoClient(ferret.url, tz_aware=True, serverSelectionTimeoutMS=3000)
        self.db = self.mongo[self.database]
        self.clients: dict[str, httpx.AsyncClient] = {}

    async def start(self) -> None:
        await asyncio.to_thread(start_all, list(self.services.values()))
        for name, service in self.services.items():
            self.clients[name] = httpx.AsyncClient(base_url=service.url, timeout=15)

    async def restart(self, name: str) -> None:
        service = self.services[name]
        service.start()
        await asyncio.to_thread(service.wait_ready)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        await asyncio.to_thread(stop_all, list(self.services.values()))
        try:
            await self.mongo.drop_database(self.database)
        finally:
            await self.mongo.close()
        await asyncio.to_thread(self.rabbit.delete_vhost, self.vhost)

    async def queue_depths(self) -> dict[str, int]:
        """Messages waiting in each consumer queue, its retry queue and its parking queue (from the broker itself)."""
        depths = {}
        connection = await aio_pika.connect(self.amqp_url)
        try:
            async with connection.channel() as channel:
                for queue in CONSUMER_QUEUES:
                    for name in (queue, retry_queue(queue), parking_queue(queue)):
                        declared = await channel.declare_queue(name, passive=True)
                        depths[name] = declared.declaration_result.message_count
        finally:
            await connection.close()
        return depths

    def logged(self, service: str, event: str) -> int:
        """How many times a service's log says this event happened."""
        text = self.services[service].log.read_text(encoding="utf-8", errors="replace")
        return sum(f'"event": "{event}"' in line for line in text.splitlines())

    def leaked_personal_data(self, openids: set[str]) -> list[str]:
        """Lines of the services' own logs that hold a phone number or one of the stream's openids."""
        leaks = []
        for service in self.services.values():
            for line in service.log.read_text(encoding="utf-8", errors="replace").splitlines():
                if _PHONE.search(line) or any(openid in line for openid in openids):
                    leaks.append(f"{service.name}: {line[:200]}")
        return leaks


@dataclass(frozen=True)
class Receipt:
    """A channel's answer "received": the tracking code the submitter was given."""

    channel: str
    ref: str
    tracking_code: str
    at: float  # monotonic time of the answer


@dataclass
class Stream:
    """Submissions through every channel, each sent the way its real sender sends it, retries included."""

    system: FaultSystem
    sent: Counter = field(default_factory=Counter)
    unanswered: Counter = field(default_factory=Counter)
    receipts: list[Receipt] = field(default_factory=list)
    openids: set[str] = field(default_factory=set)
    wechat_slowest: float = 0.0
    _next: int = 0
    _staff_headers: dict[str, str] | None = None

    def plan(self, cycles: int) -> list[tuple[str, int]]:
        """Tasks (channel, submissions in it): web, WeChat and hotline calls, transcript batches, symposiums."""
        tasks: list[tuple[str, int]] = []
        for cycle in range(cycles):
            tasks += [("web", 1), ("wechat", 1), ("hotline", 1), ("web", 1), ("wechat", 1), ("hotline", 1)]
            tasks += [("web", 1), ("wechat", 1), ("transcripts", 2)]
            if cycle % 3 == 0:
                tasks.append(("symposium", 2))
        return tasks

    async def run(
        self, tasks: list[tuple[str, int]], concurrency: int = 4, pace: float = 0.0, until: asyncio.Event | None = None
    ) -> list[tuple[str, int]]:
        """Send the tasks, `concurrency` at a time, each sender pausing `pace` seconds between two; stop taking new
        ones once `until` is set. Returns the tasks not sent."""
        todo = list(reversed(tasks))

        async def sender() -> None:
            while todo and not (until is not None and until.is_set()):
                channel, size = todo.pop()
                first = self._next
                self._next += size
                self.sent[channel] += size
                answered = await getattr(self, f"_{channel}")(first, size)
                self.unanswered[channel] += size - answered
                if pace:
                    await asyncio.sleep(pace)

        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return list(reversed(todo))

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())

    def _receipt(self, channel: str, ref: str, code: str) -> None:
        self.receipts.append(Receipt(channel, ref, code, time.monotonic()))

    async def _patiently(self, attempt, tries: int, pause: float = 1.0):
        """Call `attempt` until it gives an answer (None: try again), as a client with a retry policy does."""
        for _ in range(tries):
            try:
                answer = await attempt()
            except httpx.HTTPError:
                answer = None
            if answer is not None:
                return answer
            await asyncio.sleep(pause)
        return None

    async def _web(self, n: int, _: int) -> int:
        key = f"fault-{self.system.tag}-{n}"
        body = {"text": suggestion_text(n), "location": {"town": _PLACES[n % len(_PLACES)][:3]}}

        async def attempt():
            r = await self.system.clients["web"].post("/api/v1/suggestions", json=body, headers={"Idempotency-Key": key})
            return r.json()["tracking_code"] if r.status_code == 202 else None

        code = await self._patiently(attempt, tries=8)
        if code:
            self._receipt("web", key, code)
        return 1 if code else 0

    async def _wechat(self, n: int, _: int) -> int:
        account = WECHAT_ACCOUNTS[n % 2]
        platform = WechatPlatform(account["appid"], account["token"], account["encoding_aes_key"])
        openid = f"o-fault-{self.system.tag[-6:]}-{n}"
        self.openids.add(openid)
        msg_id = 7_000_000 + n
        xml = platform.text(openid, suggestion_text(n), msg_id)
        client = self.system.clients["wechat"]

        async def attempt():
            started = time.monotonic()
            send = platform.send_sealed(client, xml) if n % 3 == 0 else platform.send(client, xml)
            response = await asyncio.wait_for(send, WECHAT_LIMIT)
            self.wechat_slowest = max(self.wechat_slowest, time.monotonic() - started)
            if response.status_code != 200:
                return None
            found = _CODE.search(platform.open_reply(response.text).get("Content", ""))
            return found.group() if found else None

        async def wechat_try():
            try:
                return await attempt()
            except TimeoutError:
                return None

        code = await self._patiently(wechat_try, tries=3, pause=0)  # WeChat's own retries of the same MsgId
        if code:
            self._receipt("wechat", f"{platform.appid}:{msg_id}", code)
        return 1 if code else 0

    async def _hotline(self, n: int, _: int) -> int:
        call = TwilioCall(TWILIO_TOKEN, HOTLINE_PUBLIC_URL, caller=f"+86139{n:08d}")

        async def attempt():
            client = self.system.clients["hotline"]
            r = await call.post(client, "/twilio/voice/speech", SpeechResult=suggestion_text(n), Confidence="0.9")
            if r.status_code != 200:
                return None
            said = spoken(ET.fromstring(r.text)).replace(" ", "").replace("，", "-")
            found = _CODE.search(said)
            return found.group() if found else None

        code = await self._patiently(attempt, tries=2)
        if code:
            self._receipt("hotline", call.call_sid, code)
        return 1 if code else 0

    async def _transcripts(self, n: int, size: int) -> int:
        started = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
        rows = [
            {
                "call_id": f"CC-{self.system.tag[-6:]}-{n + i}",
                "started_at": started,
                "caller": f"0314-2{n + i:06d}",
                "text": suggestion_text(n + i),
                "confidence": 0.9,
            }
            for i in range(size)
        ]
        body = "\n".join(json.dumps(row, ensure_ascii=False) for row in rows).encode()
        headers = {"Content-Type": "application/x-ndjson", "Authorization": f"Bearer {TRANSCRIPTS_TOKEN}"}

        async def attempt():
            r = await self.system.clients["hotline"].post("/api/v1/transcripts", content=body, headers=headers)
            return r.json()["rows"] if r.status_code == 200 else None

        answered = await self._patiently(attempt, tries=8)
        for row in answered or []:
            if row["outcome"] in ("accepted", "duplicate") and row.get("tracking_code"):  # duplicate: a retry's answer
                self._receipt("hotline_transcript", row["call_id"], row["tracking_code"])
        return len([r for r in answered or [] if r.get("tracking_code")])

    async def sign_in(self) -> None:
        """The unit clerk who records symposiums (before the stream: the account lives in the database)."""
        directory = StaffDirectory(self.system.db)
        member = await directory.create("fault-clerk", "a test password", Role.UNIT_STAFF, "座谈会记录员", "pianqiaozi")
        self._staff_headers = {"Authorization": f"Bearer {await directory.open_session(member)}"}

    async def _symposium(self, n: int, size: int) -> int:
        record = {
            "held_on": date.today().isoformat(),
            "place": f"偏桥子镇第{n}会议室",
            "host": "李镇长",
            "participants": 12,
            "groups": ["resident"],
            "suggestions": [{"text": suggestion_text(n + i)} for i in range(size)],
        }

        async def attempt():
            r = await self.system.clients["survey"].post("/api/v1/symposiums", json=record, headers=self._staff_headers)
            return r.json() if r.status_code == 200 else None

        answer = await self._patiently(attempt, tries=10)
        for i, code in enumerate((answer or {}).get("tracking_codes", [])):
            self._receipt("symposium", f"{answer['symposium_id']}:{i}", code)
        return len((answer or {}).get("tracking_codes", []))


@dataclass
class Count:
    """The count afterwards: every accepted submission stored once, nothing else stored, the tallies agree."""

    scenario: str
    sent: int
    accepted: int
    stored: int
    duplicates: int
    lost: int
    parked: int
    unanswered: int
    during_fault: int
    by_channel: dict[str, int]
    tallies_by_channel: dict[str, int]
    notes: str = ""
    duplicate_detail: str = ""

    def row(self) -> str:
        return (
            f"| {self.scenario} | {self.sent} | {self.accepted} | {self.during_fault} | {self.stored} | {self.duplicates}"
            f" | {self.lost} | {self.parked} | {self.notes} |"
        )


REPORT_HEADER = (
    "| scenario | submissions sent | accepted | accepted while faulty | stored | duplicates | lost | parked | notes |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


async def stored_documents(system: FaultSystem) -> list[dict]:
    projection = {"tracking_code": 1, "channel": 1, "channel_ref": 1, "status": 1}
    return await system.db.suggestions.find({}, projection).to_list(None)


async def progress(system: FaultSystem, stream: Stream) -> dict[str, object]:
    """How far the accepted submissions got: per channel, how many are not stored yet or not classified yet."""
    docs = {d.get("tracking_code"): d for d in await stored_documents(system)}
    missing: Counter = Counter()
    unclassified: Counter = Counter()
    for receipt in stream.receipts:
        doc = docs.get(receipt.tracking_code)
        if doc is None:
            missing[receipt.channel] += 1
        elif doc.get("status") != "classified":
            unclassified[receipt.channel] += 1
    return {"accepted": len(stream.receipts), "missing": dict(missing), "unclassified": dict(unclassified)}


async def all_classified(system: FaultSystem, stream: Stream, timeout: float) -> None:
    """Wait until every accepted submission is stored and classified; fail with where things stand."""
    deadline = time.monotonic() + timeout
    while True:
        state = await progress(system, stream)
        if not state["missing"] and not state["unclassified"]:
            return
        if time.monotonic() > deadline:
            depths = await system.queue_depths()
            raise AssertionError(f"not all stored and classified within {timeout} s: {state}; queues {depths}")
        await asyncio.sleep(0.5)


async def count(system: FaultSystem, stream: Stream, scenario: str, parked: int, window: tuple[float, float]) -> Count:
    docs = await stored_documents(system)
    by_code: dict[str, list[dict]] = {}
    for doc in docs:
        by_code.setdefault(doc.get("tracking_code"), []).append(doc)
    codes = {r.tracking_code for r in stream.receipts}
    refs_per_code = Counter((r.channel, r.ref) for r in stream.receipts)  # one answer per submission, whatever retried
    twice_answered = sum(n - 1 for n in refs_per_code.values())
    stored = sum(1 for c in codes if any(d.get("status") == "classified" for d in by_code.get(c, [])))
    extra = sum(len(ds) for c, ds in by_code.items() if c not in codes) + sum(len(ds) - 1 for ds in by_code.values())
    by_channel = Counter(d["channel"] for d in docs if d.get("status") not in (None, "pending"))
    tallies: Counter = Counter()
    for row in await Tallies(system.db, ZoneInfo("Asia/Shanghai")).rows():  # day documents and moves not folded yet
        tallies[row["channel"]] += row["count"]
    over_counted = sum(max(0, tallies[ch] - by_channel[ch]) for ch in set(tallies) | set(by_channel))
    start, end = window
    return Count(
        scenario=scenario,
        sent=stream.total_sent,
        accepted=len(codes),
        stored=stored,
        duplicates=extra + twice_answered + over_counted,
        lost=len(codes) - sum(1 for c in codes if c in by_code),
        parked=parked,
        unanswered=sum(stream.unanswered.values()),
        during_fault=sum(1 for r in stream.receipts if start <= r.at <= end),
        by_channel=dict(sorted(by_channel.items())),
        tallies_by_channel={k: v for k, v in sorted(tallies.items()) if v},
        duplicate_detail=f"extra documents {extra}, answered twice {twice_answered}, counted twice {over_counted}",
    )
