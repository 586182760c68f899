"""Two replicas of the classifier and two of the store share one vhost and one database: competing consumers on the
same quorum queues split the work, and every suggestion is classified and stored exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from minsheng_core.bus import identity_of
from tests.conftest import System
from tests.helpers import Spy, eventually

pytestmark = pytest.mark.integration

SUGGESTIONS = 200
TEXTS = [
    "村里到镇上的路一下雨就是泥，希望硬化成水泥路",
    "小区门口的路灯坏了好几个月，晚上出门很不方便",
    "希望在社区里建一个老年人日间照料中心",
    "村小学的操场太小了，孩子们没地方活动",
    "镇卫生院看病排队时间太长，建议增加医生",
    "河边垃圾堆放严重，夏天臭味很大，希望清理",
    "公交车班次太少，早上上班等车要一个小时",
    "自来水经常停水，水压也不够，希望改造管网",
]
DUPLICATE = "锦绣小区三号楼的电梯坏了半个月，老人上下楼很困难，希望尽快修好"


def consumed(service: str, replica: str, queue: str, outcome: str = "ok") -> float:
    """What one replica's consumer settled with this outcome, summed over event types."""
    total = 0.0
    for family in REGISTRY.collect():
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "minsheng_events_consumed_total" and (
                labels.get("service"),
                labels.get("replica"),
                labels.get("queue"),
                labels.get("outcome"),
            ) == (service, replica, queue, outcome):
                total += sample.value
    return total


@contextlib.asynccontextmanager
async def running(app) -> AsyncIterator[httpx.AsyncClient]:
    from asgi_lifespan import LifespanManager

    async with LifespanManager(app, startup_timeout=120) as manager:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://replica") as client:
            yield client


@pytest.mark.timeout(600)
async def test_two_classifiers_and_two_stores_split_the_work_without_duplicates(
    amqp_url: str, mongo_db: tuple[str, str], model_dir: Path, tmp_path: Path
):
    from minsheng_classifier.app import create_app as classifier_app
    from minsheng_intake_web.app import create_app as web_app
    from minsheng_store.app import create_app as store_app

    system = System(amqp_url, mongo_db[0], mongo_db[1], tmp_path / "outbox.sqlite3", model_dir)
    classifiers = [classifier_app(system.classifier_settings) for _ in range(2)]
    stores = [store_app(system.store_settings) for _ in range(2)]
    spy: Spy | None = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            for app in [*classifiers, *stores]:
                await stack.enter_async_context(running(app))
            spy = await Spy.bind(amqp_url, "suggestion.#")  # the exchange exists once a service declared the topology
            web = await stack.enter_async_context(running(web_app(system.web_settings)))
            replicas = {
                "classifier": [identity_of(app.state.connection) for app in classifiers],
                "store": [identity_of(app.state.connection) for app in stores],
            }
            assert len({who.replica for who in replicas["classifier"]}) == len({who.replica for who in replicas["store"]}) == 2

            async def submit(i: int) -> str:
                body = {"text": f"{TEXTS[i % len(TEXTS)]}（第{i}条）", "location": {"town": "西地镇"}}
                response = await web.post("/api/v1/suggestions", json=body, headers={"Idempotency-Key": f"replicas-{i:04d}"})
                assert response.status_code == 202, response.text
                return response.json()["suggestion_id"]

            ids: list[str] = []
            for start in range(0, SUGGESTIONS, 10):
                ids += await asyncio.gather(*(submit(i) for i in range(start, min(start + 10, SUGGESTIONS))))
            assert len(set(ids)) == SUGGESTIONS

            async def all_classified():
                n = await system.db.suggestions.count_documents({"status": "classified"})
                return n if n == SUGGESTIONS else None

            try:
                await eventually(all_classified, timeout=300, interval=0.5)
            except AssertionError as exc:
                docs = await system.db.suggestions.find({}, {"status": 1, "classification.category": 1}).to_list(None)
                statuses = Counter((d.get("status"), "classification" in d) for d in docs)
                settled = {
                    (who.service, who.replica, outcome): consumed(who.service, who.replica, f"minsheng.{who.service}", outcome)
                    for service in replicas
                    for who in replicas[service]
                    for outcome in ("ok", "retry", "parked", "requeued")
                }
                handling = {
                    queue: REGISTRY.get_sample_value("minsheng_event_handling_seconds_sum", {"service": service, "queue": queue})
                    for service, queue in (("classifier", "minsheng.classifier"), ("store", "minsheng.store"))
                }
                raise AssertionError(
                    f"not all classified: (status, has classification) {statuses}; settled {settled}; handling s {handling}"
                ) from exc

            # Each replica took a share, and together they handled each delivery once: no retries, nothing parked.
            classifier_ok = [consumed("classifier", who.replica, "minsheng.classifier") for who in replicas["classifier"]]
            store_ok = [consumed("store", who.replica, "minsheng.store") for who in replicas["store"]]
            assert all(n > 0 for n in classifier_ok), classifier_ok
            assert all(n > 0 for n in store_ok), store_ok
            assert sum(classifier_ok) == SUGGESTIONS
            assert sum(store_ok) == 2 * SUGGESTIONS  # one received and one classified event per suggestion
            for service, queue in (("classifier", "minsheng.classifier"), ("store", "minsheng.store")):
                for who in replicas[service]:
                    for outcome in ("retry", "parked", "requeued"):
                        assert consumed(service, who.replica, queue, outcome) == 0, (service, outcome)

            events = await spy.drain()
            by_type: dict[str, Counter[str]] = {}
            for message in events:
                event = json.loads(message.body)
                by_type.setdefault(event["event_type"], Counter())[event["suggestion_id"]] += 1
            assert set(by_type["suggestion.received"]) == set(ids) and set(by_type["suggestion.received"].values()) == {1}
            assert set(by_type["suggestion.classified"]) == set(ids), "every suggestion classified"
            assert set(by_type["suggestion.classified"].values()) == {1}, "no suggestion classified twice"

            stored = await system.db.suggestions.find({"_id": {"$in": ids}}).to_list(None)
            assert len(stored) == SUGGESTIONS
            assert all(doc["status"] == "classified" and doc["classification"]["category"] for doc in stored)

            # No replica keeps duplicates to itself: the same text sent again and again, one at a time (the queue
            # hands them out in turn), is recognised as a duplicate of the first whichever replica classifies it.
            before = [consumed("classifier", who.replica, "minsheng.classifier") for who in replicas["classifier"]]
            again: list[str] = []
            for n in range(6):
                body = {"text": DUPLICATE, "location": {"town": "西地镇"}}
                response = await web.post("/api/v1/suggestions", json=body, headers={"Idempotency-Key": f"replicas-dup-{n}"})
                again.append(response.json()["suggestion_id"])

                async def classified(sid: str = again[-1]):
                    return await system.db.suggestions.find_one({"_id": sid, "status": "classified"})

                await eventually(classified, timeout=60)
            after = [consumed("classifier", who.replica, "minsheng.classifier") for who in replicas["classifier"]]
            assert all(b > a for a, b in zip(before, after, strict=True)), "both replicas classified some of them"
            docs = {d["_id"]: d for d in await system.db.suggestions.find({"_id": {"$in": again}}).to_list(None)}
            first = docs[again[0]]
            assert first.get("duplicate_of") is None
            for sid in again[1:]:
                assert docs[sid]["duplicate_of"] == again[0] and docs[sid]["cluster_id"] == first["cluster_id"], sid
    finally:
        if spy is not None:
            await spy.close()
        await system.db.client.close()
