"""Call-centre transcripts: a batch over HTTP (and through the CLI) becomes one stored, classified suggestion per
call, idempotent by call id; bad rows are reported and never stop the good ones; a bad file changes nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from minsheng_intake_hotline import cli
from tests.helpers import Spy, eventually

pytestmark = pytest.mark.integration

ENDPOINT = "/api/v1/transcripts"
# What a re-import must leave as it was: the store's own bookkeeping (last write, the tally moves its folder removes in
# the background every second) changes without any event.
UNCHANGING = {"updated_at": 0, "received_event_id": 0, "tally_moves": 0}
CSV = {"Content-Type": "text/csv"}
NDJSON = {"Content-Type": "application/x-ndjson"}
ROAD = "我是西地镇上店子村的，村里到镇上的路一下雨全是泥，希望明年能硬化。"
TOILETS = "希望在元宝山街道多建几个公共厕所"
STARTED = (datetime.now(UTC) - timedelta(hours=2)).astimezone(timezone(timedelta(hours=8))).replace(microsecond=0)


def auth(system) -> dict[str, str]:
    return {"Authorization": f"Bearer {system.hotline_settings.transcripts_token.get_secret_value()}"}


def batch() -> bytes:
    at = STARTED.isoformat()
    naive = STARTED.replace(tzinfo=None).isoformat()
    return (
        "call_id,started_at,caller,text,confidence,recording_url\n"
        f"CC-1001,{at},+86 139-1234-5678,{ROAD},0.93,https://cc.example/rec/1001.mp3\n"
        f"CC-1002,{at},0314-2345678,{TOILETS},,\n"
        f"CC-1001,{at},13912345678,同一个电话的重复记录,0.9,\n"
        f"CC-1003,{naive},13900000003,时间没有时区,0.9,\n"
        f"CC-1004,{at},12345,电话号码不对,0.9,\n"
        f"CC-1005,{at},13900000005,村里路灯坏了很久希望修好,0.2,https://cc.example/rec/1005.mp3\n"
    ).encode()


async def stored(system, call_id: str, status: str = "classified"):
    async def probe():
        return await system.db.suggestions.find_one({"channel_ref": call_id, "status": status})

    return await eventually(probe)


async def outbox_rows(system) -> int:
    async with system.apps["hotline"].state.hotline.runtime.outbox.db.execute("SELECT COUNT(*) FROM outbox") as rows:
        return (await rows.fetchone())[0]


async def test_a_batch_becomes_one_classified_suggestion_per_good_call_and_reports_every_row(system):
    response = await system.hotline.post(ENDPOINT, content=batch(), headers={**CSV, **auth(system)})
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["accepted"], report["duplicates"], report["rejected"]) == (3, 1, 2)
    rows = {r["row"]: r for r in report["rows"]}
    assert [rows[n]["outcome"] for n in range(2, 8)] == ["accepted", "accepted", "duplicate", "rejected", "rejected", "accepted"]
    assert (rows[4]["call_id"], rows[4]["tracking_code"]) == ("CC-1001", rows[2]["tracking_code"])  # the first one stands
    assert rows[5]["call_id"] == "CC-1003" and rows[5]["reason"].startswith("started_at: has no UTC offset")
    assert rows[6]["call_id"] == "CC-1004" and rows[6]["reason"].startswith("caller: is not a phone number")

    road = await stored(system, "CC-1001")
    assert (road["channel"], road["text"], road.get("awaiting"), road["tracking_code"]) == (
        "hotline_transcript",
        ROAD,
        None,
        rows[2]["tracking_code"],
    )
    assert road["submitted_at"] == STARTED
    assert road["classification"]["category"] == "road_traffic"
    assert road["attachments"] == [{"kind": "recording", "channel_ref": "CC-1001", "url": "https://cc.example/rec/1001.mp3"}]
    assert "13912345678" not in json.dumps(road, default=str, ensure_ascii=False)
    assert (
        system.store_settings.vault.open("phone", (await system.db.personal_data.find_one({"_id": road["_id"]}))["phone"])
        == "13912345678"
    )

    toilets = await stored(system, "CC-1002")
    assert (
        system.store_settings.vault.open("phone", (await system.db.personal_data.find_one({"_id": toilets["_id"]}))["phone"])
        == "03142345678"
    )

    # Low ASR confidence: the words are kept, the suggestion waits for someone to check them against the recording.
    unclear = await stored(system, "CC-1005")
    assert (unclear["text"], unclear["awaiting"]) == ("村里路灯坏了很久希望修好", "transcription")
    assert await system.db.suggestions.count_documents({"channel": "hotline_transcript"}) == 3
    assert await system.db.suggestions.count_documents({"channel_ref": {"$in": ["CC-1003", "CC-1004"]}}) == 0


async def test_importing_the_same_file_twice_changes_nothing(system):
    first = (await system.hotline.post(ENDPOINT, content=batch(), headers={**CSV, **auth(system)})).json()
    for call_id in ("CC-1001", "CC-1002", "CC-1005"):
        await stored(system, call_id)
    before = await system.db.suggestions.find({}, UNCHANGING).sort("_id").to_list(None)

    spy = await Spy.bind(system.amqp_url, "suggestion.received.#")
    try:
        second = await system.hotline.post(ENDPOINT, content=batch(), headers={**CSV, **auth(system)})
        assert second.status_code == 200
        again = second.json()
        assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 4, 2)
        codes = {r["call_id"]: r.get("tracking_code") for r in first["rows"] if r["outcome"] == "accepted"}
        assert {r["call_id"]: r["tracking_code"] for r in again["rows"] if r["outcome"] == "duplicate"} == codes
        assert await spy.drain() == []  # nothing published again
    finally:
        await spy.close()
    after = await system.db.suggestions.find({}, UNCHANGING).sort("_id").to_list(None)
    assert after == before and len(after) == 3
    assert await system.db.personal_data.count_documents({}) == 3
    assert await outbox_rows(system) == 3


async def test_json_lines_are_accepted_too(system):
    lines = [
        {"call_id": "NJ-1", "started_at": "2019-10-20T09:30:00+08:00", "caller": "13900000011", "text": TOILETS},
        {"call_id": "NJ-2", "started_at": "2019-10-20T09:40:00+08:00", "text": "", "confidence": None},
    ]
    body = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode()
    response = await system.hotline.post(ENDPOINT, content=body, headers={**NDJSON, **auth(system)})
    assert response.status_code == 200 and response.json()["accepted"] == 2, response.text
    doc = await stored(system, "NJ-1")
    assert doc["submitted_at"] == datetime(2019, 10, 20, 1, 30, tzinfo=UTC)
    silent = await stored(system, "NJ-2")
    assert (silent["text"], silent["awaiting"]) == ("", "transcription")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"call_id,caller,text\nCC-2001,13900000001,\xe4\xbf\xae\xe8\xb7\xaf\n", "missing columns: started_at"),
        (batch().decode().replace("CC-1002", "CC-2002").encode("gbk"), "not UTF-8 at byte"),
        (b"call_id,started_at,text,agent\nCC-2003,2019-10-20T09:30:00Z,x,7\n", "unknown columns: agent"),
        (b"call_id,started_at,text\n", "no rows"),
    ],
)
async def test_an_unusable_file_gets_a_clear_error_and_publishes_nothing(system, body, error):
    spy = await Spy.bind(system.amqp_url, "#")
    try:
        response = await system.hotline.post(ENDPOINT, content=body, headers={**CSV, **auth(system)})
        assert response.status_code == 422
        assert error in response.json()["error"]
        assert await spy.drain() == []
    finally:
        await spy.close()
    assert await outbox_rows(system) == 0
    assert await system.db.suggestions.count_documents({}) == 0


async def test_the_token_and_the_media_type_are_checked_first(system):
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic dGVzdA=="}):
        response = await system.hotline.post(ENDPOINT, content=batch(), headers={**CSV, **headers})
        assert response.status_code == 401 and response.json()["error"]
        assert response.headers["www-authenticate"] == "Bearer"
    for content_type in ("application/json", "text/plain", "text/csv; charset=gbk"):
        response = await system.hotline.post(ENDPOINT, content=batch(), headers={"Content-Type": content_type, **auth(system)})
        assert response.status_code == 415 and "text/csv" in response.json()["error"]
    assert await outbox_rows(system) == 0


class ThroughTheLoop(httpx.BaseTransport):
    """The CLI's (synchronous) requests, from its worker thread, handed to the in-process app on the test's loop."""

    def __init__(self, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def forward() -> httpx.Response:
            return await self.client.request(request.method, request.url.path, content=request.read(), headers=request.headers)

        answer = asyncio.run_coroutine_threadsafe(forward(), self.loop).result(timeout=60)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


async def test_the_cli_imports_a_file_in_chunks_and_a_rerun_finds_duplicates(system, tmp_path, capsys):
    lines = [
        {"call_id": f"CLI-{n}", "started_at": STARTED.isoformat(), "caller": f"1390000{n:04d}", "text": f"{TOILETS}，第{n}处"}
        for n in range(5)
    ]
    lines.insert(2, {"call_id": "CLI-bad", "started_at": "yesterday", "text": TOILETS})
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n", encoding="utf-8")
    bridge = ThroughTheLoop(system.hotline, asyncio.get_running_loop())
    token = system.hotline_settings.transcripts_token.get_secret_value()
    argv = ["import-transcripts", str(path), "--token", token, "--chunk-rows", "2"]

    assert await asyncio.to_thread(cli.main, argv, transport=bridge) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[:3] == ["accepted:   5", "duplicates: 0", "rejected:   1"]
    assert "row 3 (call_id CLI-bad): started_at: 'yesterday' is not an ISO 8601 time" in out
    assert "5/5" in err
    for n in range(5):
        await stored(system, f"CLI-{n}")

    assert await asyncio.to_thread(cli.main, [*argv, "--json", "--quiet"], transport=bridge) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["accepted"], report["duplicates"], report["rejected"]) == (0, 5, 1)
    assert await system.db.suggestions.count_documents({"channel": "hotline_transcript"}) == 5
    assert await outbox_rows(system) == 5

    wrong = ["import-transcripts", str(path), "--token", "not-the-token", "--quiet"]
    assert await asyncio.to_thread(cli.main, wrong, transport=bridge) == 2
    assert "refused the token" in capsys.readouterr().err
