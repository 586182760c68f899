"""Contact data in the intake outbox (a real SQLite file): sealed at rest, whole again when read or published,
moved out of clear rows of the previous schema, resealed after a key rotation, and scrubbed on erasure."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from minsheng_core.events import Channel, PersonalData, SuggestionContent, SuggestionReceived
from minsheng_core.outbox import Outbox
from minsheng_core.personal import PersonalDataVault, new_key

NOW = datetime.now(UTC)
PHONE, OPENID, NAME = "13812345678", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "张三丰"
OLD, NEW = new_key(), new_key()
LOOKUP = "lookup key for the outbox tests"
VAULT = PersonalDataVault.from_secrets(f"k1:{OLD}", LOOKUP)


def received(sid: str, text: str = "希望修路", personal: PersonalData | None = None) -> SuggestionReceived:
    body = SuggestionContent(
        channel=Channel.WEB, channel_ref=sid, campaign="2020", text=text, tracking_code=f"C-{sid}", submitted_at=NOW
    )
    return SuggestionReceived(suggestion_id=sid, body=body, personal=personal or PersonalData())


def raw_bytes(path: Path) -> bytes:
    """Everything SQLite keeps on disk for the outbox: the file and its write-ahead log."""
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def clear_in(path: Path, *values: str) -> list[str]:
    data = raw_bytes(path)
    return [v for v in values if v.encode() in data]


class Published:
    """Stands in for the broker's publisher: what the outbox hands over is what would go on the wire."""

    def __init__(self) -> None:
        self.events: list[SuggestionReceived] = []

    async def publish(self, event) -> None:
        self.events.append(event)


async def test_contact_data_is_sealed_on_disk_and_whole_when_read_and_published(tmp_path):
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(path, VAULT)
    await outbox.open()
    try:
        event = received("s1", personal=PersonalData(name=NAME, phone=PHONE))
        wechat = received("s2", personal=PersonalData(wechat_openid=OPENID))
        await outbox.accept("k1", "f", event, sender="hash-a")
        await outbox.accept("k2", "f", wechat, sender="hash-b")
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT * FROM outbox").fetchall()
        assert not [v for v in (PHONE, OPENID, NAME) if v in repr(rows)]
        assert clear_in(path, PHONE, OPENID, NAME) == []
        assert await outbox.find_by_tracking_code("C-s1") == event
        again = await outbox.accept("k2", "f", wechat)
        assert again.event == wechat and not again.new
        published = Published()
        assert await outbox.drain(published) == 2
        assert published.events == [event, wechat]
    finally:
        await outbox.close()


async def test_a_version_3_outbox_is_migrated_and_its_clear_contact_data_sealed(tmp_path):
    path = tmp_path / "v3.sqlite3"
    event = received("s-old", personal=PersonalData(name=NAME, phone=PHONE))
    with sqlite3.connect(path) as db:
        db.executescript(
            """CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, submission_key TEXT NOT NULL UNIQUE,
            fingerprint TEXT NOT NULL, suggestion_id TEXT NOT NULL, tracking_code TEXT UNIQUE, sender TEXT,
            event_json TEXT NOT NULL, accepted_at TEXT NOT NULL, published_at TEXT, hold_until TEXT, author TEXT);
            PRAGMA user_version = 3;"""
        )
        db.execute(
            "INSERT INTO outbox (submission_key, fingerprint, suggestion_id, tracking_code, event_json, accepted_at)"
            " VALUES ('old-key', 'f', 's-old', 'C-s-old', ?, ?)",
            (event.model_dump_json(), NOW.isoformat()),
        )
    assert clear_in(path, PHONE, NAME) == [PHONE, NAME]
    outbox = Outbox(path, VAULT)
    await outbox.open()
    try:
        assert clear_in(path, PHONE, NAME) == []  # gone from the file, not only from the row
        assert await outbox.find_by_tracking_code("C-s-old") == event
        published = Published()
        assert await outbox.drain(published) == 1 and published.events == [event]
    finally:
        await outbox.close()


