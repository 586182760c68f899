"""Durable local outbox of an intake service: what was accepted is kept here until the broker confirms it.

Contact data never sits in the file in clear: a row's ``event_json`` holds the event without its ``personal``
part, which is kept apart in ``personal``, sealed by the personal-data vault (bound to the row's submission key),
and put back when the event is read or published. ``scrub`` removes it for good (erasure on request).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
import structlog

from minsheng_core.bus import EVENT_ADAPTER, Publisher, PublishFailed
from minsheng_core.events import AnyEvent, PersonalData, SuggestionReceived
from minsheng_core.personal import PersonalDataError, PersonalDataVault, redact_phone_numbers

log = structlog.get_logger(__name__)

_SCHEMA_VERSION = 4
# How long a scrub keeps trying to empty the write-ahead log past reads in progress before leaving it to the next.
CHECKPOINT_PATIENCE_SECONDS = 5.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    submission_key TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    suggestion_id TEXT NOT NULL,
    tracking_code TEXT UNIQUE,
    sender TEXT,
    event_json TEXT NOT NULL,
    accepted_at TEXT NOT NULL,
    published_at TEXT,
    hold_until TEXT,
    author TEXT,
    personal TEXT
);
CREATE INDEX IF NOT EXISTS outbox_suggestion ON outbox (suggestion_id);
CREATE INDEX IF NOT EXISTS outbox_sender ON outbox (sender, seq);
CREATE INDEX IF NOT EXISTS outbox_author ON outbox (author, seq);
"""
# Version 1 had one row per suggestion (suggestion_id unique, tracking_code required) and no sender.
_FROM_V1 = (
    """
ALTER TABLE outbox RENAME TO outbox_v1;
"""
    + _SCHEMA
    + """
INSERT INTO outbox (seq, submission_key, fingerprint, suggestion_id, tracking_code, event_json, accepted_at, published_at)
    SELECT seq, submission_key, fingerprint, suggestion_id, tracking_code, event_json, accepted_at, published_at FROM outbox_v1;
DROP TABLE outbox_v1;
"""
)
# Version 3 added entries held back for editing (an operator's "editable until published") and their author.
_FROM_V2 = """
ALTER TABLE outbox ADD COLUMN hold_until TEXT;
ALTER TABLE outbox ADD COLUMN author TEXT;
CREATE INDEX IF NOT EXISTS outbox_author ON outbox (author, seq);
"""
# Version 4 keeps the contact data sealed in its own column; the rows' clear contact data is moved there on opening.
_FROM_V3 = """
ALTER TABLE outbox ADD COLUMN personal TEXT;
"""
_NO_PERSONAL = PersonalData()


def _kind(submission_key: str) -> str:
    # Bound to the row: a sealed value copied into another row does not open there.
    return f"outbox.personal:{submission_key}"


class SubmissionKeyConflict(Exception):
    """The same submission key was used for a different request."""


@dataclass(frozen=True)
class Accepted:
    """An accepted submission as the outbox holds it: the event first accepted under its key."""

    submission_key: str
    event: AnyEvent
    published: bool
    new: bool

    @property
    def suggestion_id(self) -> str:
        return self.event.subject_id

    @property
    def tracking_code(self) -> str | None:
        return self.event.body.tracking_code if isinstance(self.event, SuggestionReceived) else None


@dataclass(frozen=True)
class Entry:
    """A submission entered by a member of staff, as their list of recent entries shows it."""

    submission_key: str
    event: SuggestionReceived
    published: bool
    hold_until: datetime | None

    def editable(self, now: datetime) -> bool:
        return not self.published and self.hold_until is not None and now < self.hold_until


def _parsed(stamp: str | None) -> datetime | None:
    return datetime.fromisoformat(stamp) if stamp else None


