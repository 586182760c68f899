"""Durable local outbox of an intake service: what was accepted is kept here until the broker confirms it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
import structlog

from minsheng_core.bus import EVENT_ADAPTER, Publisher, PublishFailed
from minsheng_core.events import AnyEvent, SuggestionReceived

log = structlog.get_logger(__name__)

_SCHEMA_VERSION = 3
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
    author TEXT
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

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self._drain_lock = asyncio.Lock()
        # Keys being published right now: a channel's retry or the drainer waits for the next round instead of
        # publishing the same event a second time alongside.
        self._in_flight: set[str] = set()

    async def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self._path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=FULL")
        async with self._db.execute("PRAGMA user_version") as rows:
            version = (await rows.fetchone())[0]
        async with self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'") as rows:
            exists = await rows.fetchone() is not None
        if not exists:
            await self._db.executescript(_SCHEMA)
        elif version < 2:
            await self._db.executescript(_FROM_V1)
        elif version < 3:
            await self._db.executescript(_FROM_V2)
        await self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        await self._db.commit()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("outbox not open")
        return self._db

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
        cursor = await self.db.execute(
            "INSERT OR IGNORE INTO outbox (submission_key, fingerprint, suggestion_id, tracking_code, sender,"
            " event_json, accepted_at, hold_until, author) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                submission_key,
                fingerprint,
                event.subject_id,
                tracking_code,
                sender,
                event.model_dump_json(),
                datetime.now(UTC).isoformat(),
                hold_until.astimezone(UTC).isoformat() if hold_until else None,
                author,
            ),
        )
        await self.db.commit()
        if cursor.rowcount == 1:
            return Accepted(submission_key, event, published=False, new=True)
        async with self.db.execute(
            "SELECT fingerprint, event_json, published_at FROM outbox WHERE submission_key = ?", (submission_key,)
        ) as rows:
            row = await rows.fetchone()
        if row is None or row[0] != fingerprint:
            raise SubmissionKeyConflict(submission_key)
        return Accepted(submission_key, EVENT_ADAPTER.validate_json(row[1]), published=row[2] is not None, new=False)

    async def latest_suggestion_from(self, sender: str, since: datetime) -> SuggestionReceived | None:
        """The sender's most recent suggestion accepted here at or after ``since``."""
        async with self.db.execute(
            "SELECT event_json FROM outbox WHERE sender = ? AND tracking_code IS NOT NULL AND accepted_at >= ?"
            " ORDER BY seq DESC LIMIT 1",
            (sender, since.astimezone(UTC).isoformat()),
        ) as rows:
            row = await rows.fetchone()
        return SuggestionReceived.model_validate_json(row[0]) if row else None

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
        cursor = await self.db.execute(
            "UPDATE outbox SET event_json = ? WHERE submission_key = ? AND author = ? AND published_at IS NULL"
            " AND suggestion_id = ?",
            (event.model_dump_json(), submission_key, author, event.suggestion_id),
        )
        await self.db.commit()
        return cursor.rowcount == 1

    async def entries_by(self, author: str, limit: int = 20) -> list[Entry]:
        """The author's most recent entries, newest first."""
        async with self.db.execute(
            "SELECT submission_key, event_json, published_at, hold_until FROM outbox WHERE author = ? ORDER BY seq DESC LIMIT ?",
            (author, limit),
        ) as rows:
            found = await rows.fetchall()
        return [
            Entry(key, SuggestionReceived.model_validate_json(event), published is not None, _parsed(hold))
            for key, event, published, hold in found
        ]

    async def find_by_tracking_code(self, tracking_code: str) -> SuggestionReceived | None:
        async with self.db.execute("SELECT event_json FROM outbox WHERE tracking_code = ?", (tracking_code,)) as rows:
            row = await rows.fetchone()
        return SuggestionReceived.model_validate_json(row[0]) if row else None

    async def publish(self, publisher: Publisher, submission_key: str) -> bool:
        """Try to publish one accepted event now; True once the broker confirmed it."""
        async with self.db.execute(
            "SELECT event_json, published_at, hold_until FROM outbox WHERE submission_key = ?", (submission_key,)
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
            await publisher.publish(EVENT_ADAPTER.validate_json(row[0]))
        except PublishFailed as exc:
            log.warning("outbox_publish_deferred", error=str(exc)[:200])
            return False
        finally:
            self._in_flight.discard(submission_key)
        await self._mark_published(submission_key)
        return True

    async def drain(self, publisher: Publisher, batch: int = 200) -> int:
        """Publish what is still pending, oldest first; stop at the first failure. Returns how many went out."""
        sent = 0
        async with self._drain_lock:
            async with self.db.execute(
                "SELECT submission_key, event_json FROM outbox WHERE published_at IS NULL"
                " AND (hold_until IS NULL OR hold_until <= ?) ORDER BY seq LIMIT ?",
                (datetime.now(UTC).isoformat(), batch),
            ) as rows:
                pending = await rows.fetchall()
            for submission_key, event_json in pending:
                if submission_key in self._in_flight:
                    break
                self._in_flight.add(submission_key)
                try:
                    await publisher.publish(EVENT_ADAPTER.validate_json(event_json))
                except PublishFailed:
                    break
                finally:
                    self._in_flight.discard(submission_key)
                await self._mark_published(submission_key)
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

    async def _mark_published(self, submission_key: str) -> None:
        await self.db.execute(
            "UPDATE outbox SET published_at = ? WHERE submission_key = ? AND published_at IS NULL",
            (datetime.now(UTC).isoformat(), submission_key),
        )
        await self.db.commit()