async def test_rows_sealed_under_an_old_key_are_resealed_when_the_outbox_opens_with_a_new_ring(tmp_path):
    path = tmp_path / "o.sqlite3"
    event = received("s1", personal=PersonalData(phone=PHONE))
    outbox = Outbox(path, VAULT)
    await outbox.open()
    await outbox.accept("k1", "f", event)
    await outbox.close()

    rotated = PersonalDataVault.from_secrets(f"k2:{NEW},k1:{OLD}", LOOKUP)
    outbox = Outbox(path, rotated)
    await outbox.open()
    await outbox.close()
    with sqlite3.connect(path) as db:
        (sealed,) = db.execute("SELECT personal FROM outbox").fetchone()
    assert sealed.startswith("gcm1.k2.")

    only_new = PersonalDataVault.from_secrets(f"k2:{NEW}", LOOKUP)  # the old key has left the ring
    outbox = Outbox(path, only_new)
    await outbox.open()
    try:
        assert await outbox.find_by_tracking_code("C-s1") == event
    finally:
        await outbox.close()


async def test_scrubbing_erases_contact_sender_and_numbers_in_the_text_for_good(tmp_path):
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(path, VAULT)
    await outbox.open()
    try:
        mine = received("s1", text="路灯坏了，请打13912345678联系我", personal=PersonalData(name=NAME, phone=PHONE))
        other = received("s2", personal=PersonalData(phone="13700001111"))
        await outbox.accept("k1", "f", mine, sender="hash-a")
        await outbox.accept("k2", "f", other, sender="hash-b")
        await outbox.drain(Published())
        assert await outbox.scrub(["s1"]) == 1
        assert await outbox.scrub(["s1"]) == 0  # idempotent
        kept = await outbox.find_by_tracking_code("C-s1")
        assert kept.personal == PersonalData() and kept.body.text == "路灯坏了，请打[号码已删除]联系我"
        assert await outbox.tracking_codes_from("hash-a") == []
        assert (await outbox.find_by_tracking_code("C-s2")).personal.phone == "13700001111"  # another's stays
        assert await outbox.tracking_codes_from("hash-b") == ["C-s2"]
        assert clear_in(path, "13912345678") == []
        retry = await outbox.accept("k1", "f", mine)  # a retry of the same submission is still recognised
        assert not retry.new and retry.published
    finally:
        await outbox.close()


async def test_a_scrub_that_meets_a_read_in_progress_still_leaves_nothing_behind_in_the_log(tmp_path):
    """A read on the same connection (another request's cursor, open across an await) blocks SQLite's checkpoint
    for a moment; the scrub waits it out instead of failing and leaving the old text in the write-ahead log."""
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(path, VAULT)
    await outbox.open()
    try:
        await outbox.accept("k1", "f", received("s1", text="路灯坏了，请打13912345678联系我"))
        await outbox.accept("k2", "f", received("s2"))
        async with outbox.db.execute("SELECT submission_key FROM outbox") as rows:
            assert await rows.fetchone() is not None  # the statement is open: a read transaction is held
            scrub = asyncio.create_task(outbox.scrub(["s1"]))
            await asyncio.sleep(0.2)
        assert await scrub == 1
        assert clear_in(path, "13912345678") == []
    finally:
        await outbox.close()


async def test_a_checkpoint_owed_by_an_earlier_scrub_is_made_by_the_next(tmp_path, monkeypatch):
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(path, VAULT)
    await outbox.open()
    try:
        await outbox.accept("k1", "f", received("s1", text="路灯坏了，请打13912345678联系我"))
        await outbox.accept("k2", "f", received("s2"))  # a second row keeps the read below open after its first
        monkeypatch.setattr("minsheng_core.outbox.CHECKPOINT_PATIENCE_SECONDS", 0.1)
        async with outbox.db.execute("SELECT submission_key FROM outbox") as rows:
            await rows.fetchone()
            assert await outbox.scrub(["s1"]) == 1  # committed, but the log could not be emptied yet
        assert clear_in(path, "13912345678") == ["13912345678"]
        assert await outbox.scrub(["s1"]) == 0  # nothing left to change, yet the owed checkpoint is made
        assert clear_in(path, "13912345678") == []
    finally:
        await outbox.close()