class Outbox:
    """SQLite in WAL mode; one row per accepted submission, keyed by the channel's submission key."""

    def __init__(self, path: Path, vault: PersonalDataVault) -> None:
        self._path = Path(path)
        self._vault = vault
        self._db: aiosqlite.Connection | None = None
        self._drain_lock = asyncio.Lock()
        # Keys being published right now: a channel's retry or the drainer waits for the next round instead of
        # publishing the same event a second time alongside.
        self._in_flight: set[str] = set()
        self._checkpoint_owed = False

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self._path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=FULL")
        # What is replaced or scrubbed is overwritten on disk, not left in free pages.
        await self._db.execute("PRAGMA secure_delete=ON")
        async with self._db.execute("PRAGMA user_version") as rows:
            version = (await rows.fetchone())[0]
        async with self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'") as rows:
            exists = await rows.fetchone() is not None
        if not exists:
            await self._db.executescript(_SCHEMA)
        elif version < 2:
            await self._db.executescript(_FROM_V1)
        elif version < 3:
            await self._db.executescript(_FROM_V2 + _FROM_V3)
        elif version < 4:
            await self._db.executescript(_FROM_V3)
        await self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        await self._db.commit()
        moved = await self._seal_clear_rows() if exists and version < 4 else 0
        resealed = await self._reseal()
        if moved or resealed:
            await self._checkpoint()
            log.info("outbox_personal_data_sealed", moved=moved, resealed=resealed)

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("outbox not open")
        return self._db

    def _stored(self, submission_key: str, event: AnyEvent) -> tuple[str, str | None]:
        """The row's event_json and sealed personal part."""
        if not isinstance(event, SuggestionReceived) or event.personal == _NO_PERSONAL:
            return event.model_dump_json(), None
        sealed = self._vault.seal(_kind(submission_key), event.personal.model_dump_json(exclude_none=True))
        return event.model_copy(update={"personal": _NO_PERSONAL}).model_dump_json(), sealed

    def _event(self, submission_key: str, event_json: str, personal: str | None) -> AnyEvent:
        """The event of a row with its personal part put back."""
        event = EVENT_ADAPTER.validate_json(event_json)
        if personal is None or not isinstance(event, SuggestionReceived):
            return event
        contact = PersonalData.model_validate_json(self._vault.open(_kind(submission_key), personal))
        return event.model_copy(update={"personal": contact})

    def _received(self, submission_key: str, event_json: str, personal: str | None) -> SuggestionReceived:
        event = self._event(submission_key, event_json, personal)
        if not isinstance(event, SuggestionReceived):
            raise TypeError("not a received suggestion")
        return event

    async def accept(
        self,
        submission_key: str,
        fingerprint: str,
        event: AnyEvent,
        sender: str | None = None,
        hold_until: datetime | None = None,
        author: str | None = None,
    ) -> Accepted:
        """Store the event durably, or return the earlier acceptance of the same key.

        ``sender`` is a keyed hash of who sent it (never the raw id), to find their recent submissions again;
        ``hold_until`` keeps it from being published before then, so that ``author`` may still revise it.
        """
        tracking_code = event.body.tracking_code if isinstance(event, SuggestionReceived) else None
        event_json, personal = self._stored(submission_key, event)
        cursor = await self.db.execute(
            "INSERT OR IGNORE INTO outbox (submission_key, fingerprint, suggestion_id, tracking_code, sender,"
            " event_json, accepted_at, hold_until, author, personal) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                submission_key,
                fingerprint,
                event.subject_id,
                tracking_code,
                sender,
                event_json,
                datetime.now(UTC).isoformat(),
                hold_until.astimezone(UTC).isoformat() if hold_until else None,
                author,
                personal,
            ),
        )
        await self.db.commit()
        if cursor.rowcount == 1:
            return Accepted(submission_key, event, published=False, new=True)
        async with self.db.execute(
            "SELECT fingerprint, event_json, published_at, personal FROM outbox WHERE submission_key = ?", (submission_key,)
        ) as rows:
            row = await rows.fetchone()
        if row is None or row[0] != fingerprint:
            raise SubmissionKeyConflict(submission_key)
        return Accepted(submission_key, self._event(submission_key, row[1], row[3]), published=row[2] is not None, new=False)

    async def latest_suggestion_from(self, sender: str, since: datetime) -> SuggestionReceived | None:
        """The sender's most recent suggestion accepted here at or after ``since``."""
        async with self.db.execute(
            "SELECT submission_key, event_json, personal FROM outbox WHERE sender = ? AND tracking_code IS NOT NULL"
            " AND accepted_at >= ? ORDER BY seq DESC LIMIT 1",
            (sender, since.astimezone(UTC).isoformat()),
        ) as rows:
            row = await rows.fetchone()
        return self._received(*row) if row else None

    async def tracking_codes_from(self, sender: str | None, limit: int = 20) -> list[str]:
        """Tracking codes of the sender's suggestions accepted here, newest first."""
        if sender is None:
            return []
        async with self.db.execute(
            "SELECT tracking_code FROM outbox WHERE sender = ? AND tracking_code IS NOT NULL ORDER BY seq DESC LIMIT ?",
            (sender, limit),
        ) as rows:
            return [row[0] for row in await rows.fetchall()]

    async def revise(self, submission_key: str, event: SuggestionReceived, author: str) -> bool:
        """Replace a held entry's event before it is published; False once it is out (or not the author's)."""
        event_json, personal = self._stored(submission_key, event)
        cursor = await self.db.execute(
            "UPDATE outbox SET event_json = ?, personal = ? WHERE submission_key = ? AND author = ? AND published_at IS NULL"
            " AND suggestion_id = ?",
            (event_json, personal, submission_key, author, event.suggestion_id),
        )
        await self.db.commit()
        return cursor.rowcount == 1

    async def entries_by(self, author: str, limit: int = 20) -> list[Entry]:
        """The author's most recent entries, newest first."""
        async with self.db.execute(
            "SELECT submission_key, event_json, personal, published_at, hold_until FROM outbox WHERE author = ?"
            " ORDER BY seq DESC LIMIT ?",
            (author, limit),
        ) as rows:
            found = await rows.fetchall()
        return [
            Entry(key, self._received(key, event, personal), published is not None, _parsed(hold))
            for key, event, personal, published, hold in found
        ]

    async def find_by_tracking_code(self, tracking_code: str) -> SuggestionReceived | None:
        async with self.db.execute(
            "SELECT submission_key, event_json, personal FROM outbox WHERE tracking_code = ?", (tracking_code,)
        ) as rows:
            row = await rows.fetchone()
        return self._received(*row) if row else None

    async def publish(self, publisher: Publisher, submission_key: str) -> bool:
        """Try to publish one accepted event now; True once the broker confirmed it."""
        async with self.db.execute(
            "SELECT event_json, published_at, hold_until, personal FROM outbox WHERE submission_key = ?", (submission_key,)
        ) as rows:
            row = await rows.fetchone()
        if row is None:
            raise KeyError(submission_key)
        if row[1] is not None:
            return True
        if row[2] is not None and _parsed(row[2]) > datetime.now(UTC):
            return False  # held for its author; the drainer publishes it when the time comes
        if submission_key in self._in_flight:
            return False
        self._in_flight.add(submission_key)
        try:
            # The drainer may have published it while the row was read: look again now that the key is ours.
            if await self._is_published(submission_key):
                return True
            await publisher.publish(self._event(submission_key, row[0], row[3]))
            await self._mark_published(submission_key)  # still in flight until marked, or the drainer sends it again
        except PublishFailed as exc:
            log.warning("outbox_publish_deferred", error=str(exc)[:200])
            return False
        finally:
            self._in_flight.discard(submission_key)
        return True

    async def drain(self, publisher: Publisher, batch: int = 200) -> int:
        """Publish what is still pending, oldest first; stop at the first failure. Returns how many went out."""
        sent = 0
        async with self._drain_lock:
            async with self.db.execute(
                "SELECT submission_key, event_json, personal FROM outbox WHERE published_at IS NULL"
                " AND (hold_until IS NULL OR hold_until <= ?) ORDER BY seq LIMIT ?",
                (datetime.now(UTC).isoformat(), batch),
            ) as rows:
                pending = await rows.fetchall()
            for submission_key, event_json, personal in pending:
                if submission_key in self._in_flight:
                    break
                self._in_flight.add(submission_key)
                try:
                    if await self._is_published(submission_key):
                        continue  # the channel published it after the rows above were read
                    await publisher.publish(self._event(submission_key, event_json, personal))
                    await self._mark_published(submission_key)
                except PublishFailed:
                    break
                finally:
                    self._in_flight.discard(submission_key)
                sent += 1
        if sent:
            log.info("outbox_drained", published=sent)
        return sent

    async def run_drainer(self, publisher: Publisher, interval: float = 2.0) -> None:
        """Background task: keep draining until cancelled."""
        while True:
            try:
                await self.drain(publisher)
            except Exception as exc:  # never let the drainer die; the next round tries again
                log.error("outbox_drain_failed", error=type(exc).__name__)
            await asyncio.sleep(interval)

    async def _is_published(self, submission_key: str) -> bool:
        async with self.db.execute("SELECT published_at FROM outbox WHERE submission_key = ?", (submission_key,)) as rows:
            row = await rows.fetchone()
        return row is not None and row[0] is not None

    async def pending(self) -> int:
        """How many accepted entries the broker has not confirmed yet (held ones included)."""
        async with self.db.execute("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL") as rows:
            return (await rows.fetchone())[0]

    async def scrub(self, suggestion_ids: Iterable[str]) -> int:
        """Erase the personal data of these suggestions from their rows: the sealed contact, the sender's hash, and
        phone numbers typed into the text. The rows stay (a retry of the same submission is still recognised)."""
        ids = list(dict.fromkeys(suggestion_ids))
        scrubbed = 0
        for start in range(0, len(ids), 500):  # SQLite's limit on host parameters
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            async with self.db.execute(
                f"SELECT submission_key, event_json, personal, sender FROM outbox WHERE suggestion_id IN ({marks})", chunk
            ) as rows:
                found = await rows.fetchall()
            for submission_key, event_json, personal, sender in found:
                redacted = _redacted(event_json)
                if personal is None and sender is None and redacted == event_json:
                    continue
                await self.db.execute(
                    "UPDATE outbox SET personal = NULL, sender = NULL, event_json = ? WHERE submission_key = ?",
                    (redacted, submission_key),
                )
                scrubbed += 1
        if scrubbed:
            await self.db.commit()
        if scrubbed or self._checkpoint_owed:
            await self._checkpoint()
        return scrubbed

    async def _seal_clear_rows(self) -> int:
        """Move contact data kept in clear by an earlier schema into the sealed column."""
        moved = 0
        async with self.db.execute("SELECT submission_key, event_json FROM outbox WHERE personal IS NULL") as rows:
            found = await rows.fetchall()
        for submission_key, event_json in found:
            event = EVENT_ADAPTER.validate_json(event_json)
            stored, personal = self._stored(submission_key, event)
            if personal is None:
                continue
            await self.db.execute(
                "UPDATE outbox SET event_json = ?, personal = ? WHERE submission_key = ?", (stored, personal, submission_key)
            )
            moved += 1
        await self.db.commit()
        return moved

    async def _reseal(self) -> int:
        """Seal again under the current key what an older key sealed (key rotation: the old key may then go)."""
        resealed = 0
        async with self.db.execute("SELECT submission_key, personal FROM outbox WHERE personal IS NOT NULL") as rows:
            found = await rows.fetchall()
        for submission_key, personal in found:
            if not self._vault.needs_resealing(personal):
                continue
            try:
                fresh = self._vault.reseal(_kind(submission_key), personal)
            except PersonalDataError as exc:  # its key is gone already: left as it is, and said so
                log.error("outbox_personal_data_unreadable", error=str(exc)[:200])
                continue
            await self.db.execute("UPDATE outbox SET personal = ? WHERE submission_key = ?", (fresh, submission_key))
            resealed += 1
        await self.db.commit()
        return resealed

    async def _checkpoint(self) -> None:
        """Copy the write-ahead log into the file and empty it: old page images with what was just replaced would
        otherwise linger there. A read still open on this connection (another request's cursor, between two awaits)
        blocks it for a moment, so it is tried again; if it never gets through, the next scrub owes it."""
        self._checkpoint_owed = True
        deadline = time.monotonic() + CHECKPOINT_PATIENCE_SECONDS
        while True:
            try:
                async with self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)") as rows:
                    busy = (await rows.fetchone())[0]
            except sqlite3.OperationalError as exc:  # "database table is locked": a statement of ours is open
                if exc.sqlite_errorcode != sqlite3.SQLITE_LOCKED:
                    raise
                busy = 1
            if not busy:
                self._checkpoint_owed = False
                return
            if time.monotonic() >= deadline:
                log.warning("outbox_checkpoint_deferred")
                return
            await asyncio.sleep(0.01)

    async def _mark_published(self, submission_key: str) -> None:
        await self.db.execute(
            "UPDATE outbox SET published_at = ? WHERE submission_key = ? AND published_at IS NULL",
            (datetime.now(UTC).isoformat(), submission_key),
        )
        await self.db.commit()


def _redacted(event_json: str) -> str:
    """A row's event with phone numbers taken out of its title and text (a resident may type theirs in)."""
    event = EVENT_ADAPTER.validate_json(event_json)
    if not isinstance(event, SuggestionReceived):
        return event_json
    body = event.body
    text, in_text = redact_phone_numbers(body.text)
    title, in_title = redact_phone_numbers(body.title) if body.title else (body.title, 0)
    if not in_text + in_title:
        return event_json
    return event.model_copy(update={"body": body.model_copy(update={"text": text, "title": title})}).model_dump_json()
