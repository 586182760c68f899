"""The intake outbox on a real SQLite file: any event, keyed by submission, migrated from the first schema."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from minsheng_core.events import Attachment, Channel, SuggestionAttachmentAdded, SuggestionContent, SuggestionReceived
from minsheng_core.outbox import Outbox, SubmissionKeyConflict
from minsheng_core.settings import ServiceSettings

NOW = datetime.now(UTC)
VAULT = ServiceSettings().vault


def received(sid: str, text: str = "希望修路") -> SuggestionReceived:
    body = SuggestionContent(
        channel=Channel.WECHAT, channel_ref=sid, campaign="2020", text=text, tracking_code=f"C-{sid}", submitted_at=NOW
    )
    return SuggestionReceived(suggestion_id=sid, body=body)


async def test_an_attachment_and_its_suggestion_are_two_submissions_of_one_suggestion(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite3", VAULT)
    await outbox.open()
    try:
        first = await outbox.accept("k1", "f1", received("s1"), sender="person-a")
        picture = SuggestionAttachmentAdded(suggestion_id="s1", body=Attachment(kind="image", channel_ref="k2"))
        second = await outbox.accept("k2", "f2", picture, sender="person-a")
        assert first.new and second.new and second.tracking_code is None and second.suggestion_id == "s1"
        again = await outbox.accept("k2", "f2", picture, sender="person-a")
        assert not again.new and again.event == picture
        try:
            await outbox.accept("k2", "other", picture)
            raise AssertionError("a reused key with other content must conflict")
        except SubmissionKeyConflict:
            pass
    finally:
        await outbox.close()


async def test_latest_suggestion_from_a_sender_within_the_last_minutes(tmp_path):
    outbox = Outbox(tmp_path / "o.sqlite3", VAULT)
    await outbox.open()
    try:
        await outbox.accept("k1", "f", received("s1"), sender="person-a")
        await outbox.accept("k2", "f", received("s2"), sender="person-a")
        await outbox.accept("k3", "f", received("s3"), sender="person-b")
        latest = await outbox.latest_suggestion_from("person-a", NOW - timedelta(minutes=5))
        assert latest is not None and latest.suggestion_id == "s2"
        assert await outbox.latest_suggestion_from("person-a", datetime.now(UTC) + timedelta(seconds=1)) is None
        assert await outbox.latest_suggestion_from("person-c", NOW - timedelta(minutes=5)) is None
    finally:
        await outbox.close()


async def test_an_outbox_of_the_first_schema_is_migrated_with_its_pending_rows(tmp_path):
    path = tmp_path / "old.sqlite3"
    event = received("s-old")
    with sqlite3.connect(path) as db:
        db.executescript(
            """CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, submission_key TEXT NOT NULL UNIQUE,
            fingerprint TEXT NOT NULL, suggestion_id TEXT NOT NULL UNIQUE, tracking_code TEXT NOT NULL UNIQUE,
            event_json TEXT NOT NULL, accepted_at TEXT NOT NULL, published_at TEXT);"""
        )
        db.execute(
            "INSERT INTO outbox (submission_key, fingerprint, suggestion_id, tracking_code, event_json, accepted_at)"
            " VALUES ('old-key', 'f', 's-old', 'C-s-old', ?, ?)",
            (event.model_dump_json(), NOW.isoformat()),
        )
    outbox = Outbox(path, VAULT)
    await outbox.open()
    try:
        assert await outbox.find_by_tracking_code("C-s-old") == event
        again = await outbox.accept("old-key", "f", event)
        assert not again.new and not again.published  # still pending: the drainer will publish it
    finally:
        await outbox.close()
    outbox = Outbox(path, VAULT)
    await outbox.open()  # reopening a migrated file changes nothing
    await outbox.close()
